"""`mnistbench store check|recover`: say whether a results store is damaged, and copy what is
readable out of one that is."""

from __future__ import annotations

import argparse
import json

from mnistbench.cli.common import STORE_HELP, eprint
from mnistbench.store import default_store_path


def register(verbs: argparse._SubParsersAction) -> None:
    p_store = verbs.add_parser(
        "store",
        help="check a results store for damage, or recover what is readable",
        description="Check a results store with SQLite's full integrity check, or copy every "
        "readable run of a damaged one into a new store. Neither writes to the store it reads.",
    )
    actions = p_store.add_subparsers(dest="store_verb", metavar="ACTION", required=True)
    p_check = actions.add_parser(
        "check",
        help="run SQLite's integrity check; print schema, row counts and write-ahead log",
        description="Run SQLite's full integrity_check on the store without writing to it, and "
        "print its schema version, the rows of each table and whether a -wal file holds commits "
        "not yet copied into it. Exits 1 when the store is damaged.",
    )
    p_check.add_argument("--store", help=STORE_HELP)
    p_check.add_argument("--json", action="store_true", help="print the findings as JSON")
    p_check.set_defaults(handler=cmd_store_check)
    p_recover = actions.add_parser(
        "recover",
        help="copy every readable run of a damaged store into a new store",
        description="Copy every readable run, with its epochs and artefacts, into the new store "
        "--out, keeping run ids, statuses and hosts, and count the rows that could not be read. "
        "The damaged store is only read; --out appears only once complete and is never "
        "overwritten.",
    )
    p_recover.add_argument("--store", help=f"damaged store (default {default_store_path()})")
    p_recover.add_argument("--out", required=True, help="new store to write (must not exist)")
    p_recover.set_defaults(handler=cmd_store_recover)


def cmd_store_check(args: argparse.Namespace) -> int:
    from mnistbench.store import check_store

    report = check_store(args.store or default_store_path())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_store_recover(args: argparse.Namespace) -> int:
    from mnistbench.store import check_store, recover_store

    source = args.store or default_store_path()
    counts = recover_store(source, args.out)
    print(f"{source} -> {args.out}: {counts.describe()}")
    after = check_store(args.out)
    if not after.ok:  # should not happen: the copy is written fresh by SQLite
        eprint("\n".join(after.lines()))
        return 1
    return 0
