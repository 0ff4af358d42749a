"""Accuracy against cost, the one-look summary: parameters and time per epoch, Pareto fronts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistbench.report import cards, uncertainty
from mnistbench.report import figures as figs
from mnistbench.report.collect import (
    FINAL_PROTOCOL,
    ReportData,
    RunGroup,
    full_data_groups,
    group_labels,
    recipe_groups,
)
from mnistbench.report.compare import settings_vs_recipe
from mnistbench.report.document import Paragraph, Section
from mnistbench.report.format import Stat


def hover(group: RunGroup) -> dict[str, Any]:
    """What the interactive page shows on hover: the full configuration, seeds, run ids and
    the interval (data from the store: the page puts it through json.dumps)."""
    interval = uncertainty.interval(group, group.accuracy_protocol())
    return {
        "model": group.model,
        "dataset": group.dataset,
        "family": cards.family(group.card),
        "settings": settings_vs_recipe(group.first.config, group.card),
        "config": group.config,
        "seeds": group.seeds,
        "run_ids": [r.run_id for r in group.runs],
        "accuracy_protocol": group.accuracy_protocol(),
        "interval95": None if interval is None else [interval.low, interval.high],
        "interval_method": None if interval is None else interval.method,
        "device": group.device,
    }


def points(
    data: ReportData,
    cost: Callable[[RunGroup], Stat | None],
    *,
    published: Callable[[RunGroup], figs.Published | None] = lambda g: None,
    hollow: Callable[[RunGroup], bool] = lambda g: False,
    variants: bool = False,
) -> list[figs.Point]:
    """One point per model and dataset at its recipe (`variants`: every configuration) on the
    whole data set that has a cost and an accuracy (a `--subset` run's accuracy is on a
    trimmed test set, so it is left out)."""
    shown = full_data_groups(data.groups)
    chosen = shown if variants else recipe_groups(shown)
    labels = group_labels(shown) if variants else {g.key: g.model for g in chosen}
    found = []
    for group in chosen:
        spent, accuracy = cost(group), group.accuracy()
        if spent is None or accuracy is None:
            continue
        interval = uncertainty.interval(group, group.accuracy_protocol())
        found.append(
            figs.Point(
                labels[group.key],
                cards.family(group.card),
                group.dataset,
                spent.mean,
                accuracy.mean,
                None if interval is None else (interval.low, interval.high),
                group.accuracy_protocol() == FINAL_PROTOCOL,
                published(group),
                hollow(group),
                hover(group),
            )
        )
    return found


def published_params(data: ReportData) -> Callable[[RunGroup], figs.Published | None]:
    """The published (params, accuracy) a configuration is set against (its dataset, closest
    setting), when the figure has both; where the study prints no parameter count the x is our
    count of its spec (the figure's params_source says which)."""

    def published(group: RunGroup) -> figs.Published | None:
        figure = group.comparison.figure
        if figure is None or figure.get("params") is None:
            return None
        if figure.get("test_accuracy") is None:
            return None
        return figs.Published(
            float(figure["params"]), float(figure["test_accuracy"]), f"study {figure.get('study')}"
        )

    return published


def _identity(figure) -> str:
    return json.dumps(figure, sort_keys=True, default=str)


POINTS_CAPTION = (
    "One point per model and dataset: its configuration closest to the recipe (fewest changed "
    "settings, then most seeds, then the CPU run), on the whole data set; mean over seeds, bars "
    "= 95% interval of the mean (seeds and test images, statistics.seeds_images_interval). A "
    "circle is the test accuracy at the best validation epoch; a square the final test "
    "accuracy of a recipe trained without a validation split. The dashed line is the Pareto "
    "front. Points far below the rest sit in a panel of their own under the main one. Every "
    "variant (device, precision, schedule, full 60k training) is on the interactive page."
)


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
            caption=POINTS_CAPTION + " A hollow diamond is the published figure of the same "
            "dataset and closest setting, joined to our point by a line (the published "
            "accuracy is under the study's own protocol; where the study prints no parameter "
            "count, its x is our count of the study's spec).",
        ),
        figs.accuracy_vs_cost(
            points(data, lambda g: g.stat("time_per_epoch_s")),
            out,
            name="accuracy_vs_time",
            title="Accuracy vs time per epoch",
            xlabel="training time per epoch, s (log; median over epochs)",
            caption=POINTS_CAPTION + " Time per epoch is training only, on the device each "
            "point's runs used (the tables give its threads and CPU share: a contended run is "
            "slower than the machine).",
        ),
    ):
        if figure is not None:
            blocks.append(figure)
    if data.finished and not blocks:
        blocks.append(Paragraph("No finished run has both an accuracy and a cost to plot."))
    return [Section("tradeoffs", "Accuracy vs cost (Pareto fronts)", blocks)]
