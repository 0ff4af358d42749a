"""Number formatting shared by the CLI summaries and the reports, and the mean ± std they show.

Imports nothing from mnistbench: the CLI, speedrun and the benchmarks use it without loading
the report's figures (matplotlib)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation of one metric over the seeds of a group."""

    mean: float
    std: float | None  # None with a single value
    n: int

    @classmethod
    def of(cls, values: Iterable[Any]) -> Stat | None:
        """The finite numbers among `values` (None, NaN and booleans left out); None if none."""
        numbers = [
            float(v)
            for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ]
        if not numbers:
            return None
        std = statistics.stdev(numbers) if len(numbers) > 1 else None
        return cls(statistics.fmean(numbers), std, len(numbers))

    def scaled(self, factor: float) -> Stat:
        """The same statistic in another unit (kWh -> Wh: factor 1000)."""
        return Stat(factor * self.mean, None if self.std is None else factor * self.std, self.n)


def setting(key: str, value: Any) -> str:
    """`key=value` of one run setting; model options as their own `name=value` pairs (stored
    as [[name, value], ...]), and none of them as "default options"."""
    if key != "model_options":
        return f"{key}={value}"
    return ", ".join(f"{name}={option}" for name, option in value or ()) or "default options"


def percent(fraction: float | None, digits: int = 2) -> str:
    return "—" if fraction is None else f"{100 * fraction:.{digits}f}%"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23 M' (for FLOPs, bytes, images/s)."""
    if value is None:
        return "—"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def percent_stat(stat: Stat | None, digits: int = 2) -> str:
    """Mean ± std over seeds as a percentage: '98.12 ± 0.05%' ('98.12%' for one seed)."""
    if stat is None:
        return "—"
    if stat.std is None:
        return f"{100 * stat.mean:.{digits}f}%"
    return f"{100 * stat.mean:.{digits}f} ± {100 * stat.std:.{digits}f}%"


def seconds_stat(stat: Stat | None) -> str:
    if stat is None:
        return "—"
    if stat.std is None or stat.mean >= 100:
        return seconds(stat.mean) + ("" if stat.std is None else f" ± {stat.std:.0f}")
    return f"{stat.mean:.2f} ± {stat.std:.2f} s"


def number_stat(stat: Stat | None, digits: int = 3, scale: float = 1.0) -> str:
    if stat is None:
        return "—"
    text = number(scale * stat.mean, digits)
    return text if stat.std is None else f"{text} ± {scale * stat.std:.2g}"
