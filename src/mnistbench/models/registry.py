"""The model registry: named entrypoints with the metadata that `list`, reports and tests read.

The only global state in mnistbench. Each family file registers small entrypoints with
`@register_model`, each declaring its recipe (`mnistbench.recipes.Recipe`, or a dict of run
settings for the one-stage supervised recipe). `resolve_model(spec)` (models/lookup.py) is the
one lookup: a registered name, a model an installed package publishes (entry-point group
`mnistbench.models`), or an outside factory `path/to/file.py:factory` / `package.module:factory`
(models/outside.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from mnistbench.errors import ConfigError
from mnistbench.options import (
    OptionValue,
    StageOption,
    check_entrypoint_options,
    entrypoint_options,
)
from mnistbench.recipes import SUPERVISED, Recipe, as_recipe, recipe_options
from mnistbench.recipes.kinds import check_recipe


@dataclass(frozen=True)
class ModelSource:
    """Where a model's code came from (the model card's "source")."""

    kind: str = "registered"  # registered | file | module | entry_point
    spec: str | None = None  # what the user typed: "tiny.py:tiny", "pkg.mod:fn", an entry point
    sha256: str | None = None  # of the source file that defines the factory
    distribution: str | None = None  # "pkg==1.0" for an installed package's entry point

    def card(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "spec": self.spec,
            "sha256": self.sha256,
            "distribution": self.distribution,
        }


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model: how to build it and how it is trained."""

    name: str  # registered name, or the outside spec as given
    family: str  # file-level family: "mlp", "cnn", "resnet", ...; "outside" for outside models
    architecture: str  # one line, as in the published tables
    builder: Callable[..., nn.Module]
    recipe: Recipe = SUPERVISED  # stages + the RunConfig values they default to
    tags: tuple[str, ...] = ()  # e.g. "no_autograd"
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) the model consumes
    # Pixel scaling the model expects (data.SCALINGS): "unit" [0, 1] for Bernoulli likelihoods,
    # "symmetric" [-1, 1] for tanh generators, "standard" (zero mean, unit variance) otherwise.
    input_scaling: str = "standard"
    source: ModelSource = field(default_factory=ModelSource)
    recipe_of: str | None = None  # the registered model whose recipe this is; None: defaults

    def option_names(self) -> tuple[str, ...]:
        """Keyword options the entrypoint takes besides num_classes (`--model-option`)."""
        return tuple(entrypoint_options(self.builder))

    def stage_options(self) -> dict[str, StageOption]:
        """Options the recipe's stages read (`--model-option`), by name."""
        return recipe_options(self.recipe)

    def split_options(
        self, options: Mapping[str, OptionValue]
    ) -> tuple[dict[str, OptionValue], dict[str, OptionValue]]:
        """(entrypoint keyword arguments, stage options), each checked: an unknown key or a
        value of the wrong type is a ConfigError naming the option, its type and an example."""
        builder_keys, stage = set(self.option_names()), self.stage_options()
        unknown = sorted(set(options) - builder_keys - set(stage))
        if unknown:
            takes = [*sorted(builder_keys), *stage]
            listed = f"It takes: {', '.join(takes)}." if takes else "It takes no options."
            raise ConfigError(
                f"Model {self.name!r} has no option {', '.join(unknown)}. {listed} "
                "Run `mnistbench list` for the models and their options."
            )
        kwargs = {k: v for k, v in options.items() if k in builder_keys}
        check_entrypoint_options(self.builder, kwargs, f"model {self.name}")
        stage_values = {
            k: stage[k].validate(v, f"model {self.name}") for k, v in options.items() if k in stage
        }
        return kwargs, stage_values


_REGISTRY: dict[str, ModelInfo] = {}
REGISTERED: Mapping[str, ModelInfo] = MappingProxyType(_REGISTRY)  # read-only, always current


def register_model(
    *,
    family: str,
    architecture: str,
    recipe: Recipe | Mapping[str, Any] | None = None,
    tags: tuple[str, ...] = (),
    input_shape: tuple[int, int, int] = (1, 28, 28),
    input_scaling: str = "standard",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register an entrypoint `fn(num_classes=10) -> nn.Module` under its function name.

    `recipe` is a Recipe, or a dict of RunConfig values for the one-stage supervised recipe.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        info = ModelInfo(
            name=name,
            family=family,
            architecture=architecture,
            builder=builder,
            recipe=as_recipe(recipe),
            tags=tags,
            input_shape=input_shape,
            input_scaling=input_scaling,
            recipe_of=name,
        )
        check_recipe(info.recipe)
        clash = set(info.option_names()) & set(info.stage_options())
        if clash:
            raise ValueError(f"model {name!r}: {clash} is both an entrypoint and a stage option")
        _REGISTRY[name] = info
        return builder

    return decorate


def closest_names(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The candidates that look most like `name` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)


def registered_model(name: str) -> ModelInfo:
    """The model registered under `name` (not an outside one); ConfigError names close ones."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    known = sorted(_REGISTRY)
    close = closest_names(name, known)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown model {name!r}.{hint} Run `mnistbench list` to see all {len(known)} "
        "registered models, or name an outside one as path/to/file.py:function or "
        "package.module:function."
    )
