"""Experiments: planning trials (suites, sweeps, speedruns), running and recording them.

Names are imported on first use (PEP 562), so planning a trial or parsing the command line
does not load torch; `from mnistbench.experiments import run_config` works as always.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RunFailedError": "batch",
    "RunOutcome": "batch",
    "Session": "batch",
    "make_executor": "batch",
    "run_config": "batch",
    "run_trials": "batch",
    "make_config": "configure",
    "TrainedRun": "runner",
    "record": "runner",
    "train_config": "runner",
    "Trial": "plan",
    "TrialResult": "plan",
    "get_suite": "suites",
    "list_suites": "suites",
    "plan_suite": "suites",
    "suite_runs": "suites",
    "load_sweep": "sweeps",
    "plan_sweep": "sweeps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnistbench.experiments' has no attribute {name!r}")
    return getattr(import_module(f"mnistbench.experiments.{_EXPORTS[name]}"), name)
