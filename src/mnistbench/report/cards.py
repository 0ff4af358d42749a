"""The one door between a report and what a run knew about its model: its model card.

Every fact the report states about a run's model (family, architecture, the recipe it was
resolved with, which settings scale a run, the published figures and studies, how each figure
was measured) comes from `card_of(run)`, so a store merged from another machine or an older
version renders as it was recorded, not as the code reads today.

TEMPORARY SHIM (the lead deletes it after helpers A and C are merged): until the store gives
`RunRecord.model_card` (contract 2), a run without one gets a card rebuilt here, through
`mnistbench.cards.reconstruct_card` when that exists, else from the live registry. This module
is the only one in report/ allowed to import mnistbench.models or mnistbench.config
(tests/test_report.py checks it); after the merge `card_of` is `run.model_card` and the
`_registry_*` functions below go.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

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
    """The model card stored with `run` (a RunRecord); until every run has one, a rebuilt one."""
    card = getattr(run, "model_card", None)
    # the store's minimal card (no cards.py to rebuild one yet) names the model and nothing
    # else: the shim below knows more until cards.py lands
    if card and "family" in card:
        return card
    return _rebuilt_card(json.dumps(run.config, sort_keys=True, default=str))


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


# ------------------------------------------------------ TEMPORARY: cards rebuilt from code


@functools.lru_cache(maxsize=256)
def _rebuilt_card(config_json: str) -> dict[str, Any]:
    config = json.loads(config_json)
    try:  # helper A's rebuilder (contract 2), once it is merged
        from mnistbench.cards import reconstruct_card  # type: ignore[import-not-found]
    except ImportError:
        return _registry_card(config)
    return reconstruct_card(config)


def _registry_card(config: dict[str, Any]) -> dict[str, Any]:
    """A card for a run recorded before runs stored theirs, from the registry as it is now."""
    from mnistbench.config import RunConfig
    from mnistbench.errors import ConfigError
    from mnistbench.models import get_model_info

    model = str(config.get("model"))
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "model": model,
        "source": {"kind": "reconstructed", "spec": None, "sha256": None, "distribution": None},
        "measurement": {"version": 1, "methods": {}},
    }
    try:
        info = get_model_info(model)
    except ConfigError:  # a model no longer registered: nothing more is known about it
        return card
    # through JSON, as the store keeps configs, so tuples compare equal to the stored lists
    defaults = json.loads(json.dumps({**RunConfig(model=model).to_dict(), **info.recipe}))
    for key in ("model", "device", "seed"):
        defaults.pop(key, None)
    published = _registry_figure(model, info.published, defaults)
    card.update(
        family=info.family,
        architecture=info.architecture,
        input_shape=list(info.input_shape),
        input_scaling=info.input_scaling,
        tags=list(info.tags),
        recipe={"of": model if info.recipe else None, "defaults": defaults},
        setting_roles=_registry_roles(),
        published=[published] if published else [],
        studies={published["study"]: _REGISTRY_STUDIES[published["study"]]} if published else {},
    )
    return card


def _registry_roles() -> dict[str, str]:
    try:  # helper B's declaration of every setting's role (contract 4), once it is merged
        from mnistbench.config import field_roles  # type: ignore[attr-defined]
    except ImportError:
        return dict(_DEFAULT_ROLES)
    return field_roles()


_REGISTRY_STUDIES = {
    study_id: {
        "title": title,
        "doc": STUDY_DOC.format(id=study_id.lower()),
        "protocol": protocol,
    }
    for study_id, title, protocol in (
        ("A", "Study A — ten-architecture comparison", "max_test_over_epochs"),
        ("B", "Study B — MLP / CNN / RNN / SNN accuracy vs training time", "unknown"),
        ("C", "Study C — ResNet-18/50 and SVM, MNIST and Fashion-MNIST", "final"),
        ("D", "Study D — sub-20k-parameter CNN ablation", "max_test_over_epochs"),
        ("E", "Study E — four-iteration parameter diet", "unknown"),
    )
}


def _registry_figure(model: str, published: Any, defaults: dict[str, Any]) -> dict | None:
    """The registry's one (MNIST) figure in contract 3's shape; the study used the recipe."""
    if published is None:
        return None
    setting = {"epochs": published.epochs or defaults.get("epochs")}
    setting.update({k: defaults[k] for k in ("optimizer", "lr") if k in defaults})
    return {
        "study": published.study,
        "model": model,
        "dataset": "mnist",
        "setting": setting,
        "setting_text": ", ".join(f"{k}={v}" for k, v in setting.items()),
        "test_accuracy": published.test_accuracy,
        "protocol": _REGISTRY_STUDIES[published.study]["protocol"],
        "time_per_epoch_s": published.time_per_epoch_s,
        "time_device": published.device,
        "time_includes_eval": published.study == "A",
        "params": published.params,
        "best_epoch": published.best_epoch,
        "epochs_to_target": published.epochs_to_target,
        "target_accuracy": 0.99 if published.epochs_to_target else None,
        "note": published.note,
    }


def study_models() -> dict[str, list[str]]:
    """Study id -> the models it published figures for, for the "not run yet" rows.

    What is missing from a store is a question about the code as it is now, so this one reads
    the registry (TEMPORARY: after the merge, from `mnistbench.studies`).
    """
    from mnistbench.models import list_models

    found: dict[str, list[str]] = {}
    for info in list_models():
        if info.published is not None:
            found.setdefault(info.published.study, []).append(info.name)
    return found


def registry_card(model: str) -> dict[str, Any]:
    """The card a run of `model` at its recipe would carry now (for "not run yet" rows)."""
    return _registry_card({"model": model})
