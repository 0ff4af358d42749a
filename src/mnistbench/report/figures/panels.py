"""Per-epoch and per-class figures: learning curves, confusion matrices, lr sensitivity."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.colors import PowerNorm

from mnistbench.report import cards
from mnistbench.report.collect import (
    FINAL_PROTOCOL,
    HONEST_PROTOCOL,
    ReportData,
    RunGroup,
    recipe_groups,
)
from mnistbench.report.document import Figure
from mnistbench.report.figures.common import (
    PALETTE,
    datasets_in,
    grid,
    log_axis,
    save,
    slug,
    styled,
)

# what a panel's accuracy axis shows: RunGroup.accuracy() falls back to the final model for
# runs trained without a validation split, and the label must say so when it does
ACCURACY_LABELS = {
    frozenset({HONEST_PROTOCOL}): "test accuracy @ best val (%)",
    frozenset({FINAL_PROTOCOL}): "final test accuracy (%)",
    frozenset({HONEST_PROTOCOL, FINAL_PROTOCOL}): "test acc. @ best val, else final (%)",
}
CURVE_COLUMNS = 4  # learning-curve panels per row
MAX_MATRICES = 30  # confusion-matrix panels per figure (one per model)
MATRIX_COLUMNS = 5
COLORBAR_TICKS = (0.0, 0.01, 0.05, 0.2, 0.5, 1.0)
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


def stages(data: ReportData, group: RunGroup) -> list[tuple[int, str]]:
    """(first epoch, stage name) of each stage of the group's first run with epochs, in order;
    [] for a one-stage run (its epochs carry no stage, or one)."""
    for run in group.runs:
        rows = data.epochs.get(run.run_id) or []
        found: list[tuple[int, str]] = []
        for row in rows:
            name = row.get("stage")
            if name and (not found or found[-1][1] != name):
                found.append((int(row["epoch"]), str(name)))
        if rows:
            return found if len(found) > 1 else []
    return []


@styled
def learning_curves(data: ReportData, out_dir: Path) -> list[Figure]:
    """Small multiples per dataset: one panel per model family, test accuracy per epoch (solid)
    and validation accuracy (dashed) of each model at its recipe, stage boundaries drawn and
    named (a pretrained model's probe starts at epoch 11 or 21)."""
    figures = []
    for dataset in datasets_in([g.dataset for g in data.groups]):
        groups = recipe_groups(
            [g for g in data.groups if g.dataset == dataset and _epoch_count(data, g) > 1]
        )
        if not groups:
            continue
        families: dict[str, list[RunGroup]] = {}
        for group in groups:
            families.setdefault(cards.family(group.card), []).append(group)
        names = sorted(families)
        fig, axes = grid(len(names), CURVE_COLUMNS, 3.9, 3.1)
        for ax, family in zip(axes.flat, names, strict=False):
            _family_panel(ax, data, families[family])
            ax.set_title(family)
            ax.set_xlabel("epoch")
            ax.set_ylabel("accuracy (%)")
            ax.xaxis.get_major_locator().set_params(integer=True)
        caption = (
            "One panel per model family; each model at its configuration closest to the recipe "
            "(variants on the interactive page), mean over seeds per epoch. Solid: test "
            "accuracy (the official 10,000-image test set); dashed: validation accuracy (a "
            "held-out part of the training set; none for a recipe trained on all 60,000 "
            "images). A grey line and name mark where a stage starts (a pretraining stage "
            "has no accuracy: its curve begins at the probe)."
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


def _family_panel(ax, data: ReportData, groups: Sequence[RunGroup]) -> None:
    """The family's models: test (solid) and validation (dashed) accuracy, stage marks."""
    marked: set[tuple[int, str]] = set()
    for index, group in enumerate(groups):
        color = PALETTE[index % len(PALETTE)]
        epochs, values = _mean_curve(data, group, "test_accuracy")
        if epochs:
            ax.plot(epochs, [100 * v for v in values], "-", marker="o", ms=2.5, color=color,
                    label=group.model)  # fmt: skip
        epochs, values = _mean_curve(data, group, "val_accuracy")
        if epochs:
            ax.plot(epochs, [100 * v for v in values], "--", lw=1, color=color)
        for start, name in stages(data, group):
            if (start, name) in marked:
                continue
            marked.add((start, name))
            ax.axvline(start - 0.5, color="#888888", lw=0.8, ls=":", zorder=1)
            ax.text(start - 0.5, 0.97, f"{name} ", transform=ax.get_xaxis_transform(),
                    rotation=90, fontsize=6, color="#555555", va="top", ha="right")  # fmt: skip
    ax.legend(fontsize=6, loc="lower right", frameon=True, framealpha=0.8)


def _epoch_count(data: ReportData, group: RunGroup) -> int:
    """Epochs of the group's longest run (an SVM has one: no curve to draw)."""
    return max(len(data.epochs.get(r.run_id) or []) for r in group.runs)


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
    figures = []
    for dataset in datasets_in([g.dataset for g in data.groups]):
        found = [
            (g, m)
            for g in recipe_groups(data.groups)
            if g.dataset == dataset and (m := _matrix(data, g)) is not None
        ]
        if not found:
            continue
        shown = found[:MAX_MATRICES]
        fig, axes = grid(len(shown), MATRIX_COLUMNS, 2.7, 2.9)
        fig.set_size_inches(fig.get_figwidth() + 0.9, fig.get_figheight())  # the colour bar
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
            ax.set_title(f"{group.model}: {100 * correct / total:.2f}% correct", fontsize=8)
            ax.set_xticks(range(n))
            ax.set_yticks(range(n))
            ax.tick_params(labelsize=6)
            ax.set_xlabel("predicted", fontsize=7)
            ax.set_ylabel("true", fontsize=7)
            ax.grid(False)
        bar = fig.colorbar(image, ax=axes, shrink=0.6, label="fraction of the true class")
        bar.set_ticks(COLORBAR_TICKS)  # spread on the power scale (its default ones crowd at 1)
        omitted = len(found) - len(shown)
        caption = (
            "One panel per model, at its configuration closest to the recipe. "
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
        ax.set_ylabel(ACCURACY_LABELS[frozenset(g.accuracy_protocol() for g in family)])
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
