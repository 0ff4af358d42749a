"""What a family is worth beyond clean accuracy: the `robustness` view, its section of the
report and its figure, read from the runs' "evaluation_<what>" artefacts (`mnistbench
evaluate`, experiments/evaluate.py). docs/robustness.md explains every figure.

Accuracies over seeds carry statistics.seeds_images_interval (95% CI of the mean: seeds, then
test images; with one seed, test sampling only, marked "1 seed"). ECE and NLL are not
proportions, so they show the mean over seeds and, with several seeds, their range. Artefacts
may come from merged files: each is parsed as JSON and every value checked before use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnistbench.artefacts import CORRUPTED_OUTCOMES, PREDICTIONS_KIND, read_corrupted_outcomes
from mnistbench.report.collect import ReportData, RunGroup
from mnistbench.report.document import Figure, Paragraph, Section, Table
from mnistbench.report.figures.common import datasets_in
from mnistbench.report.figures.conditions import ConditionLine, accuracy_by_condition
from mnistbench.report.reproduction import trained_on
from mnistbench.statistics import (
    compare_correct,
    p_text,
    seeds_images_interval,
    verdict_between,
)
from mnistbench.store import Artefact

EVALUATION_KIND = "evaluation"
ATTACK_EPSILONS = ("0.1", "0.3")  # the view's columns; every run stores 0.05 to 0.3
# the MNIST-C paper's own per-corruption table (Mu & Gilmer 2019, its CNN's test error): not
# quoted, because its exact numbers were not found in any source this project could reach;
# docs/robustness.md says so. Typing approximations would be a wrong figure with our name on it.
MNIST_C_PUBLISHED: dict[str, float] = {}

RULES = (
    "Each row is one configuration, its seeds pooled; each figure is the mean over the seeds "
    "that were evaluated (`mnistbench evaluate`), with the 95% CI of the mean (statistics."
    "seeds_images_interval: seeds, then test images) for accuracies, and the range over seeds "
    "for ECE and NLL. Clean is the reloaded model on the whole test set (equal to the run's "
    "recorded test accuracy); corruptions are MNIST-C's 15 applied to the test set with one "
    "seed for every run; ECE uses 15 equal-width bins; FGSM and PGD (20 steps, random start, "
    "scored as the per-image worst case with FGSM) are L-inf attacks in [0, 1] pixels on the "
    "first N test images. 'n/a' says an evaluation does not apply (the SVC and the LightGBM "
    "probe have no input gradient; the SVC gives no probabilities)."
)

PAIRED_RULE = (
    "'Corrupted: against the most robust' pairs each row with the row of its data set whose "
    "mean corrupted accuracy is highest, on the same corrupted images: the difference of the "
    "mean corrupted accuracies with the paired bootstrap's 95% CI and p-value (test images "
    "resampled with their 15 corrupted copies together, seeds on each side; docs/statistics.md), "
    "and 'less robust' or 'more robust' where p < 0.05, else 'no detectable difference'. It "
    "needs each seed's per-image outcomes ('—' for evaluations stored before they were kept: "
    "`mnistbench evaluate RUN --what corruptions` records them); `mnistbench compare A B --on "
    "corrupted` pairs any two."
)

# ------------------------------------------------------------------------- reading artefacts


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def evaluations_of(artefacts: list[Artefact]) -> dict[str, dict]:
    """A run's evaluations by what they measured; artefacts that do not parse are skipped."""
    found = {}
    for artefact in artefacts:
        if artefact.kind != EVALUATION_KIND or not artefact.name.startswith("evaluation_"):
            continue
        try:
            value = json.loads(artefact.content)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(value, dict):
            found[artefact.name.removeprefix("evaluation_")] = value
    return found


@dataclass
class SeedFigures:
    """One run's evaluated figures (None: not measured or not applicable)."""

    clean: float | None = None
    clean_images: int | None = None
    corruption_mean: float | None = None
    corruption_worst: tuple[str, float] | None = None
    per_corruption: dict[str, float] = field(default_factory=dict)
    ece: float | None = None
    nll: float | None = None
    attacks: dict[str, float] = field(default_factory=dict)  # "fgsm 0.1" -> accuracy
    attack_images: int | None = None
    notes: list[str] = field(default_factory=list)


