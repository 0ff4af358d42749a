"""Every run listed: the ones that did not finish, and every finished run one row per seed."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report import cards, columns
from mnistbench.report.collect import ReportData, RunGroup
from mnistbench.report.compare import settings_vs_recipe
from mnistbench.report.document import Column, Paragraph, Section, Table
from mnistbench.store import RunRecord

UNFINISHED_COLUMNS: list[Column[RunRecord]] = [
    Column("Run", lambda r: str(r.run_id)),
    Column("Model", lambda r: r.model),
    Column("Dataset", lambda r: r.dataset),
    Column("Status", lambda r: r.status),
    Column("Error", lambda r: (r.error or "").replace("\n", " ")[:300]),
    Column("Epochs done", lambda r: columns.listing([r.metrics.get("epochs_completed")])),
    Column("Settings", lambda r: settings_vs_recipe(r.config, cards.card_of(r))),
    Column("Seed", lambda r: str(r.config.get("seed", "—"))),
]
RUN_COLUMNS: list[Column[RunGroup]] = [
    Column("Run", lambda g: str(g.first.run_id)),
    *columns.pick(
        "model", "architecture", "dataset", "settings", "seed", "epochs", "acc_final",
        "acc_best_val", "acc_max", "published", "params", "flops", "time_epoch", "energy",
        "device",
    ),
]  # fmt: skip


def unfinished(data: ReportData, out: Path | None) -> list[Section]:
    if not data.not_finished:
        return []
    return [
        Section(
            "not-finished",
            "Runs not finished (running, failed, interrupted, diverged)",
            [
                Paragraph(
                    "Failed, diverged, interrupted and still-running runs are listed here and "
                    "left out of every table above and every figure (a config that later "
                    "finished shows its finished run instead)."
                ),
                Table.of(UNFINISHED_COLUMNS, data.not_finished),
            ],
        )
    ]


def all_runs(data: ReportData, out: Path | None) -> list[Section]:
    if not data.finished:
        return []
    runs = sorted(data.finished, key=lambda r: (r.dataset, r.model, r.run_id))
    return [
        Section(
            "runs",
            "All finished runs",
            [
                Paragraph("Every finished run (latest per configuration), one row per seed."),
                Table.of(RUN_COLUMNS, [RunGroup(str(r.run_id), [r]) for r in runs]),
            ],
        )
    ]
