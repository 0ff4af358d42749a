"""Declared options: what `--model-option KEY=VALUE` may set, with its type, default and check.

A model's options are of two sorts, both passed as `--model-option` and both living in
`RunConfig.model_options`: keyword arguments of its entrypoint (read from the builder's
signature and type hints) and options its recipe's stages declare (`StageOption`: the VAE's
beta, SimSiam's probe, LightGBM's training-set size). This module checks both; it imports
nothing from the rest of the package but its errors.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mnistbench.errors import ConfigError

OptionValue = str | int | float | bool  # what `--model-option` parses a value into

_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _matches(value: object, kind: type) -> bool:
    """Whether `value` is a `kind`: an int is a float too, but a bool is never a number."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


@dataclass(frozen=True)
class StageOption:
    """A setting a recipe's stage reads, set with `--model-option NAME=VALUE`."""

    name: str
    type: type  # bool, int, float or str
    default: OptionValue
    help: str  # what it sets, in a few words ("the KL weight")
    check: Callable[[Any], bool] | None = None  # True when a value of the right type is valid
    rule: str = ""  # what `check` requires, for the error ("must be 0 or more")
    choices: tuple[OptionValue, ...] = ()
    example: OptionValue | None = None  # shown in errors; default: the first choice or default

    def __post_init__(self) -> None:
        if self.type not in _TYPE_WORDS:
            raise ValueError(f"option {self.name}: type must be bool, int, float or str")
        self.validate(self.default, "its declaration")  # a default that fails its own check

    def describe(self) -> str:
        """One line for listings: `beta (a number, default 1.0): the KL weight`."""
        kind = (
            f"one of {', '.join(map(str, self.choices))}"
            if self.choices
            else _TYPE_WORDS[self.type]
        )
        return f"{self.name} ({kind}, default {self.default!r}): {self.help}"

    def validate(self, value: object, owner: str) -> OptionValue:
        """`value` if it is valid; otherwise a ConfigError naming the option, its type and an
        example (`owner` says whose option it is, e.g. "model beta_vae")."""
        example = self.example if self.example is not None else (self.choices or (self.default,))[0]
        fix = f"e.g. --model-option {self.name}={example}"
        if not _matches(value, self.type):
            raise ConfigError(
                f"Invalid model option {self.name}={value!r} for {owner}: {self.name} is "
                f"{_TYPE_WORDS[self.type]} ({self.help}); {fix}."
            )
        if self.choices and value not in self.choices:
            raise ConfigError(
                f"Invalid model option {self.name}={value!r} for {owner}: choose one of "
                f"{', '.join(map(str, self.choices))} ({self.help}); {fix}."
            )
        if self.check is not None and not self.check(value):
            raise ConfigError(
                f"Invalid model option {self.name}={value!r} for {owner}: {self.help} "
                f"{self.rule or 'is out of range'}; {fix}."
            )
        return value  # type: ignore[return-value]


# ------------------------------------------------------------------ entrypoint keyword options


def entrypoint_options(builder: Callable[..., object]) -> dict[str, inspect.Parameter]:
    """The keyword options a model's entrypoint takes besides num_classes."""
    parameters = inspect.signature(builder).parameters
    return {
        name: p
        for name, p in parameters.items()
        if name != "num_classes" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _accepted_types(annotation: object) -> tuple[type, ...] | None:
    """The option types an annotation admits (`str | float` -> (str, float)); None: unknown."""
    if annotation in _TYPE_WORDS:
        return (annotation,)  # type: ignore[return-value]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if all(k in _TYPE_WORDS for k in kinds):
            return tuple(kinds)
    return None


def check_entrypoint_options(
    builder: Callable[..., object], options: Mapping[str, object], owner: str
) -> None:
    """Raise ConfigError for a value whose type the entrypoint's type hint rules out
    (`--model-option time_steps=abc` for `time_steps: int`); an option without a hint takes
    its default's type (`width=32`: a whole number). Options with neither pass."""
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # hints that do not resolve (an outside model's) are not checked
        hints = {}
    parameters = entrypoint_options(builder)
    for name, value in options.items():
        default = parameters[name].default
        kinds = _accepted_types(hints.get(name, type(default)))
        if kinds is None or any(_matches(value, kind) for kind in kinds):
            continue
        example = (
            "" if default is inspect.Parameter.empty else f"; e.g. --model-option {name}={default}"
        )
        raise ConfigError(
            f"Invalid model option {name}={value!r} for {owner}: {name} is "
            f"{' or '.join(_TYPE_WORDS[k] for k in kinds)}{example}."
        )
