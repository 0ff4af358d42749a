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
from mnistbench.engine.measure import count_parameters
from mnistbench.errors import MnistbenchError, StoreError
from mnistbench.experiments import run_config
from mnistbench.models import create_model, list_models
from mnistbench.report import format as fmt
from mnistbench.report import markdown_table, runs_markdown
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
        with torch.device("meta"):  # count parameters without allocating weights
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
    print("\nSuites\n\nNone yet: the published studies arrive as suites in a later release.")
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


# -------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    store_path = Path(args.store) if args.store else default_store_path()
    if not store_path.exists():
        raise MnistbenchError(
            f"No results store at {store_path}. Run something first (`mnistbench run mlp`), "
            "or point --store at an existing results.sqlite."
        )
    with Store(store_path) as store:
        # a killed run shows as interrupted, not as still running; a read-only store as it is
        with contextlib.suppress(StoreError):
            store.mark_stale_runs()
        markdown = runs_markdown(store)
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.md").write_text(markdown)
        except OSError as error:
            raise MnistbenchError(
                f"Cannot write the report to {out}: {error.strerror}. "
                "Pass --out a folder you can write to."
            ) from None
        _eprint(f"wrote {out / 'report.md'}")
    else:
        print(markdown, end="")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistbench",
        description="Train, measure and compare neural-network families on MNIST and "
        "Fashion-MNIST. Every run is recorded in a SQLite results store; reports are built "
        "from the store.",
        epilog="Examples:\n  mnistbench list\n  mnistbench run cnn --epochs 5\n"
        "  mnistbench report --out report/\n  mnistbench data check",
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
    p_run.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist (default mnist)")
    p_run.add_argument("--epochs", type=_whole_number, help="epochs (default: the model's recipe)")
    p_run.add_argument("--batch-size", type=_whole_number, help="training batch size")
    p_run.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer")
    p_run.add_argument("--lr", type=float, help="(peak) learning rate, > 0")
    p_run.add_argument("--scheduler", choices=SCHEDULERS, help="learning-rate schedule")
    p_run.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="autocast precision (default: bf16 on CUDA, fp32 elsewhere; bf16 works on CPUs too)",
    )
    p_run.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p_run.add_argument(
        "--nesterov", action="store_const", const=True, help="Nesterov momentum (SGD)"
    )
    p_run.add_argument("--weight-decay", type=float, help="weight decay (default 0)")
    p_run.add_argument("--grad-clip", type=float, help="max gradient norm (default: the recipe)")
    p_run.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing")
    p_run.add_argument(
        "--patience",
        dest="early_stopping_patience",
        type=_whole_number,
        help="early stopping: epochs without validation improvement",
    )
    p_run.add_argument("--min-delta", type=float, help="early stopping: smallest improvement")
    p_run.add_argument("--seed", type=int, help="seed for init, split, order (default 0)")
    p_run.add_argument("--val-size", type=_whole_number, help="validation images held out (5000)")
    p_run.add_argument("--subset", type=_whole_number, help="train on this many images only")
    p_run.add_argument(
        "--target",
        dest="target_accuracy",
        type=float,
        help="target accuracy as a fraction, for epochs/seconds-to-target (default 0.99)",
    )
    p_run.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default auto")
    p_run.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        help="batched augmentation policy (default: the recipe's; study_d/rotate7: studies D/E)",
    )
    p_run.add_argument(
        "--image-size", type=_whole_number, help="resize images to this side (study C: 64)"
    )
    p_run.add_argument(
        "--compile",
        action="store_const",
        const=True,
        help="torch.compile the model (warm-up timed apart from training)",
    )
    p_run.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        metavar="KEY=VALUE",
        type=parse_model_option,
        help="model entrypoint option, repeatable (e.g. in_channels=1, beta=4.0)",
    )
    p_run.add_argument("--data-dir", help=DATA_HELP)
    p_run.add_argument("--no-download", action="store_true", help="never download missing data")
    p_run.add_argument("--store", help=f"results store (default {default_store_path()})")
    p_run.add_argument("--force", action="store_true", help="train even if already recorded")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p_run.add_argument("--json", action="store_true", help="print the run record as JSON")
    p_run.add_argument(
        "--dry-run",
        action="store_true",
        help="two training steps on a tiny subset, one evaluation, nothing recorded",
    )
    p_run.set_defaults(handler=cmd_run)

    p_report = verbs.add_parser("report", help="Markdown table of the store's runs")
    p_report.add_argument("--store", help=f"results store (default {default_store_path()})")
    p_report.add_argument("--out", help="write DIR/report.md instead of printing")
    p_report.set_defaults(handler=cmd_report)

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
