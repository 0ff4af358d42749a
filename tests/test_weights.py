"""Kept weights: written beside the store under their SHA-256, reloaded without unpickling to
exactly the run's recorded test accuracy, refused when changed; and `mnistbench evaluate`."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import mnistbench
from mnistbench.cli import main
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.evaluate import clean_accuracy, load_model, official_test_images
from mnistbench.models import create_model, list_models
from mnistbench.models.weights import restore_model, serialize_model
from mnistbench.store import Store, check_store
from mnistbench.store.weights import WeightsError, WeightsRef, sha256_of, weights_path


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


def trained(store: Store, data_dir: Path, model: str = "mlp", **overrides):
    config = make_config(model, val_size=200, **overrides)
    return run_config(config, store, data_dir=data_dir, progress=False).record


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any unpickling (pickle, torch.load, numpy's object arrays) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("loading kept weights unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)


@pytest.mark.parametrize("model", ["mlp", "svm_rbf"])
def test_reloaded_model_scores_exactly_the_recorded_accuracy(
    store: Store, learnable_data_dir: Path, model: str, no_unpickling
) -> None:
    # few training images, so the accuracy is not 100% and the check has teeth (subset also
    # cuts the test set to its first images, as the run scored)
    record = trained(
        store,
        learnable_data_dir,
        model,
        **({"epochs": 1, "subset": 60} if model == "mlp" else {"subset": 12}),
    )
    m = record.metrics
    ref = WeightsRef.of_metrics(m)
    assert ref is not None and ref.format == {"mlp": "safetensors", "svm_rbf": "svc-npz"}[model]
    path = weights_path(store.path, ref)
    assert path.parent == store.path.parent / "weights"
    assert path.stem == sha256_of(path.read_bytes()) == m["weights_sha256"]
    assert path.stat().st_size == m["weights_bytes"]
    loaded = load_model(record.run_id, store)
    images, labels = official_test_images(loaded.config, learnable_data_dir)
    assert clean_accuracy(loaded, images, labels) == m["test_accuracy"]
    assert 0.2 < m["test_accuracy"] < 1.0
    # the package-level face takes a store path too
    again = mnistbench.load_model(record.run_id, store.path)
    assert clean_accuracy(again, images, labels) == m["test_accuracy"]


@pytest.mark.parametrize(
    ("model", "scorer"),
    [("beta_vae", "probe_head"), ("dbn", "logits"), ("simsiam_lgbm", "lightgbm")],
)
def test_a_pretrained_model_reloads_to_its_recorded_accuracy(
    store: Store, learnable_data_dir: Path, model: str, scorer: str
) -> None:
    # beta_vae: pretrained, then a linear probe on frozen features, so the reload scores through
    # the probe head on the features as the probe stage did; dbn: its recipe ends in fine-tuning
    # the whole net, so the reload scores the whole model; simsiam_lgbm: LightGBM's text model
    # on the encoder's features
    record = trained(store, learnable_data_dir, model, epochs=1, subset=60)
    loaded = load_model(record.run_id, store)
    assert loaded.scorer == scorer
    images, labels = official_test_images(loaded.config, learnable_data_dir)
    assert clean_accuracy(loaded, images, labels) == record.metrics["test_accuracy"] < 1.0


def test_a_changed_weights_file_is_refused_by_its_hash(
    store: Store, learnable_data_dir: Path, capsys
) -> None:
    record = trained(store, learnable_data_dir, epochs=1)
    path = weights_path(store.path, WeightsRef.of_metrics(record.metrics))
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(content))
    with pytest.raises(WeightsError, match="has changed since it was written"):
        load_model(record.run_id, store)
    found = check_store(store.path)
    assert not found.ok and len(found.weights_changed) == 1
    assert any("CHANGED" in line for line in found.lines())
    code = main(["evaluate", str(record.run_id), "--store", str(store.path)])
    assert code == 2 and "SHA-256" in capsys.readouterr().err


def test_store_check_counts_verified_weights(store: Store, learnable_data_dir: Path) -> None:
    trained(store, learnable_data_dir, epochs=1)
    found = check_store(store.path)
    assert found.ok and found.weights_verified == 1 and not found.weights_missing


def test_no_weights_keeps_none(tmp_path: Path, learnable_data_dir: Path) -> None:
    with Store(tmp_path / "r.sqlite", keep_weights=False) as store:
        record = trained(store, learnable_data_dir, epochs=1)
        assert "weights_sha256" not in record.metrics
        assert not (tmp_path / "weights").exists()
        with pytest.raises(WeightsError, match="kept no weights"):
            load_model(record.run_id, store)


def test_export_and_merge_carry_weights_only_when_asked(
    store: Store, learnable_data_dir: Path, tmp_path: Path
) -> None:
    record = trained(store, learnable_data_dir, epochs=1)
    sha = record.metrics["weights_sha256"]
    out = tmp_path / "out" / "runs.jsonl"
    assert main(["export", "--store", str(store.path), "--format", "jsonl", "--out", str(out)]) == 0
    assert not (out.parent / "weights").exists()  # the record names them, no file travels
    assert sha in out.read_text()
    assert main(["export", "--store", str(store.path), "--format", "jsonl", "--out", str(out),
                 "--with-weights"]) == 0  # fmt: skip
    assert [p.stem for p in (out.parent / "weights").iterdir()] == [sha]
    plain, carried = tmp_path / "plain" / "r.sqlite", tmp_path / "carried" / "r.sqlite"
    assert main(["merge", str(out), "--store", str(plain)]) == 0
    assert not (plain.parent / "weights").exists()
    assert main(["merge", str(out), "--store", str(carried), "--with-weights"]) == 0
    with Store(carried) as merged:
        (run,) = merged.list_runs()
        loaded = load_model(run.run_id, merged)
        images, labels = official_test_images(loaded.config, learnable_data_dir)
        assert clean_accuracy(loaded, images, labels) == record.metrics["test_accuracy"]


def test_merge_refuses_a_changed_file_before_copying_runs(
    store: Store, learnable_data_dir: Path, tmp_path: Path, capsys
) -> None:
    record = trained(store, learnable_data_dir, epochs=1)
    path = weights_path(store.path, WeightsRef.of_metrics(record.metrics))
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    target = tmp_path / "t" / "r.sqlite"
    assert main(["merge", str(store.path), "--store", str(target), "--with-weights"]) == 2
    assert "changed since it was written" in capsys.readouterr().err
    with Store(target) as merged:
        assert merged.list_runs() == []


def test_svc_arrays_load_without_pickle() -> None:
    model = create_model("svm_rbf")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(60, 1, 28, 28, generator=generator)
    labels = torch.arange(60) % 3
    model.fit_estimator(images, labels)
    weights = serialize_model(model)
    fresh = create_model("svm_rbf")
    restore_model(fresh, weights.format, weights.content)
    assert torch.equal(fresh.predict(images), model.predict(images))
    # an .npz holding an object array (which needs pickle) is refused, not unpickled
    buffer = io.BytesIO()
    np.savez(buffer, support_vectors=np.array([{"x": 1}], dtype=object))
    with pytest.raises(Exception, match="do not load"):
        restore_model(create_model("svm_rbf"), "svc-npz", buffer.getvalue())


def test_lightgbm_probe_round_trips_through_its_text_model() -> None:
    from mnistbench.data import Split
    from mnistbench.recipes.features import fit_lightgbm_probe, lightgbm_eval

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(200, 8, generator=generator)
    labels = (features[:, 0] > 0).long() + 2 * (features[:, 1] > 0).long()
    probe = fit_lightgbm_probe(Split(features, labels), threads=1, n_estimators=5)
    model = torch.nn.Linear(8, 4)
    weights = serialize_model(model, probe.booster)
    assert weights.format == "safetensors-lightgbm-text"
    restored = restore_model(torch.nn.Linear(8, 4), weights.format, weights.content)
    split = Split(features, labels)
    assert torch.equal(lightgbm_eval(restored, split).predictions, probe.score(split).predictions)
    np.testing.assert_array_equal(
        restored.predict_proba(features.numpy()), probe.booster.predict_proba(features.numpy())
    )


@pytest.mark.parametrize(
    "name", [i.name for i in list_models() if "sklearn" not in i.tags and i.family != "outside"]
)
def test_every_torch_model_round_trips_through_safetensors(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    weights = serialize_model(model)
    torch.manual_seed(1)  # other initial weights, which the file must replace
    fresh = create_model(name)
    restore_model(fresh, weights.format, weights.content)
    before, after = model.state_dict(), fresh.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_of_another_architecture_are_refused() -> None:
    weights = serialize_model(create_model("mlp"))
    with pytest.raises(Exception, match="do not fit"):
        restore_model(create_model("cnn"), weights.format, weights.content)


def test_evaluate_stores_its_results_with_the_run(
    store: Store, learnable_data_dir: Path, capsys, monkeypatch
) -> None:
    record = trained(store, learnable_data_dir, epochs=1)
    argv = ["evaluate", str(record.run_id), "--store", str(store.path), "--json",
            "--what", "calibration,adversarial", "--adversarial-images", "20",
            "--data-dir", str(learnable_data_dir)]  # fmt: skip
    assert main(argv) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["clean_accuracy"] == record.metrics["test_accuracy"]
    adversarial = result["adversarial"]
    assert adversarial["images"] == 20 and set(adversarial["pgd"]) == {"0.05", "0.1", "0.2", "0.3"}
    stored = {a.name: a for a in store.artefacts(record.run_id) if a.kind == "evaluation"}
    assert set(stored) == {"evaluation_calibration", "evaluation_adversarial"}
    assert json.loads(stored["evaluation_calibration"].content)["ece"] == pytest.approx(
        result["calibration"]["ece"]
    )
    assert main(["evaluate", str(record.run_id), "--store", str(store.path), "--what", "x"]) == 2


class StandInCorruptions:
    """data/corruptions.py's interface (branch corruptions) with two corruptions whose effect
    is known: "identity" leaves the images as they are, "blank" makes them all black."""

    CORRUPTION_NAMES = ("identity", "blank")

    @staticmethod
    def corrupt(images: torch.Tensor, name: str, seed: int) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.ndim == 3 and seed == 0
        return images.clone() if name == "identity" else torch.zeros_like(images)

    @classmethod
    def corrupted_test_set(cls, images, name: str, seed: int, cache_dir: Path) -> torch.Tensor:
        return cls.corrupt(images, name, seed)

    @staticmethod
    def images_sha256(images: torch.Tensor) -> str:
        return sha256_of(images.numpy().tobytes())


def test_evaluate_corruptions_scores_each_corrupted_test_set(
    store: Store, learnable_data_dir: Path, monkeypatch
) -> None:
    import mnistbench.data
    from mnistbench.experiments.evaluate import evaluate_run

    monkeypatch.setattr(mnistbench.data, "corruptions", StandInCorruptions, raising=False)
    record = trained(store, learnable_data_dir, epochs=1, subset=60)
    result = evaluate_run(record.run_id, store, ["corruptions"], data_dir=learnable_data_dir)
    corruptions = result["corruptions"]
    loaded = load_model(record.run_id, store)
    _, labels = official_test_images(loaded.config, learnable_data_dir)
    # identity: the clean accuracy; blank: the share of labels equal to the blank image's class
    blank_class = int(loaded.predict(torch.zeros(1, 1, 28, 28)))
    assert corruptions["accuracy"]["identity"] == record.metrics["test_accuracy"]
    assert corruptions["accuracy"]["blank"] == float((labels == blank_class).double().mean())
    assert corruptions["worst"] == "blank"
    assert corruptions["mean_accuracy"] == pytest.approx(
        (record.metrics["test_accuracy"] + corruptions["accuracy"]["blank"]) / 2
    )


def test_evaluate_tells_its_progress_step_by_step(
    store: Store, learnable_data_dir: Path, monkeypatch, capsys
) -> None:
    import mnistbench.data
    from mnistbench.cli.evaluate import progress_printer
    from mnistbench.experiments.evaluate import evaluate_run

    monkeypatch.setattr(mnistbench.data, "corruptions", StandInCorruptions, raising=False)
    record = trained(store, learnable_data_dir, epochs=1, subset=60)
    heard: list[tuple[str, int, int]] = []
    evaluate_run(
        record.run_id, store, ["corruptions", "calibration"], data_dir=learnable_data_dir,
        progress=lambda *step: heard.append(step),
    )  # fmt: skip
    # one call per stand-in corruption (identity, blank), then one for calibration
    assert heard == [("corruptions", 1, 2), ("corruptions", 2, 2), ("calibration", 1, 1)]
    capsys.readouterr()
    for live, quiet in ((False, False), (True, False), (False, True)):
        show = progress_printer("[1/1] run 7", live, quiet=quiet)
        for step in heard:
            show(*step)
    err = capsys.readouterr().err
    # in a log: a line per finished evaluation; on a terminal: every step, rewritten in place;
    # quiet: nothing
    logged = err.splitlines()[:2]
    assert logged[0].startswith("[1/1] run 7: corruptions 2/2, ")
    assert logged[1].startswith("[1/1] run 7: calibration 1/1, ")
    assert err.count("\r[1/1] run 7: ") == 3 and err.count("\n") == 4  # 2 logged + 2 live
    assert capsys.readouterr().out == ""  # stdout stays the results


def test_evaluate_keeps_each_images_outcome_and_compare_pairs_them(
    store: Store, learnable_data_dir: Path, monkeypatch, capsys
) -> None:
    """Issue 28's paired test on corrupted images: evaluate keeps which images each model got
    right under each corruption, and `compare --on corrupted` pairs two models image by image
    (the stand-in's rows: identity = the clean outcomes, blank = label equals the blank's class)."""
    import mnistbench.data
    from mnistbench.artefacts import CORRUPTED_OUTCOMES, read_corrupted_outcomes, read_predictions

    monkeypatch.setattr(mnistbench.data, "corruptions", StandInCorruptions, raising=False)
    a = trained(store, learnable_data_dir, epochs=1, subset=60, lr=0.01)
    b = trained(store, learnable_data_dir, epochs=1, subset=60, lr=0.0001)
    path = str(store.path)
    assert (
        main(["compare", str(a.run_id), str(b.run_id), "--on", "corrupted", "--store", path]) == 2
    )
    err = capsys.readouterr().err
    assert f"mnistbench evaluate {a.run_id} --what corruptions" in err and "Traceback" not in err
    assert main(["evaluate", str(a.run_id), str(b.run_id), "--what", "corruptions",
                 "--store", path, "--data-dir", str(learnable_data_dir)]) == 0  # fmt: skip
    capsys.readouterr()
    outcomes = {}
    for record in (a, b):
        artefacts = {x.name: x for x in store.artefacts(record.run_id)}
        kept = read_corrupted_outcomes(artefacts[CORRUPTED_OUTCOMES].content)
        clean = read_predictions(artefacts["predictions_final"].content)
        blank_class = int(load_model(record.run_id, store).predict(torch.zeros(1, 1, 28, 28)))
        assert kept.names == ("identity", "blank") and kept.n == 60
        assert np.array_equal(kept.correct[0], clean.correct)
        assert np.array_equal(kept.correct[1], clean.labels == blank_class)
        outcomes[record.run_id] = kept.correct
    ra, rb = outcomes[a.run_id], outcomes[b.run_id]
    assert (ra != rb).any()  # the two models disagree somewhere, so the test can fail

    argv = ["compare", str(a.run_id), str(b.run_id), "--on", "corrupted", "--json", "--store", path]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["on"] == "corrupted" and result["conditions"] == 2 and result["n_test"] == 60
    assert result["difference"] == pytest.approx(ra.mean() - rb.mean())  # by hand
    assert result["a_only_correct"] == np.sum(ra & ~rb)  # image-corruption pairs
    assert result["b_only_correct"] == np.sum(~ra & rb)
    assert result["a"]["accuracy"] == pytest.approx(ra.mean())
    assert "bootstrap" in result["method"]  # McNemar assumes independent images: not used
    low, high = result["difference_ci95"]
    assert low <= result["difference"] <= high

    # one corruption alone: exact McNemar on its 60 images, as for the clean test set
    argv[4] = "blank"
    assert main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["difference"] == pytest.approx(ra[1].mean() - rb[1].mean())
    assert one["method"].startswith("exact McNemar")
    argv[4] = "rotate"
    assert main(argv) == 2
    assert "not on 'rotate'" in capsys.readouterr().err
