"""Study C's SVMs: the scikit-learn estimator inside a model, and the `sklearn_fit` stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnistbench.artefacts import read_predictions
from mnistbench.engine import memory
from mnistbench.engine.size import static_measurements
from mnistbench.errors import ConfigError, OutOfMemoryError
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, get_model_info
from mnistbench.store import Store
from mnistbench.studies import published_figures


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


def test_unfitted_model_says_how_it_is_trained() -> None:
    with pytest.raises(RuntimeError, match=r"not been fitted.*sklearn"):
        create_model("svm_rbf")(torch.zeros(2, 1, 28, 28))


@pytest.mark.parametrize("name", ["svm_rbf", "svm_poly"])
def test_registration_is_study_c(name: str) -> None:
    info = get_model_info(name)
    kernel = create_model(name).head.estimator
    assert (kernel.kernel, kernel.gamma, kernel.C, kernel.degree, kernel.max_iter) == (
        name.removeprefix("svm_"),
        "scale",
        1.0,
        3,
        1000,
    )
    assert [s.kind for s in info.recipe.stages] == ["sklearn_fit"] and info.input_scaling == "unit"
    # 10,000 training images, drawn by the fitting stage (a random 10,000 per seed), not a subset
    assert "subset" not in info.recipe.defaults
    assert make_config(name).subset is None
    assert make_config(name, model_options={"fit_size": 10_000}).options() == {"fit_size": 10_000}
    assert {f.study for f in published_figures("svm_rbf")} == {"C"}


def test_options_reach_the_estimator() -> None:
    estimator = create_model("svm_poly", C=10.0, max_iter=50).head.estimator
    assert (estimator.C, estimator.max_iter) == (10.0, 50)


@pytest.mark.parametrize("name", ["svm_rbf", "svm_poly"])
def test_torch_prediction_equals_libsvm(name: str) -> None:
    """Decision values, scores and votes computed in torch are sklearn's own."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 4
    images = torch.rand(120, 1, 8, 8, generator=generator)
    images[:, 0, 0, :] += labels[:, None] / 4  # one row of pixels hints at the class
    model = create_model(name, num_classes=4, max_iter=30)  # stopped early, like the study
    model.fit_estimator(images[:80], labels[:80])
    assert model.fit_summary()["solver_iterations"] <= 30
    estimator, test = model.head.estimator, images[80:]
    x = test.flatten(1).double().numpy()
    pairs = model.head.pair_decisions(test.flatten(1))
    estimator.decision_function_shape = "ovo"
    torch.testing.assert_close(pairs, torch.from_numpy(estimator.decision_function(x)))
    estimator.decision_function_shape = "ovr"
    torch.testing.assert_close(
        model(test), torch.from_numpy(estimator.decision_function(x)).float()
    )
    assert torch.equal(model.predict(test), torch.from_numpy(estimator.predict(x)))
    assert model(test).shape == (40, 4)


def test_sklearn_fit_records_one_fit(store: Store, learnable_data_dir: Path) -> None:
    config = make_config("svm_rbf", val_size=200)  # the recipe's 10,000 > the 1,000 here
    record = run_config(config, store, data_dir=learnable_data_dir, progress=False).record
    m = record.metrics
    assert record.status == "finished"
    assert m["train_images"] == 1000 and m["support_vectors"] > 0
    assert 0 < m["solver_iterations"] <= 1000
    assert m["test_accuracy"] > 0.95 and m["best_val_accuracy"] > 0.95
    # measured after the fit: 784 pixels and 9 dual coefficients per support vector, 45
    # intercepts (one per pair of classes), float64; FLOPs of the kernel and decision matmuls
    n_sv = m["support_vectors"]
    assert m["params"] == n_sv * (784 + 9) + 45 and m["model_size_bytes"] == 8 * m["params"]
    assert m["flops_per_sample"] == 2 * n_sv * 784 + 2 * n_sv * 45
    assert m["train_flops_per_s"] is None and "solver" in m["fraction_of_peak_note"]
    assert m["latency_batch1_ms"] > 0
    (epoch,) = store.epochs(record.run_id)
    assert epoch["train_time_s"] == pytest.approx(m["fit_time_s"])
    assert epoch["test_loss"] == pytest.approx(1 - epoch["test_accuracy"])  # 0-1 error
    artefacts = store.artefacts(record.run_id)
    assert [a.name for a in artefacts] == ["confusion_matrix", "predictions_final"]
    # an SVC fitted without probability=True keeps classes only, and says why
    predictions = read_predictions(artefacts[1].content)
    assert predictions.top_probability is None and "probability=True" in str(
        predictions.probabilities_absent
    )
    assert predictions.correct.mean() == pytest.approx(m["test_accuracy"])


