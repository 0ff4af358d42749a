"""What every report figure shares: style, palette, saving as PNG + SVG, log axes, file names.

Figures use `matplotlib.figure.Figure` directly (Agg canvas, no pyplot), so no global backend or
figure state is touched and nothing needs a display.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter, LogLocator

from mnistbench.report.document import Figure

P = ParamSpec("P")
R = TypeVar("R")

DPI = 100  # of the PNG, and of the canvas labels are placed on (so their boxes are the PNG's)
STYLE = {
    "svg.hashsalt": "mnistbench",  # stable SVG ids: re-rendering the same store gives equal files
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# tab10, then tab20b's dark tones: twenty colours before any repeats (the zoo has 14 families)
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3b7a78",
    "#b5cf6b", "#e7ba52", "#ad494a", "#a55194",
]  # fmt: skip


# (name, figure) of every figure saved while `collecting()` is active: the label checks of the
# tests read the drawn text of the very figures a report wrote
_COLLECTED: contextvars.ContextVar[list[tuple[str, MplFigure]] | None] = contextvars.ContextVar(
    "collected_figures", default=None
)


@contextlib.contextmanager
def collecting() -> Iterator[list[tuple[str, MplFigure]]]:
    """Keep every figure `save` writes inside the block, as (name, figure)."""
    found: list[tuple[str, MplFigure]] = []
    token = _COLLECTED.set(found)
    try:
        yield found
    finally:
        _COLLECTED.reset(token)


def save(fig: MplFigure, out_dir: Path, name: str, title: str, caption: str) -> Figure:
    """Write `name`.png and `name`.svg into out_dir/figures and return the block that shows them."""
    if (found := _COLLECTED.get()) is not None:
        found.append((name, fig))
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=DPI, metadata={"Software": None})
    fig.set_layout_engine("none")  # keep the positions just computed: layout is the slow part
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None})
    return Figure(title, f"figures/{name}.png", f"figures/{name}.svg", caption)


def styled(function: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder under the report's rcParams (read when artists are made and saved)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def new(width: float, height: float, ncols: int = 1, nrows: int = 1):
    """A constrained-layout figure and its (nrows, ncols) array of axes."""
    fig = MplFigure(figsize=(width, height), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)  # a real canvas: labels are measured on it before saving
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def colors_for(names: Sequence[str]) -> dict[str, str]:
    """One palette colour per distinct name, in sorted order (stable across figures)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def datasets_in(datasets: Sequence[str]) -> list[str]:
    """MNIST first, then the others alphabetically."""
    return sorted(set(datasets), key=lambda d: (d != "mnist", d))


def short(value: float) -> str:
    """Tick label: 0.25, 40, 500k, 1.5M."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def log_axis(ax, values: Sequence[float]) -> None:
    """Log x axis; over less than two decades, plain numbers at 1-2-5 steps (no 3×10⁻¹ clutter)."""
    ax.set_xscale("log")
    if values and max(values) / min(values) < 100:
        plain = FuncFormatter(lambda v, _: short(v))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plain)


def grid(count: int, max_cols: int, width: float, height: float):
    """A figure of `count` panels, at most `max_cols` per row; unused panels hidden."""
    cols = min(max_cols, count)
    rows = math.ceil(count / cols)
    fig, axes = new(width * cols, height * rows, ncols=cols, nrows=rows)
    # constrained layout measures tick labels once; a panel whose ticks come out wider when
    # drawn (96.2 against 96) pushed its y label a few pixels past the edge (learning curves,
    # 4 x 4 panels): a wider pad than the default 3 points keeps every label inside
    fig.get_layout_engine().set(w_pad=8 / 72)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def slug(text: str) -> str:
    """A file-name-safe version of `text` (letters and digits kept, the rest '_')."""
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "x"
