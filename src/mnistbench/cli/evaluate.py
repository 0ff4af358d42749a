"""`mnistbench evaluate RUN...`: reload runs' kept models and score them on MNIST-C's
corruptions, for calibration and under L-inf attacks; results are stored with each run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from mnistbench.cli.common import DATA_HELP, STORE_HELP, eprint, whole_number


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "evaluate",
        help="reload runs' kept weights: corruptions, calibration, attacks",
        description="Reload each run's kept model (verified by SHA-256, loaded without "
        "unpickling), check that it scores the run's recorded test accuracy, then measure: "
        "accuracy on MNIST-C's 15 corruptions of the test set (mean and worst), calibration "
        "(ECE over 15 bins, NLL, Brier) and accuracy under L-inf FGSM and PGD (20 steps, random "
        "start) at eps 0.05, 0.1, 0.2, 0.3 in [0, 1] pixels. Each result is stored with its run "
        "(artefact evaluation_<what>), where `report --view robustness` reads it.",
    )
    p.add_argument("runs", nargs="+", type=whole_number, metavar="RUN", help="run ids")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument(
        "--what",
        default="corruptions,calibration,adversarial",
        help="comma-separated: corruptions, calibration, adversarial (default all three)",
    )
    p.add_argument(
        "--adversarial-images",
        type=whole_number,
        default=1000,
        metavar="N",
        help="attack the first N test images (default 1000; PGD costs 21 passes per image)",
    )
    p.add_argument(
        "--model",
        metavar="SPEC",
        help="an outside model's file or module (path/to/file.py:factory) when it moved; its "
        "fingerprint must match the run's",
    )
    p.add_argument("--data-dir", help=DATA_HELP)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mnistbench.cli.results import open_existing_store
    from mnistbench.experiments.evaluate import evaluate_run

    what = [w.strip() for w in args.what.split(",") if w.strip()]
    results = []
    with open_existing_store(args.store) as store:
        for index, run_id in enumerate(args.runs, start=1):
            prefix = f"[{index}/{len(args.runs)}] run {run_id}"
            result = evaluate_run(
                run_id,
                store,
                what,
                adversarial_images=args.adversarial_images,
                data_dir=args.data_dir,
                model=args.model,
                progress=progress_printer(prefix, sys.stderr.isatty()),
            )
            results.append(result)
            if not args.json:
                print("\n".join(summary_lines(result)))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def progress_printer(
    prefix: str, live: bool, quiet: bool = False
) -> Callable[[str, int, int], None]:
    """Where an evaluation is, on stderr (stdout stays the results): on a terminal one line
    rewritten at every step (each corruption, each evaluation); elsewhere (a log) one line per
    finished evaluation, with the seconds since the run's evaluation began; nothing if quiet."""
    started = time.perf_counter()

    def show(evaluation: str, done: int, total: int) -> None:
        if quiet:
            return
        seconds = time.perf_counter() - started
        text = f"{prefix}: {evaluation} {done}/{total}, {seconds:.0f} s"
        if live:
            print(f"\r{text}\033[K", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total:
            eprint(text)

    return show


def _percent(value: object) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{100 * value:.2f}%"


def summary_lines(result: dict) -> list[str]:
    """One run's evaluation for a terminal."""
    recorded = _percent(result["recorded_test_accuracy"])
    lines = [
        f"run {result['run_id']} {result['model']} on {result['dataset']}: clean "
        f"{_percent(result['clean_accuracy'])} (recorded {recorded})"
    ]
    if "warning" in result:
        lines.append(f"  warning: {result['warning']}")
    corruptions = result.get("corruptions")
    if corruptions:
        lines.append(
            f"  corruptions: mean {_percent(corruptions['mean_accuracy'])}, worst "
            f"{corruptions['worst']} {_percent(corruptions['worst_accuracy'])}"
        )
    calibration = result.get("calibration")
    if calibration:
        lines.append(
            f"  calibration: ECE {calibration['ece']:.4f}  NLL {calibration['nll']:.4f}  "
            f"Brier {calibration['brier']:.4f}"
            if calibration["applicable"]
            else f"  calibration: {calibration['reason']}"
        )
    adversarial = result.get("adversarial")
    if adversarial:
        if not adversarial["applicable"]:
            lines.append(f"  attacks: {adversarial['reason']}")
        else:
            for attack in ("fgsm", "pgd"):
                cells = "  ".join(
                    f"eps {eps} {_percent(acc)}" for eps, acc in adversarial[attack].items()
                )
                lines.append(f"  {attack.upper()} ({adversarial['images']} images): {cells}")
            if "note" in adversarial:
                lines.append(f"  note: {adversarial['note']}")
    return lines
