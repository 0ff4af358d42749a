"""Run configuration: recipe defaults, overrides, validation messages and the stable hash."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mnistbench.config import RunConfig, make_config
from mnistbench.errors import ConfigError


def test_recipe_defaults_then_overrides() -> None:
    config = make_config("cnn")
    assert (config.batch_size, config.epochs, config.optimizer, config.grad_clip) == (
        64,
        3,
        "adam",
        1.0,
    )
    assert make_config("cnn", epochs=7, batch_size=None).epochs == 7
    assert make_config("cnn", batch_size=None).batch_size == 64  # None means "not given"


def test_hash_is_stable_and_sensitive() -> None:
    a, b = make_config("mlp"), make_config("mlp")
    assert a.config_hash() == b.config_hash()
    assert len(a.config_hash()) == 16
    assert make_config("mlp", seed=1).config_hash() != a.config_hash()
    assert make_config("mlp", device="cpu").config_hash() == a.config_hash()
    # every field takes part in the hash
    for field in dataclasses.fields(RunConfig):
        if field.name in ("model", "device"):
            continue
        value = getattr(a, field.name)
        changed = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v / 2}
        new = changed.get(type(value), lambda v: v)(value)
        if new != value:
            assert dataclasses.replace(a, **{field.name: new}).config_hash() != a.config_hash()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": -0.1}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"optimizer": "lion"}, "--optimizer"),
        ({"scheduler": "warm"}, "--scheduler"),
        ({"dataset": "cifar10"}, "cifar10"),
        ({"precision": "fp16"}, "CUDA"),
        ({"target_accuracy": 99.0}, "0.99"),
        ({"early_stopping_patience": 2, "val_size": 0}, "validation"),
        ({"warmup": 3}, "Unknown run setting"),
    ],
)
def test_invalid_values_name_the_problem(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config("mlp", **overrides)


def test_unknown_model() -> None:
    with pytest.raises(ConfigError, match=r"Unknown model .mpl.*mlp"):
        make_config("mpl")


def test_model_options_are_sorted_hashed_and_checked() -> None:
    from mnistbench.config import parse_model_option

    assert parse_model_option("beta=4.0") == ("beta", 4.0)
    assert parse_model_option("in_channels=1") == ("in_channels", 1)
    assert parse_model_option("flag=true") == ("flag", True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_model_option("beta")
    with pytest.raises(ConfigError, match="has no option"):
        make_config("mlp", model_options={"beta": 4.0})


def test_config_round_trips_through_its_dict() -> None:
    config = make_config("mlp", augment="affine", image_size=32)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_augment_and_image_size_are_validated() -> None:
    with pytest.raises(ConfigError, match="--augment 'spin'"):
        make_config("mlp", augment="spin")
    with pytest.raises(ConfigError, match="--image-size 4"):
        make_config("mlp", image_size=4)
