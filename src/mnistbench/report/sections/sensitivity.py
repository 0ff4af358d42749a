"""Optimizer and learning-rate sensitivity: configurations of one model that differ only there."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report import columns
from mnistbench.report import figures as figs
from mnistbench.report.collect import ReportData, RunGroup, varying_families
from mnistbench.report.document import Column, Paragraph, Section, Table


def _lr(group: RunGroup) -> str:
    lr = group.config.get("lr")
    return f"{lr:g}" if isinstance(lr, (int, float)) else "—"


SENSITIVITY_COLUMNS: list[Column[RunGroup]] = [
    *columns.pick("model", "dataset"),
    Column("Optimizer", lambda g: str(g.config.get("optimizer", "—"))),
    Column("LR", _lr),
    Column("Epochs", lambda g: str(g.config.get("epochs", "—"))),
    *columns.pick("seeds", "acc_best_val", "acc_max", "acc_final", "time_epoch"),
]


def section(data: ReportData, out: Path | None) -> list[Section]:
    found = Section("sensitivity", "Optimizer and learning-rate sensitivity")
    if not data.finished:
        return []
    families = varying_families(
        data.groups,
        ("optimizer", "lr"),
        label=lambda g: (g.config.get("optimizer"), g.config.get("lr")),
    )
    if not families:
        found.blocks.append(
            Paragraph(
                "No set of runs in the store differs only in optimizer or learning rate. Run one "
                "model with several `--optimizer` / `--lr` values (e.g. the efficiency-showdown "
                "suite) to fill this section."
            )
        )
        return [found]
    if out is not None and (figure := figs.sensitivity(families, out)) is not None:
        found.blocks.append(figure)
    rows = [
        group
        for family in families
        for group in sorted(
            family, key=lambda g: (str(g.config.get("optimizer")), g.config.get("lr") or 0)
        )
    ]
    found.blocks.append(Table.of(SENSITIVITY_COLUMNS, rows))
    return [found]
