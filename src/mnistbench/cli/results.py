"""`mnistbench report`, `export` and `merge`: what is in the store, as tables, figures and
files, and stores from other machines copied in. Nothing here trains."""

from __future__ import annotations

import argparse
import contextlib
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
    p.add_argument("--out", metavar="DIR", help="write the full report into DIR")
    p.set_defaults(handler=cmd_report)

    p = verbs.add_parser(
        "export",
        help="runs or epochs as CSV or JSON",
        description="One flat row per run (metrics, config.*, env.*) or per epoch of every run.",
    )
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--format", default="csv", help="csv or json (default csv)")
    p.add_argument("--what", default="runs", help="runs or epochs (default runs)")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write, - = stdout")
    p.set_defaults(handler=cmd_export)

    p = verbs.add_parser(
        "merge",
        help="copy the runs of other stores into this one",
        description="Copy every ended run (with its epochs and artefacts) of the SOURCE stores "
        "into --store, e.g. runs made on a GPU machine next to this machine's, so one report "
        "compares them. Runs already there are skipped, so merging again adds nothing; the "
        "sources are only read.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="results.sqlite to copy")
    p.add_argument(
        "--store", help=f"store to merge into, created if missing (default {default_store_path()})"
    )
    p.set_defaults(handler=cmd_merge)


def open_existing_store(path: str | None) -> Store:
    from mnistbench.errors import StoreError
    from mnistbench.store import Store

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
    from mnistbench.report import report_markdown, write_report

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


def cmd_export(args: argparse.Namespace) -> int:
    from mnistbench.report import export

    with open_existing_store(args.store) as store:
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
    eprint(f"wrote {out} ({args.what}, {args.format})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from mnistbench.store import Store

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
            with open_existing_store(str(source)) as other:
                copied, present = store.import_from(other)
            eprint(f"{source}: {copied} run(s) copied, {present} already in {target}")
    return 0
