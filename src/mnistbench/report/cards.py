"""The one door between a report and what a run knew about its model: its model card.

Every fact the report states about a run's model (family, architecture, the recipe it was
resolved with, which settings scale a run, the published figures and studies, how each figure
was measured) comes from `card_of(run)`, so a store merged from another machine or an older
version renders as it was recorded, not as the code reads today.

The card is what the run recorded (schema 2), or for a run of an older store the card
rebuilt when the store was opened, marked `source.kind = "reconstructed"`. No module in report/
imports mnistbench.models or mnistbench.config (tests/test_report_compare.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnistbench.studies import FIGURES, published_figures, studies_of

CARD_VERSION = 1
# The studies' own docs page; every "study X" in a report links to its section there.
STUDY_DOC = "docs/studies.md#study-{id}"
# Roles of the run settings (contract 4) for cards that carry none: a setting with no known
# role counts as one that changes training, the cautious reading.
_DEFAULT_ROLES = {
    "epochs": "scale",
    "subset": "scale",
    "val_size": "scale",
    "target_accuracy": "analysis",
    "device": "environment",
}


def card_of(run: Any) -> dict[str, Any]:
    """The model card stored with `run` (a RunRecord). Schema-2 stores give every run one, and
    runs of older stores get theirs rebuilt when the store is opened (store/schema.py)."""
    return dict(run.model_card or {"model": run.model})


# ----------------------------------------------------------------------- reading a card


def family(card: Mapping[str, Any]) -> str:
    return str(card.get("family") or "unknown family")


def architecture(card: Mapping[str, Any]) -> str:
    return str(card.get("architecture") or "— (not in the run's model card)")


def recipe_defaults(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """Every setting of the recipe the run was resolved with, or None when the card lacks it."""
    defaults = (card.get("recipe") or {}).get("defaults")
    return dict(defaults) if isinstance(defaults, dict) else None


def setting_roles(card: Mapping[str, Any]) -> dict[str, str]:
    return {**_DEFAULT_ROLES, **(card.get("setting_roles") or {})}


def figures(card: Mapping[str, Any], dataset: str | None = None) -> list[dict[str, Any]]:
    """The published figures the card carries, those of `dataset` only when given."""
    found = [f for f in card.get("published") or [] if isinstance(f, dict)]
    return [f for f in found if dataset is None or f.get("dataset") == dataset]


def study(card: Mapping[str, Any], study_id: str) -> dict[str, Any]:
    """{"title", "doc", "protocol"} of a study the card names (a bare entry when it names none)."""
    found = (card.get("studies") or {}).get(study_id) or {}
    return {
        "title": found.get("title") or f"Study {study_id}",
        "doc": found.get("doc") or STUDY_DOC.format(id=study_id.lower()),
        "protocol": found.get("protocol") or "unknown",
    }


def study_link(card: Mapping[str, Any], study_id: str, text: str | None = None) -> str:
    """`[study A](docs/studies.md#study-a)`: how every study is named in a report."""
    return f"[{text or f'study {study_id}'}]({study(card, study_id)['doc']})"


def measurement_method(card: Mapping[str, Any], metric: str) -> str | None:
    """The sentence saying how `metric` was measured for this run, when the card has one."""
    methods = (card.get("measurement") or {}).get("methods") or {}
    return methods.get(metric)


def measurement_version(card: Mapping[str, Any]) -> int:
    return int((card.get("measurement") or {}).get("version") or 1)


# ------------------------------------------------------ what the studies publish, unrun models


def study_models() -> dict[str, list[str]]:
    """Study id -> the models it published figures for, for the "not run yet" rows. What is
    missing from a store is a question about the studies, which `mnistbench.studies` holds."""
    found: dict[str, list[str]] = {}
    for figure in FIGURES:
        models = found.setdefault(figure.study, [])
        if figure.model not in models:
            models.append(figure.model)
    return found


def study_card(model: str) -> dict[str, Any]:
    """What a "not run yet" row can say of `model`: the studies' figures, nothing of the code."""
    figures = published_figures(model)
    return {
        "card_version": CARD_VERSION,
        "model": model,
        "published": [figure.to_dict() for figure in figures],
        "studies": {key: study.card_entry() for key, study in studies_of(figures).items()},
    }
