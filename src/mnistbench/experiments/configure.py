"""A run's configuration resolved against the model registry: the layer that builds runs.

`config.RunConfig` is a plain record that knows only its own fields; here it meets what is
registered: `make_config` layers the model's recipe under the user's choices, and
`validate_config` adds the checks only the registry and the data catalog can make (the model's
options, the data set's name) to the record's own (`config.validate_settings`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mnistbench.config import (
    RunConfig,
    check_overrides,
    field_roles,
    normalize_options,
    validate_settings,
)
from mnistbench.data import get_dataset_spec
from mnistbench.engine.device import default_precision
from mnistbench.models import check_model_options, resolve_model


def validate_config(config: RunConfig) -> RunConfig:
    """Check every field, the model's options and the data set; raise ConfigError naming the
    setting, the rule and the fix."""
    checked = validate_settings(config)
    check_model_options(config.model, config.options(), config.recipe_of)
    get_dataset_spec(config.dataset)
    return checked


def make_config(
    model: str, device: str = "cpu", *, recipe_of: str | None = None, **overrides: Any
) -> RunConfig:
    """RunConfig for `model`: dataclass defaults < the recipe < `overrides` (None = unset).

    The recipe is `model`'s own, or with `recipe_of` that registered model's (an outside model
    borrowing a study's recipe). Raises ConfigError for unknown models, datasets, keys or
    invalid values; a bad override is reported before any model is looked up.
    """
    given = check_overrides(overrides)
    info = resolve_model(model, recipe_of)  # registered names, outside specs, entry points
    values: dict[str, Any] = {"precision": default_precision(device)}
    values.update(info.recipe.defaults)
    values.update(given)
    values.update(model=model, device=device, recipe_of=recipe_of)
    values["model_options"] = normalize_options(values.get("model_options", ()))
    return validate_config(RunConfig(**values))


def scale_changes(config: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The scale settings (epochs, subset, val_size) where `config` departs from its recipe,
    as {field: (recipe value, run value)}: such a run is smaller or larger than the recipe."""
    recipe = make_config(config.model, config.device, recipe_of=config.recipe_of)
    return {
        name: (getattr(recipe, name), getattr(config, name))
        for name, role in field_roles().items()
        if role == "scale" and getattr(recipe, name) != getattr(config, name)
    }


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """A validated copy of `config` with some fields changed."""
    return validate_config(replace(config, **changes))


def dry_run(config: RunConfig) -> RunConfig:
    """`config` shrunk to two training steps and one small evaluation (`--dry-run`)."""
    return with_overrides(
        config, epochs=1, subset=2 * config.batch_size, val_size=config.batch_size
    )
