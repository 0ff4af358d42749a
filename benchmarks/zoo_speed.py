"""Time per epoch of every study model on this CPU against its study's CUDA time, from the stores.

It reads the finished full-data MNIST runs that the other benchmarks recorded (zoo_small,
zoo_large, suite_full, snn_dbn, pretrain_probe) and its own store, where `--runs` trains the
speed variants below at the full recipe. Per model it sets the plain fp32 run beside the fastest
run with its accuracy, so a speed setting counts only with the accuracy it kept. The target is
the study's own time per epoch where it states one (study A), else the fastest CUDA time any
study states (14 s, study A's cnn), as issue 3 asks.

    python benchmarks/zoo_speed.py [--runs microresnet-bf16 vit-bf16 ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from mnistbench.config import make_config
from mnistbench.engine.device import flush_denormals
from mnistbench.experiments import run_config
from mnistbench.models import get_model_info, list_models
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table
from mnistbench.store import RunRecord, Store
from mnistbench.studies import recipe_figure
from zoo_small import command_line, commands, record_command  # benchmarks/ is on sys.path when run

RESULTS = Path("benchmarks/results")
STORES = (
    "zoo_speed",
    "zoo_small",
    "zoo_large",
    "architecture_showdown",
    "snn_dbn",
    "pretrain_probe",
)
FASTEST_STUDY_CUDA_EPOCH_S = 14.0  # study A's cnn: the floor of the 14-24.5 s range
SPEED_KEYS = ("precision", "compile", "batch_size")  # settings that change speed, not the recipe


# key -> (model, overrides of its MNIST recipe): speed settings only, never the recipe itself
RUNS: dict[str, tuple[str, dict[str, object]]] = {
    "microresnet-bf16": ("microresnet", {"precision": "bf16"}),
    "vit-bf16": ("vit", {"precision": "bf16"}),
    # the zoo_small runs shared the cores (1 thread each); these have the machine alone
    "small_cnn_bn": ("small_cnn_bn", {}),
    "small_cnn_v1": ("small_cnn_v1", {}),
    "small_cnn_v2": ("small_cnn_v2", {}),
    "diet_3": ("diet_3", {}),
}

RUNS_MODELS = {model for model, _ in RUNS.values()}


@dataclass(frozen=True)
class MeasuredRun:
    """One finished full-data MNIST run and where it was recorded."""

    store: str
    record: RunRecord

    @property
    def time_per_epoch_s(self) -> float:
        return self.record.metrics["time_per_epoch_s"]

    @property
    def threads(self) -> int | None:
        return self.record.environment.get("torch_threads")

    @property
    def cpu(self) -> str:
        env = self.record.environment
        if "cpu_capability" not in env:
            return "not recorded (runs before the field existed)"
        return f"{env['cpu_capability']}{', native bf16' if env.get('cpu_native_bf16') else ''}"

    def settings(self) -> str:
        """The speed settings that differ from the model's recipe, 'recipe' if none do."""
        config = self.record.config
        recipe = make_config(config["model"])
        changed = [
            fmt.setting(key, config[key])
            for key in SPEED_KEYS
            if key in config and config[key] != getattr(recipe, key)
        ]
        flushed = self.record.environment.get("cpu_flush_denormal", "off")  # older runs: off
        if flushed != "off":
            changed.append(
                "denormals flushed" + (" (some threads)" if flushed != "all threads" else "")
            )
        return ", ".join(changed) or "recipe"


def target_s(model: str) -> tuple[float, str]:
    """(seconds, where the figure comes from) for the model's time-per-epoch target."""
    published = recipe_figure(model, get_model_info(model).recipe.defaults)
    if published and published.time_per_epoch_s:  # study A's snn was timed on a CPU
        return (
            published.time_per_epoch_s,
            f"study {published.study}, {published.time_device.upper()}",
        )
    return FASTEST_STUDY_CUDA_EPOCH_S, "fastest study CUDA time"


def measured_runs(results_dir: Path) -> dict[str, list[MeasuredRun]]:
    """Model -> its finished CPU MNIST runs on the recipe's data, in every store that exists."""
    by_model: dict[str, list[MeasuredRun]] = {}
    for name in STORES:
        path = results_dir / f"{name}.sqlite"
        if not path.exists():
            continue
        with Store(path) as store:
            for record in store.list_runs(status="finished", dataset="mnist"):
                config, metrics = record.config, record.metrics
                recipe_subset = make_config(record.model).subset  # the SVMs fit on 10,000
                if config.get("subset") != recipe_subset or config.get("device") != "cpu":
                    continue
                if metrics.get("time_per_epoch_s") is None:
                    continue
                by_model.setdefault(record.model, []).append(MeasuredRun(name, record))
    return by_model


def described(run: MeasuredRun | None) -> str:
    """'<time per epoch> (<threads> thr), <test accuracy>' for a table cell."""
    if run is None:
        return "—"
    return (
        f"{fmt.seconds(run.time_per_epoch_s)} ({run.threads} thr), "
        f"{fmt.percent(run.record.metrics.get('test_accuracy'))}"
    )


