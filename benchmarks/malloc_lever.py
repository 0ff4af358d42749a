"""Does keeping freed memory mapped (engine/allocator.py, $MNISTBENCH_MALLOC=retain) make a
training step faster on this CPU? A process-by-process A/B.

The setting is process-wide (glibc stops adjusting its mmap threshold once mallopt is called),
so the two sides cannot take turns inside one process as step_levers' variants do: each side
runs in fresh processes, `default` and `retain` alternating (ROUNDS processes each), so slow
spells of the VM fall on both. Each process trains the model step alone (step_levers' trainer:
one fixed batch at the recipe's batch size and image size, forward, loss, backward, fused Adam),
warms up, then times BLOCKS blocks of STEPS steps inside `retained_allocations(setting)`, and
counts what the allocator costs: minor page faults and system CPU seconds a step (getrusage),
and the process's peak resident memory. The figure per side is the median of all its blocks.

    python benchmarks/malloc_lever.py --model resnet18 --out benchmarks/results/malloc-resnet18
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mnistbench.engine.allocator import retained_allocations, retention_available
from mnistbench.engine.peaks import load_peaks
from mnistbench.engine.size import flops_per_sample
from mnistbench.models import create_model, get_model_info
from step_levers import (  # a sibling script: benchmarks/ is on the path
    _trainer,
    input_shape,
    sitting,
    step_rate,
)

SETTINGS = ("default", "retain")
ROUNDS = 3  # processes per side
BLOCKS = 3
STEPS = 20


def child(model_name: str, setting: str, blocks: int, steps: int, compiled: bool) -> dict:
    """One process's side: warm-up, then `blocks` timed blocks, with the allocator's costs."""
    batch = get_model_info(model_name).recipe.defaults.get("batch_size", 64)
    step = _trainer(model_name, batch, compiled=compiled, channels_last=False, cpp_wrapper=compiled)
    with retained_allocations(setting) as retained:
        for _ in range(3):  # warm-up: oneDNN's kernel choice, compilation, the heap's growth
            step()
        before = resource.getrusage(resource.RUSAGE_SELF)
        block_ms = []
        for _ in range(blocks):
            started = time.perf_counter()
            for _ in range(steps):
                step()
            block_ms.append((time.perf_counter() - started) / steps * 1e3)
        after = resource.getrusage(resource.RUSAGE_SELF)
    timed = blocks * steps
    return {
        "setting": setting,
        "retained": retained,
        "block_ms": block_ms,
        "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / timed,
        "system_ms_per_step": (after.ru_stime - before.ru_stime) / timed * 1e3,
        "user_ms_per_step": (after.ru_utime - before.ru_utime) / timed * 1e3,
        "peak_rss_mb": after.ru_maxrss / 1024,  # Linux: KiB
    }


def measure(model_name: str, rounds: int, blocks: int, steps: int, compiled: bool) -> dict:
    runs: list[dict] = []
    for round_index in range(rounds):
        for setting in SETTINGS if round_index % 2 == 0 else reversed(SETTINGS):
            command = [
                sys.executable, __file__, "--child", "--model", model_name, "--setting", setting,
                "--blocks", str(blocks), "--steps", str(steps),
            ] + (["--compiled"] if compiled else [])  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"  {setting}: {runs[-1]['block_ms']}", file=sys.stderr)
    info = get_model_info(model_name)
    batch = info.recipe.defaults.get("batch_size", 64)
    flops = flops_per_sample(create_model(model_name), input_shape(model_name), "cpu")
    peaks = load_peaks("cpu")
    sides = {}
    for setting in SETTINGS:
        mine = [run for run in runs if run["setting"] == setting]
        blocks_ms = [ms for run in mine for ms in run["block_ms"]]
        median_ms = statistics.median(blocks_ms)
        sides[setting] = {
            "median_step_ms": median_ms,
            "blocks_ms": blocks_ms,
            "retained": all(run["retained"] for run in mine) if setting == "retain" else False,
            **step_rate(flops, batch, median_ms, peaks),
            **{
                key: statistics.median(run[key] for run in mine)
                for key in (
                    "page_faults_per_step", "system_ms_per_step", "user_ms_per_step",
                    "peak_rss_mb",
                )
            },
        }  # fmt: skip
    return {
        "model": model_name, "batch_size": batch, "image_px": input_shape(model_name)[-1],
        "variant": "torch.compile, cpp_wrapper" if compiled else "eager",
        "rounds": rounds, "blocks": blocks, "steps_per_block": steps,
        "flops_per_sample": flops,
        "peak_fp32_flops_per_s": peaks.peak_for("fp32") if peaks else None,
        "retain_over_default": sides["retain"]["median_step_ms"]
        / sides["default"]["median_step_ms"],
        **sitting(), "sides": sides,
    }  # fmt: skip


def markdown(result: dict, command: str) -> str:
    peak = result["peak_fp32_flops_per_s"]
    lines = [
        f"# Allocator lever: {result['model']} ({result['variant']}) at batch "
        f"{result['batch_size']}, {result['image_px']} px",
        "",
        f"Command: `{command}`",
        f"Machine: {result['machine']}, {result['torch_threads']} torch thread(s), torch "
        f"{result['torch']}, commit {str(result['commit'])[:7]}, {result['date']}; fp32 peak "
        + (f"{peak / 1e9:.1f} GFLOP/s (`mnistbench bench peak`)" if peak else "not measured"),
        "",
        f"The model step alone, each side in {result['rounds']} fresh processes taking turns, "
        f"{result['blocks']} blocks of {result['steps_per_block']} steps each after a warm-up; "
        "the median block per side. Page faults, system and user CPU are per step over the "
        "timed blocks (getrusage); peak RSS is the process's. GFLOP/s counts 3x the forward "
        f"FLOPs per image ({result['flops_per_sample']:,}).",
        "",
        "| Allocator | Median step ms | Blocks (ms) | Against default | GFLOP/s | % of fp32 peak "
        "| Page faults / step | System ms / step | User ms / step | Peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = result["sides"]["default"]["median_step_ms"]
    for setting, side in result["sides"].items():
        share = side["fraction_of_fp32_peak"]
        label = setting + ("" if setting == "default" or side["retained"] else " (not applied)")
        lines.append(
            f"| {label} | {side['median_step_ms']:.2f} | "
            + ", ".join(f"{v:.1f}" for v in side["blocks_ms"])
            + f" | {side['median_step_ms'] / base:.3f}x | {side['gflop_per_s']:.1f} | "
            + (f"{100 * share:.1f}" if share is not None else "—")
            + f" | {side['page_faults_per_step']:,.0f} | {side['system_ms_per_step']:.1f} | "
            f"{side['user_ms_per_step']:.1f} | {side['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small_cnn_bn")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--compiled", action="store_true", help="torch.compile, cpp_wrapper")
    parser.add_argument("--out", help="path stem: writes STEM.md and STEM.json (else stdout)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.setting, args.blocks, args.steps, args.compiled)))
        return
    if not retention_available():
        sys.exit("malloc_lever.py: this C library is not glibc, so `retain` cannot apply here.")
    result = measure(args.model, args.rounds, args.blocks, args.steps, args.compiled)
    text = markdown(result, "python benchmarks/malloc_lever.py " + " ".join(sys.argv[1:]))
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
        Path(args.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
