"""Choosing a time-track recipe on validation and work, never on the test set or on a clock.

Each candidate is one seed (0) of `mnistbench speedrun` with 5,000 training images held out
(`val_size=5000`), trained through the engine like any record. What is kept per candidate: the
equivalent command, the final validation accuracy, and the work it did: optimizer steps,
training images seen, forward FLOPs per image and training FLOPs (3 x forward x images; docs/
measurements.md). The sealed test set is scored once at the end of every speedrun run, as the
rules require; its figure is written beside the others for completeness and plays no part in
the choice. No time is written: the exploration ran on a shared machine, where clocks say
nothing (benchmarks/quiet_window.py takes the timings).

    nice -n 10 python benchmarks/speedrun_explore.py --only lean-b128 --out rows.jsonl
    python benchmarks/speedrun_explore.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    name: str
    model: str
    settings: dict[str, object]
    dataset: str = "mnist"
    model_options: dict[str, object] = field(default_factory=dict)


ADAM = {"epochs": 1, "optimizer": "adam", "lr": 0.01, "nesterov": False}


def _lean(name: str, dataset: str = "mnist", opts: dict | None = None, **settings) -> Candidate:
    return Candidate(name, "speedrun_lean", settings, dataset, opts or {})


# The exploration, in the order it ran; every candidate trains 1 epoch or less unless it says.
CANDIDATES: tuple[Candidate, ...] = (
    _lean("lean-b128", epochs=1, batch_size=128, lr=0.1),
    _lean("lean-b256", epochs=1, batch_size=256, lr=0.2),
    _lean("lean-b128-30k", epochs=1, batch_size=128, lr=0.1, train_images=30000),
    _lean("lean12-b128", opts={"c1": 12, "c2": 24}, epochs=1, batch_size=128, lr=0.1),
    _lean("lean-b64", epochs=1, batch_size=64, lr=0.05),
    _lean("lean-adam-b128", epochs=1, batch_size=128, optimizer="adam", lr=0.01, nesterov=False),
    _lean("lean-b128-40k", epochs=1, batch_size=128, lr=0.1, train_images=40000),
    _lean("lean8-b128", opts={"c1": 8, "c2": 16, "hidden": 64}, epochs=1, batch_size=128, lr=0.1),
    Candidate(
        "fast-small-s2-b128",
        "speedrun_fast_small",
        {"epochs": 1, "batch_size": 128, "lr": 0.1},
        model_options={"stem_stride": 2},
    ),
    # Adam (lr 1e-2, its default betas) beat SGD on validation at the same work: Adam from here
    _lean("lean12-adam-b128", opts={"c1": 12, "c2": 24}, **ADAM, batch_size=128),
    _lean("lean-adam-b256", **ADAM, batch_size=256),
    _lean("lean12-adam-b256", opts={"c1": 12, "c2": 24}, **ADAM, batch_size=256),
    _lean("lean12h256-adam-b128", opts={"c1": 12, "c2": 24, "hidden": 256}, **ADAM, batch_size=128),
    _lean("lean8-adam-b128", opts={"c1": 8, "c2": 16, "hidden": 128}, **ADAM, batch_size=128),
    _lean("lean-adam-b128-45k", **ADAM, batch_size=128, train_images=45000),
    # Fashion-MNIST track (>= 92%): several epochs, Adam as for MNIST
    _lean("fashion-lean-adam-e3", "fashion-mnist", {}, **{**ADAM, "epochs": 3}, batch_size=128),
    _lean(
        "fashion-lean24-adam-e3",
        "fashion-mnist",
        {"c1": 24, "c2": 48, "hidden": 256},
        **{**ADAM, "epochs": 3},
        batch_size=128,
    ),
    _lean(
        "fashion-lean24-adam-e5",
        "fashion-mnist",
        {"c1": 24, "c2": 48, "hidden": 256},
        **{**ADAM, "epochs": 5},
        batch_size=128,
    ),
)


def command_of(c: Candidate) -> str:
    """The `mnistbench speedrun` command line that trains the same run."""
    parts = ["mnistbench", "speedrun", "--dataset", c.dataset, "--seeds", "1", "--device",
             "cpu", "--model", c.model, "--set", "val_size=5000"]  # fmt: skip
    for key, value in c.settings.items():
        parts += ["--set", f"{key}={value}"]
    for key, value in c.model_options.items():
        parts += ["--model-option", f"{key}={value}"]
    return shlex.join(parts)


def run_candidate(c: Candidate, store_path: Path, which: int = 0) -> dict[str, object]:
    from mnistbench.engine.size import flops_per_sample
    from mnistbench.experiments.batch import Session
    from mnistbench.experiments.speedrun import plan_speedrun, run_speedrun
    from mnistbench.models import create_model
    from mnistbench.store import Store

    settings = {"val_size": 5000, **c.settings}
    if c.model_options:
        settings["model_options"] = dict(c.model_options)
    plan = plan_speedrun(dataset=c.dataset, seeds=which + 1, device="cpu", model=c.model,
                         settings=settings)  # fmt: skip
    plan = replace(plan, trials=(plan.trials[which],))  # that seed only (its own split too)
    with Store(str(store_path)) as store:
        result = run_speedrun(plan, store, Session(progress=False))
        seed = result.seeds[0]
        record = store.get_run(seed.run_id) if seed.run_id is not None else None
        epochs = store.epochs(seed.run_id) if seed.run_id is not None else []
    metrics = record.metrics if record is not None else {}
    forward = flops_per_sample(create_model(c.model, **c.model_options), (1, 28, 28), "cpu")
    images = metrics.get("train_images_seen")
    return {
        "candidate": c.name,
        "command": command_of(c) + (f" (seed {which} of --seeds {which + 1})" if which else ""),
        "seed": which,
        "status": seed.status,
        "val_accuracy": epochs[-1].get("val_accuracy") if epochs else None,
        "val_accuracy_by_epoch": [e.get("val_accuracy") for e in epochs],
        "val_loss": epochs[-1].get("val_loss") if epochs else None,
        "train_steps": metrics.get("train_steps"),
        "train_images_seen": images,
        "params": result.params,
        "forward_mflops_per_image": forward / 1e6,
        "train_tflops": 3 * forward * images / 1e12 if images else None,
        "test_accuracy_not_used": seed.test_accuracy,
        "torch_threads": metrics.get("torch_threads") or os.environ.get("OMP_NUM_THREADS"),
    }


def table(rows: list[dict]) -> str:
    """The exploration as a markdown table, in the order it ran."""
    head = ("| # | Candidate | Data | Seed | Val acc | Val loss | Steps | Images | Fwd MFLOP/img "
            "| Train TFLOP | (test, not used) |")  # fmt: skip
    lines = [head, "|" + " --- |" * 11]
    for i, r in enumerate(rows, 1):
        data = "fashion" if "fashion-mnist" in r["command"] else "mnist"
        loss = f"{r['val_loss']:.4f}" if r.get("val_loss") is not None else "-"
        lines.append(
            f"| {i} | {r['candidate']} | {data} | {r.get('seed', 0)} | {r['val_accuracy']:.2%} "
            f"| {loss} | {r['train_steps']} | {r['train_images_seen']:,} "
            f"| {r['forward_mflops_per_image']:.2f} | {r['train_tflops']:.3f} "
            f"| {r['test_accuracy_not_used']:.2%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--out", default="speedrun-explore.jsonl", help="JSON lines, appended")
    parser.add_argument("--list", action="store_true", help="print the candidates' commands")
    parser.add_argument("--seed", type=int, default=0, help="the seed (and validation split)")
    parser.add_argument("--table", help="print the markdown table of this JSON lines file")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines()]))
        return
    chosen = [c for c in CANDIDATES if not args.only or c.name in args.only]
    if args.list:
        for c in chosen:
            print(f"{c.name}: {command_of(c)}")
        return
    from mnistbench.engine.device import flush_denormals

    flush_denormals()  # as the CLI does first thing
    with tempfile.TemporaryDirectory() as folder, open(args.out, "a") as out:
        for c in chosen:
            row = run_candidate(c, Path(folder) / "explore.sqlite", args.seed)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
