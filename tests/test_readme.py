"""README figures are copied from the committed benchmark output, never typed by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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


def test_every_test_the_docs_cite_exists() -> None:
    """docs/faults.md and the other pages cite tests as `test_file.py::test_name`; a renamed or
    removed test must not leave the page pointing at nothing."""
    cited = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in re.finditer(r"(test_\w+\.py)::(\w+)", page.read_text()):
            cited.append((page.name, *match.groups()))
    assert len(cited) >= 30  # docs/faults.md alone cites more; the pattern must keep matching
    missing = [
        f"{page}: {file}::{name}"
        for page, file, name in cited
        if not (ROOT / "tests" / file).is_file()
        or not re.search(rf"^def {name}\b", (ROOT / "tests" / file).read_text(), re.MULTILINE)
    ]
    assert not missing, "docs cite tests that do not exist:\n" + "\n".join(missing)


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    """The example under '## Python', run unchanged in an empty folder with only the data root
    set as a user would: it trains, prints two figures and leaves its run in the CLI's default
    store, where `mnistbench export` finds it."""
    from conftest import real_data_root

    data_root = real_data_root("mnist")
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python") :]
    example = section[section.index("```python\n") + 10 : section.index("\n```\n")]
    env = {**os.environ, "MNISTBENCH_DATA": str(data_root), "MNISTBENCH_OFFLINE": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    test_accuracy, time_per_epoch_s = (float(x) for x in ran.stdout.split())
    assert test_accuracy > 0.9
    exported = subprocess.run(
        [sys.executable, "-m", "mnistbench", "export", "--format", "json", "--out", "-"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (run,) = json.loads(exported.stdout)
    assert run["model"] == "mlp" and run["test_accuracy"] == test_accuracy
    assert run["time_per_epoch_s"] == time_per_epoch_s  # the printed figures are the run's
    # one epoch: its headline time is that epoch's own training time (the median of one)
    lines = subprocess.run(
        [sys.executable, "-m", "mnistbench", "export", "--format", "jsonl", "--out", "-"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (line,) = [json.loads(text) for text in lines.stdout.splitlines()]
    assert [e["train_time_s"] for e in line["epochs"]] == [time_per_epoch_s]
