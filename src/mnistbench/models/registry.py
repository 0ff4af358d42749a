"""The model registry: named entrypoints with the metadata that `list`, reports and tests read.

The only global state in mnistbench. Each family file registers small entrypoints with
`@register_model`; `create_model(name)` builds one.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mnistbench.errors import ConfigError


@dataclass(frozen=True)
class Published:
    """A figure a published study reports for this model (accuracy as a fraction in 0..1)."""

    study: str  # "A".."E", see shared SPECS.md
    test_accuracy: float | None  # None where the study states no accuracy (study B)
    params: int | None = None  # parameter count stated or checked by counting
    time_per_epoch_s: float | None = None  # as the study measured it (see `device`, `note`)
    device: str | None = None  # where the study's time was taken ("cuda", "cpu")
    epochs: int | None = None
    note: str = ""
    best_epoch: int | None = None  # epoch of `test_accuracy` where the study picked the best one
    epochs_to_target: int | None = None  # first epoch whose test accuracy reached 99% (study D)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one named model variant."""

    name: str
    family: str  # file-level family: "mlp", "cnn", "resnet", ...
    architecture: str  # one line, as in the published tables
    builder: Callable[..., nn.Module]
    recipe: dict[str, Any] = field(default_factory=dict)  # RunConfig defaults for this model
    published: Published | None = None
    tags: tuple[str, ...] = ()  # e.g. "no_autograd"
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) the model consumes
    # How the run is trained (recipes.PROTOCOLS): "supervised", "pretrain_probe", ...
    protocol: str = "supervised"
    # Pixel scaling the model expects (data.SCALINGS): "unit" [0, 1] for Bernoulli likelihoods,
    # "symmetric" [-1, 1] for tanh generators, "standard" (zero mean, unit variance) otherwise.
    input_scaling: str = "standard"

    def option_names(self) -> tuple[str, ...]:
        """Keyword options the entrypoint takes besides num_classes (`--model-option`)."""
        parameters = inspect.signature(self.builder).parameters
        return tuple(p for p in parameters if p != "num_classes")


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    architecture: str,
    recipe: dict[str, Any] | None = None,
    published: Published | None = None,
    tags: tuple[str, ...] = (),
    input_shape: tuple[int, int, int] = (1, 28, 28),
    protocol: str = "supervised",
    input_scaling: str = "standard",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register an entrypoint `fn(num_classes=10) -> nn.Module` under its function name."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name=name,
            family=family,
            architecture=architecture,
            builder=builder,
            recipe=dict(recipe or {}),
            published=published,
            tags=tags,
            input_shape=input_shape,
            protocol=protocol,
            input_scaling=input_scaling,
        )
        return builder

    return decorate


def closest_names(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The candidates that look most like `name` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)


def get_model_info(name: str) -> ModelInfo:
    """Registry entry for `name`; unknown names raise ConfigError naming the closest ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = sorted(_REGISTRY)
        close = closest_names(name, known)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown model {name!r}.{hint} Run `mnistbench list` to see all "
            f"{len(known)} registered models."
        ) from None


def list_models(family: str | None = None) -> list[ModelInfo]:
    """Registered models, sorted by family then name."""
    infos = [i for i in _REGISTRY.values() if family is None or i.family == family]
    return sorted(infos, key=lambda i: (i.family, i.name))


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConfigError when `options` holds a keyword the entrypoint of `name` does not take."""
    info = get_model_info(name)
    accepted = info.option_names()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"It takes: {', '.join(accepted)}." if accepted else "It takes no options."
        raise ConfigError(
            f"Model {name!r} has no option {', '.join(unknown)}. {takes} "
            "Run `mnistbench list` for the models and their options."
        )


def create_model(name: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the registered model `name` with freshly initialised weights and its `options`."""
    check_model_options(name, options)
    return get_model_info(name).builder(num_classes=num_classes, **options)
