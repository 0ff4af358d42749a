"""Every timing issues 29 and 31 commit, taken in one quiet sitting on one machine.

Run it when nothing else runs on the machine (it takes the project's CPU lock, so the other
benchmarks wait for it); each part can run alone (`--parts`):

- `speedrun`: the public recipe (benchmarks/public_mnist_fast.py, tuomaso/train_mnist_fast)
  and our listed MNIST 99% recipe side by side, seeds interleaved (public seed 0, ours seed 0,
  public seed 1, ...), every seed counted -> `speedrun-vs-public.md/.json`;
- `fashion`: the listed Fashion-MNIST 92% recipe, every seed -> `speedrun-fashion.md/.json`;
- `roofline`: small_cnn_bn and ResNet-18/50 at 64 px through benchmarks/roofline.py, the
  `--base` commit's tree against this one, same sitting -> `roofline-quiet.md/.json`;
- `accuracy`: ResNet-18/50 at 64 px, a short run (1 epoch on `ACCURACY_IMAGES` images, seed
  0) in both trees, to show the speed-up left accuracy within its interval ->
  `resnet64-accuracy.md/.json`.

Every output names the command, the machine (CPU model, the SIMD level torch dispatches to,
native bf16, torch threads), the date and the commit. The runs themselves go to
`quiet-window.runs.jsonl` (`mnistbench export --format jsonl`). `--estimate` prints the planned
work and the expected wall time without running anything.

    flock /tmp/mnistbench-cpu.lock python benchmarks/quiet_window.py            # everything
    python benchmarks/quiet_window.py --parts speedrun --seeds 5
    python benchmarks/quiet_window.py --estimate
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARTS = ("speedrun", "fashion", "roofline", "accuracy")
BASE_COMMIT = "7704491"  # main before issues 29 and 31
ROOFLINE_MODELS = ("small_cnn_bn", "resnet18", "resnet50")
CHANNELS_LAST_VARIANTS = ("small_cnn_bn", "resnet18")  # NCHW on the CPU by their choice
COMPILED_VARIANTS = ("small_cnn_bn",)
ROOFLINE_ROUNDS = 3  # fresh processes per tree and model, taking turns (a 3 s sample is noisy)
COMPILED_ROUNDS = 2  # each compiled process compiles again (the second from inductor's cache)
ACCURACY_MODELS = ("resnet18", "resnet50")
WARM_UP_IMAGES = 2560  # each recipe's untimed warm-up before seed 0 (speedrun part)
ACCURACY_IMAGES = 1024  # training images of the short run (and test images it is scored on)
# Expected wall seconds per part on the 2-core AVX2 EPYC: an estimate from work counts, not a
# measurement. speedrun: the public epoch ~14 s there (8.7 s on the AVX-512 EPYC, issue 29,
# x1.6 for AVX2 as speedrun_fast measured), ours ~0.35x of it by FLOPs and the interleaved
# step ratio, plus ~5 s a seed of data preparation, evaluation and latency probes, the
# warm-up and one peak measurement: ~5 x 25 + 30 s. fashion: 5 seeds of the listed recipe,
# 5 epochs of a net at 1.36x the public net's FLOPs, ~1.06x its per-image cost (scaled from
# the interleaved step ratio of speedrun-explore-29.md): ~5 x 75 + 25 s. roofline:
# 24 child runs (3 models x 2 trees x 3 rounds, 2 x 2 compiled, 2 channels-last rows) of
# ~15-20 s each, the first compiled one ~2 min more. accuracy: 4 short
# runs, ResNet-50's ~55 s (64 steps of ~0.5 s, evaluation, latency probes), ResNet-18's ~30 s.
ESTIMATE_S = {"speedrun": 160, "fashion": 400, "roofline": 600, "accuracy": 180}


def machine_line(threads: int) -> str:
    import torch

    from mnistbench.engine.environment import cpu_description

    return f"{cpu_description()}, {threads} torch threads, torch {torch.__version__}"


def header(title: str, command: str, threads: int) -> list[str]:
    from mnistbench.engine.environment import git_sha

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line(threads)}  ",
        f"Date: {when}; commit {git_sha() or '?'}; written by benchmarks/quiet_window.py",
        "",
    ]


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pm(values: list[float], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    mean, std = _mean_std(values)
    text = f"{mean * scale:.{digits}f}{unit}"
    return text + (f" ± {std * scale:.{digits}f}{unit}" if std is not None else "")


# ------------------------------------------------------------------------------- speedrun


def part_speedrun(args, store, out: Path, command: str) -> dict:
    """Public recipe and ours, seeds interleaved, every seed counted."""
    sys.path.insert(0, str(HERE))
    import public_mnist_fast as public
    from mnistbench.cli.speedrun import summary_lines
    from mnistbench.data import load_dataset
    from mnistbench.experiments.batch import Session
    from mnistbench.experiments.speedrun import plan_speedrun, run_speedrun

    raw = load_dataset("mnist")
    plan = plan_speedrun(dataset="mnist", target=0.99, seeds=args.seeds, device="cpu")
    # untimed and discarded: both recipes' kernels are chosen and JIT-compiled once, so seed 0
    # of neither pays oneDNN's first calls inside its clock
    public.run_seed(replace(raw, train_images=raw.train_images[:WARM_UP_IMAGES],
                            train_labels=raw.train_labels[:WARM_UP_IMAGES]), 0)  # fmt: skip
    warm = plan_speedrun(dataset="mnist", target=0.99, seeds=1, device="cpu",
                         settings={"train_images": WARM_UP_IMAGES})  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        from mnistbench.store import Store

        with Store(str(Path(scratch) / "warm-up.sqlite")) as scratch_store:
            run_speedrun(warm, scratch_store, Session(progress=False))
    publics, ours = [], []
    for seed in range(args.seeds):
        row = public.run_seed(raw, seed)
        publics.append(row)
        print(f"public seed {seed}: test {row.accuracy:.2%}, train {row.train_time_s:.2f} s",
              flush=True)  # fmt: skip
        one = run_speedrun(
            replace(plan, trials=(plan.trials[seed],)), store, Session(progress=False)
        )
        ours.append(one)
        s = one.seeds[0]
        print(f"ours   seed {seed}: {s.status}, test {s.counted_accuracy:.2%}, "
              f"train {s.train_time_s or float('nan'):.2f} s", flush=True)  # fmt: skip
    result = replace(ours[0], seeds=[one.seeds[0] for one in ours])
    pub_acc = [r.accuracy for r in publics]
    pub_time = [r.train_time_s for r in publics]
    our_acc, our_time = result.accuracies(), result.train_times()
    ratio = statistics.fmean(our_time) / statistics.fmean(pub_time) if our_time else None
    cfg = result.config
    rows = [
        ("tuomaso/train_mnist_fast, re-typed (benchmarks/public_mnist_fast.py): PublicNet, "
         "Adam 1e-2 (0.7, 0.9), OneCycle, batch 256, 1 epoch of 60,000", pub_acc, pub_time,
         215_194, publics[0].train_steps),
        (f"`mnistbench speedrun` ({result.model}: {cfg.optimizer} lr {cfg.lr:g}, batch "
         f"{cfg.batch_size}, {cfg.epochs} epoch(s), {cfg.precision})", our_acc, our_time,
         result.params, None),
    ]  # fmt: skip
    lines = header("MNIST >= 99%: the public recipe and ours, side by side", command, args.threads)
    lines += [
        f"{args.seeds} seeds each, interleaved (public seed 0, ours seed 0, public seed 1, ...), "
        f"same process, nothing else running, after an untimed warm-up of each recipe on "
        f"{WARM_UP_IMAGES:,} images (so neither seed 0 pays oneDNN's first calls). Training "
        "time as docs/speedrun.md defines it (the training loop's wall time; data load, model "
        "construction and the test pass outside it) for both. Every seed counts (a seed that "
        "failed counts 0%).",
        "",
        "| Recipe | Params | Test acc (mean ± std) | Min / max | Seeds ≥ 99.0% | Train time s "
        "(mean ± std) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, acc, times, params, _ in rows:
        lines.append(
            f"| {name} | {params:,} | {_pm(acc, 100, 2, '%')} | {min(acc):.2%} / {max(acc):.2%} "
            f"| {sum(a >= 0.99 for a in acc)}/{len(acc)} | {_pm(times) if times else '-'} |"
        )
    lines += [
        "",
        f"Ratio of mean training times, ours / public: **{ratio:.2f}x**" if ratio else
        "Ratio: none (no seed of ours finished)",
        "",
        "Per seed (public, then ours):",
        "",
    ]  # fmt: skip
    for seed, (p, s) in enumerate(zip(publics, result.seeds, strict=True)):
        lines.append(f"- seed {seed}: public {p.accuracy:.2%} in {p.train_time_s:.2f} s; ours "
                     f"{s.counted_accuracy:.2%} in {s.train_time_s or float('nan'):.2f} s "
                     f"({s.status})")  # fmt: skip
    lines += ["", "```", *summary_lines(result), "```", ""]
    (out / "speedrun-vs-public.md").write_text("\n".join(lines))
    figures = {"command": command, "machine": machine_line(args.threads), "ratio": ratio,
               "public": [asdict(r) for r in publics], "ours": result.to_dict()}  # fmt: skip
    (out / "speedrun-vs-public.json").write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def part_fashion(args, store, out: Path, command: str) -> dict:
    from mnistbench.cli.speedrun import summary_lines
    from mnistbench.experiments.batch import Session
    from mnistbench.experiments.speedrun import plan_speedrun, run_speedrun

    plan = plan_speedrun(dataset="fashion-mnist", target=0.92, seeds=args.seeds, device="cpu")
    result = run_speedrun(plan, store, Session(progress=False))
    lines = header("Fashion-MNIST >= 92%: the listed recipe, every seed", command, args.threads)
    lines += ["```", *summary_lines(result), "```", ""]
    (out / "speedrun-fashion.md").write_text("\n".join(lines))
    figures = {"command": command, "machine": machine_line(args.threads), **result.to_dict()}
    (out / "speedrun-fashion.json").write_text(json.dumps(figures, indent=1) + "\n")
    print("\n".join(summary_lines(result)), flush=True)
    return figures


# ------------------------------------------------------------------------------- roofline


def base_tree(commit: str, folder: Path) -> Path:
    """`commit`'s src, unpacked from git (no worktree is added to the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def ensure_cpu_peak(threads: int) -> None:
    """The fp32 peak under `threads` torch threads, measured once if not cached (the
    roofline's fraction of peak reads it)."""
    import torch

    from mnistbench.engine.peaks import ensure_peak

    torch.set_num_threads(threads)
    os.environ.pop("MNISTBENCH_AUTO_PEAK", None)
    ensure_peak("cpu", "fp32", progress=lambda text: print(text, flush=True))