def seed_figures(evaluations: dict[str, dict]) -> SeedFigures:
    out = SeedFigures()
    for result in evaluations.values():
        out.clean = _number(result.get("clean_accuracy")) if out.clean is None else out.clean
    corruptions = evaluations.get("corruptions") or {}
    accuracy = corruptions.get("accuracy")
    if isinstance(accuracy, dict):
        numbers = {str(k): _number(v) for k, v in accuracy.items()}
        out.per_corruption = {k: v for k, v in numbers.items() if v is not None}
        out.clean_images = _whole(corruptions.get("images"))
    out.corruption_mean = _number(corruptions.get("mean_accuracy"))
    worst = _number(corruptions.get("worst_accuracy"))
    if worst is not None and isinstance(corruptions.get("worst"), str):
        out.corruption_worst = (corruptions["worst"], worst)
    calibration = evaluations.get("calibration") or {}
    if calibration.get("applicable") is False:
        out.notes.append(str(calibration.get("reason", "calibration not applicable")))
    out.ece, out.nll = _number(calibration.get("ece")), _number(calibration.get("nll"))
    out.clean_images = out.clean_images or _whole(calibration.get("images"))
    adversarial = evaluations.get("adversarial") or {}
    if adversarial.get("applicable") is False:
        out.notes.append(str(adversarial.get("reason", "attacks not applicable")))
    for attack in ("fgsm", "pgd"):
        values = adversarial.get(attack)
        if isinstance(values, dict):
            for eps, value in values.items():
                if (number := _number(value)) is not None:
                    out.attacks[f"{attack} {eps}"] = number
    out.attack_images = _whole(adversarial.get("images"))
    if isinstance(adversarial.get("note"), str):
        out.notes.append(adversarial["note"])
    return out


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# ------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    group: RunGroup
    seeds: list[SeedFigures]
    # (seeds, corruptions, images) right/wrong on the corrupted test sets, when every evaluated
    # seed kept it for the same corrupted images; else None
    outcomes: np.ndarray | None = None
    corrupted_images: tuple | None = None  # which corrupted images (names and their hashes)

    @property
    def family(self) -> str:
        return str(self.group.card.get("family") or self.group.model)

    def values(self, pick) -> list[float]:
        return [v for s in self.seeds if (v := pick(s)) is not None]


def robustness_rows(groups: list[RunGroup], artefacts: dict[int, list[Artefact]]) -> list[Row]:
    """One row per configuration with at least one evaluated run."""
    rows = []
    for group in groups:
        figures = [
            (run, seed_figures(evaluations_of(artefacts.get(run.run_id, [])))) for run in group.runs
        ]
        evaluated = [(run, s) for run, s in figures if s.clean is not None]
        if evaluated:
            kept = [_outcomes_of(artefacts.get(run.run_id, [])) for run, _ in evaluated]
            row = Row(group, [s for _, s in evaluated])
            if kept and all(k is not None for k in kept) and len({k[1] for k in kept}) == 1:
                row.outcomes = np.stack([k[0] for k in kept])
                row.corrupted_images = kept[0][1]
            rows.append(row)
    return rows


def _outcomes_of(artefacts: list[Artefact]) -> tuple[np.ndarray, tuple] | None:
    """A run's right/wrong per corrupted image and what identifies those images, or None
    where it kept none or what it kept cannot be read (merged files are untrusted)."""
    found = [a for a in artefacts if a.kind == PREDICTIONS_KIND and a.name == CORRUPTED_OUTCOMES]
    if not found:
        return None
    try:
        kept = read_corrupted_outcomes(found[-1].content)
    except ValueError:
        return None
    names = tuple(sorted(kept.names))
    order = [kept.names.index(n) for n in names]
    key = (kept.n, kept.labels_sha256, tuple((n, kept.images_sha256[n]) for n in names))
    return kept.correct[order], key


def paired_cells(rows: list[Row]) -> dict[int, str]:
    """Per row (by position): is it more or less robust than the most robust row of its data
    set, from the paired bootstrap over the same corrupted images and the seeds (statistics.
    compare_correct; an image's 15 corrupted copies resampled together) and the one verdict
    rule (statistics.verdict_between at 5%)."""
    cells: dict[int, str] = {}
    by_images: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        if row.outcomes is None:
            cells[index] = "—"
        else:
            by_images.setdefault((row.group.dataset, row.corrupted_images), []).append(index)
    for indices in by_images.values():
        best = max(indices, key=lambda i: float(rows[i].outcomes.mean()))
        cells[best] = "reference: the most robust here" if len(indices) > 1 else "—"
        for index in indices:
            if index == best:
                continue
            paired = compare_correct(rows[index].outcomes, rows[best].outcomes)
            verdict = verdict_between(paired)
            word = {"A better": "more robust", "B better": "less robust"}.get(
                verdict.label, verdict.label
            )
            low, high = paired.difference_ci95
            cells[index] = (
                f"{word}: {100 * paired.difference:+.2f} pt (95% CI {100 * low:+.2f} to "
                f"{100 * high:+.2f}), {p_text(paired.p_value, 'p_floor' in paired.extra)}"
            )
    return cells


