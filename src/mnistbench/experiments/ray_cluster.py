"""Trials as Ray tasks, on a local instance or on a cluster started apart (`ray start --head`).

Joining a cluster: Ray's token authentication (the token the head node wrote, in
~/.ray/auth_token, or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), the package shipped to the workers
through runtime_env `py_modules`, and a version check in every task (a worker whose mnistbench
differs from the driver's is refused). Ray never retries a task (a crashed worker is a failed
trial, not a silent retrain), and Ctrl-C cancels the running tasks, which return the epochs they
trained as 'interrupted'. Only the driver writes the store. Faults: docs/faults.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import torch

import mnistbench
from mnistbench.config import RunConfig
from mnistbench.data import RawDataset
from mnistbench.engine.device import flush_denormals
from mnistbench.errors import ConfigError
from mnistbench.experiments.runner import TrainedRun, train_config

STOP_GRACE_S = 30.0  # how long a cancelled task may take to return its epochs
TOKEN_DOCS = "https://docs.ray.io/en/latest/ray-security/token-auth.html"


class VersionSkewError(ConfigError):
    """A Ray worker runs another mnistbench than the driver."""


LOOPBACK = "127.0.0.1"
# Ray's own switch that keeps every address of a node on loopback (on Linux Ray otherwise swaps
# 127.0.0.1 for the machine's main address, ray-project/ray#26293); read when Ray is imported,
# and inherited by the processes a local instance starts.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(local: bool = False) -> ModuleType:
    """Ray; for a local instance (``local``), imported with loopback-only addresses unless the
    user set Ray's switch themselves or Ray was already imported."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed. Install it with "
            "`pip install -c constraints.txt -e '.[ray]'`, or use --executor local/process."
        ) from None
    return ray


