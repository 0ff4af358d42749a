"""Study A's spiking CNN and DBN (and study B's single-step SNN) on real data, through the runner.

Each run is trained with `run_config` into a results store (finished configurations are reused,
so the script can be rerun to extend it) and the Markdown table is built from the store.

    python benchmarks/snn_dbn.py --data-dir ../shared/data \
        --store benchmarks/results/snn_dbn.sqlite --out benchmarks/results/snn_dbn.md \
        --runs snn-mnist dbn-mnist [--snn-epochs 1] [--dbn-finetune-epochs 10]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mnistbench.config import make_config
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import cpu_description
from mnistbench.experiments import run_config
from mnistbench.models import get_model_info
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import RunRecord, Store
from mnistbench.studies import recipe_figure
from zoo_small import command_line  # benchmarks/ is on sys.path when run

# key -> (model, dataset, overrides of the model's registered recipe)
RUNS: dict[str, tuple[str, str, dict[str, object]]] = {
    "snn-mnist": ("snn", "mnist", {}),
    "snn-fashion": ("snn", "fashion-mnist", {}),
    # bf16 autocast: convs and linears in bf16 (input spikes are exact), the LIF in fp32
    "snn-mnist-bf16": ("snn", "mnist", {"precision": "bf16"}),
    "snn-fashion-bf16": ("snn", "fashion-mnist", {"precision": "bf16"}),
    "snn_single_step-mnist": ("snn_single_step", "mnist", {}),
    "snn_single_step-fashion": ("snn_single_step", "fashion-mnist", {}),
    "dbn-mnist": ("dbn", "mnist", {}),
    "dbn-fashion": ("dbn", "fashion-mnist", {}),
}


def _tutorial_loop_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The snntorch-tutorial forward: every layer once per time step, snntorch neurons."""
    inputs = model.encode(x)  # (T, B, 1, 28, 28)
    mems = [None, None, None]
    counts = 0
    for step in inputs:
        spikes = step
        for i, (layer, neuron) in enumerate(
            ((lambda s: model.pool(model.conv1(s)), model.lif1),
             (lambda s: model.pool(model.conv2(s)), model.lif2),
             (lambda s: model.fc1(s.flatten(1)), model.lif3))
        ):  # fmt: skip
            current = layer(spikes)
            if mems[i] is None:
                mems[i] = torch.zeros_like(current)
            spikes, mems[i] = neuron(current, mems[i])
        counts = counts + spikes
    return model.head(counts / inputs.shape[0])


