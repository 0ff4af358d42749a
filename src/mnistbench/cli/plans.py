"""`mnistbench suite` and `mnistbench sweep`: plans of many trials (one plan-file format,
experiments/plan_format.py), run by the pipeline with the chosen executor."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from mnistbench.cli.common import (
    add_executor_options,
    add_io_options,
    add_run_settings,
    eprint,
    executor_of,
    open_store,
    run_overrides,
    session_of,
    start_training,
    whole_number,
)
from mnistbench.config import check_overrides

if TYPE_CHECKING:
    from mnistbench.experiments.plan import BatchSummary, Trial
    from mnistbench.experiments.sweeps import SweepPlan
    from mnistbench.store import RunRecord

SUITE_DESCRIPTION = (
    "Run every entry of suite NAME (models not registered yet are skipped and named), one run "
    "per seed, recording each in the store. Finished configs are skipped, so an interrupted "
    "suite resumes. Run settings (--epochs, --subset, --lr, ...) apply to every entry: "
    "`--epochs 1 --subset 2000` is a quick look. NAME may also be a suite file, FILE.toml, in "
    "the format of sweep files."
)
SWEEP_DESCRIPTION = (
    "Run every trial of the plan in FILE (see sweeps/*.toml for the format). Trials are keyed "
    "by config hash: finished ones are skipped, an interrupted sweep resumes, a failed trial is "
    "recorded and the sweep goes on. Run settings given here override the file for every trial."
)


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "suite",
        help="run a named suite: one published study, end to end",
        description=SUITE_DESCRIPTION,
    )
    p.add_argument("name", nargs="?", help="suite name (see --list) or a suite file, FILE.toml")
    p.add_argument("--list", action="store_true", help="describe the suites and exit")
    _add_plan_options(p, "runs per entry, seeds --seed .. --seed+N-1 (default 1)")
    p.set_defaults(handler=cmd_suite)

    p = verbs.add_parser(
        "sweep", help="run a grid or random sweep from a TOML file", description=SWEEP_DESCRIPTION
    )
    p.add_argument("file", help="plan file, e.g. sweeps/resnet-grid.toml")
    _add_plan_options(p, "runs per trial, seeds --seed .. --seed+N-1 (default: the file's, 1)")
    p.set_defaults(handler=cmd_sweep)


def _add_plan_options(p: argparse.ArgumentParser, seeds_help: str) -> None:
    p.add_argument("--seeds", type=whole_number, help=seeds_help + "; reports show mean ± std")
    p.add_argument(
        "--models",
        type=model_names,
        metavar="NAME[,NAME]",
        help="run only the trials of these models (e.g. the rows a table still misses); "
        "`--plan` shows what is left",
    )
    add_run_settings(p, dataset_default=None)
    add_executor_options(p)
    p.add_argument(
        "--plan", action="store_true", help="print the trials (with config hashes) and exit"
    )
    add_io_options(p, dry_run_help="every trial for two steps, nothing recorded")


def model_names(text: str) -> list[str]:
    """--models a,b,c as a list; an empty list is an argparse error (exit 2, one line)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give one or more model names, comma-separated")
    return names


def suites_table() -> str:
    from mnistbench.experiments.suites import list_suites
    from mnistbench.models import list_models
    from mnistbench.report import markdown_table

    registered = {info.name for info in list_models()}
    rows = [
        [suite.name, suite.version, f"study {suite.study}", str(suite.size()),
         f"{len([m for m in suite.models if m in registered])}/{len(suite.models)}",
         suite.description]
        for suite in list_suites()
    ]  # fmt: skip
    return markdown_table(
        ("Suite", "Version", "Source", "Entries", "Models registered", "What it runs"), rows
    )


def setting_text(trial: Trial) -> str:
    """A trial's label, or "recipe"; a run scaled away from its recipe (fewer epochs, a subset)
    says so rather than pass as the recipe."""
    from mnistbench.experiments.configure import scale_changes

    changes = scale_changes(trial.config)
    scaled = ", ".join(f"{name}={value}" for name, (_, value) in changes.items())
    label = trial.label
    if trial.config.protocol != "heldout":  # the protocol decides the split: said by name
        label = (
            f"{label}, protocol {trial.config.protocol}"
            if label
            else f"protocol {trial.config.protocol}"
        )
    if not scaled:
        return label or "recipe"
    return f"{label} ({scaled})" if label else f"scaled: {scaled}"


