"""Bar charts: published against measured accuracy per model, time per epoch per device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnistbench.report.document import Figure
from mnistbench.report.figures.common import PALETTE, new, save, styled
from mnistbench.report.format import Stat


@dataclass(frozen=True)
class ForestRow:
    """One published figure against our configuration at its setting: our mean minus the
    published figure and the 95% prediction interval for one run of ours, minus the same, in
    percentage points; and the verdict of statistics.verdict_against_published."""

    study: str
    label: str  # short: "mlp · mnist"
    gap_pt: float
    low_pt: float
    high_pt: float
    verdict: str  # "consistent", "above", "below"
    seeds: int


VERDICT_COLORS = {"consistent": "#4e79a7", "above": "#59a14f", "below": "#e15759"}


@styled
def published_vs_measured(rows: Sequence[ForestRow], out_dir: Path) -> Figure | None:
    """A forest plot: per study row, ours minus published with its interval, a zero line,
    the verdict at the right; rows grouped by study under a heading."""
    if not rows:
        return None
    ordered = sorted(rows, key=lambda r: r.study)
    ys, labels, headings, y = [], [], [], 0
    for index, row in enumerate(ordered):
        if index == 0 or row.study != ordered[index - 1].study:
            headings.append((y, f"Study {row.study}"))
            y += 1
        ys.append(y)
        labels.append(row.label)
        y += 1
    fig, axes = new(8.0, max(2.5, 0.8 + 0.22 * y))
    ax = axes[0][0]
    for row, at in zip(ordered, ys, strict=True):
        color = VERDICT_COLORS.get(row.verdict, "#555555")
        spread = [[row.gap_pt - row.low_pt], [row.high_pt - row.gap_pt]]
        ax.errorbar([row.gap_pt], [at], xerr=spread, fmt="o", ms=4, color=color, capsize=2)
        seeds = "" if row.seeds > 1 else " (1 seed)"
        ax.text(1.01, at, f"{row.verdict}{seeds}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=7, color=color)  # fmt: skip
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_yticks([at for at, _ in headings] + ys)
    ax.set_yticklabels([h for _, h in headings] + labels, fontsize=7)
    for tick in ax.get_yticklabels()[: len(headings)]:
        tick.set_fontweight("bold")
    ax.set_ylim(y - 0.4, -0.6)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("ours − published (percentage points)")
    return save(
        fig,
        out_dir,
        "published_vs_measured",
        "Published vs measured: ours minus published",
        "One row per published figure we have runs at the setting of, grouped by study: our "
        "mean over seeds under the study's own protocol minus the published figure (a dot), and "
        "the 95% prediction interval for one run of our recipe (seed spread and test "
        "sampling) minus the same (bars). A published run is one run, so the verdict at the "
        "right (statistics.verdict_against_published, the rule every view uses) is "
        "'consistent' when the bars cross zero, else 'above' or 'below'. With one seed the "
        "bars are the test sampling alone.",
    )


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
            error = None if bar.time_s.std is None else [bar.time_s.std]
            ax.bar([x], [mean], width=0.8, color=PALETTE[index % len(PALETTE)], yerr=error,
                   capsize=3)  # fmt: skip
            ratio = "" if index == 0 else f"\n{bars[0].time_s.mean / mean:.1f}× faster"
            ax.annotate(f"{mean:.1f} s{ratio}", (x, mean), xytext=(0, 3), fontsize=8,
                        textcoords="offset points", ha="center", va="bottom")  # fmt: skip
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
