"""Experiments: running configurations and recording them (suites and sweeps build on this)."""

from mnistbench.experiments.runner import RunOutcome, run_config

__all__ = ["RunOutcome", "run_config"]
