"""Looking a model up: `resolve_model(spec)` is the one lookup (a registered name, an installed
package's entry point, or an outside factory), and what is built on it (options checked, a model
created, the models listed).

Above the registry, the outside loader and the builder, which all import the registry: with the
lookup here, none of them needs to import another in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from torch import nn

from mnistbench.models import outside
from mnistbench.models.build import build_model
from mnistbench.models.registry import REGISTERED, ModelInfo, registered_model


def resolve_model(spec: str, recipe_of: str | None = None) -> ModelInfo:
    """The model `spec` names: a registered name, an installed package's entry point, or an
    outside factory (`path/to/file.py:factory`, `package.module:factory`).

    With `recipe_of`, the model trains with that registered model's recipe (its stages,
    defaults and input scaling); else a registered model with its own, an outside one with the
    RunConfig defaults. Outside
    specs are loaded once per process and source version (models/outside.py).
    """
    if spec in REGISTERED:
        if recipe_of in (None, spec):
            return REGISTERED[spec]
        # a registered model trained with another's recipe: its stages, defaults and scaling
        borrowed = registered_model(recipe_of)
        return replace(
            REGISTERED[spec],
            recipe=borrowed.recipe,
            input_scaling=borrowed.input_scaling,
            recipe_of=recipe_of,
        )
    recipe_info = registered_model(recipe_of) if recipe_of is not None else None
    if ":" in spec:
        return outside.load_spec(spec, recipe_info)
    published = outside.entry_point_model(spec, recipe_info)
    if published is not None:
        return published
    return registered_model(spec)  # raises, naming the closest registered names


def get_model_info(name: str) -> ModelInfo:
    """`resolve_model(name)`: kept for callers that name a registered model."""
    return resolve_model(name)


def list_models(family: str | None = None) -> list[ModelInfo]:
    """Registered models and those installed packages publish, sorted by family then name."""
    infos = [*REGISTERED.values(), *outside.entry_point_models(skip=set(REGISTERED))]
    infos = [i for i in infos if family is None or i.family == family]
    return sorted(infos, key=lambda i: (i.family, i.name))


def check_model_options(
    name: str, options: Mapping[str, Any], recipe_of: str | None = None
) -> None:
    """Raise ConfigError for an option model `name` (with that recipe) does not take, or a
    value of the wrong type."""
    resolve_model(name, recipe_of).split_options(options)


def create_model(name: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build model `name` with freshly initialised weights and its `options` (stage options
    among them are checked and left to the recipe)."""
    return build_model(resolve_model(name), num_classes, options)
