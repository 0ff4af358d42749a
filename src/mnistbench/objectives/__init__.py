"""Objectives: each owns one kind of update (see base.Objective)."""

from mnistbench.objectives.base import Batch, Objective
from mnistbench.objectives.classification import CrossEntropyObjective

__all__ = ["Batch", "CrossEntropyObjective", "Objective"]
