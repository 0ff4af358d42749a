"""README figures are copied from the committed benchmark output, never typed by hand."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report.rebuild import rebuild

ROOT = Path(__file__).resolve().parent.parent


def test_readme_block_and_tables_match_the_committed_results() -> None:
    """README's measured block and benchmarks/results/*.md are what `mnistbench results
    rebuild` makes of results/*.jsonl; this fails when either is stale."""
    stale = rebuild(ROOT, check=True)
    assert stale == [], f"stale: {stale}; run `mnistbench results rebuild` and commit"


def test_readme_gives_the_ci_test_line() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if line.startswith("<!-- test-command"))
    assert lines[marker + 1] == "```bash" and "python -m pytest" in lines[marker + 2]
    assert "<!-- test-command" in (ROOT / ".ci" / "run").read_text()
