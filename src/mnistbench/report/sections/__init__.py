"""The report's sections, one module per subject; `SECTIONS` is the table of contents.

Each entry takes the store's contents (and the output folder, None when only Markdown tables
are wanted) and returns its sections, none when it has nothing to show.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mnistbench.report import robustness
from mnistbench.report.collect import ReportData
from mnistbench.report.document import Section
from mnistbench.report.sections import (
    artefacts,
    curves,
    energy,
    published,
    runs,
    sensitivity,
    speed,
    tradeoffs,
)

SectionBuilder = Callable[[ReportData, Path | None], list[Section]]

SECTIONS: list[SectionBuilder] = [
    tradeoffs.section,  # the one-look summary leads; the tables follow
    published.studies,
    published.quick_looks,
    curves.learning_curves,
    curves.confusion,
    sensitivity.section,
    robustness.section,
    speed.speedup,
    speed.speedruns,
    energy.section,
    artefacts.section,
    runs.unfinished,
    runs.all_runs,
]