def step_times(data_dir: str | None, steps: int) -> list[list[str]]:
    """Median ms per training step (batch 64, T=25, Adam) of three ways to run the same SNN."""
    from mnistbench.data import load_dataset, prepare_device_data
    from mnistbench.engine.device import place_model
    from mnistbench.models import create_model

    raw = load_dataset("mnist", data_dir=data_dir, progress=False)
    data = prepare_device_data(raw, "cpu", val_size=5000, seed=0, scaling="unit", subset=None)
    variants = [
        ("tutorial loop: layers stepped per time step, snntorch.Leaky", "snntorch", True, False),
        ("time folded into the batch, snntorch.Leaky stepped", "snntorch", False, False),
        ("time folded into the batch, fused LIF scan (default)", "fused", False, False),
        ("the default, under bf16 autocast (LIF in fp32)", "fused", False, True),
    ]
    rows = []
    for label, neuron, tutorial, bf16 in variants:
        torch.manual_seed(0)
        model = place_model(create_model("snn", neuron=neuron), "cpu")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        times = []
        for _ in range(steps + 2):  # two warm-up steps
            index = torch.randint(0, len(data.train), (64,), generator=generator)
            x, y = data.train.images[index], data.train.labels[index]
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = _tutorial_loop_logits(model, x) if tutorial else model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        median_s = statistics.median(times[2:])
        steps_per_epoch = -(-len(data.train) // 64)
        rows.append([label, f"{1000 * median_s:.0f}", fmt.seconds(median_s * steps_per_epoch)])
        print(f"{label}: {1000 * median_s:.0f} ms/step", flush=True)
    return rows


def _details(record: RunRecord) -> str:
    """Family-specific figures: firing rates of the SNN, stage budget of the DBN."""
    m = record.metrics
    if "spike_rate_fc1" in m:
        layers = [k.removeprefix("spike_rate_") for k in m if k.startswith("spike_rate_")]
        rates = ", ".join(f"{layer} {m[f'spike_rate_{layer}']:.3f}" for layer in layers)
        return f"T={m.get('spike_time_steps')}; spikes/neuron/step: {rates}"
    if "pretrain_total_s" in m:
        return (
            f"CD pretrain {fmt.seconds(m['pretrain_total_s'])} "
            f"(RBM1 final recon. MSE {m.get('pretrain_rbm1_final_loss', 0):.4f}, "
            f"RBM2 {m.get('pretrain_rbm2_final_loss', 0):.4f}); "
            f"linear probe {fmt.percent(m.get('probe_test_accuracy'))} "
            f"({fmt.seconds(m.get('probe_total_s'))}); "
            f"fine-tune {m.get('finetune_epochs')} epochs {fmt.seconds(m.get('finetune_total_s'))}"
        )
    return ""


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--store", type=Path, default=Path("benchmarks/results/snn_dbn.sqlite"))
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--snn-epochs", type=int, help="override the SNN's 3 epochs (budget)")
    parser.add_argument("--dbn-finetune-epochs", type=int, help="override the DBN's 10")
    parser.add_argument("--table-only", action="store_true", help="train nothing, list the store")
    parser.add_argument(
        "--retrain",
        nargs="*",
        default=[],
        choices=list(RUNS),
        help="train these again even if the store has them (after a change in the code)",
    )
    parser.add_argument(
        "--step-times", type=int, default=0, help="also time N SNN training steps per variant"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_at_start = os.getloadavg()

    records: list[tuple[str, RunRecord]] = []
    with Store(args.store) as store:
        if args.table_only:
            records = [("", r) for r in store.list_runs() if r.status == "finished"]
        for key in [] if args.table_only else args.runs:
            model, dataset, overrides = RUNS[key]
            overrides = dict(overrides)
            if model == "snn" and args.snn_epochs:
                overrides["epochs"] = args.snn_epochs
            if model == "dbn" and args.dbn_finetune_epochs:
                overrides["epochs"] = args.dbn_finetune_epochs
            config = make_config(model, device="cpu", dataset=dataset, **overrides)
            outcome = run_config(
                config, store, data_dir=args.data_dir, progress=False, force=key in args.retrain
            )
            m = outcome.record.metrics
            print(
                f"{key}: {outcome.record.status}, test {fmt.percent(m.get('test_accuracy'))}, "
                f"{fmt.seconds(m.get('time_per_epoch_s'))}/epoch"
                + (" (reused from the store)" if outcome.reused else ""),
                flush=True,
            )
            records.append((key, outcome.record))

    rows = []
    for _, record in records:
        m, c = record.metrics, record.config
        published = recipe_figure(c["model"], get_model_info(c["model"]).recipe.defaults)
        shown = published.test_accuracy if published and c["dataset"] == "mnist" else None
        rows.append(
            [
                c["model"],
                c["dataset"],
                c["precision"],
                str(m.get("epochs_completed")) if c["model"] != "dbn" else f"{c['epochs']} (+15)",
                fmt.percent(m.get("test_accuracy")),
                fmt.percent(m.get("test_accuracy_at_best_val")),
                fmt.percent(m.get("best_test_accuracy")),
                fmt.percent(shown),
                fmt.seconds(m.get("time_per_epoch_s")),
                str(record.environment.get("torch_threads", "—")),
                fmt.seconds(m.get("total_train_time_s")),
                fmt.seconds(m.get("wall_time_s")),
                _details(record),
            ]
        )
    # Step timings are not runs, so they live beside the Markdown and a later invocation
    # without --step-times keeps the last measured ones (with the step count they used).
    steps_file = args.out.with_suffix(".steps.json") if args.out else None
    if args.step_times:
        step_rows = step_times(args.data_dir, args.step_times)
        if steps_file:
            steps_file.write_text(json.dumps({"steps": args.step_times, "rows": step_rows}))
    elif steps_file and steps_file.exists():
        saved = json.loads(steps_file.read_text())
        args.step_times, step_rows = saved["steps"], saved["rows"]
    else:
        step_rows = []
    header = (
        "Model", "Dataset", "Precision", "Epochs", "Test acc (final)", "Test acc @ best val",
        "Best test acc (max over epochs)", "Published", "Time/epoch (train, median)",
        "Threads", "Train time (all stages)", "Wall time", "Details",
    )  # fmt: skip
    command = command_line()
    lines = [
        "# Spiking CNN, single-step SNN and DBN on real data (2-core CPU)",
        "",
        f"Command: `{command}`",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}",
        "Load average (1, 5, 15 min) when this script started: "
        + ", ".join(f"{x:.1f}" for x in load_at_start)
        + "; when it ended: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (2 cores: a load above 2 means other jobs shared them, and times are upper bounds).",
        "",
        "One seed (0) per row; training on 55,000 images (5,000 held out for validation). "
        "Time/epoch is training only, median over epochs; for `dbn` it is the median "
        "fine-tuning epoch and 'Train time' adds the 5+5 CD epochs and the 5 probe epochs. "
        "Published SNN time (~1750 s/epoch) was taken on a CPU and included evaluation. "
        "Threads are the run's torch threads: runs with 1 trained beside another 1-thread run, "
        "one per core, so their times are not those of the machine alone.",
        "",
        "SNN implementation (src/mnistbench/models/snn.py): every conv/linear runs once on the "
        "T time steps folded into the batch, conv1 + max-pool of the binary input spikes is a "
        "lookup over the 2^16 4x4 window patterns, spikes stay channels-last, and only the LIF "
        "recurrence (snntorch Leaky dynamics, fused into one autograd op) loops over T; "
        "tests/test_snn.py checks logits and every gradient against the step-by-step snntorch "
        "loop. Precision bf16 is autocast: convs and linears in bf16 (the 0/1 spikes they read "
        "are exact in bf16), the LIF membranes in fp32.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if step_rows:
        lines += [
            f"## SNN training step, four ways (batch 64, T=25, median of {args.step_times})",
            "",
            "The same network and update; 'epoch' = 860 steps at that median, training only.",
            "",
            markdown_table(("Variant", "ms/step", "Epoch (extrapolated)"), step_rows),
            "",
        ]
    if args.out:
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
