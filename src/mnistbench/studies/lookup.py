"""Finding the published figure that applies to a run: by model and dataset, then the closest
setting (missing keys ignored, ties to the nearest value)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mnistbench.studies.catalog import FIGURES, STUDIES
from mnistbench.studies.figure import PublishedFigure, Study


def published_figures(model: str, dataset: str | None = None) -> list[PublishedFigure]:
    """Every figure published for `model` (on `dataset`, when given), in the studies' order."""
    return [f for f in FIGURES if f.model == model and dataset in (None, f.dataset)]


def studies_of(figures: Iterable[PublishedFigure | Mapping[str, Any]]) -> dict[str, Study]:
    """The studies the figures come from, by id."""
    ids = {_get(f, "study") for f in figures}
    return {study_id: STUDIES[study_id] for study_id in sorted(ids)}


def _get(figure: PublishedFigure | Mapping[str, Any], key: str) -> Any:
    return figure[key] if isinstance(figure, Mapping) else getattr(figure, key)


def same_setting(a: Any, b: Any) -> bool:
    """Equal settings: numbers within float noise (1e-3 == 0.001), the rest as JSON values."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return math.isclose(a, b, rel_tol=1e-9)
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def setting_differences(figure_setting: Mapping[str, Any], settings: Mapping[str, Any]) -> list:
    """The setting keys whose values differ between a figure and a run's settings.

    Keys a figure states that the run has no setting for (study C's pin_memory) are left out:
    mnistbench keeps every split on the device, so pinned host memory has nothing to change.
    """
    return [
        key
        for key, value in figure_setting.items()
        if key in settings and not same_setting(settings[key], value)
    ]


def _distance(settings: Mapping[str, Any], setting: Mapping[str, Any], keys: list[str]) -> float:
    """How far apart the differing numeric settings are, as ratios (log scale)."""
    total = 0.0
    for key in keys:
        a, b = settings[key], setting[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if numbers and a > 0 and b > 0:
            total += abs(math.log(a / b))
    return total


def closest_figure(
    figures: Sequence[PublishedFigure | Mapping[str, Any]], settings: Mapping[str, Any]
) -> tuple[PublishedFigure | Mapping[str, Any] | None, list[str]]:
    """The figure whose setting differs from `settings` in the fewest keys, and those keys.

    Among figures that differ in the same keys, the nearest values win (10 epochs: the 5-epoch
    figure, not the 3-epoch one); otherwise the first in the study's order. Filter `figures` to
    one dataset first: a figure of another dataset is never a run's reference.
    """
    scored = []
    for figure in figures:
        setting = _get(figure, "setting") or {}
        differing = setting_differences(setting, settings)
        scored.append((figure, differing, _distance(settings, setting, differing)))
    if not scored:
        return None, []
    fewest = min(len(differing) for _, differing, _ in scored)
    first = next(differing for _, differing, _ in scored if len(differing) == fewest)
    alike = [entry for entry in scored if set(entry[1]) == set(first)]
    figure, differing, _ = min(alike, key=lambda entry: entry[2])  # min keeps the first of equals
    return figure, differing


def recipe_figure(
    model: str, settings: Mapping[str, Any], dataset: str = "mnist"
) -> PublishedFigure | None:
    """The figure of `model` on `dataset` whose setting is closest to `settings` (a run's, or
    the model's recipe), or None when the studies publish none there."""
    figure, _ = closest_figure(published_figures(model, dataset), settings)
    return figure  # type: ignore[return-value]
