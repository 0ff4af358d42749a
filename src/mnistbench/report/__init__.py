"""Reports built only from the results store (tables now; figures and HTML build on these)."""

from mnistbench.report.tables import latest_per_config, markdown_table, runs_markdown

__all__ = ["latest_per_config", "markdown_table", "runs_markdown"]
