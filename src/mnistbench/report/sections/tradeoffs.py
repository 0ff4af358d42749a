"""Accuracy against cost, the one-look summary: parameters and time per epoch, Pareto fronts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mnistbench.report import cards
from mnistbench.report import figures as figs
from mnistbench.report.collect import ReportData, RunGroup, full_data_groups, group_labels
from mnistbench.report.document import Paragraph, Section
from mnistbench.report.format import Stat


def points(
    data: ReportData,
    cost: Callable[[RunGroup], Stat | None],
    *,
    published: Callable[[RunGroup], figs.Published | None] = lambda g: None,
    hollow: Callable[[RunGroup], bool] = lambda g: False,
) -> list[figs.Point]:
    """One point per configuration on the whole data set that has a cost and an accuracy (a
    `--subset` run's accuracy is on a trimmed test set, so it is left out)."""
    shown = full_data_groups(data.groups)
    labels = group_labels(shown)  # told apart from the groups shown, not from the quick looks
    found = []
    for group in shown:
        spent, accuracy = cost(group), group.accuracy()
        if spent is None or accuracy is None:
            continue
        found.append(
            figs.Point(
                labels[group.key],
                cards.family(group.card),
                group.dataset,
                spent,
                accuracy,
                published(group),
                hollow(group),
            )
        )
    return found


def published_params(data: ReportData) -> Callable[[RunGroup], figs.Published | None]:
    """The published (params, accuracy) of each configuration at a published setting; one per
    figure, tied to the first configuration that stands for it."""
    tied: dict[str, str] = {}
    for group in data.groups:
        figure = group.comparison.figure
        if figure is None or not group.comparison.study_setting:
            continue
        if figure.get("params") is None or figure.get("test_accuracy") is None:
            continue
        tied.setdefault(_identity(figure), group.key)

    def published(group: RunGroup) -> figs.Published | None:
        figure = group.comparison.figure
        if figure is None or tied.get(_identity(figure)) != group.key:
            return None
        # the dotted line and the colour tie it to its model: the label says whose figure it is
        return figs.Published(
            float(figure["params"]), float(figure["test_accuracy"]), f"study {figure.get('study')}"
        )

    return published


def _identity(figure) -> str:
    return json.dumps(figure, sort_keys=True, default=str)


def section(data: ReportData, out: Path | None) -> list[Section]:
    if out is None:
        return []
    blocks = []
    for figure in (
        figs.accuracy_vs_cost(
            points(data, lambda g: g.stat("params"), published=published_params(data)),
            out,
            name="accuracy_vs_params",
            title="Accuracy vs parameters",
            xlabel="trainable parameters (log)",
            caption="Each point is one configuration on the whole data set (runs on a --subset "
            "are left out; mean over seeds, bars = std); the dashed line is the Pareto front "
            "(no other configuration has fewer parameters and higher accuracy). A diamond is "
            "the published figure of the same dataset and setting, in its model's colour, "
            "joined to our run by a dotted line (the published accuracy is under the study's "
            "own protocol, ours is the honest one).",
        ),
        figs.accuracy_vs_cost(
            points(data, lambda g: g.stat("time_per_epoch_s")),
            out,
            name="accuracy_vs_time",
            title="Accuracy vs time per epoch",
            xlabel="training time per epoch, s (log; median over epochs)",
            caption="Time per epoch is training only, on the device each run used (see the "
            "Device column); the Pareto front is over all runs of the dataset.",
        ),
    ):
        if figure is not None:
            blocks.append(figure)
    if data.finished and not blocks:
        blocks.append(Paragraph("No finished run has both an accuracy and a cost to plot."))
    return [Section("tradeoffs", "Accuracy vs cost (Pareto fronts)", blocks)]
