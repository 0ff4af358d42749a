"""Per-image test predictions kept with every run, and `mnistbench compare` pairing two runs on
them: the artefact round-trips through the store, `export --format jsonl` and `merge`; the
run's metrics carry n_test and the Wilson interval of its counts; compare gives scipy's exact
binomial p-value for its own discordant counts and refuses what cannot be paired."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mnistbench.artefacts import (
    PREDICTIONS_FINAL,
    PREDICTIONS_KIND,
    predictions_blob,
    read_predictions,
)
from mnistbench.cli import main
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.statistics import wilson_interval
from mnistbench.store import Store
from mnistbench.store.jsonl import read_jsonl, write_jsonl
from synthetic import learnable_raw

# ----------------------------------------------------------------------------- the artefact


def test_blob_round_trips_and_stays_small():
    rng = np.random.default_rng(0)
    n = 10_000
    labels = rng.integers(0, 10, n)
    predicted = np.where(rng.random(n) < 0.98, labels, (labels + 1) % 10)
    top = np.clip(1 - rng.exponential(0.01, n), 0, 1)
    true = np.where(predicted == labels, top, rng.random(n) * 0.3)
    blob = predictions_blob(predicted, labels, top, true)
    back = read_predictions(blob)
    assert np.array_equal(back.predicted, predicted) and np.array_equal(back.labels, labels)
    assert np.array_equal(back.top_probability, top.astype(np.float16))
    assert np.array_equal(back.true_probability, true.astype(np.float16))
    assert back.correct.sum() == np.sum(predicted == labels)
    assert len(blob) < 40_000  # "a few tens of KB" for 10,000 images


def test_blob_without_probabilities_says_why():
    blob = predictions_blob(np.array([1, 2]), np.array([1, 3]), probabilities_absent="an SVC")
    back = read_predictions(blob)
    assert back.top_probability is None and back.probabilities_absent == "an SVC"


@pytest.mark.parametrize(
    "bad",
    [
        b"not predictions",
        predictions_blob(np.array([1]), np.array([1]))[:-3],  # cut short
        predictions_blob(np.array([1]), np.array([1])).replace(b'"n":1', b'"n":2'),
    ],
)
def test_bad_blobs_are_refused(bad):
    with pytest.raises(ValueError):
        read_predictions(bad)


# -------------------------------------------------------------------- runs keep predictions


def _run(store: Store, **overrides):
    config = make_config("mlp", **{"epochs": 1, "val_size": 100, **overrides})
    raw = learnable_raw(n_train=600, n_test=300)
    return run_config(config, store, raw=raw, progress=False, measure_energy=False).record


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One store of three one-epoch runs: two on all 300 test images, one on the first 200."""
    path = tmp_path_factory.mktemp("runs") / "results.sqlite"
    with Store(path) as store:
        a = _run(store, lr=0.002, seed=0)
        b = _run(store, lr=0.0002, seed=1)
        c = _run(store, seed=0, subset=200)
    return path, a, b, c


@pytest.fixture
def store(runs):
    with Store(runs[0]) as opened:
        yield opened


def _predictions(store: Store, run_id: int):
    (artefact,) = [
        a
        for a in store.artefacts(run_id)
        if a.kind == PREDICTIONS_KIND and a.name == PREDICTIONS_FINAL
    ]
    return artefact, read_predictions(artefact.content)


def test_a_run_keeps_its_predictions_and_interval(runs, store: Store, tmp_path: Path):
    record = runs[1]
    _, predictions = _predictions(store, record.run_id)
    m = record.metrics
    assert predictions.n == m["n_test"] == 300
    correct = int(predictions.correct.sum())
    assert correct / 300 == pytest.approx(m["test_accuracy"])
    assert m["test_accuracy_ci95"] == pytest.approx(list(wilson_interval(correct, 300)))
    # a probability of the predicted class is the largest, so never below the true class's
    assert np.all(predictions.top_probability >= predictions.true_probability)
    right = predictions.correct
    assert np.array_equal(predictions.top_probability[right], predictions.true_probability[right])
    assert m["predictions_kept"][0] == PREDICTIONS_FINAL and m["predictions_probabilities"]

    # export --format jsonl, then merge into a new store: the same bytes come back
    out = tmp_path / "runs.jsonl"
    write_jsonl(store, out)
    (stored,) = [s for s in read_jsonl(out) if s.run.config_hash == record.config_hash]
    (travelled,) = [a for a in stored.artefacts if a.name == PREDICTIONS_FINAL]
    original, _ = _predictions(store, record.run_id)
    assert travelled.content == original.content
    assert main(["merge", str(out), "--store", str(tmp_path / "merged.sqlite")]) == 0
    with Store(tmp_path / "merged.sqlite") as merged:
        (run,) = [r for r in merged.list_runs() if r.config_hash == record.config_hash]
        copied, _ = _predictions(merged, run.run_id)
        assert copied.content == original.content


# -------------------------------------------------------------------------------- compare


