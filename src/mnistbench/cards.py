"""Model cards: what a run's model was, how it was trained and measured, stored with the run.

A report reads a run's card, never the code as it is today, so a store merged from another
machine or an older version renders as it was recorded. `build_model_card` writes the card of
a run about to start; `reconstruct_card` builds one from the live registry for runs recorded
before cards existed (store schema v1).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from mnistbench.config import RunConfig, normalize_options
from mnistbench.engine.device import default_precision
from mnistbench.engine.measure import MEASUREMENT_VERSION, measurement_methods
from mnistbench.errors import ConfigError, MnistbenchError
from mnistbench.models import (
    ModelInfo,
    build_model,
    check_model_output,
    registered_model,
    resolve_model,
)
from mnistbench.recipes import resolve_options
from mnistbench.recipes.kinds import stage_options
from mnistbench.studies import published_figures, studies_of

CARD_VERSION = 1
# The fields a recipe's "defaults" leave out: they say where and with which seed a run ran.
_NOT_RECIPE = ("model", "device", "seed", "recipe_of")

# How the figures of runs recorded before cards existed (commit 5ae60b7, store schema v1)
# were measured, so a report can label them.
_V1_METHODS = {
    "flops_per_sample": "torch.utils.flop_counter on one forward pass, batch setup included "
    "(the spiking CNN's per-forward lookup table counted as per-image work)",
    "model_size_bytes": "every parameter and buffer, non-persistent buffers included",
    "params": "trainable parameters; 0 for SVMs (counted before fitting)",
    "peak_memory_mb": "CPU: the process's lifetime peak RSS (earlier runs of the same process "
    "included); CUDA: torch.cuda.max_memory_allocated",
    "energy_kwh": "CodeCarbon over training only (after data loading, before latency); on a "
    "GPU the whole device; where no power counter exists, a TDP model of power x time",
}


def architecture_fingerprint(model: nn.Module, source_sha256: str | None = None) -> str:
    """16 hex digits of sha256 over the sorted (state_dict key, shape, dtype) of `model`, and
    the sha256 of its source file when given (an outside model's code is part of what it is)."""
    entries = sorted(
        (key, list(tensor.shape), str(tensor.dtype)) for key, tensor in model.state_dict().items()
    )
    payload: list[Any] = [entries] if source_sha256 is None else [entries, source_sha256]
    canonical = json.dumps(payload, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def fingerprint_for(config: RunConfig, info: ModelInfo | None = None) -> str:
    """The fingerprint `config`'s model will have, without training or allocating it (built on
    the meta device; on the CPU when its builder reads tensor values). This is what the store's
    "already recorded" check compares, so a changed model trains again."""
    from mnistbench.data import get_dataset_spec

    info = info or resolve_model(config.model, config.recipe_of)
    num_classes = get_dataset_spec(config.dataset).num_classes
    with torch.random.fork_rng(devices=[]):  # building draws initial weights
        try:
            with torch.device("meta"):
                model = build_model(info, num_classes, config.options())
            lazy = any(
                isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()
            )
        except MnistbenchError:
            raise
        except Exception:  # a builder that reads tensor values (snntorch) cannot run on meta
            lazy = True
        if lazy:  # lazy modules take their shapes from a first forward pass
            model = build_model(info, num_classes, config.options())
            shape = (info.input_shape[0], config.image_size, config.image_size)
            check_model_output(model, config.model, num_classes, shape, "cpu")
    return architecture_fingerprint(model, info.source.sha256)


def setting_roles() -> dict[str, str]:
    """Each RunConfig field's role: training, scale, analysis or environment."""
    try:
        from mnistbench.config import field_roles  # type: ignore[attr-defined]
    except ImportError:  # TODO(lead): remove this shim once config.field_roles() lands (B)
        scale = {"epochs", "subset", "val_size"}
        special = {"target_accuracy": "analysis", "device": "environment"}
        return {
            f.name: special.get(f.name, "scale" if f.name in scale else "training")
            for f in fields(RunConfig)
        }
    return dict(field_roles())


def measurement_card(device: str) -> dict[str, Any]:
    """The measurement version and how each figure was measured on `device`."""
    return {"version": MEASUREMENT_VERSION, "methods": dict(measurement_methods(device))}


def recipe_defaults(info: ModelInfo, device: str) -> dict[str, Any]:
    """The run settings the recipe resolves to with nothing overridden (what make_config
    gives), all fields but where and with which seed a run ran."""
    values = RunConfig(model=info.name).to_dict()
    values["precision"] = default_precision(device)
    values.update(info.recipe.defaults)
    # a recipe may state options as a dict; stored as the config stores them (sorted pairs)
    values["model_options"] = normalize_options(values.get("model_options", ()))
    values = {k: v for k, v in values.items() if k not in _NOT_RECIPE}
    return json.loads(json.dumps(values))  # tuples -> lists, as stored


def recipe_card(info: ModelInfo, config: RunConfig) -> dict[str, Any]:
    """The card's "recipe": whose, its defaults, the stages this run ran and its headline."""
    try:
        options = resolve_options(info.recipe, config.options(), config.model)
    except ConfigError:  # a stored option the recipe no longer takes (reconstructed cards)
        options = resolve_options(info.recipe, {}, config.model)
    stages = info.recipe.stages_for(options)
    return {
        "of": info.recipe_of,
        "defaults": recipe_defaults(info, config.device),
        "stages": [
            json.loads(json.dumps(s.card({o.name: options[o.name] for o in stage_options(s)})))
            for s in stages
        ],
        "headline_stage": info.recipe.headline_of(stages),
    }


def _published(model: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    figures = published_figures(model)
    studies = {study_id: s.card_entry() for study_id, s in studies_of(figures).items()}
    return [f.to_dict() for f in figures], studies


def build_model_card(info: ModelInfo, config: RunConfig, model: nn.Module) -> dict[str, Any]:
    """The JSON-ready card of a run about to start (CONTRACTS.md section 2)."""
    published, studies = _published(config.model)
    return {
        "card_version": CARD_VERSION,
        "model": config.model,
        "family": info.family,
        "architecture": info.architecture,
        "source": info.source.card(),
        "fingerprint": architecture_fingerprint(model, info.source.sha256),
        "input_shape": [info.input_shape[0], config.image_size, config.image_size],
        "input_scaling": info.input_scaling,
        "tags": list(info.tags),
        "recipe": recipe_card(info, config),
        "setting_roles": setting_roles(),
        "published": published,
        "studies": studies,
        "measurement": measurement_card(config.device),
    }


def reconstruct_card(config: dict[str, Any]) -> dict[str, Any]:
    """A card for a run recorded before cards existed, from its stored config and the live
    registry: source "reconstructed", no fingerprint, measurement version 1. Never raises: a
    model no longer registered gets a card that says only what the config does."""
    model = str(config.get("model", ""))
    known = {f.name for f in fields(RunConfig)}
    try:
        run = RunConfig.from_dict({k: v for k, v in config.items() if k in known})
    except (TypeError, ValueError):
        run = None
    try:
        info = registered_model(model)
    except ConfigError:
        info = None
    published, studies = _published(model)
    image_size = run.image_size if run is not None else 28
    return {
        "card_version": CARD_VERSION,
        "model": model,
        "family": info.family if info else None,
        "architecture": info.architecture if info else None,
        "source": {"kind": "reconstructed", "spec": None, "sha256": None, "distribution": None},
        "fingerprint": None,
        "input_shape": [info.input_shape[0] if info else 1, image_size, image_size],
        "input_scaling": info.input_scaling if info else None,
        "tags": list(info.tags) if info else [],
        "recipe": (
            recipe_card(info, run)
            if info is not None and run is not None
            else {"of": None, "defaults": {}, "stages": [], "headline_stage": None}
        ),
        "setting_roles": setting_roles(),
        "published": published,
        "studies": studies,
        "measurement": {"version": 1, "methods": dict(_V1_METHODS)},
    }
