"""What a command plans to run: trials (a config plus its label in a suite or sweep) and how
each one ended. Planning modules (suites, sweeps, speedrun) import these, never the executors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnistbench.config import RunConfig

if TYPE_CHECKING:
    from mnistbench.store import RunRecord

# The executors a plan can run on (experiments/executors.py): in this process, a local
# process pool, or Ray tasks on a local instance or a cluster.
EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class Trial:
    """One config to run, with what the batch says about it (label, membership artefact)."""

    config: RunConfig
    label: str = ""  # what distinguishes it within its suite or sweep, e.g. "sgd lr=1e-2"
    # (artefact name, JSON text) recorded with the run, e.g. ("suite:architecture-showdown", ...)
    tag: tuple[str, str] | None = None

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    def describe(self) -> str:
        c = self.config
        return f"{c.model} {c.dataset} seed {c.seed}" + (f" [{self.label}]" if self.label else "")


@dataclass
class TrialResult:
    """How one trial ended: done (finished), diverged, failed, interrupted, or skipped (its
    config was already recorded; `measured_on` names the other machine its figures come from
    when that is not this one)."""

    trial: Trial
    state: str
    record: RunRecord | None
    error: str | None = None
    measured_on: str | None = None


@dataclass
class BatchSummary:
    """Every trial's result, in the order the trials were given (skipped ones included)."""

    results: list[TrialResult] = field(default_factory=list)
    merged: int = 0  # trials dropped because another trial had the same config hash

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.results)


def unique_trials(trials: Iterable[Trial]) -> tuple[list[Trial], int]:
    """Trials with distinct config hashes (first one kept), and how many were dropped."""
    trials_list = list(trials)
    seen: set[str] = set()
    kept: list[Trial] = []
    for trial in trials_list:
        if trial.config_hash not in seen:
            seen.add(trial.config_hash)
            kept.append(trial)
    return kept, len(trials_list) - len(kept)


def trial_tag(kind: str, name: str, **details: object) -> tuple[str, str]:
    """The membership artefact of a suite's or sweep's trial: ("suite:NAME", JSON)."""
    return f"{kind}:{name}", json.dumps({kind: name, **details}, sort_keys=True, default=str)