def test_compare_two_runs_gives_the_exact_mcnemar_p(runs, store: Store, capsys):
    _, a, b, _ = runs
    code = main(["compare", str(a.run_id), str(b.run_id), "--json", "--store", str(store.path)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    a_only, b_only = result["a_only_correct"], result["b_only_correct"]
    assert result["n_test"] == 300
    assert a_only + b_only > 0  # the two runs disagree somewhere, so the test can fail
    expected = stats.binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    assert result["p_value"] == pytest.approx(expected)
    acc_a, acc_b = a.metrics["test_accuracy"], b.metrics["test_accuracy"]
    assert (acc_a - acc_b) * 300 == pytest.approx(a_only - b_only)
    assert result["difference"] == pytest.approx(acc_a - acc_b)
    low, high = result["difference_ci95"]
    assert low <= result["difference"] <= high
    assert result["method"].startswith("exact McNemar")


def test_compare_refuses_other_test_images(runs, store: Store, capsys):
    _, a, _, b = runs  # b: scored on the first 200 test images only
    code = main(["compare", str(a.run_id), str(b.run_id), "--store", str(store.path)])
    err = capsys.readouterr().err
    assert code == 2 and "different test images" in err and "Traceback" not in err


def test_compare_refuses_runs_without_predictions(runs, tmp_path: Path, capsys):
    path, a, b, _ = runs
    copy = tmp_path / "copy.sqlite"
    shutil.copy(path, copy)
    with contextlib.closing(sqlite3.connect(copy)) as conn:  # as recorded before 2026-12
        conn.execute("DELETE FROM artefacts WHERE run_id = ?", (b.run_id,))
        conn.commit()
    code = main(["compare", str(a.run_id), str(b.run_id), "--store", str(copy)])
    err = capsys.readouterr().err
    assert code == 2 and "No per-image predictions" in err and "mnistbench run mlp" in err


def test_a_model_name_must_name_one_configuration(runs, store: Store, capsys):
    code = main(["compare", "mlp", str(runs[1].run_id), "--store", str(store.path)])
    err = capsys.readouterr().err
    assert code == 2 and "names 3 configurations of mlp" in err and "lr, subset" in err
    # narrowed to one configuration (its seeds pooled: here one), it pairs
    code = main(["compare", "mlp", str(runs[2].run_id), "--lr", "2e-3", "--subset", "none",
                 "--json", "--store", str(store.path)])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["a"]["run_ids"] == [runs[1].run_id]


def test_the_lightgbm_probe_scores_with_probabilities():
    """simsiam_lgbm's probe: predict_proba gives the top and the true class's probability."""
    import torch

    from mnistbench.data import Split
    from mnistbench.recipes.features import fit_lightgbm_probe, lightgbm_eval

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    features = rng.normal(size=(120, 4)) + labels[:, None]  # learnable, not perfectly
    split = Split(torch.tensor(features, dtype=torch.float32), torch.tensor(labels))
    probe = fit_lightgbm_probe(split, seed=0, threads=1, n_estimators=5)
    scored = lightgbm_eval(probe.booster, split)
    probabilities = probe.booster.predict_proba(features)
    assert np.allclose(scored.top_probability.numpy(), probabilities.max(axis=1))
    assert np.allclose(scored.true_probability.numpy(), probabilities[np.arange(120), labels])
    right = scored.predictions.numpy() == labels
    assert scored.accuracy == pytest.approx(right.mean())
    assert np.allclose(
        scored.top_probability.numpy()[right], scored.true_probability.numpy()[right]
    )


def test_compare_best_val_models(runs, store: Store, capsys):
    """--which best_val pairs the epochs validation chose (one epoch here: the final models)."""
    _, a, b, _ = runs
    args = ["compare", str(a.run_id), str(b.run_id), "--which", "best_val", "--json"]
    assert main([*args, "--store", str(store.path)]) == 0
    result = json.loads(capsys.readouterr().out)
    honest_a, honest_b = (
        a.metrics["test_accuracy_at_best_val"],
        b.metrics["test_accuracy_at_best_val"],
    )
    assert result["difference"] == pytest.approx(honest_a - honest_b)


# ------------------------------------------------------------- outcomes on corrupted images


def _outcomes(n: int = 37):
    from mnistbench.artefacts import CorruptedOutcomes

    rng = np.random.default_rng(0)
    correct = rng.random((3, n)) < 0.7
    return CorruptedOutcomes(
        ("rotate", "shear", "dotted_line"),
        correct,
        "a" * 64,
        {"rotate": "b" * 64, "shear": "c" * 64, "dotted_line": "d" * 64},
    )


def test_corrupted_outcomes_round_trip_as_bits():
    from mnistbench.artefacts import corrupted_outcomes_blob, read_corrupted_outcomes

    original = _outcomes()
    blob = corrupted_outcomes_blob(original)
    back = read_corrupted_outcomes(blob)
    assert back.names == original.names and back.n == 37
    assert np.array_equal(back.correct, original.correct)
    assert back.images_sha256 == original.images_sha256
    # 15 corruptions of 10,000 images: at most 15 x 1,250 bytes of bits plus a header
    big = _outcomes(10_000)
    assert len(corrupted_outcomes_blob(big)) < 3 * 1_250 + 400


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b"not outcomes" + b,
        lambda b: b[:-4],  # cut short
        lambda b: b.replace(b'"n":37', b'"n":45'),  # more images than the bits hold
        lambda b: b.replace(b'"n":37', b'"n":33'),  # fewer: set bits left past the end
        lambda b: b.replace(b'"rotate"', b'"Rot\\u00e4te"', 1),  # a name that is not a name
        lambda b: b.replace(b'"dotted_line":"ddd', b'"zigzag":"ddd'),  # checksums != names
        lambda b: b.replace(b'"n":37', b'"n":1000000000'),  # a size beyond any test set
    ],
)
def test_bad_corrupted_outcomes_are_refused(edit):
    from mnistbench.artefacts import corrupted_outcomes_blob, read_corrupted_outcomes

    with pytest.raises(ValueError):
        read_corrupted_outcomes(edit(corrupted_outcomes_blob(_outcomes())))
