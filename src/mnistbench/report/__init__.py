"""Reports built only from the results store: tables, figures, the HTML page, named views, export.

The names below load on first use, so `from mnistbench.report import format` (the CLI summaries,
speedrun, the benchmarks) does not import matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

# eager: the submodule and its function share the name, and a lazy lookup would hand out the
# module once anything imported mnistbench.report.export directly
from mnistbench.report.export import export as export

_EXPORTS = {
    "ReportFiles": "mnistbench.report.build",
    "report_markdown": "mnistbench.report.build",
    "write_report": "mnistbench.report.build",
    "build_view": "mnistbench.report.views",
    "view_markdown": "mnistbench.report.views",
    "VIEWS": "mnistbench.report.views",
    "latest_per_config": "mnistbench.report.collect",
    "markdown_table": "mnistbench.report.document",
}

__all__ = sorted([*_EXPORTS, "export"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnistbench.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