def batch_table(summary: BatchSummary) -> str:
    """One row per config apart from its seed: test accuracy mean ± std (sample std) over seeds."""
    from mnistbench.report import format as fmt
    from mnistbench.report import markdown_table
    from mnistbench.report.collect import Stat
    from mnistbench.report.uncertainty import CI_HEADER

    groups: dict[str, list] = {}
    for result in summary.results:
        key = dataclasses.replace(result.trial.config, seed=0).config_hash()
        groups.setdefault(key, []).append(result)
    rows = []
    for results in groups.values():
        config = results[0].trial.config
        metrics = [r.record.metrics for r in results if r.record is not None]
        states: dict[str, int] = {}
        for r in results:
            states[r.state] = states.get(r.state, 0) + 1
        elsewhere = sum(r.measured_on is not None for r in results)
        time_text = fmt.seconds_stat(Stat.of(m.get("time_per_epoch_s") for m in metrics))
        if elsewhere:
            time_text += f" ({elsewhere} measured on another machine)"
        rows.append(
            [config.model, config.dataset, setting_text(results[0].trial), str(len(results)),
             _accuracy_text(results), time_text,
             ", ".join(f"{n} {state}" for state, n in states.items())]
        )  # fmt: skip
    return markdown_table(
        (
            "Model",
            "Dataset",
            "Setting",
            "Seeds",
            f"Test acc (mean ± std {CI_HEADER})",
            "Time/epoch",
            "Trials",
        ),
        rows,
    )


def _accuracy_text(results: list) -> str:
    """The final test accuracy over the trials' seeds with its 95% interval (report.uncertainty:
    Wilson for one seed, the seeds-and-images bootstrap for more)."""
    from mnistbench.report import uncertainty
    from mnistbench.report.collect import RunGroup

    records = [r.record for r in results if r.record is not None]
    if not records:
        return "—"
    return uncertainty.accuracy_cell(RunGroup("", records), "test_accuracy")


def _print_plan(trials: list[Trial], store_path: str | None) -> None:
    """The trials as the driver will see them: identical configs merged, and for each the
    finished run in the store it would reuse ("to run" when none, or no store yet)."""
    from mnistbench.experiments.batch import stored_runs
    from mnistbench.experiments.plan import unique_trials
    from mnistbench.report import markdown_table
    from mnistbench.store import Store, default_store_path

    kept, merged = unique_trials(trials)
    path = default_store_path() if store_path is None else store_path
    exists = os.path.exists(path)
    stored = {}
    if exists:
        with Store(path, read_only=True) as store:
            stored = stored_runs(store, kept)
    rows = [
        [str(i), t.config.model, t.config.dataset, setting_text(t), str(t.config.seed),
         str(t.config.epochs), t.config.device, _stored_text(stored.get(t.config_hash)),
         t.config_hash]
        for i, t in enumerate(kept, 1)
    ]  # fmt: skip
    header = ("#", "Model", "Dataset", "Setting", "Seed", "Epochs", "Device", "Stored", "Config")
    print(markdown_table(header, rows))
    if merged:
        print(f"\n{merged} trial(s) merged: identical configs after the command line's settings")
    if exists:
        print(f"{len(kept) - len(stored)} of {len(kept)} trial(s) to run; {len(stored)} "
              f"finished in {path}")  # fmt: skip
    else:
        print(f"{len(kept)} trial(s) to run (no store at {path} yet)")


def _stored_text(record: RunRecord | None) -> str:
    return "to run" if record is None else f"run {record.run_id} ({record.status})"


