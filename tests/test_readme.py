"""README figures are copied from the committed benchmark output, never typed by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_results_block_matches_committed_output() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "readme_results.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_gives_the_ci_test_line() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if line.startswith("<!-- test-command"))
    assert lines[marker + 1] == "```bash" and "python -m pytest" in lines[marker + 2]
    assert "<!-- test-command" in (ROOT / ".ci" / "run").read_text()
