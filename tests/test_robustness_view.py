"""The robustness view and section (report/robustness.py), from stored evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistbench.experiments.configure import make_config
from mnistbench.report import view_markdown, write_report
from mnistbench.statistics import seeds_images_interval
from mnistbench.store import Store
from report_store import write_run
from test_report import _row, _table


def evaluation(clean: float, mean: float, worst: float, ece: float, fgsm: float, pgd: float):
    return {
        "corruptions": {
            "clean_accuracy": clean,
            "accuracy": {"shot_noise": mean + (mean - worst), "zigzag": worst},
            "mean_accuracy": mean,
            "worst": "zigzag",
            "worst_accuracy": worst,
            "images": 10_000,
        },
        "calibration": {
            "clean_accuracy": clean,
            "applicable": True,
            "ece": ece,
            "nll": 0.1,
            "brier": 0.02,
            "images": 10_000,
        },
        "adversarial": {
            "clean_accuracy": clean,
            "applicable": True,
            "images": 1000,
            "fgsm": {"0.05": 0.9, "0.1": fgsm, "0.2": 0.1, "0.3": 0.01},
            "pgd": {"0.05": 0.8, "0.1": pgd, "0.2": 0.05, "0.3": 0.0},
        },
    }


def store_evaluations(store: Store, run_id: int, evaluations: dict) -> None:
    for name, content in evaluations.items():
        store.add_artefact(run_id, f"evaluation_{name}", "evaluation", json.dumps(content))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        for seed, (clean, ece) in enumerate([(0.99, 0.010), (0.98, 0.020), (0.97, 0.030)]):
            run_id = write_run(store, make_config("cnn", seed=seed), (1, 1.0, clean, clean, clean))
            store_evaluations(store, run_id, evaluation(clean, 0.9, 0.5, ece, 0.4, 0.2))
        run_id = write_run(store, make_config("svm_rbf"), (1, 1.0, 0.96, 0.96, 0.96))
        store_evaluations(
            store,
            run_id,
            {
                "calibration": {"clean_accuracy": 0.96, "applicable": False,
                                "reason": "not applicable: the SVC gives votes, not probabilities"},
                "adversarial": {"clean_accuracy": 0.96, "applicable": False,
                                "reason": "not applicable: no input gradient"},
            },
        )  # fmt: skip
        write_run(store, make_config("mlp"), (1, 1.0, 0.97, 0.97, 0.97))  # not evaluated
        store.add_artefact(run_id, "evaluation_broken", "evaluation", b"{not json")
    return path


def test_view_rows_pool_seeds_with_the_statistics_modules_interval(store_path: Path) -> None:
    with Store(store_path) as store:
        markdown = view_markdown(store, "robustness")
    table = _table(markdown, "## Results")
    assert {row[0] for row in table[1:]} == {"cnn", "svm_rbf"}  # mlp kept no evaluation
    cnn = _row(table, Model="cnn")
    assert cnn["Trained (protocol, recipe)"] == "heldout: 5,000 held out"
    clean = seeds_images_interval([0.99, 0.98, 0.97], 10_000)
    assert cnn["Seeds"] == "3"
    assert cnn["Clean"] == f"98.00% ({100 * clean.low:.2f}–{100 * clean.high:.2f})"
    corrupted = seeds_images_interval([0.9, 0.9, 0.9], 10_000)
    assert cnn["Corrupted (mean of 15)"].startswith("90.00% (")
    assert f"{100 * corrupted.low:.2f}" in cnn["Corrupted (mean of 15)"]
    assert cnn["Worst corruption"] == "zigzag 50.00%"
    assert cnn["ECE"] == "0.0200 (range 0.0100–0.0300)"  # mean, and the seeds' range
    pgd = seeds_images_interval([0.2, 0.2, 0.2], 1000)
    assert cnn["PGD 0.1"] == f"20.00% ({100 * pgd.low:.2f}–{100 * pgd.high:.2f})"
    assert cnn["PGD 0.3"].startswith("0.00%") and cnn["FGSM 0.3"].startswith("1.00%")
    svm = _row(table, Model="svm_rbf")
    assert svm["Seeds"] == "1" and svm["Clean"].startswith("96.00%")
    assert (svm["ECE"], svm["NLL"], svm["PGD 0.1"]) == ("n/a", "n/a", "n/a")
    assert "svm_rbf: not applicable: no input gradient." in markdown


def test_report_section_draws_one_figure_per_dataset(store_path: Path, tmp_path: Path) -> None:
    with Store(store_path) as store:
        files = write_report(store, tmp_path / "report")
    assert (tmp_path / "report" / "figures" / "robustness-mnist.png").is_file()
    assert any(f.name.startswith("robustness-") for f in files.figures)
    html = files.html.read_text()
    assert "Robustness: corruptions, calibration, attacks" in html
    assert "<td><strong>50.0</strong></td>" in html  # the cnn's lowest corruption, in bold


def test_paired_column_compares_each_row_with_the_most_robust_on_the_same_images(
    tmp_path: Path,
) -> None:
    """Issue 28: 'is A more robust than B' from the per-image outcomes on corrupted images,
    by the statistics module's paired test and one verdict rule; rows without outcomes say '—'."""
    import numpy as np

    from mnistbench.artefacts import (
        CORRUPTED_OUTCOMES,
        CorruptedOutcomes,
        corrupted_outcomes_blob,
    )
    from mnistbench.report.robustness import PAIRED_HEADER
    from mnistbench.statistics import compare_correct, p_text

    rng = np.random.default_rng(7)
    names = ("shot_noise", "zigzag")
    hashes = {"shot_noise": "1" * 64, "zigzag": "2" * 64}
    kept = {"cnn": [], "mlp": []}
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        for model, rate in (("cnn", 0.9), ("mlp", 0.7)):
            for seed in range(2):
                correct = rng.random((2, 400)) < rate
                kept[model].append(correct)
                mean = float(correct.mean())
                run_id = write_run(store, make_config(model, seed=seed), (1, 1.0, 0.98, 0.98, 0.98))
                store_evaluations(store, run_id, evaluation(0.98, mean, 0.5, 0.01, 0.4, 0.2))
                blob = corrupted_outcomes_blob(CorruptedOutcomes(names, correct, "3" * 64, hashes))
                store.add_artefact(run_id, CORRUPTED_OUTCOMES, "predictions", blob)
        # a third model evaluated before outcomes were kept: no paired cell
        run_id = write_run(store, make_config("dbn"), (1, 1.0, 0.98, 0.98, 0.98))
        store_evaluations(store, run_id, evaluation(0.98, 0.8, 0.5, 0.01, 0.4, 0.2))
        markdown = view_markdown(store, "robustness")
    table = _table(markdown, "## Results")
    assert _row(table, Model="cnn")[PAIRED_HEADER] == "reference: the most robust here"
    assert _row(table, Model="dbn")[PAIRED_HEADER] == "—"
    paired = compare_correct(np.stack(kept["mlp"]), np.stack(kept["cnn"]))
    by_hand = np.stack(kept["mlp"]).mean() - np.stack(kept["cnn"]).mean()  # about -0.2
    assert paired.difference == pytest.approx(by_hand) and paired.p_value < 0.05
    low, high = paired.difference_ci95
    assert _row(table, Model="mlp")[PAIRED_HEADER] == (
        f"less robust: {100 * by_hand:+.2f} pt (95% CI {100 * low:+.2f} to {100 * high:+.2f}), "
        f"{p_text(paired.p_value, 'p_floor' in paired.extra)}"
    )
    assert "p ≤ 0.0005" in markdown  # 400 images at 0.9 against 0.7: no replicate crosses zero
    # with outcomes, the corrupted interval resamples whole images (their copies together)
    cnn = np.stack(kept["cnn"])
    interval = seeds_images_interval(cnn.reshape(2, -1).mean(1), 400, correct=cnn)
    assert _row(table, Model="cnn")["Corrupted (mean of 15)"] == (
        f"{100 * cnn.mean():.2f}% ({100 * interval.low:.2f}–{100 * interval.high:.2f})"
    )


def test_per_corruption_table_gives_each_corruptions_mean_and_marks_the_lowest(
    store_path: Path,
) -> None:
    with Store(store_path) as store:
        markdown = view_markdown(store, "robustness")
    # the cnn's three seeds: shot_noise 0.9 + (0.9 - 0.5) = 1.3 (a made-up figure), zigzag 0.5
    line = next(x for x in markdown.splitlines() if x.startswith("| cnn | mnist | 3 | 130.0"))
    assert line == "| cnn | mnist | 3 | 130.0 | **50.0** |"
    header = next(x for x in markdown.splitlines() if x.startswith("| Model | Dataset | Seeds |"))
    assert header == "| Model | Dataset | Seeds | shot_noise | zigzag |"
