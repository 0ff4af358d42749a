"""Roofline of every registered model at its recipe: time per training step on real data, the
FLOP rate it reaches, its fraction of the machine's peak and what bounds it.

A micro-benchmark, not an epoch: each model trains through the project's own loop and recipe
(`mnistbench run MODEL --epochs 1 --subset N`, in-process) and the first training stage's
batches are timed between successive batch requests, so a step covers augmentation, forward,
backward, optimizer and scheduler steps and the loop's bookkeeping. `WARMUP_STEPS` untimed
steps first (oneDNN picks kernels on the first calls), then steps until `TIMED_SECONDS` or
`MAX_STEPS`; then the run is stopped (nothing of it is kept). An epoch-equivalent is the step
time x ceil(55,000 / batch size), the recipe's epoch with the default 5,000-image validation
split. The same code path exists at commit 5ae60b7, so `compare` measures the old and the new
tree side by side in one sitting (`measure` runs under whichever tree PYTHONPATH names);
with `--rounds N` the two trees take turns, N fresh processes each, and each side's median
process counts (a 3-second sample moves by 10% between spells of the VM).

The bound comes from torch.profiler over `PROFILE_STEPS` more steps: the share of the step's
wall time spent in matmul/conv ops, in other aten ops (element-wise, normalisation, copies,
optimizer arithmetic) and outside every aten op (Python, autograd bookkeeping). See BOUND_RULE.

    /work/coord/quiet.sh python benchmarks/roofline.py compare --base /path/to/old/src \
        --models small_cnn_v1 cnn --out /tmp/roofline-rows.jsonl
    python benchmarks/roofline.py table /tmp/roofline-rows.jsonl --out benchmarks/results/roofline
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 5
TIMED_SECONDS = 3.0
MAX_STEPS = 150
MIN_STEPS = 3
PROFILE_STEPS = 10
TOP_OPS = 8  # the most expensive aten ops kept per profiled row
PROFILE_KEYS = ("profiled_steps", "top_ops", "compute_share", "other_ops_share",
                "outside_ops_share", "aten_ops_per_step", "mean_op_us")  # fmt: skip
TRAIN_IMAGES = 55_000  # 60,000 minus the default 5,000-image validation split
BIG_IMAGE_SIZE = 64  # runs at or above this size get few batches (see _subset)
COMPUTE_OPS = ("conv", "mm", "matmul", "linear", "lstm", "gru", "rnn_", "dot_product", "attention")
BOUND_RULE = (
    "compute: matmul/conv ops take >= 50% of the step or the run reaches >= 25% of peak; "
    "overhead: >= 30% of the step is outside every aten op, or the mean aten op lasts < 20 us "
    "(too short for its arithmetic to outweigh its dispatch); memory: otherwise (element-wise, "
    "normalisation and copy ops outweigh matmul/conv)"
)


class _Stop(Exception):
    """Raised out of the training loop once the steps are timed (and profiled)."""


def _subset(image_size: int, batch_size: int) -> int:
    """Training images for the run: every warm-up, timed and profiled step a full batch, but
    few images where each is large (a 224 px ResNet-50 step takes seconds; its data at 224 px
    would not fit otherwise)."""
    if image_size >= BIG_IMAGE_SIZE:
        return 512
    return min(TRAIN_IMAGES, batch_size * (WARMUP_STEPS + MAX_STEPS + PROFILE_STEPS + 2))


class _Timer:
    """Wraps the loop's training batch iterator: times steps, then profiles, then stops."""

    def __init__(self, profile: bool) -> None:
        self.profile = profile
        self.stamps: list[float] = []
        self.batch = 0
        self.profiler = None
        self.profile_started = 0.0
        self.profile_first = 0
        self.figures: dict[str, object] = {}

    def wrap(self, batches):
        for step, batch in enumerate(batches):
            now = time.perf_counter()
            self.batch = self.batch or len(batch[1])  # the first: the recipe's batch size
            if self.profiler is not None:
                if step - self.profile_first >= PROFILE_STEPS:
                    self._end_profile(now)
                    raise _Stop
            elif step >= WARMUP_STEPS:
                self.stamps.append(now)
                timed = len(self.stamps) - 1
                if timed >= MAX_STEPS or (
                    timed >= MIN_STEPS and now - self.stamps[0] >= TIMED_SECONDS
                ):
                    if not self.profile:
                        raise _Stop
                    self._start_profile(step)
            yield batch
        if self.profiler is not None:
            self._end_profile(time.perf_counter())
        raise _Stop  # the subset ran out first: what was timed stands

    def _start_profile(self, step: int) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.profiler = profile(activities=[ProfilerActivity.CPU])
        self.profiler.__enter__()
        self.profile_first = step
        self.profile_started = time.perf_counter()

    def _end_profile(self, now: float) -> None:
        self.profiler.__exit__(None, None, None)
        wall_us = (now - self.profile_started) * 1e6
        compute_us = other_us = 0.0
        ops = 0
        for event in self.profiler.key_averages():
            if not event.key.startswith("aten::"):
                continue
            ops += event.count
            if any(name in event.key for name in COMPUTE_OPS):
                compute_us += event.self_cpu_time_total
            else:
                other_us += event.self_cpu_time_total
        aten = [e for e in self.profiler.key_averages() if e.key.startswith("aten::")]
        aten.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
        self.figures = {
            "profiled_steps": PROFILE_STEPS,
            # where the step goes, op by op: (op, share of the step's wall time, calls a step)
            "top_ops": [
                [e.key, round(e.self_cpu_time_total / wall_us, 4), e.count / PROFILE_STEPS]
                for e in aten[:TOP_OPS]
            ],
            "compute_share": compute_us / wall_us,
            "other_ops_share": other_us / wall_us,
            "outside_ops_share": max(0.0, 1 - (compute_us + other_us) / wall_us),
            "aten_ops_per_step": ops / PROFILE_STEPS,
            "mean_op_us": (compute_us + other_us) / max(ops, 1),
        }


