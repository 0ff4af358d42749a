"""The report's matplotlib figures, each saved as PNG and SVG under DIR/figures/.

Uses `matplotlib.figure.Figure` directly (Agg canvas, no pyplot), so no global backend or figure
state is touched and nothing needs a display.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter, LogLocator

from mnistbench.report.collect import (
    ReportData,
    RunGroup,
    Stat,
    full_data_groups,
    group_labels,
    model_info,
    pareto_front,
)
from mnistbench.report.document import Figure

P = ParamSpec("P")
R = TypeVar("R")

DPI = 100
MAX_CURVES = 14  # learning-curve lines per panel; more stop being readable
MAX_MATRICES = 12  # confusion-matrix panels per figure
MAX_SENSITIVITY_PANELS = 8
NOTABLE_CONFUSION = 0.02  # share of a true class predicted as another, labelled in the matrix
_STYLE = {
    "svg.hashsalt": "mnistbench",  # stable SVG ids: re-rendering the same store gives equal files
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
]  # fmt: skip


def _save(fig: MplFigure, out_dir: Path, name: str, title: str, caption: str) -> Figure:
    """Write `name`.png and `name`.svg into out_dir/figures and return the block that shows them."""
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=DPI, metadata={"Software": None})
    fig.set_layout_engine("none")  # keep the positions just computed: layout is the slow part
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None})
    return Figure(title, f"figures/{name}.png", f"figures/{name}.svg", caption)


def _styled(function: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder under the report's rcParams (read when artists are made and saved)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(_STYLE):
            return function(*args, **kwargs)

    return wrapper


def _new(width: float, height: float, ncols: int = 1, nrows: int = 1):
    fig = MplFigure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _family_colors(groups: Sequence[RunGroup]) -> dict[str, str]:
    families = sorted({_family(g.model) for g in groups})
    return {f: _PALETTE[i % len(_PALETTE)] for i, f in enumerate(families)}


def _family(model: str) -> str:
    info = model_info(model)
    return info.family if info else "unregistered"


def _datasets(groups: Sequence[RunGroup]) -> list[str]:
    return sorted({g.dataset for g in groups}, key=lambda d: (d != "mnist", d))


def _short(value: float) -> str:
    """Tick label: 0.25, 40, 500k, 1.5M."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _log_fraction(value: float, values: Sequence[float]) -> float:
    """Where `value` sits between min and max of `values` on a log scale (0..1)."""
    low, high = math.log(min(values)), math.log(max(values))
    return 0.0 if high == low else (math.log(value) - low) / (high - low)


def _log_axis(ax, values: Sequence[float]) -> None:
    """Log x axis; over less than two decades, plain numbers at 1-2-5 steps (no 3×10⁻¹ clutter)."""
    ax.set_xscale("log")
    if values and max(values) / min(values) < 100:
        plain = FuncFormatter(lambda v, _: _short(v))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plain)


# ------------------------------------------------------------------- accuracy vs a cost