def accuracy_cell(
    values: list[float], n_images: int | None, correct: np.ndarray | None = None
) -> str:
    """'98.12% (97.90–98.31)' : the mean over seeds and its 95% CI (statistics module; with
    `correct`, each seed's per-image outcomes, the test images are resampled from them)."""
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if not n_images:
        return f"{100 * mean:.2f}%"
    interval = seeds_images_interval(values, n_images, correct=correct)
    seeds = "" if interval.seed_spread_known else ", 1 seed"
    return f"{100 * mean:.2f}% ({100 * interval.low:.2f}–{100 * interval.high:.2f}{seeds})"


def spread_cell(values: list[float], digits: int = 4) -> str:
    """The mean over seeds, and their range when there are several (not an interval)."""
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} (range {min(values):.{digits}f}–{max(values):.{digits}f})"


def _n(row: Row, attribute: str) -> int | None:
    sizes = [getattr(s, attribute) for s in row.seeds if getattr(s, attribute)]
    return min(sizes) if sizes else None


def _worst(row: Row) -> str:
    """The corruption worst on average over the seeds, and its mean accuracy."""
    names = {name for s in row.seeds for name in s.per_corruption}
    if not names:
        return "—"
    means = {
        name: sum(v) / len(v)
        for name in names
        if (v := [s.per_corruption[name] for s in row.seeds if name in s.per_corruption])
    }
    worst = min(means, key=means.__getitem__)
    return f"{worst} {100 * means[worst]:.2f}%"


def _attack(row: Row, key: str) -> str:
    if not any(s.attacks for s in row.seeds):
        return "n/a" if any("not applicable" in n for s in row.seeds for n in s.notes) else "—"
    return accuracy_cell(row.values(lambda s: s.attacks.get(key)), _n(row, "attack_images"))


PAIRED_HEADER = "Corrupted: against the most robust (paired)"
HEADER = [
    "Model", "Family", "Dataset", "Trained (protocol, recipe)", "Seeds", "Clean",
    "Corrupted (mean of 15)", PAIRED_HEADER,
    "Worst corruption", "ECE", "NLL", "FGSM 0.1", "FGSM 0.3", "PGD 0.1", "PGD 0.3",
]  # fmt: skip


def _corrupted_cell(row: Row, n_clean: int | None) -> str:
    """The mean corrupted accuracy and its CI: with the per-image outcomes, the bootstrap
    resamples whole test images (each with its 15 corrupted copies); without them, as if the
    150,000 outcomes were the test set's 10,000 (the one-level interval)."""
    values = row.values(lambda s: s.corruption_mean)
    if row.outcomes is None or not values:
        return accuracy_cell(values, n_clean)
    per_seed = row.outcomes.reshape(len(row.outcomes), -1).mean(1)
    return accuracy_cell([float(v) for v in per_seed], row.outcomes.shape[-1], row.outcomes)


def row_cells(row: Row, paired: str = "—") -> list[str]:
    n_clean = _n(row, "clean_images") or _recorded_n(row)
    ece, nll = row.values(lambda s: s.ece), row.values(lambda s: s.nll)
    not_applicable = any("probabilities" in n for s in row.seeds for n in s.notes)
    return [
        row.group.model,
        row.family,
        row.group.dataset,
        trained_on(row.group),
        str(len(row.seeds)),
        accuracy_cell(row.values(lambda s: s.clean), n_clean),
        _corrupted_cell(row, n_clean),
        paired,
        _worst(row),
        spread_cell(ece) if ece or not not_applicable else "n/a",
        spread_cell(nll) if nll or not not_applicable else "n/a",
        *(_attack(row, f"{a} {eps}") for a in ("fgsm", "pgd") for eps in ATTACK_EPSILONS),
    ]


def _recorded_n(row: Row) -> int | None:
    sizes = [r.metrics.get("n_test") for r in row.group.runs]
    return next((s for s in sizes if isinstance(s, int) and s > 0), None)


def notes(rows: list[Row]) -> list[str]:
    """Each distinct caveat the evaluations stored, with the models it applies to."""
    by_note: dict[str, list[str]] = {}
    for row in rows:
        for note in dict.fromkeys(n for s in row.seeds for n in s.notes):
            by_note.setdefault(note, []).append(row.group.model)
    return [f"{', '.join(dict.fromkeys(models))}: {note}." for note, models in by_note.items()]