def part_roofline(args, base: Path, out: Path, command: str) -> None:
    ensure_cpu_peak(args.threads)
    rows = out / "roofline-quiet.rows.jsonl"
    rows.unlink(missing_ok=True)
    run = [sys.executable, str(HERE / "roofline.py")]

    def compare(models: tuple[str, ...], *flags: str) -> None:
        """roofline.py compare of `models` into this sitting's rows, at its threads."""
        subprocess.run([*run, "compare", "--models", *models, "--threads", str(args.threads),
                        *flags, "--out", str(rows)], check=True)  # fmt: skip

    compare(ROOFLINE_MODELS, "--base", str(base), "--rounds", str(ROOFLINE_ROUNDS))
    # the compiled small net against the same eager before: --compile is the engine's lever for
    # small models (issue 29 item 4); its warm-up is outside the timed steps, as in a run
    compare(COMPILED_VARIANTS, "--base", str(base), "--rounds", str(COMPILED_ROUNDS),
            "--extra=--compile")  # fmt: skip
    # the other layout of the models that opt out of channels-last on the CPU: rows of their
    # own, this tree only (docs/speed.md: the A/B under contention did not settle it)
    compare(CHANNELS_LAST_VARIANTS, "--env", "MNISTBENCH_CHANNELS_LAST=on")
    notes = (
        f"Before: commit {BASE_COMMIT} (main before issues 29 and 31). After: this tree, with "
        "its defaults (among them the allocator's `retain`, engine/allocator.py). "
        f"{args.threads} torch threads in both, measured one after the other in one quiet "
        f"sitting on {machine_line(args.threads)} ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC). Each model's two trees take turns, {ROOFLINE_ROUNDS} fresh processes each "
        f"({COMPILED_ROUNDS} for the [--compile] row), and each side's median process counts; "
        "the profile columns come from the last process of the after side. ResNets at 64 px "
        "are timed on a few batches of 512 images (see the Timed steps column). The "
        "[--compile] row is this tree compiled (on the CPU through inductor's C++ wrapper) "
        "against the same eager before; its compile warm-up, timed apart by every run, is not "
        "in its step. Rows marked [MNISTBENCH_CHANNELS_LAST=on] are this tree with every conv "
        "net channels-last (no before column)."
    )
    title = f"Roofline before ({BASE_COMMIT}) and after: small nets and ResNets at 64 px"
    subprocess.run([*run, "table", str(rows), "--out", str(out / "roofline-quiet"),
                    "--command", command, "--notes", notes, "--title", title],
                   check=True)  # fmt: skip