def measure(model: str, subset: int, profile: bool, extra: list[str]) -> dict[str, object]:
    """One model's steps under the tree on sys.path (called in a fresh process)."""
    from mnistbench.engine import loop

    timer = _Timer(profile)
    original = loop.iterate_batches

    def iterate(split, batch_size, shuffle, generator):
        batches = original(split, batch_size, shuffle=shuffle, generator=generator)
        return timer.wrap(batches) if shuffle else batches

    from mnistbench.cli import main  # a package now, one module at 5ae60b7: same name

    # a compiled run's warm-up (outside the timed steps, as in every run): kept beside the step
    compile_s: list[float] = []
    try:
        from mnistbench.recipes import train_stages
    except ImportError:  # an old tree
        train_stages = None
    warm_up = getattr(train_stages, "compile_for_training", None)

    def timed_warm_up(*args, **kwargs):
        compiled, seconds = warm_up(*args, **kwargs)
        compile_s.append(seconds)
        return compiled, seconds

    if warm_up is not None:
        train_stages.compile_for_training = timed_warm_up
    loop.iterate_batches = iterate
    try:  # restored, so a caller in the same process (a test) trains normally afterwards
        with tempfile.TemporaryDirectory() as folder:
            argv = ["run", model, "--epochs", "1", "--subset", str(subset), "--quiet", "--force",
                    "--store", str(Path(folder) / "runs.sqlite"), *extra]  # fmt: skip
            with contextlib.suppress(_Stop):  # how the timer ends the run
                main(argv)
    finally:
        loop.iterate_batches = original
        if warm_up is not None:
            train_stages.compile_for_training = warm_up
    steps = len(timer.stamps) - 1
    if steps < 1:
        return {"model": model, "steps": 0, "note": "no training batches through the loop"}
    step_s = (timer.stamps[-1] - timer.stamps[0]) / steps
    return {
        "model": model,
        "steps": steps,
        "batch_size": timer.batch,
        "subset": subset,
        "step_ms": step_s * 1e3,
        "images_per_s": timer.batch / step_s,
        "epoch_equivalent_s": step_s * math.ceil(TRAIN_IMAGES / timer.batch),
        "compile_warm_up_s": sum(compile_s) if compile_s else None,
        **timer.figures,
    }


def _static(model: str) -> dict[str, object]:
    """FLOPs per image (the new tree's counter) and the cached peak of this machine."""
    import torch

    from mnistbench.engine.peaks import load_peaks
    from mnistbench.engine.size import flops_per_sample
    from mnistbench.models import create_model, get_model_info

    info = get_model_info(model)
    size = info.recipe.defaults.get("image_size", 28)
    flops = None
    if "sklearn" not in info.tags:
        net = create_model(model)
        flops = flops_per_sample(net, (info.input_shape[0], size, size), "cpu")
    if os.environ.get("ROOFLINE_THREADS"):
        torch.set_num_threads(int(os.environ["ROOFLINE_THREADS"]))
    peaks = load_peaks("cpu")  # the peak measured under this thread count
    return {
        "flops_per_sample": flops,
        "image_size": size,
        "batch_size": info.recipe.defaults.get("batch_size", 64),
        "peak_fp32_flops_per_s": peaks.peak_for("fp32") if peaks else None,
        "torch_threads": torch.get_num_threads(),
    }


def _child(
    tree: str, model: str, subset: int, profile: bool, extra: str = "", env_extra=None
) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": tree, **(env_extra or {})}
    args = [sys.executable, __file__, "measure", model, "--subset", str(subset)]
    args += ["--profile"] if profile else []
    args += [f"--extra={extra}"] if extra else []
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"model": model, "steps": 0, "note": "failed: " + " | ".join(tail)}
    return json.loads(lines[-1])


