"""What the driver does with a run the store refused (disk full, read-only): it prints the
run's figures to stderr as JSON, so nothing computed is lost even when it cannot be recorded.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from mnistbench.experiments.trained import TrainedRun


def report_unrecorded(run: TrainedRun, error: Exception, stream: TextIO | None = None) -> None:
    """Print a run the store could not take to stderr: one line saying why, then its figures
    as one line of JSON (config, status, metrics, epochs, environment), so they are not lost."""
    stream = stream or sys.stderr
    c = run.config
    print(
        f"mnistbench: the store could not record the run of {c.model} on {c.dataset} "
        f"(config {c.config_hash()}): {error}\nIts figures follow as JSON:",
        file=stream,
    )
    print(json.dumps(unrecorded_figures(run), sort_keys=True), file=stream, flush=True)


def unrecorded_figures(run: TrainedRun) -> dict[str, object]:
    """A TrainedRun as plain JSON values (non-finite numbers become null; binary artefacts
    are named with their size)."""
    return _plain(
        {
            "config": run.config.to_dict(),
            "config_hash": run.config.config_hash(),
            "status": run.status,
            "error": run.error,
            "metrics": run.metrics,
            "epochs": [{"epoch": epoch, **metrics} for epoch, metrics in run.epochs],
            "artefacts": [
                {"name": name, "kind": kind}
                | ({"content": content} if isinstance(content, str) else {"bytes": len(content)})
                for name, kind, content in run.artefacts
            ],
            "environment": run.environment,
            "started_at": run.started_at,
            "hostname": run.hostname,
            "pid": run.pid,
        }
    )


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
