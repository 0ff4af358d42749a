"""Bar charts: published against measured accuracy per model, time per epoch per device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnistbench.report.document import Figure
from mnistbench.report.figures.common import PALETTE, new, save, styled
from mnistbench.report.format import Stat


@dataclass(frozen=True)
class AccuracyBars:
    """A published accuracy and ours of the same dataset and setting, under three protocols."""

    label: str
    published: float
    best_test: Stat | None  # max over epochs (the published studies' protocol)
    honest: Stat | None  # test accuracy at the best validation epoch
    final: Stat | None


@styled
def published_vs_measured(bars: Sequence[AccuracyBars], out_dir: Path) -> Figure | None:
    """Horizontal bars per configuration: published, best-test, honest and final accuracy."""
    if not bars:
        return None
    series = (
        ("published", "#9a9a9a", lambda b: b.published, lambda b: None),
        (
            "best test (max over epochs)",
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
    fig, axes = new(9.0, 1.0 + 0.55 * len(bars))
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
    ax.set_xlabel("test accuracy (%)")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    return save(
        fig,
        out_dir,
        "published_vs_measured",
        "Published vs measured accuracy",
        "Per configuration (study and dataset in brackets): the published figure of the same "
        "dataset and closest setting, and ours as the maximum test accuracy over epochs (the "
        "protocol of studies A and D), the honest one (test accuracy at the best validation "
        "epoch) and the final epoch's; bars = std over seeds. The x axis is zoomed.",
    )


def _mean(stat: Stat | None) -> float | None:
    return None if stat is None else stat.mean


def _std(stat: Stat | None) -> float | None:
    return None if stat is None else stat.std


# ------------------------------------------------------------------------ learning curves


@dataclass(frozen=True)
class TimeBar:
    """One configuration's training time per epoch on one device, and how it was measured."""

    label: str  # device, precision and what it shared, e.g. "cpu fp32\n1 thread, CPU 41%"
    time_s: Stat


@styled
def speedup(
    rows: Sequence[tuple[str, Sequence[TimeBar]]], out_dir: Path, caption: str
) -> Figure | None:
    """Training time per epoch per device, one group of bars per configuration, on a linear
    axis from zero (bar heights in proportion to the times); each bar says its device,
    precision and what it shared, and the GPU bars their speed-up over the CPU's."""
    if not rows:
        return None
    width_in = max(6.0, 2.6 * sum(len(bars) for _, bars in rows) + 1.5)
    fig, axes = new(width_in, 4.6)
    ax = axes[0][0]
    ticks, names, x = [], [], 0.0
    for row_index, (title, bars) in enumerate(rows):
        start = x
        for index, bar in enumerate(bars):
            mean = bar.time_s.mean
            ax.bar([x], [mean], width=0.8, color=PALETTE[index % len(PALETTE)],
                   yerr=None if bar.time_s.std is None else [bar.time_s.std], capsize=3)  # fmt: skip
            ratio = "" if index == 0 else f"\n{bars[0].time_s.mean / mean:.1f}× faster"
            ax.annotate(f"{mean:.1f} s{ratio}", (x, mean), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
            ticks.append(x)
            names.append(bar.label)
            x += 1.0
        ax.text((start + x - 1.0) / 2, -0.16, title, transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8, weight="bold")  # fmt: skip
        x += 0.6 if row_index < len(rows) - 1 else 0.0
    ax.set_xticks(ticks)
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylim(0, 1.25 * max(b.time_s.mean for _, bars in rows for b in bars))
    ax.set_ylabel("training time per epoch (s), linear from 0")
    return save(fig, out_dir, "cpu_vs_gpu", "CPU vs GPU: training time per epoch", caption)