def rows(by_model: dict[str, list[MeasuredRun]]) -> list[list[str]]:
    table = []
    for info in list_models():
        if recipe_figure(info.name, info.recipe.defaults) is None or info.name not in by_model:
            continue
        runs = by_model[info.name]
        fp32 = [r for r in runs if r.settings() == "recipe"]
        plain = min(fp32, key=lambda r: r.time_per_epoch_s) if fp32 else None
        fastest = min(runs, key=lambda r: r.time_per_epoch_s)
        target, source = target_s(info.name)
        published = recipe_figure(info.name, info.recipe.defaults).test_accuracy

        table.append(
            [
                info.name,
                f"{recipe_figure(info.name, info.recipe.defaults).study}",
                described(plain),
                described(fastest) if fastest is not plain else "same",
                fastest.settings(),
                fmt.percent(published) if published else "—",
                f"{target:g} s ({source})",
                "yes" if fastest.time_per_epoch_s <= target else
                f"no ({fastest.time_per_epoch_s / target:.1f}x)",
                fastest.store,
            ]
        )  # fmt: skip
    return table


def train(keys: list[str], retrain: list[str], store_path: Path, data_dir: str | None) -> None:
    with Store(store_path) as store:
        for key in keys:
            model, overrides = RUNS[key]
            config = make_config(model, device="cpu", dataset="mnist", **overrides)
            outcome = run_config(
                config, store, data_dir=data_dir, progress=False, force=key in retrain
            )
            m = outcome.record.metrics
            record_command(store, outcome)
            print(
                f"{key}: {outcome.record.status}, test {fmt.percent(m.get('test_accuracy'))}, "
                f"{fmt.seconds(m.get('time_per_epoch_s'))}/epoch, "
                f"{outcome.record.environment.get('torch_threads')} threads"
                + (" (reused from the store)" if outcome.reused else ""),
                flush=True,
            )


def main() -> None:
    flush_denormals()  # before any parallel torch op, as the CLI does (engine.device)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTBENCH_DATA"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the stores")
    parser.add_argument("--runs", nargs="*", default=[], choices=list(RUNS), help="train these")
    parser.add_argument(
        "--retrain",
        nargs="*",
        default=[],
        choices=list(RUNS),
        help="train these again even if the store has them (after a change in the engine)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "zoo_speed.md")
    args = parser.parse_args()
    own_store = args.results / "zoo_speed.sqlite"
    if args.runs:
        train(args.runs, args.retrain, own_store, args.data_dir)
    by_model = measured_runs(args.results)
    trained_by = []
    if own_store.exists():
        with Store(own_store) as store:
            trained_by = commands(store, list(RUNS_MODELS))
    cpus = sorted({r.cpu for runs in by_model.values() for r in runs})
    missing = [
        i.name
        for i in list_models()
        if recipe_figure(i.name, i.recipe.defaults) and i.name not in by_model
    ]
    lines = [
        "# Time per epoch of every study model on this CPU, against the studies' CUDA times",
        "",
        f"Command: `{command_line()}`, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Runs from: "
        + ", ".join(f"`{s}.sqlite`" for s in STORES)
        + f". CPU capability recorded by the runs: {', '.join(cpus)} (AMD EPYC, 2 cores).",
        "",
        "The speed runs in `zoo_speed.sqlite` were trained by (from the repository root, "
        "MNISTBENCH_DATA set, the machine otherwise idle):",
        "",
        *[f"- `{c}`" for c in trained_by or ["(none yet)"]],
        "",
        "Each cell is a measured MNIST run on the recipe's data (55,000 training images; the "
        "SVMs' 10,000), not an "
        "extrapolation: training time per epoch (median over epochs, no evaluation), its "
        "torch threads (1 thread: the run shared the 2 cores with another one, so it is slower "
        "than the machine alone), and its final test accuracy. 'Fastest' is the quickest run "
        "of the model at any speed setting (column 'Settings'; bf16 = bf16 autocast), shown "
        "with the accuracy it reached, so a setting that costs accuracy is visible. 'denormals "
        "flushed': the run treated denormal floats as zero on every thread "
        "(engine.device.flush_denormals: the CLI and the benchmarks turn it on; runs "
        "recorded before it existed ran with it off). The "
        "target is the study's CUDA time per epoch where it states one, else the fastest any "
        f"study states ({FASTEST_STUDY_CUDA_EPOCH_S:g} s).",
        "",
        markdown_table(
            (
                "Model",
                "Study",
                "Recipe (fp32)",
                "Fastest",
                "Settings of fastest",
                "Published acc",
                "Target",
                "Met",
                "Store",
            ),
            rows(by_model),
        ),
        "",
        f"Not measured at the recipe yet: {', '.join(missing) or 'none'}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
