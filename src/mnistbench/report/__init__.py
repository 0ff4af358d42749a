"""Reports built only from the results store: tables, figures, the HTML page, CSV/JSON export."""

from mnistbench.report.build import ReportFiles, report_markdown, write_report
from mnistbench.report.export import export
from mnistbench.report.tables import latest_per_config, markdown_table, runs_markdown

__all__ = [
    "ReportFiles",
    "export",
    "latest_per_config",
    "markdown_table",
    "report_markdown",
    "runs_markdown",
    "write_report",
]