def _median_child(children: list[dict], profiled: dict | None = None) -> dict:
    """The child with the median step time (the lower middle of an even count), its profile
    figures taken from `profiled` (one child profiles: profiling slows the steps after the
    timed ones, never the timed ones); every child's step time kept in `rounds_step_ms`."""
    timed = sorted((c for c in children if c.get("step_ms")), key=lambda c: c["step_ms"])
    if not timed:
        return children[-1]  # every child failed: its note says why
    chosen = dict(timed[(len(timed) - 1) // 2])
    if profiled is not None and "compute_share" in profiled:
        chosen.update({k: profiled[k] for k in PROFILE_KEYS if k in profiled})
    chosen["rounds_step_ms"] = [c.get("step_ms") for c in children]
    if any(c.get("compile_warm_up_s") is not None for c in children):  # the first is the cold one
        chosen["rounds_compile_warm_up_s"] = [c.get("compile_warm_up_s") for c in children]
    return chosen


def compare(args: argparse.Namespace) -> None:
    from mnistbench.engine.environment import cpu_model_name
    from mnistbench.models import list_models

    head = args.head or str(Path(__file__).resolve().parents[1] / "src")
    models = args.models or [info.name for info in list_models()]
    if args.threads:
        os.environ["ROOFLINE_THREADS"] = str(args.threads)  # this process's peak and children
    head_env = dict(item.split("=", 1) for item in args.env)
    with open(args.out, "a") as out:
        for model in models:
            row = {"model": model, "machine": cpu_model_name(), **_static(model)}
            subset = _subset(row["image_size"], row["batch_size"])
            # the two trees take turns, `rounds` children each, so a slow spell of the VM falls
            # on both; each side keeps its median child (the after side's last child profiles)
            befores, afters = [], []
            for round_ in range(args.rounds):
                if args.base:
                    befores.append(_child(args.base, model, subset, False))
                profile = round_ == args.rounds - 1
                afters.append(_child(head, model, subset, profile, args.extra, head_env))
            if args.base:
                row["before"] = _median_child(befores)
            row["after"] = _median_child(afters, profiled=afters[-1])
            row["after_settings"] = " ".join([args.extra, *args.env]).strip()
            row["variant"] = row["after_settings"]  # a row of its own in the table
            row["threads_override"] = args.threads
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    m = verbs.add_parser("measure", help="one model, the tree on PYTHONPATH; prints one JSON line")
    m.add_argument("model")
    m.add_argument("--subset", type=int, required=True)
    m.add_argument("--profile", action="store_true")
    m.add_argument("--extra", default="", help="more `mnistbench run` flags, space-separated")
    c = verbs.add_parser("compare", help="old tree (--base) and this one, model by model")
    c.add_argument("--base", help="src folder of the old tree (e.g. a 5ae60b7 worktree's src)")
    c.add_argument("--head", help="src folder of the new tree (default: this checkout's src)")
    c.add_argument("--models", nargs="*")
    c.add_argument("--threads", type=int, help="torch threads in both trees (default torch's)")
    c.add_argument("--out", required=True, help="JSON lines file to append rows to")
    c.add_argument("--extra", default="", help="run flags for the new tree only, e.g. --compile")
    c.add_argument("--rounds", type=int, default=1,
                   help="children per tree, in turns; the median child's step counts")  # fmt: skip
    c.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the new tree only, e.g. MNISTBENCH_CHANNELS_LAST=on; "
                   "the row is a variant of its own")  # fmt: skip
    t = verbs.add_parser("table", help="markdown + JSON from compare's rows")
    t.add_argument("rows", nargs="+")
    t.add_argument("--out", required=True, help="path stem: writes STEM.md and STEM.json")
    t.add_argument("--command", default="", help="the command line that measured the rows")
    t.add_argument("--notes", default="", help="a paragraph printed above the table")
    t.add_argument("--title", help="the table's heading (default: the all-models roofline)")
    args = parser.parse_args()
    if args.verb == "measure":
        import torch

        torch.set_flush_denormal(True)  # as the CLI does first thing (engine.device)
        if os.environ.get("ROOFLINE_THREADS"):
            torch.set_num_threads(int(os.environ["ROOFLINE_THREADS"]))
        print(json.dumps(measure(args.model, args.subset, args.profile, args.extra.split())))
    elif args.verb == "compare":
        compare(args)
    else:
        from roofline_table import (
            TITLE,
            write_table,  # benchmarks/, beside this file
        )

        write_table(args.rows, Path(args.out), args.command, args.notes, args.title or TITLE)


if __name__ == "__main__":
    main()