# ------------------------------------------------------------------------------- accuracy


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson 95% interval of a proportion (the closed form; mnistbench.statistics'
    wilson_interval once the stats branch lands)."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _short_run(tree: Path, model: str, folder: Path) -> dict:
    store = folder / f"{model}-{tree.parent.name}.sqlite"
    env = {**os.environ, "PYTHONPATH": str(tree), "MNISTBENCH_AUTO_PEAK": "off"}
    run = [sys.executable, "-m", "mnistbench"]
    subprocess.run([*run, "run", model, "--epochs", "1", "--subset", str(ACCURACY_IMAGES),
                    "--val-size", "256", "--seed", "0", "--quiet", "--force", "--store",
                    str(store)], env=env, check=True)  # fmt: skip
    exported = folder / f"{model}-{tree.parent.name}.json"
    subprocess.run([*run, "export", "--store", str(store), "--format", "json", "--out",
                    str(exported)], env=env, check=True)  # fmt: skip
    (row,) = json.loads(exported.read_text())
    return {"test_accuracy": row.get("test_accuracy"), "train_s": row.get("total_train_time_s")}


def part_accuracy(args, base: Path, out: Path, command: str, folder: Path) -> None:
    head = ROOT / "src"
    lines = header("ResNets at 64 px: a short run before and after", command, args.threads)
    lines += [
        f"1 epoch on the first {ACCURACY_IMAGES:,} training images (256 held out), seed 0, "
        f"scored on the first {ACCURACY_IMAGES:,} test images: the speed-up should leave "
        f"accuracy within its Wilson 95% interval. Before: {BASE_COMMIT}; after: this tree.",
        "",
        "| Model | Acc before (95% CI) | Acc after (95% CI) | Train s before | Train s after |",
        "| --- | --- | --- | --- | --- |",
    ]
    figures = {}
    for model in ACCURACY_MODELS:
        before, after = _short_run(base, model, folder), _short_run(head, model, folder)
        figures[model] = {"before": before, "after": after}
        cells = []
        for side in (before, after):
            acc = side["test_accuracy"]
            low, high = wilson(round(acc * ACCURACY_IMAGES), ACCURACY_IMAGES)
            cells.append(f"{acc:.2%} ({low:.2%}-{high:.2%})")
        lines.append(f"| {model} | {cells[0]} | {cells[1]} | {before['train_s']:.1f} | "
                     f"{after['train_s']:.1f} |")  # fmt: skip
    (out / "resnet64-accuracy.md").write_text("\n".join(lines) + "\n")
    (out / "resnet64-accuracy.json").write_text(json.dumps(figures, indent=1) + "\n")


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads for every part (default: all cores)")  # fmt: skip
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--estimate", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args()
    seeded = {"speedrun", "fashion"}  # their estimates are for 5 seeds
    planned = {p: ESTIMATE_S[p] * (args.seeds / 5 if p in seeded else 1) for p in args.parts}
    expected = sum(planned.values())
    if args.estimate:
        for part, seconds in planned.items():
            print(f"{part}: about {seconds:.0f} s (estimate, 2-core AVX2 EPYC)")
        print(f"total: about {expected / 60:.0f} min")
        return
    import torch

    from mnistbench.engine.device import flush_denormals

    torch.set_num_threads(args.threads)
    flush_denormals()
    command = shlex.join(["python", "benchmarks/quiet_window.py", *sys.argv[1:]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    from mnistbench.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_path = folder / "quiet.sqlite"
        with Store(str(store_path)) as store:
            if "speedrun" in args.parts:
                part_speedrun(args, store, out, command)
            if "fashion" in args.parts:
                part_fashion(args, store, out, command)
        if {"speedrun", "fashion"} & set(args.parts):
            subprocess.run([sys.executable, "-m", "mnistbench", "export", "--store",
                            str(store_path), "--format", "jsonl", "--out",
                            str(out / "quiet-window.runs.jsonl")], check=True)  # fmt: skip
        if {"roofline", "accuracy"} & set(args.parts):
            base = base_tree(BASE_COMMIT, folder)
            if "roofline" in args.parts:
                part_roofline(args, base, out, command)
            if "accuracy" in args.parts:
                part_accuracy(args, base, out, command, folder)
    print(f"quiet window: {time.perf_counter() - started:.0f} s wall", flush=True)


if __name__ == "__main__":
    main()
