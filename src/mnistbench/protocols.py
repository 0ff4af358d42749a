"""The `protocol` run setting: what a run trains on, by the study its model comes from.

"heldout" (the default) holds `val_size` training images out, so the honest figure (test
accuracy at the best validation epoch) exists. "study" trains on what the model's study trained
on and is scored as that study scored (the report reads the study's published protocol: max test
accuracy over epochs for studies A and D). Torch-free: `config.make_config` calls it while it
resolves a run's settings, before any model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnistbench.errors import ConfigError
from mnistbench.studies import FIGURES

HELDOUT = "heldout"
STUDY = "study"

# What each study trained on, as settings. A and D: all 60,000 training images, choosing on the
# test set (their code: study A's scripts and study D's notebook have no validation split).
# Study D's early stopping (patience 10) watched that test set; with no validation split here it
# is off, and the maximum over the 20 epochs is what its table reports. Study C's README states a
# 70/10/20 split without its pool (60,000 or 70,000 images) or its seed, and its code is not
# public: only its SVCs, which fit on 10,000 images drawn from the training images and need no
# validation, run under "study" (all 60,000 to draw from). Studies B and E state no split.
STUDY_SETTINGS: dict[str, dict[str, Any]] = {
    "A": {"val_size": 0},
    "C": {"val_size": 0},
    "D": {"val_size": 0, "early_stopping_patience": None},
}
# Study C models that need the 70/10/20 split (a validation split to train with): not built.
_NEEDS_STUDY_C_SPLIT = ("resnet18", "resnet50")

# How a heldout run without a validation split reads in tables (the study-a-60k suite's runs,
# recorded before the setting existed): it trained on the study's data, but by another name.
STUDY_LIKE = "heldout, study-like split (val_size=0)"


def study_of(model: str) -> str | None:
    """The study that publishes figures for `model` (the first one listed), or None."""
    return next((f.study for f in FIGURES if f.model == model), None)


def study_settings(model: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings protocol "study" fixes for `model` (a registered model, or the one whose
    recipe an outside model borrows). ConfigError where its study's split is not known or not
    built, or where `given` (the user's own settings) contradicts it."""
    study = study_of(model)
    if study is None:
        raise ConfigError(
            f"--protocol study needs a model from a published study, and no study publishes "
            f"a figure for {model!r}. Use --protocol heldout (the default)."
        )
    if model in _NEEDS_STUDY_C_SPLIT or study not in STUDY_SETTINGS:
        raise ConfigError(
            f"--protocol study is not built for {model} (study {study}): "
            + (
                "study C's 70/10/20 split names neither its pool of images nor its seed. "
                if study == "C"
                else f"study {study} does not state what it trained on. "
            )
            + "Use --protocol heldout (the default)."
        )
    fixed = STUDY_SETTINGS[study]
    for key, value in fixed.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"--protocol study fixes {key}={value} for study {study}'s models (it trained "
                f"on every training image), but {key}={given[key]} was given. Leave it out, or "
                "use --protocol heldout."
            )
    return dict(fixed)


def protocol_label(config: Mapping[str, Any]) -> str:
    """The protocol a stored config ran under, for tables: "study", "heldout", or `STUDY_LIKE`
    for a heldout run (or one recorded before the setting existed: no key) without a validation
    split. Reads the config; never changes it."""
    protocol = str(config.get("protocol") or HELDOUT)
    if protocol == HELDOUT and config.get("val_size") == 0:
        return STUDY_LIKE
    return protocol
