"""Per-epoch learning curves and per-class confusion matrices, one figure per dataset."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report import figures as figs
from mnistbench.report.collect import ReportData
from mnistbench.report.document import Section


def learning_curves(data: ReportData, out: Path | None) -> list[Section]:
    if out is None:
        return []
    return [Section("curves", "Learning curves", list(figs.learning_curves(data, out)))]


def confusion(data: ReportData, out: Path | None) -> list[Section]:
    if out is None:
        return []
    return [Section("confusion", "Confusion matrices", list(figs.confusion_matrices(data, out)))]
