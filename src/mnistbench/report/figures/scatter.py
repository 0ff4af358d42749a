"""Accuracy against a cost (parameters, time, energy): one panel per dataset, Pareto front marked,
every point labelled without overlaps, each published figure tied to its measured point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

from mnistbench.report.collect import pareto_front
from mnistbench.report.document import Figure
from mnistbench.report.figures import labels
from mnistbench.report.figures.common import colors_for, datasets_in, log_axis, new, save, styled
from mnistbench.report.format import Stat

FRONT_COLOR = "#d62728"
# labels above every marker and line, on a faint white ground so a line under one stays legible
LABEL_STYLE = {
    "fontsize": 7,
    "zorder": 5,
    "bbox": {
        "boxstyle": "square,pad=0.05",
        "facecolor": "white",
        "edgecolor": "none",
        "alpha": 0.7,
    },
}
PANEL_W, PANEL_H, LEGEND_W = 7.5, 5.6, 1.6  # inches; room for a few dozen labels per panel


@dataclass(frozen=True)
class Published:
    """A published figure set against a measured point: where it sits and what it is called."""

    cost: float
    accuracy: float  # fraction
    label: str  # e.g. "cnn · study A"


@dataclass(frozen=True)
class Point:
    """One configuration (seeds pooled) in an accuracy-vs-cost plot."""

    label: str
    family: str  # picks the colour
    dataset: str  # picks the panel
    cost: Stat
    accuracy: Stat  # fraction
    published: Published | None = None
    hollow: bool = False  # drawn as an open marker (e.g. an estimated energy)


@styled
def accuracy_vs_cost(
    points: Sequence[Point],
    out_dir: Path,
    *,
    name: str,
    title: str,
    xlabel: str,
    caption: str,
    hollow_meaning: str = "",
) -> Figure | None:
    """Honest test accuracy against a cost, saved as `name`.png/svg (None: nothing to plot)."""
    fig = draw(points, title=title, xlabel=xlabel, hollow_meaning=hollow_meaning)
    return None if fig is None else save(fig, out_dir, name, title, caption)


@styled
def draw(
    points: Sequence[Point], *, title: str, xlabel: str, hollow_meaning: str = ""
) -> MplFigure | None:
    """Honest test accuracy against a cost (log x), one panel per dataset, Pareto front marked.

    Each point is a configuration (mean; error bars = std over seeds). A point with a published
    figure gets a diamond of its colour at the published (cost, accuracy) and a dotted line to
    it, both labelled. The legend sits outside the panels, so it hides no point; labels are
    placed on the final canvas so that none overlaps another.
    """
    points = [p for p in points if p.cost.mean > 0]
    if not points:
        return None
    colors = colors_for([p.family for p in points])
    datasets = datasets_in([p.dataset for p in points])
    fig, axes = new(PANEL_W * len(datasets) + LEGEND_W, PANEL_H, ncols=len(datasets))
    placements = []
    for ax, dataset in zip(axes[0], datasets, strict=True):
        here = [p for p in points if p.dataset == dataset]
        placements.append((ax, _draw_panel(ax, here, colors)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy @ best val (%)")
        ax.set_title(f"{title} — {dataset}")
    fig.legend(
        handles=_legend_handles(points, colors, hollow_meaning),
        loc="outside right upper",
        fontsize=7,
        frameon=False,
    )
    fig.canvas.draw()  # lay out once: the labels are placed on the final canvas
    fig.set_layout_engine("none")
    for ax, (texts, anchors, obstacles) in placements:
        labels.place(ax, texts, anchors, obstacles)
    return fig


def _draw_panel(ax, here: Sequence[Point], colors: dict[str, str]):
    """Points, published diamonds with their links, and the front; returns the labels to place
    (texts, their anchors, the other points they must keep off)."""
    texts, anchors, obstacles = [], [], []
    for point in here:
        color = colors[point.family]
        x, y = point.cost.mean, 100 * point.accuracy.mean
        ax.errorbar(
            x,
            y,
            yerr=None if point.accuracy.std is None else 100 * point.accuracy.std,
            xerr=point.cost.std,
            fmt="o",
            color=color,
            mfc="white" if point.hollow else color,
            ms=6,
            capsize=2,
            zorder=3,
        )
        texts.append(ax.text(x, y, point.label, color=color, **LABEL_STYLE))
        anchors.append((x, y))
        if point.published is not None:
            px, py = point.published.cost, 100 * point.published.accuracy
            ax.plot([px, x], [py, y], color=color, lw=0.8, ls=":", zorder=2)
            ax.scatter([px], [py], marker="D", s=34, facecolors="white", edgecolors=color, lw=1.2,
                       zorder=3)  # fmt: skip
            texts.append(
                ax.text(px, py, point.published.label, color=color, style="italic", **LABEL_STYLE)
            )
            anchors.append((px, py))
    front = pareto_front([(p.cost.mean, p.accuracy.mean) for p in here])
    xs = [here[i].cost.mean for i in front]
    ys = [100 * here[i].accuracy.mean for i in front]
    ax.step(xs, ys, where="post", color=FRONT_COLOR, lw=1.2, ls="--", zorder=2)
    ax.scatter(xs, ys, s=150, facecolors="none", edgecolors=FRONT_COLOR, lw=1.2, zorder=2)
    costs = [p.cost.mean for p in here] + [p.published.cost for p in here if p.published]
    log_axis(ax, costs)
    ax.margins(x=0.12, y=0.12)  # room for the labels at the edges
    return texts, anchors, obstacles


def _legend_handles(points: Sequence[Point], colors: dict[str, str], hollow_meaning: str):
    handles = [
        Line2D([], [], marker="o", ls="", color=color, label=family)
        for family, color in colors.items()
    ]
    handles.append(Line2D([], [], color=FRONT_COLOR, ls="--", label="Pareto front"))
    if any(p.published for p in points):
        handles.append(
            Line2D([], [], marker="D", ls=":", color="#555555", mfc="white",
                   label="published figure (dotted line to\nour run of the same setting)")
        )  # fmt: skip
    if hollow_meaning and any(p.hollow for p in points):
        handles.append(
            Line2D([], [], marker="o", ls="", color="#555555", mfc="white", label=hollow_meaning)
        )
    return handles
