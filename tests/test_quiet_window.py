"""benchmarks/quiet_window.py on the synthetic data set: the public recipe and ours run seed by
seed interleaved, every seed lands in the side-by-side table with the machine and command, and
the Wilson interval follows its closed form. What it measures is never asserted, only that it
was measured and written."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mnistbench.store import Store

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("quiet_window", BENCHMARKS / "quiet_window.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "quiet_window", module)
    spec.loader.exec_module(module)
    return module


def test_speedrun_part_interleaves_the_seeds_and_writes_both_rows(
    quiet, learnable_data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MNISTBENCH_DATA", str(learnable_data_dir))
    args = argparse.Namespace(seeds=2, threads=1)
    with Store(str(tmp_path / "q.sqlite")) as store:
        figures = quiet.part_speedrun(args, store, tmp_path, "python benchmarks/quiet_window.py")
    order = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert order == ["public seed 0", "ours   seed 0", "public seed 1", "ours   seed 1"]
    assert [r["seed"] for r in figures["public"]] == [0, 1]
    assert [t["seed"] for t in figures["ours"]["trials"]] == [0, 1]
    assert figures["ours"]["model"] == "speedrun_lean" and figures["ratio"] > 0
    table = (tmp_path / "speedrun-vs-public.md").read_text()
    assert "| tuomaso/train_mnist_fast, re-typed" in table and "speedrun_lean" in table
    assert "Machine: " in table and "torch threads" in table and "Ratio of mean training" in table
    saved = json.loads((tmp_path / "speedrun-vs-public.json").read_text())
    assert saved["ratio"] == figures["ratio"]


def test_wilson_interval_matches_its_closed_form(quiet) -> None:
    # 95 of 100: centre (0.95 + z^2/200) / (1 + z^2/100), z = 1.96; by hand 0.8882 .. 0.9785
    low, high = quiet.wilson(95, 100)
    assert (round(low, 4), round(high, 4)) == (0.8882, 0.9785)


def test_estimate_prints_the_plan_and_runs_nothing(quiet, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["quiet_window.py", "--estimate", "--parts", "speedrun"])
    monkeypatch.setattr(quiet, "part_speedrun", lambda *a: pytest.fail("ran"))
    quiet.main()
    out = capsys.readouterr().out
    assert "speedrun: about" in out and "total: about" in out