@_styled
def accuracy_vs_cost(
    data: ReportData,
    out_dir: Path,
    *,
    name: str,
    title: str,
    cost: Callable[[RunGroup], Stat | None],
    xlabel: str,
    caption: str,
    published: Callable[[str], tuple[float, float] | None] | None = None,
) -> Figure | None:
    """Honest test accuracy against a cost (log x), one panel per dataset, Pareto front marked.

    Each point is a group of seeds (mean, error bars = std); the front joins the groups that no
    other group beats on both cost and accuracy. `published` gives hollow grey reference points.
    Runs on a subset of the data are left out.
    """
    points = [
        (g, c, a)
        for g in full_data_groups(data.groups)
        if (c := cost(g)) is not None and c.mean > 0 and (a := g.accuracy()) is not None
    ]
    if not points:
        return None
    labels = group_labels(data.groups)
    colors = _family_colors([g for g, _, _ in points])
    datasets = _datasets([g for g, _, _ in points])
    fig, axes = _new(6.4 * len(datasets), 4.6, ncols=len(datasets))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        here = [(g, c, a) for g, c, a in points if g.dataset == dataset]
        seen_families: set[str] = set()
        for group, c, a in here:
            family = _family(group.model)
            ax.errorbar(
                c.mean,
                100 * a.mean,
                yerr=None if a.std is None else 100 * a.std,
                xerr=c.std,
                fmt="o",
                color=colors[family],
                ms=6,
                capsize=2,
                label=family if family not in seen_families else None,
            )
            seen_families.add(family)
            # labels of points in the right part of the panel go to their left, inside the axes
            right = _log_fraction(c.mean, [p[1].mean for p in here]) > 0.6
            ax.annotate(
                labels[group.key],
                (c.mean, 100 * a.mean),
                xytext=(-4 if right else 4, 4),
                textcoords="offset points",
                ha="right" if right else "left",
                fontsize=7,
            )
        front = pareto_front([(c.mean, a.mean) for _, c, a in here])
        xs = [here[i][1].mean for i in front]
        ys = [100 * here[i][2].mean for i in front]
        ax.step(xs, ys, where="post", color="#d62728", lw=1.2, ls="--", label="Pareto front")
        ax.scatter(xs, ys, s=140, facecolors="none", edgecolors="#d62728", lw=1.2, zorder=3)
        if published is not None and dataset == "mnist":
            refs = {g.model: ref for g, _, _ in here if (ref := published(g.model)) is not None}
            if refs:
                ax.scatter(
                    [x for x, _ in refs.values()],
                    [100 * y for _, y in refs.values()],
                    marker="D",
                    facecolors="none",
                    edgecolors="#555555",
                    label="published",
                    zorder=2,
                )
        _log_axis(ax, [c.mean for _, c, _ in here])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy @ best val (%)")
        ax.set_title(f"{title} — {dataset}")
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out_dir, name, title, caption)


# ------------------------------------------------------------------ published vs measured


@dataclass(frozen=True)
class AccuracyBars:
    """One model's published MNIST accuracy and its measured ones under the three protocols."""

    label: str
    published: float
    best_test: Stat | None  # max over epochs (the published studies' protocol)
    honest: Stat | None  # test accuracy at the best validation epoch
    final: Stat | None


@_styled
def published_vs_measured(bars: Sequence[AccuracyBars], out_dir: Path) -> Figure | None:
    """Horizontal bars per model: published, best-test, honest and final accuracy (MNIST)."""
    if not bars:
        return None
    series = (
        ("published", "#9a9a9a", lambda b: b.published, lambda b: None),
        (
            "best test (published protocol)",
            "#f28e2b",
            lambda b: _mean(b.best_test),
            lambda b: _std(b.best_test),
        ),
        (
            "test @ best val (honest)",
            "#4e79a7",
            lambda b: _mean(b.honest),
            lambda b: _std(b.honest),
        ),
        ("final test", "#59a14f", lambda b: _mean(b.final), lambda b: _std(b.final)),
    )
    fig, axes = _new(9.0, 1.0 + 0.55 * len(bars))
    ax = axes[0][0]
    height = 0.8 / len(series)
    values = []
    for index, (name, color, value, spread) in enumerate(series):
        ys, xs, errors = [], [], []
        for row, bar in enumerate(bars):
            if (v := value(bar)) is not None:
                ys.append(row + index * height)
                xs.append(100 * v)
                errors.append(0 if (s := spread(bar)) is None else 100 * s)
        values += xs
        ax.barh(ys, xs, height=height, xerr=errors, color=color, label=name, capsize=2)
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(bars))])
    ax.set_yticklabels([b.label for b in bars], fontsize=8)
    ax.invert_yaxis()
    # zoom on the interesting range: all figures sit within a few points of each other
    ax.set_xlim(max(0.0, min(values) - 1.0), min(100.0, max(values) + 0.5))
    ax.set_xlabel("MNIST test accuracy (%)")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    return _save(
        fig,
        out_dir,
        "published_vs_measured",
        "Published vs measured accuracy",
        "Per model (study in brackets): the published figure, and ours under the published "
        "protocol (best test accuracy over epochs), the honest one (test accuracy at the best "
        "validation epoch) and the final epoch's; bars = std over seeds. The x axis is zoomed.",
    )


def _mean(stat: Stat | None) -> float | None:
    return None if stat is None else stat.mean


def _std(stat: Stat | None) -> float | None:
    return None if stat is None else stat.std


# ------------------------------------------------------------------------ learning curves


