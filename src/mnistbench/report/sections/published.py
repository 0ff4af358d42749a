"""The published tables rebuilt: one table per study, each row a configuration set against the
published figure of its dataset and closest setting; then the models no study covers, and the
quick looks (runs smaller than their recipe, never set against a published figure)."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report import cards, columns, uncertainty
from mnistbench.report import figures as figs
from mnistbench.report.collect import (
    ReportData,
    RunGroup,
)
from mnistbench.report.compare import accuracy_text, published_text, setting_text
from mnistbench.report.document import Column, Paragraph, Section, Table
from mnistbench.report.format import Stat
from mnistbench.report.sections.overview import STUDIES_A_AND_D


def _epochs_vs_published(group: RunGroup) -> str:
    epochs = Stat.of(r.metrics.get("epochs_completed", r.config.get("epochs")) for r in group.runs)
    ours = "—" if epochs is None else f"{epochs.mean:g}"
    figure = group.comparison.figure or {}
    stated = (figure.get("setting") or {}).get("epochs")
    return f"{ours} ({stated})" if stated is not None else ours


STUDY_COLUMNS: list[Column[RunGroup]] = [
    *columns.pick("model", "architecture", "dataset", "settings", "device"),
    Column("Epochs (published)", _epochs_vs_published),
    *columns.pick("seeds", "published_acc"),
    Column("Published setting", lambda g: published_text(g.comparison, g.card)),
    *columns.pick(
        "acc_max", "acc_best_val", "acc_final", "met", "honest_gap", "params_published",
        "params", "time_published", "time_epoch", "energy",
    ),
]  # fmt: skip
QUICK_LOOK_COLUMNS: list[Column[RunGroup]] = [
    *columns.pick("model", "dataset", "settings", "seeds", "acc_best_val", "acc_final"),
    *columns.pick("time_epoch", "device"),
    Column("Published", lambda g: g.comparison.not_comparable()),
]


def _card(model: str, data: ReportData) -> dict:
    """The card of a model's runs in the store, else what the studies publish for it."""
    return next((g.card for g in data.groups_of(model)), None) or cards.study_card(model)


def _not_run_row(model: str, dataset: str, card: dict) -> list[str]:
    """A study model with no configuration of `dataset` in the store: its published figure."""
    figure = next(iter(cards.figures(card, dataset)), {})
    cells = {
        "Model": model,
        "Architecture": cards.architecture(card),
        "Dataset": dataset,
        "Settings (vs recipe)": "not run yet",
        "Seeds": "0",
        "Epochs (published)": f"— ({(figure.get('setting') or {}).get('epochs', '—')})",
        "Published acc": accuracy_text(figure) if figure else "—",
        "Published setting": setting_text(figure) if figure else "—",
        "Params (published)": columns.published_params(figure),
    }
    return [cells.get(c.title, "—") for c in STUDY_COLUMNS]


def _study_models(data: ReportData) -> dict[str, list[str]]:
    """Study -> models, from the code (for rows not run yet) and from the stored cards."""
    found = {study: list(models) for study, models in cards.study_models().items()}
    for group in data.groups:
        for figure in cards.figures(group.card):
            models = found.setdefault(str(figure.get("study")), [])
            if group.model not in models:
                models.append(group.model)
    return found


def _best_published(model: str, data: ReportData) -> float:
    figures = cards.figures(_card(model, data))
    return max((f.get("test_accuracy") or 0.0 for f in figures), default=0.0)


def _rows(model: str, data: ReportData) -> tuple[list[RunGroup], list[list[str]]]:
    """(groups shown, rows not run yet) of one study model: per dataset, the configurations
    that stand for a published setting, else every comparable one."""
    groups = [g for g in data.groups_of(model) if g.comparison.comparable]
    card = _card(model, data)
    figure_datasets = {str(f.get("dataset")) for f in cards.figures(card)}
    shown, missing = [], []
    datasets = sorted(
        figure_datasets | {g.dataset for g in groups}, key=lambda d: (d != "mnist", d)
    )
    for dataset in datasets:
        here = [g for g in groups if g.dataset == dataset]
        chosen = [g for g in here if g.comparison.study_setting] or here
        shown += chosen
        if not chosen and dataset in figure_datasets:
            missing.append(_not_run_row(model, dataset, card))
    return shown, missing


