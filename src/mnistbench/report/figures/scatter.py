"""Accuracy against a cost (parameters, time, energy): one panel per dataset, one point per model
at its recipe, Pareto front marked, each published figure a hollow marker joined to ours.

A model far below the others (beta_vae at 88% beside CNNs at 99%) would squeeze every other
point into a strip: such points go to a short panel of their own under the main one (a broken
axis), so the points fill the plot. The variants of each model (devices, precisions, schedules)
are on the interactive page, not here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

from mnistbench.report.collect import pareto_front
from mnistbench.report.document import Figure
from mnistbench.report.figures import labels
from mnistbench.report.figures.common import colors_for, datasets_in, log_axis, new, save, styled

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
PANEL_W, PANEL_H, LEGEND_W = 6.5, 5.2, 1.9  # inches
OUTLIER_GAP_PT = 4.0  # a point this far below the next one up starts the lower panel
MIN_SPAN_PT = 1.0  # the y axis spans at least this much (one point at 91.55% is not a range)
FINAL_MARKER, HONEST_MARKER = "s", "o"


@dataclass(frozen=True)
class Published:
    """A published figure set against a measured point: where it sits and what it is called."""

    cost: float
    accuracy: float  # fraction
    label: str  # e.g. "study A"


@dataclass(frozen=True)
class Point:
    """One model (its recipe configuration, seeds pooled) in an accuracy-vs-cost plot."""

    label: str  # the model's name
    family: str  # picks the colour
    dataset: str  # picks the panel
    cost: float
    accuracy: float  # mean over seeds, fraction
    interval: tuple[float, float] | None = None  # 95% interval of the mean, fractions
    final: bool = False  # accuracy after the last epoch (trained without a validation split)
    published: Published | None = None
    hollow: bool = False  # drawn as an open marker (e.g. an estimated energy)
    hover: dict[str, Any] = field(default_factory=dict, compare=False)  # the interactive page's


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
    """Test accuracy against a cost, saved as `name`.png/svg (None: nothing to plot)."""
    fig = draw(points, title=title, xlabel=xlabel, hollow_meaning=hollow_meaning)
    return None if fig is None else save(fig, out_dir, name, title, caption)


def split_outliers(values: Sequence[float]) -> float | None:
    """The accuracy (%) under which points go to the lower panel: the top of the first gap of
    more than OUTLIER_GAP_PT below the top cluster, None when there is none."""
    ordered = sorted(values, reverse=True)
    for upper, lower in itertools.pairwise(ordered):
        if upper - lower > OUTLIER_GAP_PT:
            return (upper + lower) / 2
    return None


@styled
def draw(
    points: Sequence[Point], *, title: str, xlabel: str, hollow_meaning: str = ""
) -> MplFigure | None:
    """One panel per dataset (with a lower panel for outliers), the legend outside them; the
    labels are placed on the final canvas so that none overlaps another."""
    points = [p for p in points if p.cost > 0]
    if not points:
        return None
    colors = colors_for([p.family for p in points])
    datasets = datasets_in([p.dataset for p in points])
    fig, _ = new(PANEL_W * len(datasets) + LEGEND_W, PANEL_H)
    fig.clear()
    *columns, side = fig.subfigures(
        1, len(datasets) + 1, width_ratios=[PANEL_W] * len(datasets) + [LEGEND_W]
    )
    placements = []
    for column, dataset in zip(columns, datasets, strict=True):
        here = [p for p in points if p.dataset == dataset]
        ys = [100 * p.accuracy for p in here] + [
            100 * p.published.accuracy for p in here if p.published
        ]
        cut = split_outliers(ys)
        if cut is None:
            axes = [column.subplots()]
            groups = [here]
        else:
            top, bottom = column.subplots(2, 1, sharex=True, height_ratios=[3.2, 1])
            axes = [top, bottom]
            groups = [
                [p for p in here if 100 * p.accuracy >= cut],
                [p for p in here if 100 * p.accuracy < cut],
            ]
        front = {id(here[i]) for i in pareto_front([(p.cost, p.accuracy) for p in here])}
        for ax, group in zip(axes, groups, strict=True):
            placements.append((ax, _draw_panel(ax, group, colors, front)))
        _y_range(axes, groups)
        costs = [p.cost for p in here] + [p.published.cost for p in here if p.published]
        for ax in axes:
            log_axis(ax, costs)
            ax.margins(x=0.12)
        axes[0].set_title(f"{title} — {dataset}")
        axes[-1].set_xlabel(xlabel)
        column.supylabel("test accuracy (%)", fontsize=9)
        if cut is not None:
            axes[0].tick_params(labelbottom=False)
            axes[1].set_title(f"below {cut:.0f}%: own panel (broken axis)", fontsize=7)
    side.legend(
        handles=_legend_handles(points, colors, hollow_meaning),
        loc="center left",
        fontsize=7,
        frameon=False,
    )
    fig.canvas.draw()  # lay out once: the labels are placed on the final canvas
    fig.set_layout_engine("none")
    for ax, (texts, anchors, obstacles) in placements:
        labels.place(ax, texts, anchors, obstacles)
    return fig


def _y_range(axes, groups) -> None:
    """Each panel's y range covers its points, their intervals and published figures, at
    least MIN_SPAN_PT wide, with room for labels."""
    for ax, group in zip(axes, groups, strict=True):
        values = []
        for p in group:
            values.append(100 * p.accuracy)
            if p.interval:
                values += [100 * p.interval[0], 100 * p.interval[1]]
            if p.published:
                values.append(100 * p.published.accuracy)
        if not values:
            continue
        low, high = min(values), max(values)
        pad = max(MIN_SPAN_PT - (high - low), 0) / 2 + 0.12 * max(high - low, MIN_SPAN_PT)
        ax.set_ylim(low - pad, min(high + pad, 100.0 + pad / 4))


def _draw_panel(ax, here: Sequence[Point], colors: dict[str, str], front: set[int]):
    """Points, published markers with their links, the front; returns the labels to place
    (texts, their anchors, the other points they must keep off)."""
    texts, anchors, obstacles = [], [], []
    for point in here:
        color = colors[point.family]
        x, y = point.cost, 100 * point.accuracy
        yerr = None
        if point.interval is not None:
            yerr = [
                [max(0.0, y - 100 * point.interval[0])],
                [max(0.0, 100 * point.interval[1] - y)],
            ]
        ax.errorbar(
            x,
            y,
            yerr=yerr,
            fmt=FINAL_MARKER if point.final else HONEST_MARKER,
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
            ax.plot([px, x], [py, y], color=color, lw=0.8, zorder=2)
            ax.scatter([px], [py], marker="D", s=30, facecolors="white", edgecolors=color, lw=1.2,
                       zorder=3)  # fmt: skip
            obstacles.append((px, py))
    on_front = sorted((p for p in here if id(p) in front), key=lambda p: p.cost)
    xs = [p.cost for p in on_front]
    ys = [100 * p.accuracy for p in on_front]
    if xs:
        ax.step(xs, ys, where="post", color=FRONT_COLOR, lw=1.2, ls="--", zorder=2)
        ax.scatter(xs, ys, s=150, facecolors="none", edgecolors=FRONT_COLOR, lw=1.2, zorder=2)
    return texts, anchors, obstacles


def _legend_handles(points: Sequence[Point], colors: dict[str, str], hollow_meaning: str):
    handles = [
        Line2D([], [], marker="o", ls="", color=color, label=family)
        for family, color in colors.items()
    ]
    handles.append(Line2D([], [], color=FRONT_COLOR, ls="--", label="Pareto front"))
    handles.append(
        Line2D([], [], marker=HONEST_MARKER, ls="", color="#555555",
               label="test acc @ best val epoch")
    )  # fmt: skip
    if any(p.final for p in points):
        handles.append(
            Line2D([], [], marker=FINAL_MARKER, ls="", color="#555555",
                   label="final test acc (recipe has\nno validation split)")
        )  # fmt: skip
    if any(p.published for p in points):
        handles.append(
            Line2D([], [], marker="D", ls="-", color="#555555", mfc="white",
                   label="published figure (line to\nour run of the model)")
        )  # fmt: skip
    if any(p.interval for p in points):
        handles.append(Line2D([], [], marker="|", ls="", color="#555555", ms=10,
                              label="95% interval of the mean"))  # fmt: skip
    if hollow_meaning and any(p.hollow for p in points):
        handles.append(
            Line2D([], [], marker="o", ls="", color="#555555", mfc="white", label=hollow_meaning)
        )
    return handles