def _mean_curve(data: ReportData, group: RunGroup, key: str) -> tuple[list[int], list[float]]:
    """Per-epoch mean of `key` over the group's seeds (epochs where some seed has a value)."""
    values: dict[int, list[float]] = {}
    for run in group.runs:
        for row in data.epochs.get(run.run_id, []):
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.setdefault(int(row["epoch"]), []).append(float(value))
    epochs = sorted(values)
    return epochs, [sum(values[e]) / len(values[e]) for e in epochs]


@_styled
def learning_curves(data: ReportData, out_dir: Path) -> list[Figure]:
    """Validation accuracy, test accuracy and training loss per epoch, one figure per dataset."""
    labels = group_labels(data.groups)
    panels = (
        ("val_accuracy", "validation accuracy (%)", 100.0),
        ("test_accuracy", "test accuracy (%)", 100.0),
        ("train_loss", "training loss", 1.0),
    )
    figures = []
    for dataset in _datasets(data.groups):
        groups = [g for g in data.groups if g.dataset == dataset and data_has_epochs(data, g)]
        if not groups:
            continue
        shown = groups[:MAX_CURVES]
        fig, axes = _new(15, 4.4, ncols=3)
        for index, group in enumerate(shown):
            color = _PALETTE[index % len(_PALETTE)]
            style = "-" if index < len(_PALETTE) else "--"
            for ax, (key, _, scale) in zip(axes[0], panels, strict=True):
                epochs, values = _mean_curve(data, group, key)
                if epochs:
                    ax.plot(
                        epochs,
                        [scale * v for v in values],
                        style,
                        marker="o",
                        ms=3,
                        color=color,
                        label=labels[group.key],
                    )
        for ax, (_, ylabel, _) in zip(axes[0], panels, strict=True):
            ax.set_title(f"{ylabel.split(' (')[0]} — {dataset}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0][2].set_yscale("log")
        handles, names = axes[0][0].get_legend_handles_labels()
        if not handles:
            handles, names = axes[0][2].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right upper", fontsize=7)
        omitted = len(groups) - len(shown)
        caption = (
            "Mean over seeds per epoch. Validation is a held-out part of the training set; "
            "test is the official 10,000-image test set."
            + (f" {omitted} more configurations are in the tables only." if omitted else "")
        )
        figures.append(
            _save(
                fig,
                out_dir,
                f"learning_curves_{_slug(dataset)}",
                f"Learning curves — {dataset}",
                caption,
            )
        )
    return figures


def data_has_epochs(data: ReportData, group: RunGroup) -> bool:
    return any(data.epochs.get(r.run_id) for r in group.runs)


# --------------------------------------------------------------------- confusion matrices


def _matrix(data: ReportData, group: RunGroup) -> list[list[int]] | None:
    """The group's test-set confusion matrices summed over its seeds (None when absent)."""
    total: list[list[int]] | None = None
    for run in group.runs:
        for artefact in data.artefacts.get(run.run_id, []):
            if artefact.name != "confusion_matrix":
                continue
            try:
                matrix = json.loads(artefact.content)
            except (ValueError, UnicodeDecodeError):
                continue
            if not matrix or not all(isinstance(row, list) for row in matrix):
                continue
            if total is None:
                total = [list(map(int, row)) for row in matrix]
            elif len(total) == len(matrix):
                total = [
                    [a + int(b) for a, b in zip(r1, r2, strict=False)]
                    for r1, r2 in zip(total, matrix, strict=True)
                ]
    return total


@_styled
def confusion_matrices(data: ReportData, out_dir: Path) -> list[Figure]:
    """Row-normalised test confusion matrices (summed over seeds), one grid per dataset."""
    labels = group_labels(data.groups)
    figures = []
    for dataset in _datasets(data.groups):
        found = [
            (g, m)
            for g in data.groups
            if g.dataset == dataset and (m := _matrix(data, g)) is not None
        ]
        if not found:
            continue
        shown = found[:MAX_MATRICES]
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig, axes = _new(3.2 * cols, 3.2 * rows, ncols=cols, nrows=rows)
        for ax in axes.flat[len(shown) :]:
            ax.set_visible(False)
        for ax, (group, matrix) in zip(axes.flat, shown, strict=False):
            rates = [[v / max(1, sum(row)) for v in row] for row in matrix]
            # a power norm keeps 1-2% confusions visible next to ~99% diagonals
            image = ax.imshow(rates, cmap="Blues", norm=PowerNorm(gamma=0.3, vmin=0, vmax=1))
            n = len(matrix)
            # only the notable confusions get a number: hundreds of labels make it slow and noisy
            for i in range(n):
                for j in range(n):
                    if i != j and rates[i][j] >= NOTABLE_CONFUSION:
                        ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=6)
            correct = sum(matrix[i][i] for i in range(n))
            total = max(1, sum(map(sum, matrix)))
            ax.set_title(f"{labels[group.key]}\n{100 * correct / total:.2f}% correct", fontsize=8)
            ax.set_xticks(range(n))
            ax.set_yticks(range(n))
            ax.tick_params(labelsize=6)
            ax.set_xlabel("predicted", fontsize=7)
            ax.set_ylabel("true", fontsize=7)
            ax.grid(False)
        fig.colorbar(image, ax=axes, shrink=0.6, label="fraction of the true class")
        omitted = len(found) - len(shown)
        caption = (
            "Test set after the last epoch, summed over seeds; colour = share of the true "
            "class (power scale, so small confusions show); numbers = counts of the "
            "confusions that take at least "
            f"{100 * NOTABLE_CONFUSION:g}% of a class."
            + (f" {omitted} more are left out." if omitted else "")
        )
        figures.append(
            _save(
                fig,
                out_dir,
                f"confusion_matrices_{_slug(dataset)}",
                f"Confusion matrices — {dataset}",
                caption,
            )
        )
    return figures


