"""Accuracy under a sequence of conditions (clean, corrupted, attacked), one line per model and
one marker shape per family: the robustness view's figure, drawn from plain figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnistbench.report.document import Figure
from mnistbench.report.figures.common import colors_for, new, save, slug, styled

MARKERS = "osD^v<>pP*Xhd"


@dataclass(frozen=True)
class ConditionLine:
    """One model's accuracy (percent) under each condition; None where it was not measured."""

    model: str
    label: str
    family: str
    accuracy_pct: Sequence[float | None]


@styled
def accuracy_by_condition(
    lines: Sequence[ConditionLine], conditions: Sequence[str], dataset: str, out: Path
) -> Figure:
    """Each line's accuracies at the conditions' positions, a missing value left out."""
    fig, axes = new(7.5, 4.2)
    ax = axes[0][0]
    families = sorted({line.family for line in lines})
    marker = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(families)}
    colors = colors_for([line.model for line in lines])
    for line in lines:
        points = [(x, y) for x, y in enumerate(line.accuracy_pct) if y is not None]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        color = colors[line.model]
        ax.plot(xs, ys, color=color, linewidth=0.8, alpha=0.6)
        ax.plot(xs, ys, linestyle="none", marker=marker[line.family], color=color,
                label=line.label)  # fmt: skip
    ax.set_xticks(range(len(conditions)), list(conditions))
    ax.set_ylabel("test accuracy (%), mean over seeds")
    ax.set_ylim(0, 100)
    ax.set_title(f"{dataset}: clean, corrupted and attacked accuracy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    caption = (
        "Each line is one configuration (mean over its evaluated seeds); the marker's shape is "
        "its family. A missing marker: the evaluation does not apply (no input gradient) or "
        "was not run. Attacks on the first N test images only; see the table for intervals."
    )
    return save(fig, out, f"robustness-{slug(dataset)}", f"Robustness on {dataset}", caption)
