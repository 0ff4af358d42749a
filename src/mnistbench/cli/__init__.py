"""The `mnistbench` command: parses arguments, calls the library, prints results.

Thin by design: every verb is a library function. One module per verb group, each with a
`register(verbs)` that adds its subcommands; a new verb is a new module here plus its name in
VERB_MODULES. Modules import torch, scikit-learn, LightGBM, matplotlib and Ray only inside the
handler that needs them, so `--help` and argument errors answer at once. User errors
(MnistbenchError) print one paragraph and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from mnistbench import __version__
from mnistbench.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, eprint
from mnistbench.errors import MnistbenchError
from mnistbench.store.schema import install_card_builder

# The verb modules, in the order `mnistbench --help` lists their verbs.
VERB_MODULES = (
    "listing", "run", "plans", "speedrun", "bench", "results", "compare", "store", "data",
)  # fmt: skip

EPILOG = """Examples:
  mnistbench list
  mnistbench run cnn --epochs 5
  mnistbench suite architecture-showdown --epochs 1 --subset 2000
  mnistbench sweep sweeps/resnet-grid.toml --workers 2
  mnistbench report --out report/
  mnistbench export --format csv --out runs.csv
  mnistbench data check"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistbench",
        description="Train, measure and compare neural-network families on MNIST and "
        "Fashion-MNIST. Every run is recorded in a SQLite results store; reports are built "
        "from the store.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnistbench {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for name in VERB_MODULES:
        import_module(f"mnistbench.cli.{name}").register(verbs)
    return parser


def reconstruct_card(config: dict) -> dict:
    """`mnistbench.cards.reconstruct_card`, imported on first use: it loads torch and the model
    registry, which most commands never need. The store cannot import it itself (it sits below
    the models), so the CLI hands it to every store it opens, for runs recorded without a card."""
    from mnistbench.cards import reconstruct_card as from_registry

    return from_registry(config)


def main(argv: Sequence[str] | None = None) -> int:
    install_card_builder(reconstruct_card)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except MnistbenchError as error:
        eprint(f"mnistbench: error: {error}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        eprint("mnistbench: interrupted; a run in progress was recorded as 'interrupted'.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mnistbench list | head`: the reader left; nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (so the exit flush cannot fail again)
        return 0


if __name__ == "__main__":
    sys.exit(main())
