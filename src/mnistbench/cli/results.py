"""`mnistbench report`, `export`, `merge` and `results`: what is in the store, as tables,
figures and files; stores and JSON-lines exports from other machines copied in; the committed
results (results/*.jsonl) turned back into every committed table. Nothing here trains."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mnistbench.cli.common import STORE_HELP, eprint
from mnistbench.errors import MnistbenchError
from mnistbench.store import default_store_path

if TYPE_CHECKING:
    from mnistbench.store import Store


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "report",
        help="tables, figures and an HTML page built from the store",
        description="Without --out, print the report's tables as Markdown. With --out DIR, "
        "write DIR/report.md, DIR/index.html (one static page, opens with no server), "
        "DIR/figures/*.png|svg and the runs' image artefacts.",
    )
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument(
        "--out",
        metavar="PATH",
        help="write the full report into folder PATH (with --view: "
        "write the view's Markdown to file PATH)",
    )
    p.add_argument(
        "--view",
        metavar="NAME",
        help="one named results table instead of the whole report: reproduction, improved, "
        "studies, architecture-showdown, zoo-small, zoo-large, zoo-speed or robustness",
    )
    p.set_defaults(handler=cmd_report)

    p = verbs.add_parser(
        "export",
        help="runs or epochs as CSV or JSON, or whole runs as JSON lines",
        description="One flat row per run (metrics, config.*, env.*) or per epoch of every run "
        "(csv, json); or --format jsonl: one run a line with its epochs, model card, environment "
        "and small artefacts, the form results are committed in (results/) and `merge` reads.",
    )
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--format", default="csv", help="csv, json or jsonl (default csv)")
    p.add_argument("--what", default="runs", help="runs or epochs (default runs)")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write, - = stdout")
    p.add_argument(
        "--with-weights",
        action="store_true",
        help="jsonl: also copy the runs' kept weights into a weights/ folder beside --out "
        "(verified by SHA-256; without it the records name their weights but carry no file)",
    )
    p.set_defaults(handler=cmd_export)

    p = verbs.add_parser(
        "merge",
        help="copy the runs of other stores or JSON-lines exports into this one",
        description="Copy every ended run (with its epochs and artefacts) of the SOURCE stores "
        "or exports (`export --format jsonl`, e.g. results/*.jsonl) into --store, e.g. runs "
        "made on a GPU machine next to this machine's, so one report compares them. Runs "
        "already there are skipped, so merging again adds nothing; the sources are only read. "
        "Each source is checked against the run format and merged all or nothing; a record "
        "whose config_hash is not the hash of its config is refused. Nothing in a source is "
        "ever run: a model named in it is shown, never imported.",
    )
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="results.sqlite or runs.jsonl to copy"
    )
    p.add_argument(
        "--store", help=f"store to merge into, created if missing (default {default_store_path()})"
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="merge the valid records of a source and list the others by line and reason "
        "(default: a source with one invalid record is refused whole, nothing merged from it)",
    )
    p.add_argument(
        "--with-weights",
        action="store_true",
        help="also copy the runs' kept weights from the weights/ folder beside each SOURCE "
        "(each verified by SHA-256; a changed file stops the merge before any run is copied)",
    )
    p.set_defaults(handler=cmd_merge)

    p = verbs.add_parser(
        "results",
        help="rebuild every committed table and the README block from results/*.jsonl",
        description="`mnistbench results rebuild` merges the committed runs (results/*.jsonl) "
        "into a fresh store and writes every table in benchmarks/results/ (one report view "
        "each) and README.md's measured block from it; --check writes nothing and exits 1 when "
        "a committed file differs (see docs/results.md).",
    )
    p.add_argument("action", choices=["rebuild"], help="rebuild (the only action)")
    p.add_argument("--root", default=".", metavar="DIR", help="repository root (default .)")
    p.add_argument(
        "--store",
        metavar="PATH",
        help="keep the rebuilt store at PATH (default: a temporary "
        "file, removed afterwards); it must not exist yet",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    p.set_defaults(handler=cmd_results)


def open_existing_store(path: str | None) -> Store:
    """The one opener of the reading verbs (report, export, list, compare): read-only where the
    store or its folder is not writable (store/runs.py)."""
    from mnistbench.store import open_existing_store as open_for_reading

    return open_for_reading(path)


def cmd_report(args: argparse.Namespace) -> int:
    from mnistbench.report import report_markdown, write_report

    if args.view:
        return _report_view(args)
    with open_existing_store(args.store) as store:
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
    eprint(
        f"wrote {files.markdown} and {files.html} ({len(files.figures)} figures, "
        f"{len(files.images)} run images); open {files.html} in a browser"
    )
    return 0


def _report_view(args: argparse.Namespace) -> int:
    from mnistbench.report.views import get_view, view_markdown

    get_view(args.view)  # an unknown name is answered before any store is opened
    with open_existing_store(args.store) as store:
        text = view_markdown(store, args.view)
    if not args.out:
        print(text, end="")
        return 0
    _write_text(Path(args.out), text, "the view")
    eprint(f"wrote {args.out} (view {args.view})")
    return 0


def _write_text(out: Path, text: str, what: str, other_choice: str = "") -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise MnistbenchError(
            f"Cannot write {what} to {out}: {error.strerror or error}. "
            f"Pass --out a file path you can write to{other_choice}."
        ) from None


def cmd_export(args: argparse.Namespace) -> int:
    from mnistbench.report import export

    if args.format == "jsonl" and args.out != "-" and args.what == "runs":
        return _export_jsonl(args)
    if args.with_weights:
        raise MnistbenchError(
            "--with-weights goes with `--format jsonl --out FILE` (whole runs): the weights "
            "are copied into a weights/ folder beside FILE. Flat CSV/JSON rows carry none."
        )
    with open_existing_store(args.store) as store:
        text = export(store, args.format, args.what)
    if args.out == "-":
        print(text, end="")
        return 0
    _write_text(Path(args.out), text, "the export", ", or --out - for standard output")
    eprint(f"wrote {args.out} ({args.what}, {args.format})")
    return 0


def _export_jsonl(args: argparse.Namespace) -> int:
    """Whole runs to a file, replaced only once complete, saying what stayed out."""
    from mnistbench.store import write_jsonl

    out = Path(args.out)
    with open_existing_store(args.store) as store:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            summary = write_jsonl(store, out)
            if args.with_weights:
                copied, missing = _carry_weights(store.path, out, store.stored_runs())
                eprint(f"weights: {copied} file(s) in {out.parent / 'weights'}")
                for line in missing:
                    eprint(f"weights not in the store, not exported: {line}")
        except OSError as error:
            raise MnistbenchError(
                f"Cannot write the export to {out}: {error.strerror or error}. "
                "Pass --out a file path you can write to, or --out - for standard output."
            ) from None
    eprint(f"wrote {out}: {summary.describe()}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from mnistbench.store import Store, read_runs

    target = Path(args.store) if args.store else default_store_path()
    sources = [Path(source) for source in args.sources]
    for source in sources:
        if not source.is_file():
            raise MnistbenchError(
                f"No results store or export at {source}. Pass the paths of existing "
                "results.sqlite or .jsonl files to merge, e.g. a store copied back from "
                "another machine or results/*.jsonl."
            )
        if target.exists() and source.resolve() == target.resolve():
            raise MnistbenchError(
                f"{source} is the target store itself. Pass --store the store to merge into "
                "and the other stores as sources."
            )
    with Store(target) as store:
        for source in sources:
            runs = list(read_runs(source))
            if args.with_weights:  # verified and copied first: a changed file stops it here
                files, missing = _carry_weights(source, target, runs)
                eprint(f"{source}: {files} weights file(s) verified and kept beside {target}")
                for line in missing:
                    eprint(f"{source}: weights not there, record merged without: {line}")
            counts = store.import_runs(runs, skip_invalid=args.skip_invalid)
            left_out = (
                f", {len(counts.invalid)} invalid record(s) left out:" if counts.invalid else ""
            )
            eprint(
                f"{source}: {counts.copied} run(s) copied, {counts.present} already in "
                f"{target}{left_out}"
            )
            for bad in counts.invalid:  # eprint strips escape sequences from the data
                eprint(f"  {bad.where}: {bad.problem}")
    return 0


def _carry_weights(source: Path, target: Path, runs) -> tuple[int, list[str]]:
    """Copy the weights files of `runs` (StoredRuns) from beside `source` to beside `target`."""
    from mnistbench.store.weights import WeightsRef, copy_weights

    refs = []
    for stored in runs:
        run = getattr(stored, "run", None)  # an InvalidRecord has none: import_runs reports it
        if run is None:
            continue
        ref = WeightsRef.of_metrics(run.metrics, run.run_id)
        if ref is not None:
            refs.append((run.run_id, ref))
    return copy_weights(source, target, refs)


def cmd_results(args: argparse.Namespace) -> int:
    from mnistbench.report.rebuild import rebuild

    changed = rebuild(Path(args.root), Path(args.store) if args.store else None, args.check)
    if args.check:
        if changed:
            eprint(
                "stale (differs from what the committed results give): "
                + ", ".join(str(path) for path in changed)
                + ". Run `mnistbench results rebuild` and commit the files."
            )
            return 1
        eprint("every committed table and the README block match results/")
        return 0
    eprint(f"rebuilt; {len(changed)} file(s) changed" + "".join(f"\n  {p}" for p in changed))
    return 0
