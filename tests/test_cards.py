"""Model cards (what a run's model was, how it was trained and measured) and the architecture
fingerprint that decides "already recorded"."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from torch import nn

from mnistbench.cards import (
    architecture_fingerprint,
    build_model_card,
    fingerprint_for,
    reconstruct_card,
)
from mnistbench.config import RunConfig
from mnistbench.engine.device import place_model
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, resolve_model
from mnistbench.studies import published_figures

CARD_KEYS = {
    "card_version", "model", "family", "architecture", "source", "fingerprint", "input_shape",
    "input_scaling", "tags", "recipe", "setting_roles", "published", "studies", "measurement",
}  # fmt: skip
FIXTURE = Path(__file__).parent / "fixtures" / "store_v1_5ae60b7.sql"


def _card(name: str, **overrides) -> dict:
    config = make_config(name, **overrides)
    info = resolve_model(name)
    model = create_model(name, **config.options())
    return build_model_card(info, config, model)


def test_card_of_a_registered_model_follows_the_contract() -> None:
    card = _card("mlp")
    assert set(card) == CARD_KEYS and json.loads(json.dumps(card)) == card
    assert (card["model"], card["family"], card["card_version"]) == ("mlp", "mlp", 1)
    assert card["source"] == {"kind": "registered", "spec": None, "sha256": None,
                              "distribution": None}  # fmt: skip
    recipe = card["recipe"]
    assert recipe["of"] == "mlp" and recipe["headline_stage"] == "train"
    assert recipe["stages"] == [{"name": "train", "kind": "cross_entropy", "epochs": None,
                                 "options": {}}]  # fmt: skip
    resolved = json.loads(json.dumps(make_config("mlp").to_dict()))
    for field in ("model", "device", "seed", "recipe_of"):
        resolved.pop(field)
    assert recipe["defaults"] == resolved  # what make_config gives with nothing overridden
    assert set(card["setting_roles"]) == {f.name for f in fields(RunConfig)}
    assert card["setting_roles"]["epochs"] == "scale" and card["setting_roles"]["lr"] == "training"
    figures = published_figures("mlp")
    assert len(card["published"]) == len(figures) > 0
    assert {f["dataset"] for f in card["published"]} == {f.dataset for f in figures}
    assert set(card["studies"]) == {f.study for f in figures}
    assert set(card["studies"]["A"]) == {"title", "doc", "protocol"}
    assert card["measurement"]["version"] >= 1 and card["measurement"]["methods"]
    assert card["input_shape"] == [1, 28, 28]


def test_card_records_the_stages_this_run_ran_with_their_options() -> None:
    vae = _card("beta_vae", model_options={"beta": 4.0})["recipe"]
    assert vae["stages"][0] == {"name": "pretrain", "kind": "pretext", "epochs": None,
                                "options": {"objective": "vae", "beta": 4.0}}  # fmt: skip
    assert vae["stages"][1]["epochs"] == 10 and vae["headline_stage"] == "pretrain"
    published = _card("simsiam_lgbm")["recipe"]["stages"]
    assert [s["name"] for s in published] == ["pretrain", "linear_probe", "probe"]
    assert published[-1]["options"] == {"lgbm_train_size": 0}
    linear = _card("simsiam_lgbm", model_options={"probe": "linear"})["recipe"]["stages"]
    assert [(s["name"], s["kind"]) for s in linear] == [("pretrain", "pretext"),
                                                       ("probe", "linear_probe")]  # fmt: skip
    assert _card("dbn")["recipe"]["headline_stage"] == "finetune"
    snn = _card("snn", model_options={"time_steps": 2})["recipe"]
    assert [s["kind"] for s in snn["stages"]] == ["cross_entropy", "spike_activity"]
    assert snn["headline_stage"] == "train"
    assert _card("resnet18")["input_shape"] == [1, 64, 64]  # study C's recipe size


def test_fingerprint_is_the_architecture_not_the_weights() -> None:
    def fingerprint(width: int, seed: int = 0, dtype=torch.float32) -> str:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, width, 3), nn.BatchNorm2d(width)).to(dtype)
        return architecture_fingerprint(model)

    base = fingerprint(4)
    assert len(base) == 16 and int(base, 16) >= 0
    assert fingerprint(4, seed=1) == base  # other weights, same model
    assert fingerprint(5) != base  # a changed layer width
    assert fingerprint(4, dtype=torch.float64) != base
    assert architecture_fingerprint(nn.Linear(2, 3), "ab" * 32) != architecture_fingerprint(
        nn.Linear(2, 3)
    )  # an outside model's source is part of it
    model = create_model("cnn")
    assert architecture_fingerprint(place_model(model, "cpu")) == architecture_fingerprint(model)


@pytest.mark.parametrize("name", ["mlp", "snn", "beta_vae", "svm_rbf", "resnet18"])
def test_fingerprint_before_training_equals_the_cards(name: str) -> None:
    """What the store's "already recorded" check compares (computed without building the
    weights) is what the run's card will say."""
    assert fingerprint_for(make_config(name)) == _card(name)["fingerprint"]


def test_reconstructed_cards_of_a_v1_store() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(FIXTURE.read_text())
    configs = [json.loads(row[0]) for row in db.execute("SELECT config_json FROM runs")]
    assert len(configs) >= 9
    for config in configs:
        card = reconstruct_card(config)
        assert set(card) == CARD_KEYS and json.loads(json.dumps(card)) == card
        assert card["source"]["kind"] == "reconstructed" and card["fingerprint"] is None
        assert card["measurement"]["version"] == 1 and card["model"] == config["model"]
        assert card["family"] is not None and card["recipe"]["of"] == config["model"]
    dbn = reconstruct_card(next(c for c in configs if c["model"] == "dbn"))
    assert [s["kind"] for s in dbn["recipe"]["stages"]][-1] == "cross_entropy"


def test_reconstructing_never_raises_on_what_the_code_no_longer_knows() -> None:
    gone = reconstruct_card({"model": "model_removed_long_ago", "dataset": "mnist"})
    assert gone["family"] is None and gone["recipe"]["stages"] == []
    stale = make_config("simsiam_lgbm").to_dict()
    stale["model_options"] = [["probe", "svm"]]  # no longer a valid value
    stale["field_added_by_a_future_version"] = 1
    card = reconstruct_card(stale)
    assert [s["name"] for s in card["recipe"]["stages"]] == ["pretrain", "linear_probe", "probe"]
