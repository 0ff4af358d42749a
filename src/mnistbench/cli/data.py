"""`mnistbench data check|download`: verify the data files' checksums, or fetch them."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistbench.cli.common import DATA_HELP, eprint


def register(verbs: argparse._SubParsersAction) -> None:
    p_data = verbs.add_parser("data", help="check or download the data sets")
    actions = p_data.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    for action, handler, help_text in (
        ("check", cmd_data_check, "verify the files' content checksums"),
        ("download", cmd_data_download, "download missing files from the public mirrors"),
    ):
        p = actions.add_parser(action, help=help_text)
        p.add_argument("--dataset", default="all", help="mnist, fashion-mnist or all (default)")
        p.add_argument("--data-dir", help=DATA_HELP)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(handler=handler)


def _datasets(choice: str) -> list[str]:
    from mnistbench.data import DATASETS, get_dataset_spec

    return list(DATASETS) if choice == "all" else [get_dataset_spec(choice).name]


def cmd_data_check(args: argparse.Namespace) -> int:
    from mnistbench.data import check_dataset
    from mnistbench.report import markdown_table

    rows, all_ok = [], True
    for name in _datasets(args.dataset):
        for check in check_dataset(name, data_dir=args.data_dir):
            all_ok &= check.status == "ok"
            rows.append([name, check.role, check.status, str(check.path or "—"), check.detail])
    print(markdown_table(("Dataset", "File", "Status", "Path", "Detail"), rows))
    if not all_ok:
        eprint(
            "\nSome files are missing or corrupt. Fetch them with `mnistbench data download`, "
            "or point --data-dir / MNISTBENCH_DATA at a folder that holds good copies."
        )
    return 0 if all_ok else 1


def cmd_data_download(args: argparse.Namespace) -> int:
    from mnistbench.data import download_dataset

    for name in _datasets(args.dataset):
        root = Path(args.data_dir) if args.data_dir else None
        path = download_dataset(name, root=root, progress=not args.quiet)
        print(f"{name}: verified files in {path}")
    return 0
