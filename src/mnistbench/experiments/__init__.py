"""Experiments: running configurations and recording them; suites, sweeps and executors."""

from mnistbench.experiments.executors import Trial, TrialResult, make_executor, run_trials
from mnistbench.experiments.runner import (
    RunOutcome,
    TrainedRun,
    record,
    run_config,
    train_config,
)
from mnistbench.experiments.suites import get_suite, list_suites, plan_suite, suite_runs
from mnistbench.experiments.sweeps import load_sweep, plan_sweep

__all__ = [
    "RunOutcome",
    "TrainedRun",
    "Trial",
    "TrialResult",
    "get_suite",
    "list_suites",
    "load_sweep",
    "make_executor",
    "plan_suite",
    "plan_sweep",
    "record",
    "run_config",
    "run_trials",
    "suite_runs",
    "train_config",
]
