"""The `mnistbench` command: parses arguments, calls the library, prints results.

Thin by design: every verb is a library function. User errors (MnistbenchError) print one
paragraph and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from mnistbench import __version__
from mnistbench.config import (
    AUGMENTATIONS,
    DEVICE_CHOICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    RunConfig,
    make_config,
    parse_model_option,
    with_overrides,
)
from mnistbench.data import DATASETS, check_dataset, download_dataset
from mnistbench.engine import resolve_device
from mnistbench.engine.device import flush_denormals
from mnistbench.engine.measure import count_parameters
from mnistbench.errors import MnistbenchError, StoreError
from mnistbench.experiments import run_config
from mnistbench.experiments.executors import (
    EXECUTORS,
    BatchSummary,
    Trial,
    TrialResult,
    make_executor,
    run_trials,
)
from mnistbench.experiments.suites import get_suite, list_suites, plan_suite
from mnistbench.experiments.sweeps import load_sweep, plan_sweep
from mnistbench.models import create_model, list_models
from mnistbench.report import export, markdown_table, report_markdown, write_report
from mnistbench.report import format as fmt
from mnistbench.report.export import FORMATS as EXPORT_FORMATS
from mnistbench.report.export import WHAT as EXPORT_WHAT
from mnistbench.store import RunRecord, Store, default_store_path

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

DATA_HELP = (
    "folder holding mnist/ and fashion-mnist/ (or one dataset's four IDX files); "
    "default: $MNISTBENCH_DATA, then the user cache"
)


def _eprint(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for info in list_models():
        try:
            with torch.device("meta"):  # count parameters without allocating weights
                params = count_parameters(create_model(info.name), trainable_only=False)
        except RuntimeError:  # a model that reads tensor values while it is built (snntorch)
            params = count_parameters(create_model(info.name), trainable_only=False)
        published = info.published
        rows.append(
            [
                info.name,
                info.family,
                fmt.count(params),
                fmt.percent(published.test_accuracy) if published else "—",
                f"study {published.study}" if published else "—",
                info.architecture,
            ]
        )
    print("Models\n")
    print(
        markdown_table(
            ("Model", "Family", "Params", "Published acc (MNIST)", "Source", "Architecture"), rows
        )
    )
    print("\nDatasets\n")
    print(
        markdown_table(
            ("Dataset", "Classes", "Train", "Test"),
            [
                [name, str(len(spec.class_names)), "60,000", "10,000"]
                for name, spec in DATASETS.items()
            ],
        )
    )
    print("\nSuites (`mnistbench suite NAME`)\n")
    print(_suites_table())
    return 0


# ----------------------------------------------------------------------------- run


def _run_json(record: RunRecord) -> dict[str, object]:
    payload = record.to_dict()
    payload["epochs"] = record.config.get("epochs")
    return payload


def _print_run_summary(record: RunRecord, reused: bool) -> None:
    m = record.metrics
    config_epochs = record.config.get("epochs")
    header = f"run {record.run_id}: {record.model} on {record.dataset}, {record.status}"
    if reused:
        header += " (already in the store; nothing trained; --force trains it again)"
    lines = [
        header,
        f"  config {record.config_hash}  device {record.environment.get('device_name', '?')}"
        f"  epochs {m.get('epochs_completed', '?')}/{config_epochs}",
        f"  test accuracy {fmt.percent(m.get('test_accuracy'))}"
        f"   best val {fmt.percent(m.get('best_val_accuracy'))}"
        f" at epoch {m.get('best_val_epoch', '—')}"
        f"   test @ best val {fmt.percent(m.get('test_accuracy_at_best_val'))}",
        f"  params {fmt.count(m.get('params'))}   FLOPs/sample {fmt.si(m.get('flops_per_sample'))}"
        f"   size {fmt.si(m.get('model_size_bytes'), 'B')}",
        f"  time/epoch {fmt.seconds(m.get('time_per_epoch_s'))} (training only, median)"
        f"   wall {fmt.seconds(m.get('wall_time_s'))}"
        f"   {fmt.si(m.get('train_images_per_s'))} images/s",
        f"  latency batch 1 {fmt.number(m.get('latency_batch1_ms'))} ms, batch 1000 "
        f"{fmt.number(m.get('latency_batch1000_ms'))} ms   peak memory "
        f"{fmt.number(m.get('peak_memory_mb'), 4)} MB ({m.get('peak_memory_kind', '?')})",
        f"  energy {fmt.number(m.get('energy_kwh'))} kWh ({m.get('energy_method', '?')})",
    ]
    if m.get("epochs_to_target") is not None:
        lines.append(
            f"  reached {fmt.percent(m.get('target_accuracy'), 1)} validation accuracy in "
            f"{m['epochs_to_target']} epoch(s), "
            f"{fmt.seconds(m.get('seconds_to_target'))} of training"
        )
    if record.error:
        lines.append(f"  note: {record.error}")
    print("\n".join(lines))


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    # run options are named after RunConfig fields; None means "not given: use the recipe"
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in ("model", "device") and hasattr(args, f.name)
    }
    config = make_config(args.model, device=resolve_device(args.device), **overrides)
    with contextlib.ExitStack() as cleanup:
        if args.dry_run:
            # two steps on a tiny subset, into a throw-away store: the whole path in seconds
            config = with_overrides(
                config, epochs=1, subset=2 * config.batch_size, val_size=config.batch_size
            )
            scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            store = cleanup.enter_context(Store(scratch / "dry-run.sqlite"))
        else:
            store = cleanup.enter_context(Store(args.store))
        # SIGTERM (kill, a scheduler's time limit) ends the run like Ctrl-C: recorded, not lost
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        outcome = run_config(
            config,
            store,
            data_dir=args.data_dir,
            force=args.force,
            progress=not args.quiet,
            download=not args.no_download,
            measure_energy=not args.dry_run,
            log=(lambda message: None) if args.quiet or args.json else _eprint,
        )
    if args.dry_run:
        status = outcome.record.status
        print(f"dry run of {config.model} on {config.dataset}: {status}; nothing recorded")
        return 0 if status == "finished" else 1
    if args.json:
        # the store already turned NaN/inf into null, so strict JSON cannot fail here
        print(json.dumps(_run_json(outcome.record), allow_nan=False))
    else:
        _print_run_summary(outcome.record, outcome.reused)
    return 0 if outcome.record.status in ("finished", "diverged") else 1


# --------------------------------------------------------------------- suite, sweep


def _suites_table() -> str:
    registered = {info.name for info in list_models()}
    rows = []
    for suite in list_suites():
        present = [m for m in suite.models if m in registered]
        rows.append(
            [
                suite.name,
                suite.version,
                f"study {suite.study}",
                str(len(suite.entries)),
                f"{len(present)}/{len(suite.models)}",
                suite.description,
            ]
        )
    return markdown_table(
        ("Suite", "Version", "Source", "Entries", "Models registered", "What it runs"), rows
    )


def _run_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The run options the user gave (named after RunConfig fields); None = not given."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in ("model", "device") and getattr(args, f.name, None) is not None
    }


def _dry_trial(trial: Trial) -> Trial:
    # the same shrink as `run --dry-run`: two steps on a tiny subset, one evaluation
    config = with_overrides(
        trial.config,
        epochs=1,
        subset=2 * trial.config.batch_size,
        val_size=trial.config.batch_size,
    )
    return dataclasses.replace(trial, config=config)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.2f}%"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.2f} ± {100 * std:.2f}%"


def _batch_table(summary: BatchSummary) -> str:
    """One row per config apart from its seed: test accuracy mean ± std (sample std) over seeds."""
    groups: dict[str, list[TrialResult]] = {}
    for result in summary.results:
        key = dataclasses.replace(result.trial.config, seed=0).config_hash()
        groups.setdefault(key, []).append(result)
    rows = []
    for results in groups.values():
        config = results[0].trial.config
        metrics = [r.record.metrics for r in results if r.record is not None]
        accuracies = [m["test_accuracy"] for m in metrics if m.get("test_accuracy") is not None]
        times = [m["time_per_epoch_s"] for m in metrics if m.get("time_per_epoch_s") is not None]
        states: dict[str, int] = {}
        for r in results:
            states[r.state] = states.get(r.state, 0) + 1
        rows.append(
            [
                config.model,
                config.dataset,
                results[0].trial.label or "recipe",
                str(len(results)),
                _mean_std(accuracies),
                fmt.seconds(sum(times) / len(times)) if times else "—",
                ", ".join(f"{n} {state}" for state, n in states.items()),
            ]
        )
    return markdown_table(
        ("Model", "Dataset", "Setting", "Seeds", "Test acc (mean ± std)", "Time/epoch", "Trials"),
        rows,
    )


def _run_batch(trials: list[Trial], args: argparse.Namespace, desc: str) -> int:
    """Run trials with the chosen executor; one line per trial, then a summary table."""
    executor = make_executor(args.executor, workers=args.workers, ray_address=args.ray_address)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(executor.close)
        if args.dry_run:
            trials = [_dry_trial(t) for t in trials]
            scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            store = cleanup.enter_context(Store(scratch / "dry-run.sqlite"))
        else:
            store = cleanup.enter_context(Store(args.store))
        # SIGTERM ends the batch like Ctrl-C: the trial in progress is recorded, not lost
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        _eprint(f"{desc}: {len(trials)} trial(s) on {executor.describe()}, store {store.path}")
        summary = run_trials(
            trials,
            store,
            executor=executor,
            data_dir=args.data_dir,
            download=not args.no_download,
            force=args.force,
            progress=not args.quiet,
            measure_energy=not args.dry_run,
            echo=print,
            desc=desc,
        )
    if summary.merged:
        print(f"{summary.merged} trial(s) merged: identical configs after the scale knobs")
    print()
    print(_batch_table(summary))
    failed = summary.count("failed") + summary.count("interrupted")
    counts = ", ".join(
        f"{summary.count(s)} {s}"
        for s in ("done", "skipped", "diverged", "failed", "interrupted")
        if summary.count(s)
    )
    note = "; nothing recorded (dry run)" if args.dry_run else ""
    print(f"\n{desc}: {counts or 'nothing to run'}{note}")
    return 1 if failed else 0


def cmd_suite(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        print(_suites_table())
        return 0
    suite = get_suite(args.name)
    overrides = _run_overrides(args)
    plan = plan_suite(
        suite,
        seeds=args.seeds,
        first_seed=overrides.pop("seed", 0),
        epochs=overrides.pop("epochs", None),
        subset=overrides.pop("subset", None),
        device=args.device,
        overrides=overrides,
    )
    if plan.skipped_models:
        _eprint(
            f"suite {suite.name}: skipping {', '.join(plan.skipped_models)} "
            "(not registered in this mnistbench; `mnistbench list` shows what is)"
        )
    if args.plan:
        rows = [
            [str(i), t.config.model, t.config.dataset, t.label or "recipe", str(t.config.seed),
             str(t.config.epochs), t.config.device, t.config_hash]
            for i, t in enumerate(plan.trials, 1)
        ]  # fmt: skip
        print(
            markdown_table(
                ("#", "Model", "Dataset", "Setting", "Seed", "Epochs", "Device", "Config"), rows
            )
        )
        return 0
    return _run_batch(plan.trials, args, f"{suite.name} v{suite.version}")


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.file)
    plan = plan_sweep(sweep, device=args.device, overrides=_run_overrides(args))
    if args.plan:
        rows = [
            [str(i), t.label or "—", t.config.model, t.config.dataset, t.config_hash]
            for i, t in enumerate(plan.trials, 1)
        ]
        print(markdown_table(("#", "Point", "Model", "Dataset", "Config"), rows))
        return 0
    return _run_batch(plan.trials, args, f"sweep {sweep.name}")


# ------------------------------------------------------------------------ speedrun


def cmd_speedrun(args: argparse.Namespace) -> int:
    from mnistbench import speedrun  # imported here: only this verb needs it

    settings = dict(args.settings or [])
    if args.compile:
        settings["compile"] = True
    with Store(args.store) as store:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        result = speedrun.run_speedrun(
            store,
            track=args.track,
            dataset=args.dataset,
            target=args.target,
            seeds=args.seeds,
            device=resolve_device(args.device),
            budget=args.budget_params,
            model=args.model,
            settings=settings,
            data_dir=args.data_dir,
            download=not args.no_download,
            progress=not args.quiet,
            log=(lambda message: None) if args.quiet else _eprint,
        )
    print("\n".join(result.summary_lines()))
    print()
    print(speedrun.records_table([result]))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as error:
            raise MnistbenchError(
                f"Cannot write --json {args.json}: {error.strerror or error}. The runs are in "
                "the store; pass --json a file path you can write to."
            ) from None
    return 0 if all(t.status == "finished" for t in result.trials) else 1


# -------------------------------------------------------------------------- report


def _open_existing_store(path: str | None) -> Store:
    store_path = Path(path) if path else default_store_path()
    if not store_path.exists():
        raise MnistbenchError(
            f"No results store at {store_path}. Run something first (`mnistbench run mlp`), "
            "or point --store at an existing results.sqlite."
        )
    store = Store(store_path)
    # a killed run shows as interrupted, not as still running; a read-only store as it is
    with contextlib.suppress(StoreError):
        store.mark_stale_runs()
    return store


def cmd_report(args: argparse.Namespace) -> int:
    with _open_existing_store(args.store) as store:
        if not args.out:
            print(report_markdown(store), end="")
            return 0
        out = Path(args.out)
        try:
            files = write_report(store, out)
        except OSError as error:
            raise MnistbenchError(
                f"Cannot write the report to {out}: {error.strerror or error}. "
                "Pass --out a folder you can write to."
            ) from None
    _eprint(
        f"wrote {files.markdown} and {files.html} ({len(files.figures)} figures, "
        f"{len(files.images)} run images); open {files.html} in a browser"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _open_existing_store(args.store) as store:
        text = export(store, args.format, args.what)
    if args.out == "-":
        print(text, end="")
        return 0
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise MnistbenchError(
            f"Cannot write the export to {out}: {error.strerror or error}. "
            "Pass --out a file path you can write to, or --out - for standard output."
        ) from None
    _eprint(f"wrote {out} ({args.what}, {args.format})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    target = Path(args.store) if args.store else default_store_path()
    sources = [Path(source) for source in args.sources]
    for source in sources:
        if not source.is_file():
            raise MnistbenchError(
                f"No results store at {source}. Pass the paths of existing results.sqlite "
                "files to merge, e.g. a store copied back from another machine."
            )
        if target.exists() and source.resolve() == target.resolve():
            raise MnistbenchError(
                f"{source} is the target store itself. Pass --store the store to merge into "
                "and the other stores as sources."
            )
    with Store(target) as store:
        for source in sources:
            with _open_existing_store(str(source)) as other:
                copied, present = store.import_from(other)
            _eprint(f"{source}: {copied} run(s) copied, {present} already in {target}")
    return 0


# ---------------------------------------------------------------------------- data


def _datasets(choice: str) -> list[str]:
    return list(DATASETS) if choice == "all" else [choice]


def cmd_data_check(args: argparse.Namespace) -> int:
    rows, all_ok = [], True
    for name in _datasets(args.dataset):
        for check in check_dataset(name, data_dir=args.data_dir):
            all_ok &= check.status == "ok"
            rows.append([name, check.role, check.status, str(check.path or "—"), check.detail])
    print(markdown_table(("Dataset", "File", "Status", "Path", "Detail"), rows))
    if not all_ok:
        _eprint(
            "\nSome files are missing or corrupt. Fetch them with `mnistbench data download`, "
            "or point --data-dir / MNISTBENCH_DATA at a folder that holds good copies."
        )
    return 0 if all_ok else 1


def cmd_data_download(args: argparse.Namespace) -> int:
    for name in _datasets(args.dataset):
        root = Path(args.data_dir) if args.data_dir else None
        path = download_dataset(name, root=root, progress=not args.quiet)
        print(f"{name}: verified files in {path}")
    return 0


# -------------------------------------------------------------------------- parser


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _add_config_options(p: argparse.ArgumentParser, dataset_default: str | None) -> None:
    """Options named after RunConfig fields (None = not given: the recipe decides)."""
    dataset_help = (
        f"mnist or fashion-mnist (default {dataset_default})"
        if dataset_default
        else "run every entry on this data set (default: each entry's own)"
    )
    p.add_argument("--dataset", default=dataset_default, help=dataset_help)
    p.add_argument("--epochs", type=_whole_number, help="epochs (default: the model's recipe)")
    p.add_argument("--batch-size", type=_whole_number, help="training batch size")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer")
    p.add_argument("--lr", type=float, help="(peak) learning rate, > 0")
    p.add_argument("--scheduler", choices=SCHEDULERS, help="learning-rate schedule")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="autocast precision (default: bf16 on CUDA, fp32 elsewhere; bf16 works on CPUs too)",
    )
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--nesterov", action="store_const", const=True, help="Nesterov momentum (SGD)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default 0)")
    p.add_argument("--grad-clip", type=float, help="max gradient norm (default: the recipe)")
    p.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing")
    p.add_argument(
        "--patience",
        dest="early_stopping_patience",
        type=_whole_number,
        help="early stopping: epochs without validation improvement",
    )
    p.add_argument("--min-delta", type=float, help="early stopping: smallest improvement")
    p.add_argument("--seed", type=int, help="seed for init, split, order (default 0)")
    p.add_argument("--val-size", type=_whole_number, help="validation images held out (5000)")
    p.add_argument("--subset", type=_whole_number, help="train on this many images only")
    p.add_argument(
        "--target",
        dest="target_accuracy",
        type=float,
        help="target accuracy as a fraction, for epochs/seconds-to-target (default 0.99)",
    )
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default auto")
    p.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        help="batched augmentation policy (default: the recipe's; study_d/rotate7: studies D/E)",
    )
    p.add_argument(
        "--image-size", type=_whole_number, help="resize images to this side (study C: 64)"
    )
    p.add_argument(
        "--compile",
        action="store_const",
        const=True,
        help="torch.compile the model (warm-up timed apart from training)",
    )
    p.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        metavar="KEY=VALUE",
        type=parse_model_option,
        help="model entrypoint option, repeatable (e.g. in_channels=1, beta=4.0)",
    )


def _add_io_options(p: argparse.ArgumentParser, dry_run_help: str) -> None:
    """Where data and results live, and how much to print."""
    p.add_argument("--data-dir", help=DATA_HELP)
    p.add_argument("--no-download", action="store_true", help="never download missing data")
    p.add_argument("--store", help=f"results store (default {default_store_path()})")
    p.add_argument("--force", action="store_true", help="train even if already recorded")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument("--dry-run", action="store_true", help=dry_run_help)


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="local: in this process (default); process: a pool of --workers processes; "
        "ray: Ray tasks on a local instance or the cluster at --ray-address",
    )
    p.add_argument(
        "--workers",
        type=_whole_number,
        help="worker processes of the process pool (alone, N > 1 implies --executor process)",
    )
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (HOST:PORT)")
    p.add_argument(
        "--plan", action="store_true", help="print the trials (with config hashes) and exit"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistbench",
        description="Train, measure and compare neural-network families on MNIST and "
        "Fashion-MNIST. Every run is recorded in a SQLite results store; reports are built "
        "from the store.",
        epilog="Examples:\n  mnistbench list\n  mnistbench run cnn --epochs 5\n"
        "  mnistbench suite architecture-showdown --epochs 1 --subset 2000\n"
        "  mnistbench sweep sweeps/resnet-grid.toml --workers 2\n"
        "  mnistbench report --out report/\n  mnistbench export --format csv --out runs.csv\n"
        "  mnistbench data check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnistbench {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    p_list = verbs.add_parser("list", help="models, datasets and suites")
    p_list.set_defaults(handler=cmd_list)

    p_run = verbs.add_parser(
        "run",
        help="train, evaluate and record one model",
        description="Train MODEL with its study's recipe (override any part), evaluate it on "
        "validation and test every epoch, record everything in the store and print a summary. "
        "A config that already finished is not trained again unless --force.",
    )
    p_run.add_argument("model", help="registered model name (see `mnistbench list`)")
    _add_config_options(p_run, dataset_default="mnist")
    p_run.add_argument("--json", action="store_true", help="print the run record as JSON")
    _add_io_options(
        p_run, dry_run_help="two training steps on a tiny subset, one evaluation, nothing recorded"
    )
    p_run.set_defaults(handler=cmd_run)

    p_suite = verbs.add_parser(
        "suite",
        help="run a named suite: one published study, end to end",
        description="Run every entry of suite NAME (models not registered yet are skipped and "
        "named), one run per seed, recording each in the store. Finished configs are skipped, "
        "so an interrupted suite resumes. Run options (--epochs, --subset, --lr, ...) apply to "
        "every entry: `--epochs 1 --subset 2000` is a quick look.",
    )
    p_suite.add_argument("name", nargs="?", help="suite name (see --list)")
    p_suite.add_argument("--list", action="store_true", help="describe the suites and exit")
    p_suite.add_argument(
        "--seeds",
        type=_whole_number,
        default=1,
        help="runs per entry, seeds --seed .. --seed+N-1 (default 1); reports show mean ± std",
    )
    _add_config_options(p_suite, dataset_default=None)
    _add_executor_options(p_suite)
    _add_io_options(p_suite, dry_run_help="every trial for two steps, nothing recorded")
    p_suite.set_defaults(handler=cmd_suite)

    p_sweep = verbs.add_parser(
        "sweep",
        help="run a grid or random sweep from a TOML file",
        description="Run every trial of the sweep in FILE (see sweeps/*.toml for the format). "
        "Trials are keyed by config hash: finished ones are skipped, an interrupted sweep "
        "resumes, a failed trial is recorded and the sweep goes on. Run options given here "
        "override the file for every trial.",
    )
    p_sweep.add_argument("file", help="sweep file, e.g. sweeps/resnet-grid.toml")
    _add_config_options(p_sweep, dataset_default=None)
    _add_executor_options(p_sweep)
    _add_io_options(p_sweep, dry_run_help="every trial for two steps, nothing recorded")
    p_sweep.set_defaults(handler=cmd_sweep)

    p_speedrun = verbs.add_parser(
        "speedrun",
        help="speed and parameter-efficiency records (time-to-accuracy, <= N params)",
        description="Train the project's fastest recipe for a target accuracy (--track time) or "
        "its best model under a parameter budget (--track params), for N seeds. The test set "
        "is sealed until each seed's one final score; every seed is a stored run. Prints "
        "training time (mean ± std), the accuracy distribution, seeds reaching the target, "
        "and the one-time costs (data load, compile warm-up) apart. Rules: docs/speedrun.md.",
    )
    p_speedrun.add_argument(
        "--dataset", default="mnist", choices=list(DATASETS), help="default mnist"
    )
    p_speedrun.add_argument("--track", default="time", choices=("time", "params"))
    p_speedrun.add_argument(
        "--target", type=float, help="accuracy fraction (default 0.99 time, 0.994 params)"
    )
    p_speedrun.add_argument("--seeds", type=_whole_number, default=5, help="default 5")
    p_speedrun.add_argument(
        "--budget-params", type=_whole_number, help="params track budget (default 5000)"
    )
    p_speedrun.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p_speedrun.add_argument("--model", help="explore: another registered model than the recipe's")
    p_speedrun.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="FIELD=VALUE",
        type=parse_model_option,
        help="explore: override a run setting of the recipe (e.g. epochs=3), repeatable",
    )
    p_speedrun.add_argument(
        "--compile", action="store_true", help="torch.compile (warm-up timed apart)"
    )
    p_speedrun.add_argument("--data-dir", help=DATA_HELP)
    p_speedrun.add_argument("--no-download", action="store_true", help="never download data")
    p_speedrun.add_argument("--store", help=f"results store (default {default_store_path()})")
    p_speedrun.add_argument("--quiet", action="store_true", help="no progress or log lines")
    p_speedrun.add_argument("--json", help="also write the figures (every seed) to this JSON file")
    p_speedrun.set_defaults(handler=cmd_speedrun)

    p_report = verbs.add_parser(
        "report",
        help="tables, figures and an HTML page built from the store",
        description="Without --out, print the report's tables as Markdown. With --out DIR, "
        "write DIR/report.md, DIR/index.html (one static page, opens with no server), "
        "DIR/figures/*.png|svg and the runs' image artefacts.",
    )
    p_report.add_argument("--store", help=f"results store (default {default_store_path()})")
    p_report.add_argument("--out", metavar="DIR", help="write the full report into DIR")
    p_report.set_defaults(handler=cmd_report)

    p_export = verbs.add_parser(
        "export",
        help="runs or epochs as CSV or JSON",
        description="One flat row per run (metrics, config.*, env.*) or per epoch of every run.",
    )
    p_export.add_argument("--store", help=f"results store (default {default_store_path()})")
    p_export.add_argument("--format", choices=EXPORT_FORMATS, default="csv", help="default csv")
    p_export.add_argument("--what", choices=EXPORT_WHAT, default="runs", help="default runs")
    p_export.add_argument("--out", required=True, metavar="PATH", help="file to write, - = stdout")
    p_export.set_defaults(handler=cmd_export)

    p_merge = verbs.add_parser(
        "merge",
        help="copy the runs of other stores into this one",
        description="Copy every ended run (with its epochs and artefacts) of the SOURCE stores "
        "into --store, e.g. runs made on a GPU machine next to this machine's, so one report "
        "compares them. Runs already there are skipped, so merging again adds nothing; the "
        "sources are only read.",
    )
    p_merge.add_argument("sources", nargs="+", metavar="SOURCE", help="results.sqlite to copy")
    p_merge.add_argument(
        "--store", help=f"store to merge into, created if missing (default {default_store_path()})"
    )
    p_merge.set_defaults(handler=cmd_merge)

    p_data = verbs.add_parser("data", help="check or download the data sets")
    data_verbs = p_data.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    for action, handler, help_text in (
        ("check", cmd_data_check, "verify the files' content checksums"),
        ("download", cmd_data_download, "download missing files from the public mirrors"),
    ):
        p = data_verbs.add_parser(action, help=help_text)
        p.add_argument("--dataset", default="all", choices=["all", *DATASETS])
        p.add_argument("--data-dir", help=DATA_HELP)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    flush_denormals()  # first thing, so torch's worker threads inherit it (engine.device)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MnistbenchError as error:
        _eprint(f"mnistbench: error: {error}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _eprint("mnistbench: interrupted; a run in progress was recorded as 'interrupted'.")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