def studies(data: ReportData, out: Path | None) -> list[Section]:
    top = Section(
        "published",
        "Published tables rebuilt",
        [
            Paragraph(
                "One table per published study, every model of the study listed whether or not "
                "it has been run. A row is set against the published figure of its own dataset "
                "and, where the study gives several, of the closest setting ('Published "
                "setting' names it and what still differs). Rows are the configurations at a "
                "published setting (speed settings such as precision aside), else every "
                "configuration of the model; runs smaller than their recipe (a subset, fewer "
                "epochs) are never compared and sit under 'Quick looks'. The verdict column "
                "sets our figure under the study's own protocol (max over epochs for "
                f"{STUDIES_A_AND_D}) against the published one. {uncertainty.VERDICT_RULE} "
                "Published times were taken on other "
                "hardware, so compare them with care. Each study's link leads to what it "
                "measured and where its figures come from."
            )
        ],
    )
    sections, listed = [top], set()
    for study, models in sorted(_study_models(data).items()):
        table_rows: list[list[str]] = []
        for model in sorted(models, key=lambda m: (-_best_published(m, data), m)):
            shown, missing = _rows(model, data)
            table_rows += [[c.cell(g) for c in STUDY_COLUMNS] for g in shown] + missing
            listed.add(model)
        card = next(
            (g.card for g in data.groups if study in (g.card.get("studies") or {})),
            _card(models[0], data),
        )
        about = cards.study(card, study)
        sections.append(
            Section(
                f"study-{study.lower()}",
                f"Study {study}: {about['title']}",
                [
                    Paragraph(
                        f"What the study measured, its published table and where it comes "
                        f"from: {cards.study_link(card, study, about['doc'])}."
                    ),
                    Table([c.title for c in STUDY_COLUMNS], table_rows),
                ],
                level=3,
            )
        )
    bars = [row for row, _ in forest_rows(data)]
    if out is not None and (figure := figs.published_vs_measured(bars, out)) is not None:
        top.blocks.append(figure)
    others = [g for g in data.groups if g.model not in listed and g.comparison.comparable]
    if others:
        sections.append(
            Section(
                "other-models",
                "Models without a published figure",
                [Table.of(STUDY_COLUMNS, others)],
                level=3,
            )
        )
    return sections


def _has_accuracy(group: RunGroup) -> bool:
    figure = group.comparison.figure
    return figure is not None and figure.get("test_accuracy") is not None


def forest_rows(data: ReportData) -> list[tuple[figs.ForestRow, RunGroup]]:
    """Every study table's rows with a published accuracy, as forest-plot rows (and the
    configuration behind each), in the tables' order."""
    found = []
    for study, models in sorted(_study_models(data).items()):
        for model in sorted(models, key=lambda m: (-_best_published(m, data), m)):
            shown, _ = _rows(model, data)
            found += [(r, g) for g in shown if _has_accuracy(g) and (r := _forest_row(g, study))]
    return found


def _forest_row(group: RunGroup, study: str) -> figs.ForestRow | None:
    """The group against its published figure under the study's protocol, by the one rule
    (the verdict and interval the tables show)."""
    metric, _ = columns.group_protocol(group)
    figure = group.comparison.figure
    if metric is None or figure is None or figure.get("test_accuracy") is None:
        return None
    values, _ = uncertainty.accuracies(group, metric)
    verdict = uncertainty.published_verdict(group, metric, figure)
    if not values or verdict.interval is None:
        return None
    published = float(figure["test_accuracy"])
    mean = sum(values) / len(values)
    return figs.ForestRow(
        study,
        f"{group.model} · {group.dataset}"
        + ("" if group.device == "cpu" else f" ({group.device} {group.config.get('precision')})"),
        100 * (mean - published),
        100 * (verdict.interval.low - published),
        100 * (verdict.interval.high - published),
        verdict.label,
        len(values),
    )


def quick_looks(data: ReportData, out: Path | None) -> list[Section]:
    """Runs smaller than their recipe: they show a model trains end to end, nothing more."""
    groups = [g for g in data.groups if not g.comparison.comparable]
    if not groups:
        return []
    return [
        Section(
            "quick-looks",
            "Quick looks (not compared with the published figures)",
            [
                Paragraph(
                    "These runs are smaller than their recipe (trained on a `--subset`, which "
                    "also trims the test set, or for fewer epochs): they show that a model "
                    "trains end to end, and their accuracies are not set against any published "
                    "figure."
                ),
                Table.of(QUICK_LOOK_COLUMNS, groups),
            ],
        )
    ]
