"""A run trained away from the store (a pool worker, a Ray task), held in memory until the
driver records it (`runner.record`), or prints it when the store refuses it (`unrecorded`)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from mnistbench.config import RunConfig
from mnistbench.engine.measure import collect_environment


@dataclass
class TrainedRun:
    """Everything a run produced, held in memory until the driver records it (picklable).

    `started_at`, `hostname` and `pid` say where and when it really trained (a pool worker, a
    Ray node), so the stored row names that host and its real start time, not the driver's.
    """

    config: RunConfig
    status: str = "failed"  # finished | diverged | failed | interrupted
    metrics: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    environment: dict[str, object] = field(default_factory=dict)
    epochs: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    artefacts: list[tuple[str, str, bytes | str]] = field(default_factory=list)
    started: bool = False  # False: it failed before training (bad data, model would not build)
    started_at: str | None = None  # when training started (None: it never did; the store uses now)
    hostname: str = field(default_factory=socket.gethostname)  # the machine that trained it
    pid: int = field(default_factory=os.getpid)  # the process that trained it
    model_card: dict[str, object] = field(default_factory=dict)  # cards.build_model_card

    @classmethod
    def failed(cls, config: RunConfig, error: str) -> TrainedRun:
        """A run that failed before training (or whose worker died): a row that says why."""
        try:
            environment = collect_environment(config.device)
        except Exception:  # a CUDA trial of a Ray cluster, recorded by a driver without a GPU
            environment = {**collect_environment("cpu"), "device": config.device}
        return cls(config, status="failed", error=error, environment=environment)
