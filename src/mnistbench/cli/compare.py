"""`mnistbench compare A B`: are two of our configurations different beyond noise, and by how
much (paired on the test images; see docs/statistics.md)."""

from __future__ import annotations

import argparse
import json

from mnistbench.cli.common import STORE_HELP

# config fields a model-name selector can be narrowed by (--dataset mnist, --seed 0, ...)
FILTERS = ("dataset", "seed", "epochs", "subset", "val_size", "batch_size", "lr", "device")


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "compare",
        help="pair two configurations on the test images: difference, interval, p-value",
        description="A and B are run ids, config hashes, or model names narrowed by the "
        "filters below to one configuration each (its seeds pooled). One run each: the exact "
        "McNemar test on the images only one of them got right. Several seeds: a paired "
        "bootstrap over the test images and the seeds, and rliable's probability of "
        "improvement. Both sides must have kept per-image predictions (runs recorded since "
        "they are kept) and be scored on the same test images.",
    )
    p.add_argument("a", metavar="A", help="run id, config hash or model name")
    p.add_argument("b", metavar="B", help="run id, config hash or model name")
    p.add_argument("--store", help=STORE_HELP)
    for name in FILTERS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"only runs with this {name}")
    p.add_argument(
        "--which",
        choices=["final", "best_val"],
        default="final",
        help="the final model's predictions (default) or the best-validation epoch's",
    )
    p.add_argument(
        "--on",
        default="clean",
        metavar="SET",
        help="clean: the test set (default); corrupted: the same images under all of MNIST-C's "
        "corruptions, each image one resampling unit (is A more robust than B?); or one "
        "corruption's name (e.g. rotate). Corrupted outcomes come from `mnistbench evaluate`",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from mnistbench.cli.results import open_existing_store
    from mnistbench.escape import terminal
    from mnistbench.report.pairing import compare_sides, compare_text, load_side, resolve

    filters = {name: getattr(args, name) for name in FILTERS if getattr(args, name) is not None}
    with open_existing_store(args.store) as store:
        sides = [
            load_side(store, selector, resolve(store, selector, filters), args.which, args.on)
            for selector in (args.a, args.b)
        ]
        result = compare_sides(*sides)
    if args.json:
        print(json.dumps(result, allow_nan=False))  # JSON escapes control characters itself
    else:
        print(terminal(compare_text(result)))  # model names come from the store: untrusted
    return 0
