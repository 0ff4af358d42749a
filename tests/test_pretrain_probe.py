"""Pretrain-then-probe recipes end to end on a tiny learnable data set: rows land in a Store."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from mnistbench.config import parse_model_option
from mnistbench.data import prepare_device_data, seal_test
from mnistbench.errors import ConfigError
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, get_model_info
from mnistbench.recipes import STAGE_KINDS, RecipeContext, held_out_images, run_recipe
from mnistbench.store import Store
from synthetic import learnable_raw

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


def _run(store: Store, data_dir: Path, model: str, **overrides):
    settings = {"epochs": 2, "val_size": 100, "subset": 200, "batch_size": 64, **overrides}
    config = make_config(model, **settings)
    return run_config(config, store, data_dir=data_dir, progress=False, measure_energy=False)


def test_vae_pretrain_then_probe_rows_land(store: Store, learnable_data_dir: Path) -> None:
    record = _run(store, learnable_data_dir, "beta_vae").record
    assert record.status == "finished", record.error
    epochs = store.epochs(record.run_id)
    assert [e["epoch"] for e in epochs] == list(range(1, 13))  # 2 pretrain + 10 probe epochs
    assert [e["stage"] for e in epochs] == ["pretrain"] * 2 + ["probe"] * 10
    assert [e["stage_epoch"] for e in epochs[:3]] == [1, 2, 1]
    for pretext in epochs[:2]:  # losses but no accuracy for the label-free stage
        assert pretext["val_accuracy"] is None and pretext["test_accuracy"] is None
        assert pretext["train_loss"] > 0 and pretext["val_loss"] > 0
        assert {"reconstruction", "kl"} <= pretext["pretext"].keys()
    assert all(0 <= e["test_accuracy"] <= 1 for e in epochs[2:])
    m = record.metrics
    assert m["test_accuracy"] == epochs[-1]["test_accuracy"]
    assert m["probe"] == "linear" and m["probe_epochs"] == 10 and m["probe_features"] == 20
    # the headline time is the pretraining stage's median epoch, recomputed from its stored rows
    pretrain_times = [e["train_time_s"] for e in epochs[:2]]
    assert (
        m["time_per_epoch_s"] == m["pretrain_time_per_epoch_s"] == statistics.median(pretrain_times)
    )
    assert m["pretrain_total_s"] == pytest.approx(sum(pretrain_times))
    assert m["pretrain_epochs"] == 2 and m["feature_extraction_s"] > 0
    assert m["epochs_completed"] == 2 and m["stage_epochs_recorded"] == 12  # --epochs: pretrain
    artefacts = {a.name: a for a in store.artefacts(record.run_id)}
    assert {"vae_samples", "vae_reconstructions", "confusion_matrix"} <= artefacts.keys()
    assert artefacts["vae_samples"].kind == "png"
    assert artefacts["vae_samples"].content.startswith(PNG_MAGIC)


def test_beta_option_weights_the_stored_kl_term(store: Store, learnable_data_dir: Path) -> None:
    """End to end through the runner: each stored pretraining epoch's loss is its mean
    reconstruction term + beta * its mean KL term, with the beta of --model-option."""
    runs = {}
    for beta in (1.0, 4.0):
        options = {"beta": beta}
        record = _run(store, learnable_data_dir, "beta_vae", epochs=1, model_options=options).record
        assert record.status == "finished", record.error
        assert record.config["model_options"] == [["beta", beta]]
        runs[beta] = store.epochs(record.run_id)[0]
        terms = runs[beta]["pretext"]
        expected = terms["reconstruction"] + beta * terms["kl"]
        assert runs[beta]["train_loss"] == pytest.approx(expected, rel=1e-5)
    # the KL term is large enough that a beta of 1 instead of 4 would fail the check above
    assert 3 * runs[4.0]["pretext"]["kl"] > 10 * 1e-5 * runs[4.0]["train_loss"]
    assert runs[1.0]["train_loss"] != runs[4.0]["train_loss"]


@pytest.mark.parametrize(
    ("model", "options", "pictures", "probe"),
    [
        ("gan", {}, {"gan_samples"}, "linear"),
        ("unet", {}, {"unet_denoising"}, "linear"),
        ("simsiam_lgbm", {}, {"simsiam_views"}, "lightgbm"),
        ("simsiam_lgbm", {"probe": "linear"}, {"simsiam_views"}, "linear"),
    ],
)
def test_every_pretrained_family_runs(model: str, options: dict, pictures: set, probe: str) -> None:
    """The recipe itself (no runner: its latency figures at batch 1000 cost a U-Net minutes)."""
    info = get_model_info(model)
    config = make_config(model, epochs=1, batch_size=16, val_size=32, model_options=options)
    data = prepare_device_data(learnable_raw(64, 32), scaling=info.input_scaling, val_size=32)
    torch.manual_seed(0)
    epochs, artefacts = [], {}
    ctx = RecipeContext(
        model=create_model(model, **options),
        data=data,
        config=config,
        on_epoch=epochs.append,
        add_artefact=lambda name, kind, content: artefacts.update({name: (kind, content)}),
        progress=False,
        options=config.options(),
    )
    result = run_recipe(ctx, info.recipe)
    assert result.status == "finished"
    assert result.epochs == epochs and epochs[0].stage == "pretrain"
    assert epochs[-1].stage == "probe" and epochs[-1].test_accuracy is not None
    assert ctx.metrics["probe"] == probe
    if options.get("probe", "lightgbm") == "lightgbm" and model == "simsiam_lgbm":
        # study A's probe is LightGBM alone: its one score is the only test accuracy, so the
        # maximum over epochs is LightGBM's (no linear probe's epochs enter it)
        assert [e.stage for e in epochs[1:]] == ["probe"]
        assert [e.stage for e in epochs if e.test_accuracy is not None] == ["probe"]
        assert "linear_probe_test_accuracy" not in ctx.metrics
    assert result.last_test is not None and len(result.last_test.predictions) == 32
    assert pictures <= artefacts.keys()
    assert all(content.startswith(PNG_MAGIC) for _, content in artefacts.values())


def test_stages_are_data() -> None:
    vae = get_model_info("beta_vae").recipe.stages
    assert [
        (s.name, s.kind, getattr(s.params.get("objective"), "name", None), s.epochs) for s in vae
    ] == [("pretrain", "pretext", "vae", None), ("probe", "linear_probe", None, 10)]
    assert vae[1].params == {"grad_clip": None}  # study A's probes do not clip
    assert [STAGE_KINDS[s.kind].labelled for s in vae] == [False, True]
    recipe = get_model_info("simsiam_lgbm").recipe
    published, linear = recipe.stages_for({}), recipe.stages_for({"probe": "linear"})
    assert [s.kind for s in published[1:]] == ["lightgbm_probe"]  # its one score is the figure
    assert [s.kind for s in linear[1:]] == ["linear_probe"]
    assert [s.name for s in published] == ["pretrain", "probe"]
    assert [s.name for s in linear] == ["pretrain", "probe"]
    assert {"pretext", "linear_probe", "lightgbm_probe"} <= STAGE_KINDS.keys()


def test_beta_is_a_model_option() -> None:
    key, value = parse_model_option("beta=4.0")
    config = make_config("beta_vae", model_options={key: value})
    assert config.options() == {"beta": 4.0}
    assert config.config_hash() != make_config("beta_vae").config_hash()
    # a stage option of its recipe, not an argument of its entrypoint
    assert get_model_info("beta_vae").split_options(config.options()) == ({}, {"beta": 4.0})


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("beta_vae", {"beta": -1.0}, "KL weight"),
        ("simsiam_lgbm", {"probe": "svm"}, "lightgbm"),
        ("simsiam_lgbm", {"lgbm_train_size": -5}, "whole number"),
    ],
)
def test_bad_options_are_config_errors(model: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model(model, **options)
    with pytest.raises(ConfigError, match=message):
        make_config(model, model_options=options)


@pytest.mark.parametrize("val_size", [100, 0])
def test_pictures_come_from_held_out_images_never_the_test_split(val_size: int) -> None:
    # a sealed test split raises on any read, so this fails if the pictures touch it
    data = seal_test(prepare_device_data(learnable_raw(), val_size=val_size), "a picture test")
    images, labels = held_out_images(data, 64)
    source = data.val if val_size else data.train
    assert torch.equal(images, source.images[:64]) and torch.equal(labels, source.labels[:64])
