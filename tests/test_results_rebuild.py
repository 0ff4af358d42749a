"""`mnistbench results rebuild`: the committed runs (results/*.jsonl) give back every committed
table and README's measured block, byte for byte, on any machine; --check fails when stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.experiments.configure import make_config
from mnistbench.report.rebuild import END, README_PARTS, START, TABLES, rebuild
from mnistbench.store import Store, write_jsonl
from report_store import write_run

ROOT = Path(__file__).resolve().parent.parent
MICRO = "# Epoch time\n\nCommand: `python benchmarks/epoch_time.py`\n\n| a | b |\n\n" \
    "<!-- readme:stop -->\n\nraw log\n"  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository in miniature: two exports, a README with the markers, the micro outputs."""
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    (root / "benchmarks" / "results").mkdir(parents=True)
    micro = [part.removeprefix("micro:") for part in README_PARTS if part.startswith("micro:")]
    for name in micro:
        (root / "benchmarks" / "results" / name).write_text(MICRO, encoding="utf-8")
    (root / "README.md").write_text(f"# Project\n\nprose\n\n{START}\nold\n{END}\n\nmore prose\n")
    for machine, seeds in (("cpu-a", (0, 1)), ("cpu-b", (2,))):
        with Store(tmp_path / f"{machine}.sqlite") as store:
            for seed in seeds:
                honest = 0.9720 + 0.001 * seed
                write_run(
                    store, make_config("mlp", seed=seed), (535_818, 1.0, honest, 0.975, 0.973)
                )
            write_jsonl(store, root / "results" / f"{machine}.jsonl")
    return root


def test_rebuild_writes_every_table_and_the_readme_block(repo: Path) -> None:
    changed = rebuild(repo)
    assert {p.name for p in changed} == {*TABLES, "README.md"}
    readme = (repo / "README.md").read_text()
    assert readme.startswith("# Project\n\nprose\n\n<!-- results:start -->")
    assert readme.endswith("<!-- results:end -->\n\nmore prose\n") and "\nold\n" not in readme
    # both exports' runs are in: the three seeds pooled in one row of the reproduction table
    repro = (repo / "benchmarks" / "results" / "reproduction.md").read_text()
    (mlp,) = [line for line in repro.splitlines() if line.startswith("| A | mlp |")]
    assert "| 3 of 3 |" in mlp and "97.30 ± 0.10%" in mlp
    # the micro-benchmark's table is copied, its command line and raw log are not
    assert "| a | b |" in readme and "raw log" not in readme and "Command:" not in readme
    assert rebuild(repo, check=True) == []  # and a second rebuild changes nothing
    assert rebuild(repo) == []


def test_a_fresh_clone_rebuilds_the_same_bytes(repo: Path, tmp_path: Path) -> None:
    rebuild(repo)
    clone = tmp_path / "clone"
    shutil.copytree(repo, clone)
    for file in TABLES:  # a clone where the tables are gone or edited by hand
        (clone / "benchmarks" / "results" / file).unlink()
    kept = tmp_path / "kept.sqlite"
    assert len(rebuild(clone, kept)) == len(TABLES)
    for file in TABLES:
        path = Path("benchmarks/results") / file
        assert (clone / path).read_bytes() == (repo / path).read_bytes()
    assert (clone / "README.md").read_bytes() == (repo / "README.md").read_bytes()
    with Store(kept) as store:  # --store keeps the rebuilt store
        assert len(store.list_runs()) == 3


def test_check_names_the_stale_files_and_exits_1(repo: Path, capsys) -> None:
    rebuild(repo)
    table = repo / "benchmarks" / "results" / "zoo-small.md"
    table.write_text(table.read_text() + "edited by hand\n")
    assert main(["results", "rebuild", "--check", "--root", str(repo)]) == 1
    assert "zoo-small.md" in capsys.readouterr().err
    assert "edited by hand" in table.read_text()  # --check writes nothing
    assert main(["results", "rebuild", "--root", str(repo)]) == 0
    assert main(["results", "rebuild", "--check", "--root", str(repo)]) == 0


def test_bad_roots_are_one_paragraph_errors(tmp_path: Path, repo: Path, capsys) -> None:
    assert main(["results", "rebuild", "--root", str(tmp_path / "nowhere")]) == 2
    assert "No results/ folder" in capsys.readouterr().err
    (repo / "README.md").unlink()
    assert main(["results", "rebuild", "--root", str(repo)]) == 2
    assert "Cannot read" in capsys.readouterr().err
    (repo / "README.md").write_text("# no markers\n")
    assert main(["results", "rebuild", "--root", str(repo)]) == 2
    assert "no measured block" in capsys.readouterr().err
    existing = tmp_path / "there.sqlite"
    existing.write_bytes(b"")
    assert main(["results", "rebuild", "--root", str(repo), "--store", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err
