"""Per-epoch and per-class figures: learning curves, confusion matrices, lr sensitivity."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.colors import PowerNorm

from mnistbench.report.collect import ReportData, RunGroup, group_labels
from mnistbench.report.document import Figure
from mnistbench.report.figures.common import (
    PALETTE,
    datasets_in,
    grid,
    log_axis,
    new,
    save,
    slug,
    styled,
)

MAX_CURVES = 14  # learning-curve lines per panel; more stop being readable
MAX_MATRICES = 12  # confusion-matrix panels per figure
MAX_SENSITIVITY_PANELS = 8
NOTABLE_CONFUSION = 0.02  # share of a true class predicted as another, labelled in the matrix


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


@styled
def learning_curves(data: ReportData, out_dir: Path) -> list[Figure]:
    """Validation accuracy, test accuracy and training loss per epoch, one figure per dataset."""
    labels = group_labels(data.groups)
    panels = (
        ("val_accuracy", "validation accuracy (%)", 100.0),
        ("test_accuracy", "test accuracy (%)", 100.0),
        ("train_loss", "training loss", 1.0),
    )
    figures = []
    for dataset in datasets_in([g.dataset for g in data.groups]):
        groups = [g for g in data.groups if g.dataset == dataset and data_has_epochs(data, g)]
        if not groups:
            continue
        shown = groups[:MAX_CURVES]
        fig, axes = new(15, 4.4, ncols=3)
        for index, group in enumerate(shown):
            color = PALETTE[index % len(PALETTE)]
            style = "-" if index < len(PALETTE) else "--"
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
            save(
                fig,
                out_dir,
                f"learning_curves_{slug(dataset)}",
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


@styled
def confusion_matrices(data: ReportData, out_dir: Path) -> list[Figure]:
    """Row-normalised test confusion matrices (summed over seeds), one grid per dataset."""
    labels = group_labels(data.groups)
    figures = []
    for dataset in datasets_in([g.dataset for g in data.groups]):
        found = [
            (g, m)
            for g in data.groups
            if g.dataset == dataset and (m := _matrix(data, g)) is not None
        ]
        if not found:
            continue
        shown = found[:MAX_MATRICES]
        fig, axes = grid(len(shown), 4, 3.2, 3.2)
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
            save(
                fig,
                out_dir,
                f"confusion_matrices_{slug(dataset)}",
                f"Confusion matrices — {dataset}",
                caption,
            )
        )
    return figures


# ------------------------------------------------------------ optimizer / lr sensitivity


@styled
def sensitivity(families: Sequence[Sequence[RunGroup]], out_dir: Path) -> Figure | None:
    """Accuracy against learning rate, one line per optimizer, one panel per model/dataset."""
    if not families:
        return None
    shown = families[:MAX_SENSITIVITY_PANELS]
    fig, axes = grid(len(shown), 3, 5.2, 3.8)
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
                color=PALETTE[index % len(PALETTE)],
                label=optimizer,
            )
        first = family[0]
        log_axis(ax, [float(g.config["lr"]) for g in family if g.config.get("lr")])
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
    return save(fig, out_dir, "sensitivity", "Optimizer and learning-rate sensitivity", caption)


# --------------------------------------------------------------------------- CPU vs GPU