def _run_batch(
    trials: list[Trial], args: argparse.Namespace, desc: str, evaluate: tuple[str, ...] = ()
) -> int:
    """Run trials with the chosen executor; one line per trial, then a summary table. A plan
    that says `evaluate = [...]` then evaluates each finished run not evaluated yet."""
    from mnistbench.experiments.batch import run_trials
    from mnistbench.experiments.plan import unique_trials

    executor = executor_of(args)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(executor.close)
        store = (
            None
            if args.dry_run
            else cleanup.enter_context(open_store(args.store, keep_weights=not args.no_weights))
        )
        where = "a throw-away store (dry run)" if store is None else f"store {store.path}"
        distinct = len(unique_trials(trials)[0])  # as the driver counts them: merged once
        eprint(f"{desc}: {distinct} trial(s) on {executor.describe()}, {where}")
        summary = run_trials(
            trials, store, session_of(args), executor=executor, force=args.force,
            dry_run=args.dry_run, echo=print, desc=desc,
        )  # fmt: skip
        if evaluate and store is not None:
            _evaluate_finished(store, summary, evaluate, args)
    if summary.merged:
        print(f"{summary.merged} trial(s) merged: identical configs after the scale knobs")
    print()
    print(batch_table(summary))
    failed = summary.count("failed") + summary.count("interrupted")
    counts = ", ".join(
        f"{summary.count(s)} {s}"
        for s in ("done", "skipped", "diverged", "failed", "interrupted")
        if summary.count(s)
    )
    note = "; nothing recorded (dry run)" if args.dry_run else ""
    print(f"\n{desc}: {counts or 'nothing to run'}{note}")
    return 1 if failed else 0


def _evaluate_finished(store, summary, evaluate: tuple[str, ...], args) -> None:
    """`mnistbench evaluate` on each finished run of the batch that kept weights and lacks
    one of the plan's evaluations (so a resumed suite evaluates only what is missing)."""
    from mnistbench.cli.evaluate import progress_printer, summary_lines
    from mnistbench.experiments.evaluate import evaluate_run

    for result in summary.results:
        record = result.record
        if record is None or record.status != "finished":
            continue
        if "weights_sha256" not in record.metrics:
            eprint(f"run {record.run_id}: kept no weights (--no-weights?), not evaluated")
            continue
        done = {a.name for a in store.artefacts(record.run_id) if a.kind == "evaluation"}
        todo = [w for w in evaluate if f"evaluation_{w}" not in done]
        if todo:
            evaluated = evaluate_run(
                record.run_id,
                store,
                todo,
                data_dir=args.data_dir,
                download=not args.no_download,
                progress=progress_printer(
                    f"run {record.run_id}", sys.stderr.isatty(), quiet=args.quiet
                ),
            )
            print("\n".join(summary_lines(evaluated)))


def cmd_suite(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        print(suites_table())
        return 0
    overrides = check_overrides(run_overrides(args))
    start_training()
    from mnistbench.experiments.suites import get_suite, plan_suite

    suite = get_suite(args.name)
    seed = overrides.pop("seed", None)
    plan = plan_suite(
        suite, seeds=args.seeds, first_seed=seed, device=args.device, overrides=overrides
    )
    return _run_plan(
        plan,
        args,
        f"{suite.name} v{suite.version}",
        f"suite {suite.name}: skipping {{}} "
        "(not registered in this mnistbench; `mnistbench list` shows what is)",
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    overrides = check_overrides(run_overrides(args))
    start_training()
    from mnistbench.experiments.sweeps import load_sweep, plan_sweep

    sweep = load_sweep(args.file)
    plan = plan_sweep(sweep, device=args.device, overrides=overrides, seeds=args.seeds)
    return _run_plan(
        plan,
        args,
        f"{sweep.kind} {sweep.name}",
        f"sweep {sweep.name}: skipping {{}} (not registered)",
    )


def _run_plan(plan: SweepPlan, args: argparse.Namespace, desc: str, skipping: str) -> int:
    """What `suite` and `sweep` do with a plan: keep --models, name the models skipped
    (`skipping` with {} for their names), then print the trials (--plan) or run them."""
    from mnistbench.experiments.sweeps import keep_models

    if args.models:
        plan = keep_models(plan, args.models)
    if plan.skipped_models:
        eprint(skipping.format(", ".join(plan.skipped_models)))
    if args.plan:
        _print_plan(plan.trials, args.store)
        return 0
    return _run_batch(plan.trials, args, desc, evaluate=plan.sweep.evaluate)
