"""Which machine measured a run, from the environment stored with it.

Timings only compare on one machine: the same CPU model can differ in SIMD level (this project
has run on AVX2 and AVX-512 EPYCs, about 4x apart) and in native bf16, and thread count and
torch version move timings too. Reused results and speedrun tables use these to say where a
figure was measured.
"""

from __future__ import annotations

from collections.abc import Mapping

# What makes two runs' timings comparable (collect_environment's keys).
MACHINE_KEYS = (
    "device_name", "cpu_model", "cpu_capability", "cpu_native_bf16", "torch_threads",
    "torch_version",
)  # fmt: skip


def machine_of(environment: Mapping[str, object]) -> str:
    """The machine in one line, from MACHINE_KEYS: 'AMD EPYC (AVX512, native bf16), 2 torch
    threads, torch 2.13.0+cpu' (a GPU is named before its host CPU)."""
    env = environment
    bf16 = {True: "native bf16", False: "no native bf16"}.get(env.get("cpu_native_bf16"), "bf16 ?")
    cpu = f"{env.get('cpu_model', '?')} ({env.get('cpu_capability', '?')}, {bf16})"
    device = env.get("device_name")
    where = cpu if device in (None, env.get("cpu_model")) else f"{device} on {cpu}"
    threads, torch = env.get("torch_threads", "?"), env.get("torch_version", "?")
    return f"{where}, {threads} torch threads, torch {torch}"


def machines_match(stored: Mapping[str, object], here: Mapping[str, object]) -> bool:
    """Whether two environments agree on every key that moves timings (MACHINE_KEYS)."""
    return all(stored.get(key) == here.get(key) for key in MACHINE_KEYS)