# ------------------------------------------------------------ optimizer / lr sensitivity


@_styled
def sensitivity(families: Sequence[Sequence[RunGroup]], out_dir: Path) -> Figure | None:
    """Accuracy against learning rate, one line per optimizer, one panel per model/dataset."""
    if not families:
        return None
    shown = families[:MAX_SENSITIVITY_PANELS]
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = _new(5.2 * cols, 3.8 * rows, ncols=cols, nrows=rows)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, family in zip(axes.flat, shown, strict=False):
        optimizers = sorted({str(g.config.get("optimizer")) for g in family})
        for index, optimizer in enumerate(optimizers):
            points = sorted(
                (float(g.config.get("lr", math.nan)), a)
                for g in family
                if str(g.config.get("optimizer")) == optimizer and (a := g.accuracy()) is not None
            )
            if not points:
                continue
            ax.errorbar(
                [lr for lr, _ in points],
                [100 * a.mean for _, a in points],
                yerr=[0 if a.std is None else 100 * a.std for _, a in points],
                fmt="-o",
                ms=4,
                capsize=2,
                color=_PALETTE[index % len(_PALETTE)],
                label=optimizer,
            )
        first = family[0]
        _log_axis(ax, [float(g.config["lr"]) for g in family if g.config.get("lr")])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("test accuracy @ best val (%)")
        ax.set_title(f"{first.model} — {first.dataset}, {first.config.get('epochs', '?')} epochs")
        ax.legend(fontsize=7)
    caption = (
        "Runs of one model that differ only in optimizer and learning rate; mean ± std over seeds."
        + (
            f" {len(families) - len(shown)} more sets are in the table."
            if len(families) > len(shown)
            else ""
        )
    )
    return _save(fig, out_dir, "sensitivity", "Optimizer and learning-rate sensitivity", caption)


# --------------------------------------------------------------------------- CPU vs GPU


@_styled
def speedup(rows: Sequence[tuple[str, dict[str, Stat]]], out_dir: Path) -> Figure | None:
    """Training time per epoch per device (log scale), one group of bars per configuration."""
    if not rows:
        return None
    devices = sorted({d for _, times in rows for d in times}, key=lambda d: (d != "cpu", d))
    fig, axes = _new(max(6.0, 1.4 * len(rows) + 3), 4.2)
    ax = axes[0][0]
    width = 0.8 / len(devices)
    for index, device in enumerate(devices):
        xs = [i + index * width for i, (_, times) in enumerate(rows) if device in times]
        ys = [times[device].mean for _, times in rows if device in times]
        ax.bar(xs, ys, width=width, label=device, color=_PALETTE[index % len(_PALETTE)])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([label for label, _ in rows], rotation=20, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("training time per epoch (s)")
    ax.legend()
    return _save(
        fig,
        out_dir,
        "cpu_vs_gpu",
        "CPU vs GPU: training time per epoch",
        "Same configuration apart from the device (and the precision picked for it).",
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "x"
