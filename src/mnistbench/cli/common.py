"""What the verbs share: the run-setting flags generated from RunConfig's declarations, the
data/store/output options, the executor options, and how a training verb starts.

Import-light on purpose: building the parser must not load torch.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mnistbench import settings as declared
from mnistbench.config import parse_model_option, settings
from mnistbench.escape import terminal
from mnistbench.experiments.plan import EXECUTORS
from mnistbench.store import default_store_path

if TYPE_CHECKING:
    from mnistbench.experiments.batch import Session
    from mnistbench.store import Store

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

DATA_HELP = (
    "folder holding mnist/ and fashion-mnist/ (or one dataset's four IDX files); "
    "default: $MNISTBENCH_DATA, then the user cache"
)
STORE_HELP = f"results store (default {default_store_path()})"


def eprint(message: str) -> None:
    """A message on stderr; escape sequences and control characters from data are removed."""
    print(terminal(message), file=sys.stderr)


def silent(message: str) -> None:
    """Print nothing (--quiet)."""


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _flag_help(f: Any, note: str = "") -> str:
    default = f.default if f.name != "device" else "auto"
    shown = "none" if default in (None, ()) else default
    text = f"{f.metadata['help']}{note} (default {shown}"
    text += ")" if f.metadata["role"] in ("analysis", "environment") else ", or the recipe's)"
    return text.replace("%", "%%")  # argparse formats help with %


def add_run_settings(
    parser: argparse.ArgumentParser, *, dataset_default: str | None, skip: tuple[str, ...] = ()
) -> None:
    """One flag per RunConfig field, generated from its declaration (config.py); each flag's
    value is None unless given, so the recipe decides."""
    group = parser.add_argument_group(
        "run settings", "Every RunConfig field; unset ones come from the model's recipe."
    )
    for f in settings():
        if f.name == "model" or f.name in skip:
            continue
        kind = declared.value_kind(f)
        options: dict[str, Any] = {"dest": f.name, "default": None, "help": _flag_help(f)}
        if f.name == "model_options":
            options.update(action="append", metavar="KEY=VALUE", type=parse_model_option)
        elif kind == "bool":
            options.update(action=argparse.BooleanOptionalAction)
        elif f.metadata["choices"]:
            options.update(choices=f.metadata["choices"])
        elif kind in ("int", "float"):
            options.update(type=whole_number if kind == "int" else float, metavar=kind.upper())
        else:
            options.update(metavar="NAME")
        if f.name == "device":
            options["default"] = "auto"
        if f.name == "dataset" and dataset_default is None:
            options["help"] = _flag_help(f, "; default: each entry's own")
        elif f.name == "dataset":
            options["default"] = dataset_default
        group.add_argument(declared.flag_of(f), **options)


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the user gave (named after RunConfig fields); None = not given."""
    return {
        f.name: getattr(args, f.name)
        for f in settings()
        if f.name not in ("model", "device") and getattr(args, f.name, None) is not None
    }


def add_io_options(parser: argparse.ArgumentParser, dry_run_help: str | None = None) -> None:
    """Where data and results live, and how much to print."""
    parser.add_argument("--data-dir", help=DATA_HELP)
    parser.add_argument("--no-download", action="store_true", help="never download missing data")
    parser.add_argument("--store", help=STORE_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    parser.add_argument(
        "--no-weights",
        action="store_true",
        help="keep no trained weights (default: each finished run's model is kept beside the "
        "store, in a file named by its SHA-256, for `mnistbench evaluate`)",
    )
    if dry_run_help is not None:
        parser.add_argument("--force", action="store_true", help="train even if already recorded")
        parser.add_argument("--dry-run", action="store_true", help=dry_run_help)


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="local: in this process (default); process: a pool of --workers processes; "
        "ray: Ray tasks on a local instance or the cluster at --ray-address",
    )
    parser.add_argument(
        "--workers",
        type=whole_number,
        help="worker processes of the process pool (alone, N > 1 implies --executor process)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join (HOST:PORT), or auto: the cluster RAY_ADDRESS or the latest "
        "`ray start` on this machine names. Without it mnistbench starts its own local Ray "
        "instance bound to 127.0.0.1 and ignores RAY_ADDRESS",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=whole_number,
        default=1,
        help="Ray: CPUs each trial asks for, and its torch threads (default 1; recorded)",
    )


def executor_of(args: argparse.Namespace):
    """The executor the executor options describe (experiments/batch.py's make_executor)."""
    from mnistbench.experiments.batch import make_executor

    return make_executor(
        args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        cpus_per_trial=args.cpus_per_trial,
    )


def session_of(args: argparse.Namespace, log: Callable[[str], None] = eprint) -> Session:
    """The Session (experiments/batch.py) the io options describe."""
    from mnistbench.experiments.batch import Session

    return Session(
        data_dir=args.data_dir,
        download=not args.no_download,
        progress=not args.quiet,
        measure_energy=not getattr(args, "dry_run", False),
        log=silent if args.quiet else log,
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start_training() -> None:
    """First thing in a verb that trains: flush denormals before torch starts its worker
    threads (they inherit it; engine.device), and end on SIGTERM (kill, a scheduler's time
    limit) like Ctrl-C: the run in progress is recorded as interrupted, not lost."""
    from mnistbench.engine.device import flush_denormals

    flush_denormals()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def open_store(path: str | None, keep_weights: bool = True) -> Store:
    from mnistbench.store import Store

    return Store(path, keep_weights=keep_weights)
