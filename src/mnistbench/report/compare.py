"""Setting a run against the published figures: which figure, what still differs, and when not.

A run meets a published figure only on the same dataset; where a study gives several figures
for one model and dataset (study C: five settings), the one whose setting is closest to the
run's. A run smaller than what it would be compared with (a subset, fewer epochs: settings whose
role is "scale") is not compared at all: it is a quick look, and says so.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mnistbench.protocols import STUDY, STUDY_SETTINGS, protocol_label, study_of
from mnistbench.report import cards
from mnistbench.report import format as fmt
from mnistbench.studies import FIGURES, PublishedFigure, closest_figure
from mnistbench.studies import same_setting as same

# Settings that change how fast a run goes, not what it learns from: a row may differ from its
# study in them and still stand for the study's setting (the difference is shown). Study C
# trained with AMP; bf16 autocast is its counterpart here.
SPEED_SETTINGS = ("precision", "compile")
# Settings shown in their own columns, never as a difference from the recipe.
_OWN_COLUMNS = ("model", "dataset", "device", "seed")
# Which way a scale setting grows a run: +1 a larger value trains on more, -1 on less
# (val_size takes images out of training). A scale setting not listed counts as smaller
# whenever it differs.
_SCALE_DIRECTION = {"subset": 1, "epochs": 1, "val_size": -1}

# Protocols of the published figures (contract 3) -> the run metric that matches each, its name.
_PROTOCOL_METRICS = {
    "max_test_over_epochs": ("best_test_accuracy", "max over epochs"),
    "final": ("test_accuracy", "final"),
}
_UNKNOWN_PROTOCOL = ("test_accuracy", "final; the study's protocol is not known")


def protocol_fixed(config: Mapping[str, Any]) -> set[str]:
    """The settings a run's protocol decided (under "study": its study's split), so they are
    not differences from the recipe; "protocol" itself is shown by name, never as one."""
    if config.get("protocol") != STUDY:
        return {"protocol"}
    study = study_of(str(config.get("recipe_of") or config.get("model")))
    return {"protocol", *STUDY_SETTINGS.get(study or "", {})}


def settings_vs_recipe(config: Mapping[str, Any], card: Mapping[str, Any]) -> str:
    """The run's settings that differ from the recipe it was resolved with, or "recipe".

    The seed, device and dataset have columns of their own; settings that do not change
    training (role "analysis", like the target) are left out.
    """
    defaults = cards.recipe_defaults(card)
    if defaults is None:
        return "— (recipe not recorded)"
    roles = cards.setting_roles(card)
    fixed = protocol_fixed(config)
    changed = [
        fmt.setting(key, value)
        for key, value in config.items()
        if key not in _OWN_COLUMNS
        and key not in fixed
        and roles.get(key) != "analysis"
        and key in defaults
        and not same(defaults[key], value)
    ]
    if config.get("protocol") == STUDY:  # said first: it decides what the rest means
        changed.insert(0, fmt.setting("protocol", protocol_label(config)))
    return ", ".join(changed) or "recipe"


@dataclass(frozen=True)
class Comparison:
    """How one configuration stands against the published figures of its model and dataset."""

    figure: Mapping[str, Any] | None  # the figure it is set against (None: none applies)
    choices: int  # how many figures the card gives for this model and dataset
    differences: tuple[str, ...]  # what still differs from the figure's setting, as key=value
    shortfall: tuple[str, ...]  # why the run is smaller than the figure's setting ("subset 2000")
    other_datasets: tuple[str, ...] = ()  # datasets the card has figures for, when not this one

    @property
    def comparable(self) -> bool:
        return not self.shortfall

    @property
    def study_setting(self) -> bool:
        """Whether the run stands for the figure's setting (speed settings aside)."""
        keys = {d.split("=", 1)[0] for d in self.differences}
        return self.comparable and keys <= set(SPEED_SETTINGS)

    def not_comparable(self) -> str:
        return f"not comparable ({', '.join(self.shortfall)})"


def precision_difference(
    config: Mapping[str, Any], stated: Mapping[str, Any] | None = None
) -> str | None:
    """'precision=bf16' where a run trained in another precision than fp32 and the figure's
    setting (`stated`) names none; None otherwise. The studies trained in fp32 (study C under
    AMP), so a bf16 run differs from them even where bf16 is its device's recipe default (CUDA
    runs): the one rule every view uses to say so."""
    precision = config.get("precision")
    if precision in (None, "fp32") or "precision" in (stated or {}):
        return None
    return fmt.setting("precision", precision)


