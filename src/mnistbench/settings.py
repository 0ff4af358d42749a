"""Declared settings: a dataclass field that carries its help, flag, check and role.

`config.RunConfig` declares each run setting once with `setting(...)`; the CLI flags, the
sweep-file keys and types, validation and the roles are generated from these declarations,
in the spirit of HF's HfArgumentParser (fields -> argparse) but without its dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import Field, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """A setting's validation rule: `test(value)` holds, else the error shows `rule` and `fix`."""

    test: Callable[[Any], bool]
    rule: str
    fix: str = ""


def finite(value: Any) -> bool:
    """A real number that is not NaN or infinite (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(low: int, fix: str = "") -> Check:
    """A whole number >= `low`."""
    return Check(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low,
        f"must be at least {low}",
        fix,
    )


def interval(text: str, fix: str = "") -> Check:
    """A finite number in an interval written as in maths: "[0, 1)", "(0, 1]", "[0, inf)"."""
    match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", text)
    if match is None:
        raise ValueError(f"not an interval: {text!r}")
    opening, low, high, closing = match.groups()
    low_value, high_value = float(low), float(high)

    def test(value: Any) -> bool:
        if not finite(value):
            return False
        above = value >= low_value if opening == "[" else value > low_value
        below = value <= high_value if closing == "]" else value < high_value
        return above and below

    return Check(test, f"must be in {text}", fix)


def one_of(choices: tuple[str, ...]) -> Check:
    return Check(lambda v: v in choices, f"choose one of {', '.join(choices)}")


def unset_or(check: Check) -> Check:
    """`check` for a setting where None means "off"."""
    return Check(lambda v: v is None or check.test(v), check.rule, check.fix)


REQUIRED: Any = object()  # `setting`'s default for a field the caller must always give


def setting(
    default: Any,
    *,
    help: str,
    role: str,
    flag: str | None = "",
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its facts, in `metadata`.

    `help` says what it is, with its unit and why; `role` what changing it does (config.ROLES);
    `flag` how the command line spells it ("" = `--field-name`, None = no flag: positional);
    `check` its validation rule (a `Check`; `choices` implies one).
    """
    metadata = {"help": help, "role": role, "flag": flag, "check": check, "choices": choices}
    if choices is not None and check is None:
        metadata["check"] = one_of(choices)
    if default is REQUIRED:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def value_kind(f: Field) -> str:
    """The kind of value a setting takes: bool, int, float, str or table (a tuple of pairs)."""
    declared = str(f.type).split("|")[0].strip()
    if declared.startswith("tuple"):
        return "table"
    return declared if declared in ("bool", "int", "float") else "str"


def flag_of(f: Field) -> str:
    """How the command line spells the setting of field `f` (its name when it has no flag)."""
    flag = f.metadata["flag"]
    return f.name if flag is None else flag or "--" + f.name.replace("_", "-")