def anchor_table(rows: list[Row]) -> list[Paragraph | Table]:
    """Our cnn's test error per corruption beside the MNIST-C paper's CNN (see
    MNIST_C_PUBLISHED: not quoted while its exact numbers are not in hand)."""
    # at its recipe only: a quick look (fewer epochs, a subset) is no anchor
    cnn = [
        r
        for r in rows
        if r.group.model == "cnn" and r.group.dataset == "mnist" and r.group.comparison.comparable
    ]
    if not cnn:
        return []
    row = cnn[0]
    names = list(dict.fromkeys(n for s in row.seeds for n in s.per_corruption))
    if not names:
        return []
    cells = []
    for name in names:
        accuracy = _corruption_mean(row, name)
        assert accuracy is not None  # names come from this row's own seeds
        error = 100 * (1 - accuracy)
        published = MNIST_C_PUBLISHED.get(name)
        cells.append(
            [name, f"{error:.2f}%", "not quoted" if published is None else f"{published}%"]
        )
    return [
        Paragraph(
            "The anchor: our cnn's test error on each corruption (mean over its evaluated "
            "seeds) beside the MNIST-C paper's CNN (Mu & Gilmer 2019). The paper's "
            "numbers are not quoted: none of the sources reachable when this was written gave "
            "them exactly, and approximations would be a wrong figure (docs/robustness.md)."
        ),
        Table(["Corruption", "Ours: cnn, test error", "MNIST-C paper, CNN"], cells),
    ]


def table_blocks(rows: list[Row]) -> list:
    """The rules, the table (with the paired column), the evaluations' caveats and the
    accuracy on each corruption."""
    paired = paired_cells(rows)
    cells = [row_cells(row, paired[i]) for i, row in enumerate(rows)]
    blocks: list = [Paragraph(RULES + " " + PAIRED_RULE), Table(HEADER, cells)]
    blocks += [Paragraph(note) for note in notes(rows)]
    return blocks + per_corruption_blocks(rows)


def _corruption_mean(row: Row, name: str) -> float | None:
    values = row.values(lambda s: s.per_corruption.get(name))
    return sum(values) / len(values) if values else None


def per_corruption_blocks(rows: list[Row]) -> list:
    """One row per configuration, one column per corruption: the accuracy on that corrupted
    test set, mean over the evaluated seeds; the lowest of each row in bold. Which corruption
    hurts which family is what the mean and the worst hide."""
    names = list(dict.fromkeys(n for r in rows for s in r.seeds for n in s.per_corruption))
    shown = [r for r in rows if any(s.per_corruption for s in r.seeds)]
    if not names or not shown:
        return []
    cells = []
    for row in shown:
        means = {name: _corruption_mean(row, name) for name in names}
        lowest = min((v for v in means.values() if v is not None), default=None)
        cells.append(
            [row.group.model, row.group.dataset, str(len(row.seeds))]
            + [
                "—" if v is None else (f"**{100 * v:.1f}**" if v == lowest else f"{100 * v:.1f}")
                for v in means.values()
            ]
        )
    return [
        Paragraph(
            "Accuracy (%) on each corrupted test set, mean over the row's evaluated seeds; each "
            "row's lowest in bold. The intervals of the mean over corruptions are in the table "
            "above; `mnistbench compare A B --on NAME` pairs two models on one corruption."
        ),
        Table(["Model", "Dataset", "Seeds", *names], cells),
    ]


def robustness_blocks(groups: list[RunGroup], data: ReportData) -> list:
    rows = robustness_rows(groups, data.artefacts)
    if not rows:
        return [Paragraph("No run in the store has been evaluated yet (`mnistbench evaluate`).")]
    blocks = table_blocks(rows)
    blocks += anchor_table(rows)
    return blocks


# ------------------------------------------------------------------------------------ figure

CONDITIONS = (
    ("clean", lambda s: s.clean),
    ("corrupted\n(mean of 15)", lambda s: s.corruption_mean),
    ("FGSM\neps 0.1", lambda s: s.attacks.get("fgsm 0.1")),
    ("PGD\neps 0.1", lambda s: s.attacks.get("pgd 0.1")),
    ("PGD\neps 0.3", lambda s: s.attacks.get("pgd 0.3")),
)


def robustness_figure(rows: list[Row], dataset: str, out: Path) -> Figure:
    """Accuracy under each condition, one line per model, one marker shape per family."""
    lines = []
    for row in (r for r in rows if r.group.dataset == dataset):
        per_condition = [row.values(pick) for _, pick in CONDITIONS]
        study = "; study protocol" if row.group.config.get("protocol") == "study" else ""
        lines.append(
            ConditionLine(
                model=row.group.model,
                label=f"{row.group.model} ({row.family}{study})",
                family=row.family,
                accuracy_pct=[100 * sum(v) / len(v) if v else None for v in per_condition],
            )
        )
    return accuracy_by_condition(lines, [name for name, _ in CONDITIONS], dataset, out)


def section(data: ReportData, out: Path | None) -> list[Section]:
    """The report's robustness section: the view's table and, with a folder, its figures."""
    rows = robustness_rows(data.groups, data.artefacts)
    if not rows:
        return []
    blocks = table_blocks(rows)
    if out is not None:
        blocks += [
            robustness_figure(rows, dataset, out)
            for dataset in datasets_in([r.group.dataset for r in rows])
        ]
    return [Section("robustness", "Robustness: corruptions, calibration, attacks", blocks)]
