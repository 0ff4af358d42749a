"""Number formatting shared by the CLI summaries and the reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: collect imports the registry, format must stay light
    from mnistbench.report.collect import Stat


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