def test_full_training_set_option(store: Store, learnable_data_dir: Path) -> None:
    # What the docs tell users for all 60,000 images: --model-option fit_size=0 --val-size 0.
    config = make_config("svm_poly", model_options={"fit_size": 0}, val_size=0)
    record = run_config(config, store, data_dir=learnable_data_dir, progress=False).record
    assert record.metrics["train_images"] == 1200  # every training image of the tiny set
    assert record.metrics.get("best_val_accuracy") is None  # no validation split


@pytest.mark.parametrize("sample", ["random", "first"])
def test_fits_the_drawn_sample(store: Store, learnable_data_dir: Path, sample: str) -> None:
    options = {"fit_size": 300, "fit_sample": sample}
    config = make_config("svm_poly", model_options=options, protocol="study", seed=4)
    record = run_config(config, store, data_dir=learnable_data_dir, progress=False).record
    assert record.metrics["train_images"] == 300 and record.metrics["fit_sample"] == sample
    assert record.config["val_size"] == 0  # protocol study: drawn from every training image


@pytest.mark.parametrize(
    ("overrides", "text"),
    [({"epochs": 3}, "fitted once"), ({"augment": "affine"}, "--augment and --compile")],
)
def test_settings_it_cannot_honour_fail_before_a_row(
    store: Store, learnable_data_dir: Path, overrides: dict, text: str
) -> None:
    config = make_config("svm_rbf", val_size=200, **overrides)
    with pytest.raises(ConfigError, match=text):
        run_config(config, store, data_dir=learnable_data_dir, progress=False)
    assert store.list_runs() == []


def _tiny_fitted(kernel: str = "svm_rbf"):
    """3 classes of 2x2 images (4 features), 30 training images."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(30) % 3
    images = torch.rand(30, 1, 2, 2, generator=generator) + labels.view(-1, 1, 1, 1) / 3
    model = create_model(kernel, num_classes=3)
    model.fit_estimator(images, labels)
    return model, images


@pytest.mark.parametrize("kernel", ["svm_rbf", "svm_poly"])
def test_fitted_svm_counts_by_hand(kernel: str) -> None:
    model, _ = _tiny_fitted(kernel)
    n_sv = model.head.estimator.support_vectors_.shape[0]
    features, classes, pairs = 4, 3, 3
    figures = static_measurements(model, (1, 2, 2), "cpu")
    values = n_sv * features + (classes - 1) * n_sv + pairs  # SVs, dual coefs, intercepts
    assert figures["params"] == figures["params_total"] == values
    assert figures["model_size_bytes"] == 8 * values  # float64
    # per image: kernel row x @ SV^T (n_SV x 4 MACs), decisions k @ coef^T (n_SV x 3 MACs)
    assert figures["flops_per_sample"] == 2 * n_sv * features + 2 * n_sv * pairs
    assert figures["batch_setup_flops"] == 0


def test_prediction_runs_in_chunks_sized_to_free_memory(monkeypatch) -> None:
    model, images = _tiny_fitted()
    whole = model.head.pair_decisions(images.flatten(1))
    per_row = model.head.bytes_per_row(4)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 4 * 7 * per_row)
    rows_seen: list[int] = []
    kernel = model.head._kernel
    monkeypatch.setattr(model.head, "_kernel", lambda x: rows_seen.append(len(x)) or kernel(x))
    chunked = model.head.pair_decisions(images.flatten(1))
    assert rows_seen == [7, 7, 7, 7, 2]  # a quarter of the free memory per chunk
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)


def test_prediction_that_cannot_fit_is_a_clear_error(monkeypatch) -> None:
    model, images = _tiny_fitted()
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 10)
    with pytest.raises(OutOfMemoryError, match=r"SVM prediction against .* support vectors"):
        model.predict(images)


@pytest.mark.parametrize(
    ("option", "value", "text"),
    [
        ("C", -1, "'C' parameter"),
        # the builder says what sklearn says; the run's option check names the type first
        ("max_iter", "abc", "'max_iter' parameter|max_iter is a whole number"),
    ],
)
def test_bad_estimator_options_fail_before_a_row(
    store: Store, learnable_data_dir: Path, option: str, value, text: str
) -> None:
    with pytest.raises(ConfigError, match=text):
        create_model("svm_rbf", **{option: value})
    # a wrong type is refused by the option check (make_config), a wrong value by the builder
    # (while the plan is checked): either way before any row exists
    with pytest.raises(ConfigError, match="Invalid model option"):
        config = make_config("svm_rbf", val_size=200, model_options={option: value})
        run_config(config, store, data_dir=learnable_data_dir, progress=False)
    assert store.list_runs() == []
