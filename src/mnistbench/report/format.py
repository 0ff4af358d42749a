"""Number formatting shared by the CLI summaries and the reports."""

from __future__ import annotations


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
