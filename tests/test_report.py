"""The report: tables, figures and the HTML page, from a store written by hand (no training)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import statistics
import subprocess
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from mnistbench.cli import main
from mnistbench.experiments.configure import make_config
from mnistbench.report import report_markdown, write_report
from mnistbench.report.cards import card_of
from mnistbench.report.collect import full_data_groups, group_runs, latest_per_config, pareto_front
from mnistbench.report.columns import COLUMNS
from mnistbench.report.compare import settings_vs_recipe
from mnistbench.report.format import Stat
from mnistbench.report.uncertainty import CI_HEADER
from mnistbench.statistics import verdict_against_published
from mnistbench.store import Store

CPU_ENV = {"device": "cpu", "device_name": "Test CPU", "torch_version": "2.13.0"}
GPU_ENV = {"device": "cuda", "device_name": "Test GPU", "torch_version": "2.13.0"}
MLP_BEST = (0.978, 0.980, 0.982)  # best test accuracy of the mlp recipe, seeds 0-2
MLP_HONEST = (0.975, 0.977, 0.976)
EXPECTED_FIGURES = {
    "accuracy_vs_params",
    "published_vs_measured",
    "accuracy_vs_time",
    "accuracy_vs_energy",  # estimated energy: drawn, and its caption says it is the time front
    "learning_curves_mnist",
    "learning_curves_fashion_mnist",
    "confusion_matrices_mnist",
    "confusion_matrices_fashion_mnist",
    "sensitivity",
    "cpu_vs_gpu",
}


def _record(store: Store, config, status: str = "finished", accuracy: float = 0.98) -> int:
    run_id = store.start_run(config.to_dict(), config.config_hash(), {"device": "cpu"})
    store.finish_run(run_id, status, {"test_accuracy": accuracy, "params": 1})
    return run_id


def _png(color: str = "red") -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (24, 12), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _full_run(
    store: Store,
    config,
    *,
    best: float,
    honest: float,
    final: float,
    time_s: float = 2.0,
    energy_kwh: float | None = 2e-4,
    params: int = 1000,
    env: dict | None = None,
    status: str = "finished",
    image: bool = False,
) -> int:
    """A run as run_config records it: epochs, summary metrics, confusion matrix."""
    run_id = store.start_run(config.to_dict(), config.config_hash(), env or CPU_ENV)
    epochs = 3
    for epoch in range(1, epochs + 1):
        store.log_epoch(
            run_id,
            epoch,
            {
                "train_loss": 0.5 / epoch,
                "train_accuracy": final - 0.01 * (epochs - epoch),
                "val_accuracy": honest - 0.004 * (epochs - epoch),
                "test_accuracy": best - 0.003 * (epochs - epoch),
                "train_time_s": time_s,
            },
        )
    metrics = {
        "epochs_completed": epochs,
        "test_accuracy": final,
        "test_accuracy_at_best_val": honest,
        "best_test_accuracy": best,
        "params": params,
        "time_per_epoch_s": time_s,
        "total_train_time_s": time_s * epochs,
        "seconds_to_target": time_s * 2,
        "energy_kwh": energy_kwh,
        "energy_method": "codecarbon cpu (TDP estimate)",
    }
    store.finish_run(run_id, status, metrics, error=None if status == "finished" else "boom")
    if status == "finished":
        matrix = [[90 if i == j else (10 if j == (i + 1) % 10 else 0) for j in range(10)]
                  for i in range(10)]  # fmt: skip
        store.add_artefact(run_id, "confusion_matrix", "json", json.dumps(matrix))
    if image:
        store.add_artefact(run_id, "samples.png", "png", _png())
        store.add_artefact(run_id, "broken.png", "png", b"not a png")
    return run_id


def build_store(path: Path) -> Path:
    """Several models, seeds, optimizers, devices and statuses; no training."""
    with Store(path) as store:
        for seed, best, honest in zip((0, 1, 2), MLP_BEST, MLP_HONEST, strict=True):
            _full_run(
                store, make_config("mlp", seed=seed), best=best, honest=honest,
                final=honest - 0.001, params=535_818, time_s=2.0, image=seed == 0,
            )  # fmt: skip
        for seed in (0, 1):
            _full_run(
                store, make_config("cnn", seed=seed), best=0.989, honest=0.987, final=0.986,
                params=206_922, time_s=5.0, energy_kwh=5e-4,
            )  # fmt: skip
        for optimizer, lr, accuracy in (
            ("adam", 1e-3, 0.970), ("adam", 1e-2, 0.962), ("sgd", 1e-2, 0.955), ("sgd", 1e-1, 0.968)
        ):  # fmt: skip
            _full_run(
                store, make_config("mlp_784_512", optimizer=optimizer, lr=lr),
                best=accuracy + 0.002, honest=accuracy, final=accuracy, params=407_050, time_s=1.5,
            )  # fmt: skip
        # the same cnn config on a GPU: the speed-up section pairs it with seed 0 above
        _full_run(
            store, make_config("cnn", device="cuda", precision="bf16", seed=0),
            best=0.988, honest=0.986, final=0.986, params=206_922, time_s=0.25, env=GPU_ENV,
        )  # fmt: skip
        _full_run(
            store, make_config("mlp", dataset="fashion-mnist"), best=0.885, honest=0.881,
            final=0.88, params=535_818,
        )  # fmt: skip
        _full_run(store, make_config("cnn", lr=10.0), best=0.1, honest=0.1, final=0.1,
                  status="diverged")  # fmt: skip
        failed = store.start_run(make_config("diet_1").to_dict(), "f" * 16, CPU_ENV)
        store.finish_run(failed, "failed", {}, error="RuntimeError: out of memory")
        gone = store.start_run(
            {"model": "retired_net", "dataset": "mnist", "seed": 0}, "0" * 16, {}
        )
        store.finish_run(gone, "finished", {"test_accuracy": 0.91, "params": 12})
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    with Store(build_store(root / "results.sqlite")) as store:
        write_report(store, root / "out")
    return root / "out"


def _table(markdown: str, heading: str) -> list[list[str]]:
    """Rows (cells) of the first table after `heading`."""
    text = markdown.split(heading, 1)[1]
    lines = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append([c.strip() for c in line.strip("|").split(" | ")])
        elif lines:
            break
    header, _, *rows = lines
    return [header, *rows]


def _row(table: list[list[str]], **match: str) -> dict[str, str]:
    header, *rows = table
    found = [dict(zip(header, r, strict=True)) for r in rows]
    found = [r for r in found if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


# ------------------------------------------------------------------------ existing tables


def test_report_rows_and_settings(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("mlp"), accuracy=0.97)
        _record(store, make_config("mlp"), accuracy=0.975)  # a --force rerun replaces the row
        _record(store, make_config("cnn", precision="bf16", scheduler="onecycle"))
        _record(store, make_config("cnn", lr=10.0), status="diverged")
        runs = store.list_runs()
        assert [r.run_id for r in latest_per_config(runs)] == [3, 4, 2]
        # merged stores number runs in merge order: the newest by start time still wins
        older_last = [dataclasses.replace(runs[1], started_at="2000-01-01T00:00:00.000+00:00")]
        assert latest_per_config(runs[:1] + older_last)[0].run_id == runs[0].run_id

        def settings(run) -> str:
            return settings_vs_recipe(run.config, card_of(run))

        assert settings(runs[0]) == "recipe"
        assert settings(runs[2]) == "scheduler=onecycle, precision=bf16"
        vae = _record(store, make_config("beta_vae", model_options={"beta": 4.0}))
        (vae_run,) = [r for r in store.list_runs() if r.run_id == vae]
        assert settings(vae_run) == "beta=4.0"
        markdown = report_markdown(store)
        assert "97.50%" in markdown and "97.00%" not in markdown
        assert "| cnn | conv3x3(16)-pool" in markdown
        assert "| 4 | cnn | mnist | diverged |" in markdown  # listed, not in the results


def test_empty_store_says_how_to_start(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert "mnistbench run mlp" in report_markdown(store)


# ------------------------------------------------------------------------ pieces


def test_stat_and_pareto_front() -> None:
    stat = Stat.of([0.5, 0.7, None, float("nan"), True])
    assert stat is not None and stat.n == 2 and stat.mean == pytest.approx(0.6)
    assert stat.std == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert Stat.of([None]) is None and Stat.of([3]).std is None
    # (cost, accuracy): 1 beats 0 (cheaper, better); 3 costs more but is the most accurate
    points = [(10, 0.90), (5, 0.95), (7, 0.94), (20, 0.99), (5, 0.80)]
    assert pareto_front(points) == [1, 3]


def test_trade_off_plots_leave_subset_runs_out(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("mlp", epochs=1))
        _record(store, make_config("mlp", epochs=1, subset=2000), accuracy=0.80)
        groups = group_runs(store.list_runs())
    assert len(groups) == 2
    kept = full_data_groups(groups)
    assert [g.config.get("subset") for g in kept] == [None]


# ------------------------------------------------------------------------ files


def test_report_writes_markdown_html_and_valid_figures(report_dir: Path) -> None:
    assert (report_dir / "report.md").is_file() and (report_dir / "index.html").is_file()
    stems = {p.stem for p in (report_dir / "figures").iterdir()}
    assert stems == EXPECTED_FIGURES
    for stem in EXPECTED_FIGURES:
        png = report_dir / "figures" / f"{stem}.png"
        with Image.open(png) as image:
            image.verify()  # raises on a truncated or corrupt file
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
        root = ET.parse(report_dir / "figures" / f"{stem}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # the run's PNG artefact is copied beside the page; the broken one is left out and counted
    assert (report_dir / "artefacts" / "run1_samples.png").read_bytes() == _png()
    assert not list((report_dir / "artefacts").glob("*broken*"))


def test_markdown_and_html_refer_to_files_that_exist(report_dir: Path) -> None:
    markdown = (report_dir / "report.md").read_text()
    page = (report_dir / "index.html").read_text()
    md_links = re.findall(r"\]\(([^)]+)\)", markdown)
    html_links = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert set(md_links) == set(html_links)
    # every study named links to its section of the project's docs (outside the repository,
    # as here, they stay repository-relative)
    study_links = {link for link in md_links if link.startswith("docs/")}
    assert study_links == {f"docs/studies.md#study-{s}" for s in "abcde"}
    files = [link for link in md_links if link not in study_links]
    # PNG + SVG each, one artefact, the interactive page
    assert len(files) == 2 * len(EXPECTED_FIGURES) + 2
    for link in files:
        assert not link.startswith(("/", "http")), link  # relative: the folder can be moved
        assert (report_dir / link).is_file(), link
    assert "http://" not in page and "https://" not in page  # no network needed


# ------------------------------------------------------------------------ tables


def test_study_tables_put_published_and_measured_side_by_side(report_dir: Path) -> None:
    markdown = (report_dir / "report.md").read_text()
    study_a = _table(markdown, "### Study A")
    mlp = _row(study_a, Model="mlp", Dataset="mnist")
    best = f"{100 * statistics.fmean(MLP_BEST):.2f} ± {100 * statistics.stdev(MLP_BEST):.2f}%"
    honest = f"{100 * statistics.fmean(MLP_HONEST):.2f} ± {100 * statistics.stdev(MLP_HONEST):.2f}%"
    assert mlp["Published acc"] == "97.81%"
    assert mlp["Published setting"].startswith("97.81% ([study A](docs/studies.md#study-a); ")
    # each with its interval: 3 seeds, the seeds-and-images bootstrap of the mean
    assert mlp[COLUMNS["acc_max"].title].startswith(best + " [")
    assert mlp[COLUMNS["acc_best_val"].title].startswith(honest + " [")
    assert mlp["Seeds"] == "3"
    assert mlp["Honest − published"] == f"{100 * (statistics.fmean(MLP_HONEST) - 0.9781):+.2f} pt"
    # study A published the max over epochs: ours under that protocol is 98.00% vs 97.81%,
    # judged by the one rule (its hand computations are in test_statistics.py)
    expected = verdict_against_published(0.9781, MLP_BEST, 10_000, seeds_needed=3)
    assert mlp[COLUMNS["met"].title] == f"{expected.text} [max over epochs]"
    assert mlp["Params (published)"] == "535,818" and mlp["Params"] == "535,818"
    assert mlp["Time/epoch published"] == (
        "15 s cuda (README: training; its scripts' timer: training + test pass)"
    )
    # a CPU time beside a study's CUDA time says what it ran on and whether it had the cores
    assert mlp["Time/epoch (train, threads, CPU share)"].startswith("2.00 ± 0.00 s (")
    assert mlp["Energy (Wh)"] == "≈ 0.2 ± 0 Wh (estimated)"
    # a Fashion-MNIST row is never set against a figure of another dataset
    fashion = _row(study_a, Model="mlp", Dataset="fashion-mnist")
    assert fashion["Published acc"] == "—" and fashion["Honest − published"] == "—"
    assert fashion["Published setting"] == "— (figures for mnist only)"
    # two cnn configurations fill study A: the CPU recipe (2 seeds) and the GPU one
    assert _row(study_a, Model="cnn", Device="cpu: Test CPU")["Seeds"] == "2"
    gpu = _row(study_a, Model="cnn", Device="cuda: Test GPU")
    assert gpu["Settings (vs recipe)"] == "precision=bf16"
    # every registered model of the study is listed, run or not; the diverged cnn is not
    assert _row(study_a, Model="microresnet")["Settings (vs recipe)"] == "not run yet"
    assert "lr=10.0" not in "".join(map(str, study_a))
    # study B: the lr/optimizer variants stay out; the recipe run fills the row
    study_b = _table(markdown, "### Study B")
    # one seed: its Wilson interval, 9,700 of 10,000 right
    assert _row(study_b, Model="mlp_784_512")[COLUMNS["acc_best_val"].title] == (
        "97.00% [96.65–97.32%]"
    )
    assert _row(study_b, Model="rnn_rows")["Settings (vs recipe)"] == "not run yet"
    others = _table(markdown, "### Models without a published figure")
    assert _row(others, Model="retired_net")["Architecture"] == "— (not in the run's model card)"


def test_sensitivity_speedup_energy_and_unfinished(report_dir: Path) -> None:
    markdown = (report_dir / "report.md").read_text()
    sensitivity = _table(markdown, "## Optimizer and learning-rate sensitivity")
    assert len(sensitivity) == 1 + 4
    sgd = _row(sensitivity, Optimizer="sgd", LR="0.1")
    assert sgd[COLUMNS["acc_best_val"].title].startswith("96.80% [")
    speedup = _table(markdown, "## CPU vs GPU speed-up")
    (row,) = [dict(zip(speedup[0], r, strict=True)) for r in speedup[1:]]
    assert row["Speed-up"] == "20.0×"  # 5.0 s on the CPU / 0.25 s on the GPU
    assert row["Precision (CPU / GPU)"] == "fp32 / bf16"
    energy = _table(markdown, "sorted by energy")
    cnn = _row(energy, Configuration="cnn (device=cpu, precision=fp32)")
    assert cnn["Energy (Wh)"] == "≈ 0.5 ± 0 Wh (estimated)"
    assert cnn["Wh to target"] == "≈ 0.333 ± 0 Wh (estimated)"  # 2 of 3 epochs' training time
    assert "codecarbon cpu (TDP estimate)" in markdown
    # one unit: no kWh anywhere, and nothing claims energy covers the whole run
    assert "kWh" not in markdown and "whole run" not in markdown
    assert "every energy figure is estimated" in markdown
    unfinished = _table(markdown, "## Runs not finished")
    assert _row(unfinished, Status="diverged")["Settings"] == "lr=10.0"
    assert _row(unfinished, Status="failed")["Error"] == "RuntimeError: out of memory"


def test_no_gpu_runs_and_empty_store(tmp_path: Path) -> None:
    with Store(tmp_path / "cpu.sqlite") as store:
        _full_run(store, make_config("mlp"), best=0.98, honest=0.97, final=0.97)
        markdown = report_markdown(store)
    assert "No GPU runs in the store" in markdown
    with Store(tmp_path / "empty.sqlite") as store:
        files = write_report(store, tmp_path / "empty")
    assert files.figures == [] and files.images == []
    markdown = files.markdown.read_text()
    assert "mnistbench run mlp" in markdown and "not run yet" in markdown
    assert "<table>" in files.html.read_text()


def test_speedrun_section_counts_seeds_reaching_the_target(tmp_path: Path) -> None:
    with Store(tmp_path / "speed.sqlite") as store:
        _full_run(store, make_config("mlp"), best=0.98, honest=0.97, final=0.97)
        assert "## Speedruns" not in report_markdown(store)  # no sealed runs, no section
        for seed, final in enumerate((0.991, 0.989, 0.993)):
            config = make_config("cnn", seed=seed, target_accuracy=0.99, val_size=0)
            run_id = _full_run(store, config, best=final, honest=final, final=final, time_s=1.0)
            run = store.get_run(run_id)
            store.finish_run(run_id, "finished", {**run.metrics, "test_protocol": "final_only"})
        markdown = report_markdown(store)
    row = _row(_table(markdown, "## Speedruns"), Model="cnn")
    assert row["Seeds"] == "3" and row["Target"] == "≥ 99.00%"
    # 2 of 3 by hand (Wilson): centre (0.6667 + 0.6403) / 2.2805 = 0.5731, half
    # 1.96 / 2.2805 * sqrt(0.0741 + 0.1067) = 0.3655 -> 20.8-93.9%
    assert row["Seeds ≥ target (success rate)"] == "2/3 (95% CI, Wilson 20.8–93.9%)"
    assert row["Time-to-target (seeds ≥ target)"] == (
        "mean 3.00 s, median 3.00 s, IQR 3.00 s–3.00 s"
    )
    assert row[f"Final test acc {CI_HEADER}"].startswith("99.10 ± 0.20% [")
    assert row["Training time"].startswith("3")


def test_cli_report_out_and_stdout(capsys, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    with Store(store) as s:  # one run keeps this test quick; the fixture covers the rest
        _full_run(s, make_config("mlp"), best=0.98, honest=0.97, final=0.97)
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "index.html" in captured.err
    assert (tmp_path / "r" / "figures" / "accuracy_vs_params.png").is_file()
    assert main(["report", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "### Study A" in out and "![" not in out  # tables only on stdout
    assert not (tmp_path / "figures").exists()


# ------------------------------------------------------------------------ in a browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def _render(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            _chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
            *extra, page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def test_html_report_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    dom = _render(report_dir / "index.html", tmp_path, "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    images = len(EXPECTED_FIGURES) + 1  # figures + the run's PNG artefact
    # set by the page's own script once every <img> has loaded with a real size
    assert f'data-images-total="{images}"' in body.group(0)
    assert f'data-images-loaded="{images}"' in body.group(0)
    assert 'data-report-ready="yes"' in body.group(0)
    assert dom.count("<table>") >= 10
    assert "Study A: Ten architectures on MNIST" in dom and "97.81%" in dom
    assert '<a href="docs/studies.md#study-a">study A</a>' in dom
    screenshot = tmp_path / "shot.png"
    _render(report_dir / "index.html", tmp_path, "--window-size=1400,2000", "--hide-scrollbars",
            f"--screenshot={screenshot}")  # fmt: skip
    with Image.open(screenshot) as image:
        assert image.size == (1400, 2000)
        assert len(image.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page


def test_chromium_check_catches_a_missing_figure(report_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(report_dir, broken)
    (broken / "figures" / "sensitivity.png").unlink()
    dom = _render(broken / "index.html", tmp_path, "--dump-dom").stdout
    assert 'data-report-ready="broken"' in dom
    assert f'data-images-loaded="{len(EXPECTED_FIGURES)}"' in dom


def test_group_labels_spell_model_options_as_pairs() -> None:
    from types import SimpleNamespace

    from mnistbench.report.collect import group_labels

    groups = [
        SimpleNamespace(key=key, model="beta_vae", dataset="mnist", config=config)
        for key, config in (
            ("a", {"epochs": 10, "model_options": []}),
            ("b", {"epochs": 10, "model_options": [["beta", 4.0]]}),
        )
    ]
    labels = group_labels(groups)  # type: ignore[arg-type]
    assert labels == {"a": "beta_vae (default options)", "b": "beta_vae (beta=4.0)"}


def test_study_links_open_from_a_report_inside_the_repository(tmp_path: Path) -> None:
    """Written inside a checkout that has docs/studies.md, the page's study links reach it."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "studies.md").write_text("# The studies\n", encoding="utf-8")
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("mlp"))
        files = write_report(store, tmp_path / "reports" / "latest")
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "](../../docs/studies.md#study-a)" in markdown
    assert "](docs/studies.md" not in markdown
    assert 'href="../../docs/studies.md#study-a"' in files.html.read_text(encoding="utf-8")
    assert (files.markdown.parent / "../../docs/studies.md").resolve().is_file()