@functools.lru_cache(maxsize=1)
def package_identity() -> dict[str, str]:
    """This process's mnistbench: its version and a digest of its source files, so two
    installs of one version number whose code differs are told apart."""
    root = Path(mnistbench.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return {"mnistbench": mnistbench.__version__, "source_sha256": digest.hexdigest()[:16]}


# ------------------------------------------------------------------------------ joining


def _token_source() -> str | None:
    """Where this machine's Ray token comes from, in Ray's order of precedence (None: none)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "the token in RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"the token in {os.environ['RAY_AUTH_TOKEN_PATH']} (RAY_AUTH_TOKEN_PATH)"
    default = Path.home() / ".ray" / "auth_token"
    return f"the token in {default}" if default.is_file() else None


def use_cluster_token() -> None:
    """Send this machine's Ray token when it has one and RAY_AUTH_MODE is unset.

    Ray 2.60 does this itself for address="auto" only; with an explicit address it sends no
    token, so a head started with token authentication refuses the driver (InvalidAuthToken).
    Ray 2.61 turns token authentication on for every cluster. Sending a token to a cluster
    without authentication is harmless (tried against Ray 2.60).
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return  # the user chose
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # Ray before 2.52 has no token authentication
        return
    logger = logging.getLogger(setup.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its warning speaks of starting a cluster, not joining one
    try:
        setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        logger.setLevel(level)


def _error_text(error: BaseException) -> str:
    parts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def join_error(address: str | None, error: BaseException) -> ConfigError:
    """The ConfigError for a failed ray.init: what went wrong and what to do."""
    text = _error_text(error)
    first = text.splitlines()[0][:300]
    if address and any(
        marker in text
        for marker in ("InvalidAuthToken", "Unauthenticated", "no authentication token")
    ):
        source = _token_source()
        found = (
            f"{source} is not the token its head node uses"
            if source
            else "no token was found here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH and "
            "~/.ray/auth_token are all unset or missing)"
        )
        return ConfigError(
            f"The Ray cluster at {address} uses token authentication and refused this "
            f"machine: {found}. Give mnistbench the head node's token: `ray get-auth-token` "
            "on the head node prints it; save it as ~/.ray/auth_token on this machine, or "
            "export RAY_AUTH_TOKEN=<token> (or RAY_AUTH_TOKEN_PATH=<file>), then run the "
            f"command again. See {TOKEN_DOCS}"
        )
    where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
    return ConfigError(
        f"Could not {where}: {first}. Check the address (`ray status` on the head node prints "
        "it) and that this machine can reach it, or leave --ray-address out to start a local "
        "instance."
    )


def connect(
    ray: ModuleType, address: str | None, *, init_kwargs: Mapping | None, ship_package: bool
) -> bool:
    """Start or join Ray unless this process already has; returns whether it did (and so
    should shut it down). Joining a cluster ships this mnistbench to its workers.

    Without an address, a new local instance on loopback (``address="local"``: Ray then ignores
    RAY_ADDRESS and the latest `ray start` on this machine, which ``None`` would join); the
    address "auto" asks Ray to find one (RAY_ADDRESS, then the latest `ray start`)."""
    if ray.is_initialized():
        return False
    kwargs: dict = {"log_to_driver": False}
    if address is None:
        # a local instance; a cluster keeps its settings
        kwargs.update(include_dashboard=False, _node_ip_address=LOOPBACK)
    else:
        use_cluster_token()
        if ship_package:
            kwargs["runtime_env"] = {"py_modules": [mnistbench], "excludes": ["__pycache__"]}
    kwargs.update(init_kwargs or {})
    try:
        ray.init(address=address or "local", **kwargs)
    except Exception as error:  # Ray raises several kinds for an unreachable cluster
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise join_error(address, error) from None
    return True


# ------------------------------------------------------------------------------ tasks


def train_task(
    config: RunConfig,
    raw: RawDataset,
    threads: int,
    measure_energy: bool,
    driver_identity: dict[str, str],
) -> TrainedRun:
    """One trial on a Ray worker: refuse another mnistbench, then train and return the run."""
    identity = package_identity()
    if identity != driver_identity:
        raise VersionSkewError(
            f"The Ray worker on {socket.gethostname()} runs mnistbench "
            f"{identity['mnistbench']} (source {identity['source_sha256']}) but this driver "
            f"runs {driver_identity['mnistbench']} (source {driver_identity['source_sha256']}); "
            "rows trained by different code would not be comparable. Install the same "
            "mnistbench on every node (the same commit, with -c constraints.txt), or let "
            "mnistbench ship itself to the workers (the default) and make sure nothing else on "
            "their PYTHONPATH shadows it."
        )
    flush_denormals()  # a reused Ray worker may hold it on its main thread only (recorded)
    torch.set_num_threads(threads)
    run = train_config(config, raw=raw, progress=False, measure_energy=measure_energy)
    run.environment.update(ray_cpus_per_trial=threads, mnistbench_source=identity["source_sha256"])
    return run


def _outcome(ray: ModuleType, ref: object, config: RunConfig) -> TrainedRun | None:
    """A finished task's run; a crashed one as a failed run (Ray does not retry it); None for
    a task cancelled before it started (nothing was trained)."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return None
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, ConfigError):  # version skew: stop the batch, clearly
            raise ConfigError(str(error.cause)) from None
        return TrainedRun.failed(config, f"the Ray task raised {_error_text(error)[:500]}")
    except ray.exceptions.RayError as error:  # its worker or node died, out of memory, ...
        return TrainedRun.failed(
            config,
            f"the Ray worker running this trial died ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:300]}); Ray does not retry it (max_retries=0), so "
            "a rerun of the sweep trains it again",
        )


def run_tasks(
    ray: ModuleType,
    configs: Sequence[RunConfig],
    raws: Mapping[str, RawDataset],
    finished: Callable[[int, TrainedRun], None],
    *,
    cpus_per_trial: int,
    gpus_per_trial: float | None,
    measure_energy: bool,
    task: Callable[..., TrainedRun] = train_task,
) -> None:
    """Submit one task per config (data sent once per data set through the object store);
    `finished(index, run)` as each ends. On Ctrl-C (or any error) the tasks are cancelled:
    running ones return their epochs as 'interrupted', queued ones never start."""
    remote = ray.remote(task)
    identity = package_identity()
    raw_refs = {name: ray.put(raw) for name, raw in raws.items()}
    pending = {}
    for index, config in enumerate(configs):
        # the trial's own device, not the driver's hardware, decides what it asks the cluster
        gpus = gpus_per_trial if gpus_per_trial is not None else int(config.device == "cuda")
        options = {"num_cpus": cpus_per_trial, "num_gpus": gpus, "max_retries": 0}
        ref = remote.options(**options, retry_exceptions=False).remote(
            config, raw_refs[config.dataset], cpus_per_trial, measure_energy, identity
        )
        pending[ref] = index
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                run = _outcome(ray, ref, configs[index])
                if run is not None:
                    finished(index, run)
    except BaseException:
        _cancel(ray, pending, configs, finished)
        raise


def _cancel(
    ray: ModuleType,
    pending: dict,
    configs: Sequence[RunConfig],
    finished: Callable[[int, TrainedRun], None],
) -> None:
    for ref in pending:
        ray.cancel(ref)  # KeyboardInterrupt in a running task: it returns as 'interrupted'
    deadline = time.monotonic() + STOP_GRACE_S
    while pending and time.monotonic() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=deadline - time.monotonic())
        for ref in ready:
            index = pending.pop(ref)
            try:
                run = _outcome(ray, ref, configs[index])
            except ConfigError:  # version skew: the batch is stopping for it already
                continue
            if run is not None:  # None: it had not started, nothing was trained
                finished(index, run)
    for ref, index in pending.items():  # still running after the grace period
        ray.cancel(ref, force=True)
        message = f"interrupted; its Ray task did not stop within {STOP_GRACE_S:.0f} s"
        finished(index, TrainedRun(configs[index], status="interrupted", error=message))