def compare(config: Mapping[str, Any], card: Mapping[str, Any]) -> Comparison:
    """The published figure a run of `config` is set against, and what keeps them apart."""
    dataset = config.get("dataset")
    here = cards.figures(card, dataset)
    figure, differing = closest_figure(here, config) if here else (None, [])
    shortfall = _shortfall(config, card, figure)
    setting = (figure or {}).get("setting") or {}
    differences = [f"{fmt.setting(k, config[k])} (study: {setting[k]})" for k in differing]
    defaults = cards.recipe_defaults(card) or {}
    roles = cards.setting_roles(card)
    # beyond what the figure states, the study trained at the recipe (and under protocol
    # "study" on its own split, which is then no difference)
    fixed = protocol_fixed(config)
    differences += [
        fmt.setting(key, value)
        for key, value in config.items()
        if key not in setting
        and key not in _OWN_COLUMNS
        and key not in fixed
        and roles.get(key) != "analysis"
        and key in defaults
        and not same(defaults[key], value)
    ]
    listed = precision_difference(config, setting)
    if listed is not None and listed not in differences:
        differences.append(listed)
    others = sorted({str(f.get("dataset")) for f in cards.figures(card)} - {str(dataset)})
    return Comparison(
        figure=None if shortfall else figure,
        choices=len(here),
        differences=tuple(differences),
        shortfall=tuple(shortfall),
        other_datasets=tuple(others) if not here else (),
    )


def _shortfall(
    config: Mapping[str, Any], card: Mapping[str, Any], figure: Mapping[str, Any] | None
) -> list[str]:
    """How the run is smaller than its reference: the figure's setting where it states a scale
    setting, else the recipe the run was resolved with."""
    setting = (figure or {}).get("setting") or {}
    defaults = cards.recipe_defaults(card) or {}
    roles = cards.setting_roles(card)
    scale_keys = [k for k in _SCALE_DIRECTION if roles.get(k) == "scale"]
    scale_keys += sorted(k for k, r in roles.items() if r == "scale" and k not in scale_keys)
    reasons = []
    for key in scale_keys:
        if key not in config:
            continue
        value = config[key]
        reference = setting.get(key, defaults.get(key))
        if same(value, reference):
            continue
        direction = _SCALE_DIRECTION.get(key)
        if key == "subset":  # None = every training image
            if value is not None and (reference is None or value < reference):
                reasons.append(f"subset {value}")
        elif key == "epochs":
            if isinstance(reference, (int, float)) and value < reference:
                reasons.append(f"{value} of {reference} epochs")
        elif direction is not None and isinstance(reference, (int, float)):
            if (value - reference) * direction < 0:
                reasons.append(f"{key} {value} (recipe {reference})")
        else:
            reasons.append(f"{key} {value} (recipe {reference})")
    return reasons


# --------------------------------------------------------------------------- cell texts


def protocol_metric(figure: Mapping[str, Any], card: Mapping[str, Any]) -> tuple[str, str]:
    """(run metric, its name) that matches how the study picked its figure."""
    protocol = figure.get("protocol") or cards.study(card, str(figure.get("study")))["protocol"]
    return _PROTOCOL_METRICS.get(str(protocol), _UNKNOWN_PROTOCOL)


def catalog_figure(figure: Mapping[str, Any]) -> PublishedFigure | None:
    """The catalogue's figure a stored card's figure names (same study, model, dataset and
    setting), so labels added since a run was recorded (approximate figures, settings a study
    does not state) reach its rows too; None for a figure the catalogue no longer has."""
    setting = figure.get("setting") or {}
    key = (figure.get("study"), figure.get("model"), figure.get("dataset"))
    for known in _figures_by_row().get(key, ()):
        if same(dict(known.setting), setting):
            return known
    return None


@functools.cache
def _figures_by_row() -> dict[tuple, tuple[PublishedFigure, ...]]:
    """The catalogue's figures by (study, model, dataset): a table cell looks up its handful
    of settings instead of scanning every published figure."""
    rows: dict[tuple, list[PublishedFigure]] = {}
    for known in FIGURES:
        rows.setdefault((known.study, known.model, known.dataset), []).append(known)
    return {key: tuple(found) for key, found in rows.items()}


def setting_text(figure: Mapping[str, Any]) -> str:
    known = catalog_figure(figure)
    if known is not None:
        return known.setting_text
    text = figure.get("setting_text")
    if text:
        return str(text)
    return ", ".join(f"{k}={v}" for k, v in (figure.get("setting") or {}).items())


def accuracy_text(figure: Mapping[str, Any]) -> str:
    """The published accuracy as the study states it: '~98.80%' where it is approximate."""
    known = catalog_figure(figure)
    if known is not None:
        return known.accuracy_text
    accuracy = figure.get("test_accuracy")
    return "none" if accuracy is None else fmt.percent(accuracy)


def published_text(comparison: Comparison, card: Mapping[str, Any]) -> str:
    """The figure a row is set against, which study and setting, and what still differs."""
    if not comparison.comparable:
        return comparison.not_comparable()
    figure = comparison.figure
    if figure is None:
        if comparison.other_datasets:
            return f"— (figures for {', '.join(comparison.other_datasets)} only)"
        return "—"
    study = cards.study_link(card, str(figure.get("study")))
    accuracy = figure.get("test_accuracy")
    head = accuracy_text(figure) if accuracy is not None else "no accuracy stated"
    parts = [study, setting_text(figure)]
    if comparison.choices > 1:
        parts.append(f"closest of {comparison.choices} settings")
    text = f"{head} ({'; '.join(p for p in parts if p)})"
    if comparison.differences:
        text += f"; differs: {', '.join(comparison.differences)}"
    return text
