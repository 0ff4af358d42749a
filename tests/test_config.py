"""Run configuration: one declaration per setting, recipe defaults, overrides, validation
messages and the stable hash (analysis settings left out, v1 hashes kept)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from mnistbench.config import ROLES, RunConfig, field_roles, flag_of, parse_model_option, settings
from mnistbench.errors import ConfigError
from mnistbench.experiments.configure import dry_run, make_config

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1_5ae60b7.sql"


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


def test_every_setting_declares_help_flag_check_and_role() -> None:
    flags = set()
    for f in settings():
        assert f.metadata["help"] and f.metadata["role"] in ROLES, f.name
        flags.add(flag_of(f.name))
    assert len(flags) == len(settings())  # one flag each, none shared
    assert {"--target", "--patience", "--model-option", "--step-size", "--gamma"} <= flags
    roles = field_roles()
    assert roles.keys() == {f.name for f in settings()}
    assert roles["target_accuracy"] == "analysis"
    assert roles["recipe_of"] == "training"  # it picks the stages, not only the defaults
    assert {roles[k] for k in ("epochs", "subset", "val_size")} == {"scale"}
    assert roles["device"] == "environment" and roles["lr"] == roles["seed"] == "training"


def _changed(f: dataclasses.Field, value: object) -> object:
    """Another valid value of the same kind, so each field's effect on the hash is tried."""
    if f.metadata["choices"]:
        return next(c for c in f.metadata["choices"] if c != value)
    if f.name == "model_options":
        return (("in_channels", 1),)
    if value is None:
        return {"grad_clip": 1.0, "recipe_of": "cnn"}.get(f.name, 3)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1 if isinstance(value, int) else value / 2 + 0.25
    return value + "x"


def test_hash_covers_what_is_trained_and_leaves_out_analysis() -> None:
    a, b = make_config("mlp"), make_config("mlp")
    assert a.config_hash() == b.config_hash() and len(a.config_hash()) == 16
    for f in settings():
        value = getattr(a, f.name)
        new = _changed(f, value)
        assert new != value, f.name
        other = dataclasses.replace(a, **{f.name: new}).config_hash()
        if f.metadata["role"] == "analysis":
            assert other == a.config_hash(), f"{f.name} must not retrain"
        else:
            assert other != a.config_hash(), f"{f.name} must be in the hash"


def test_a_v1_store_keeps_its_hashes() -> None:
    # configs recorded by commit 5ae60b7 still hash to what that version stored, so resuming
    # and reuse keep working across the change that took analysis settings out of the hash
    connection = sqlite3.connect(":memory:")
    connection.executescript(FIXTURE.read_text())
    rows = connection.execute("SELECT config_hash, config_json FROM runs").fetchall()
    assert len(rows) == 9
    for stored, config_json in rows:
        assert RunConfig.from_dict(json.loads(config_json)).config_hash() == stored


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
        ({"target_accuracy": 99.0}, "0.99"),
        ({"early_stopping_patience": 2, "val_size": 0}, "validation"),
        ({"warmup": 3}, "Unknown run setting"),
        ({"seed": 2**70}, r"--seed .*2147483647"),
        ({"seed": -1}, "--seed"),
        ({"min_delta": -0.5}, r"--min-delta -0.5: must be in \[0, 1\)"),
        ({"step_size": 0}, "--step-size"),
        ({"gamma": 1.5}, r"--gamma 1.5: must be in \(0, 1\]"),
        ({"test_policy": "never"}, "--test-policy"),
        ({"weight_decay": float("inf")}, "--weight-decay"),
    ],
)
def test_invalid_values_name_the_problem(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config("mlp", **overrides)


def test_fp16_runs_on_cpu_and_cuda_but_not_mps() -> None:
    # float16 autocast comes with a gradient scaler (objectives/base.py), on CPU and CUDA alike
    assert make_config("mlp", precision="fp16").precision == "fp16"
    with pytest.raises(ConfigError, match="fp16' on mps"):
        make_config("mlp", precision="fp16", device="mps")


def test_bad_settings_fail_before_the_model_is_looked_up() -> None:
    with pytest.raises(ConfigError, match="--seed"):
        make_config("no_such_model", seed=2**70)
    with pytest.raises(ConfigError, match="Unknown model"):
        make_config("no_such_model", seed=1)


def test_unknown_model() -> None:
    with pytest.raises(ConfigError, match=r"Unknown model .mpl.*mlp"):
        make_config("mpl")


def test_recipe_of_borrows_another_models_recipe() -> None:
    borrowed = make_config("mlp", recipe_of="cnn")
    assert borrowed.model == "mlp" and borrowed.recipe_of == "cnn"
    assert (borrowed.batch_size, borrowed.epochs, borrowed.grad_clip) == (64, 3, 1.0)
    assert make_config("mlp", recipe_of="cnn", epochs=1).epochs == 1  # overrides still win
    # the recipe brings its stages too, not only defaults: it is part of what is trained
    same = make_config("mlp", batch_size=64, epochs=3, grad_clip=1.0)
    assert borrowed.config_hash() != same.config_hash()
    with pytest.raises(ConfigError, match="Unknown model 'cnnn'"):
        make_config("mlp", recipe_of="cnnn")


def test_dry_run_is_two_steps() -> None:
    small = dry_run(make_config("cnn"))
    assert (small.epochs, small.subset, small.val_size) == (1, 2 * 64, 64)


def test_model_options_are_sorted_hashed_and_checked() -> None:
    assert parse_model_option("beta=4.0") == ("beta", 4.0)
    assert parse_model_option("in_channels=1") == ("in_channels", 1)
    assert parse_model_option("flag=true") == ("flag", True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_model_option("beta")
    with pytest.raises(ConfigError, match="has no option"):
        make_config("mlp", model_options={"beta": 4.0})


def test_config_round_trips_through_its_dict() -> None:
    config = make_config("mlp", augment="affine", image_size=32, recipe_of="cnn")
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_augment_and_image_size_are_validated() -> None:
    with pytest.raises(ConfigError, match="--augment 'spin'"):
        make_config("mlp", augment="spin")
    with pytest.raises(ConfigError, match="--image-size 4"):
        make_config("mlp", image_size=4)


def test_grad_clip_zero_turns_a_recipes_clipping_off() -> None:
    """cnn's recipe clips at 1.0; 0 must turn that off (stored as unset, so it hashes and trains
    as no clipping: clip_grad_norm_ at 0 would zero every gradient), from flags and from plans."""
    from mnistbench.experiments.configure import with_overrides

    recipe = make_config("cnn")
    assert recipe.grad_clip == 1.0
    off = make_config("cnn", grad_clip=0)
    assert off.grad_clip is None and off.config_hash() != recipe.config_hash()
    assert with_overrides(recipe, grad_clip=0.0) == off
    with pytest.raises(ConfigError, match=r"--grad-clip -1: must be in \[0, inf\)"):
        make_config("cnn", grad_clip=-1)
