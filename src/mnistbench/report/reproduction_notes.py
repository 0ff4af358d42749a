"""The notes under the reproduction view's table: for each row below its published figure, what
differs from the study and what its own runs show; the stages a row's recipe adds to the study's
pipeline; how far an SVC's choice of 10,000 training images moves its figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mnistbench.report import format as fmt
from mnistbench.report.collect import PUBLISHED_PROTOCOL, RunGroup
from mnistbench.report.columns import group_protocol, protocol_stat
from mnistbench.report.compare import settings_vs_recipe
from mnistbench.report.reproduction import (
    Row,
    most_seeds,
    row_verdict_of,
    svc_sample,
    under_study_protocol,
    verdict,
)


def sampling_notes(rows: Sequence[Row], groups: Sequence[RunGroup]) -> list[str]:
    """Under the table, for each SVC row at the study protocol: how far the choice of its
    10,000 images moves the figure (the seeds' random draws against one run on exactly the
    first 10,000), since the study does not say which 10,000 it fit on."""
    found = []
    for row in rows:
        group = row.group
        if group is None or svc_sample(group) is None or not under_study_protocol(group):
            continue
        values = sorted(100 * v for v in group.values("test_accuracy") if isinstance(v, float))
        first = [g for g in groups
                 if (g.model, g.dataset) == (group.model, group.dataset)
                 and under_study_protocol(g) and g is not group
                 and svc_sample(g) == "the first 10,000 of all 60,000"]  # fmt: skip
        firsts = [100 * v for g in first for v in g.values("test_accuracy") if isinstance(v, float)]
        if not values:
            continue
        text = (
            f"{group.model} ({group.dataset}): the study does not say which 10,000 training "
            f"images its SVC fit on, so each seed draws its own 10,000 from all 60,000; the "
            f"{len(values)} seeds score {values[0]:.2f}% to {values[-1]:.2f}%"
        )
        if firsts:
            mean = sum(values) / len(values)
            shown = ", ".join(f"{v:.2f}%" for v in firsts)
            text += (
                f", and a run on exactly the first 10,000 (`--model-option fit_sample=first`) "
                f"scores {shown} ({firsts[0] - mean:+.2f} pt from the seeds' mean)"
            )
        found.append(text + ".")
    return found


# Known causes of a shortfall, by model: what differs from the study, in words (the figures that
# test a cause come from runs, below). Printed only under a table where that model's row says
# "below", so a note cannot outlive the shortfall it explains.
_SVC_SUBSET = (
    "the study does not say which 10,000 training images it fit on, so the figure depends on "
    "which images they were."
)
SVC_DEFAULT_MAX_ITER = 1000  # models/svm.py's default cap (study C's setting)
SHORTFALL_NOTES: dict[str, str] = {
    "simsiam_lgbm": "LightGBM is fit on the features of the 55,000 training images left after "
    "the validation split, and SimSiam pretrains on them; the study used all 60,000 for both.",
    "beta_vae": "the study does not state its beta; the recipe uses 1.0.",
    "svm_rbf": _SVC_SUBSET,
    "svm_poly": _SVC_SUBSET,
    "microresnet": "at a constant learning rate (Adam 1e-3, no schedule) and with batch norm, its "
    "test accuracy moves up and down from epoch to epoch, so the study's maximum over five "
    "epochs of one run depends on its seed; the improved view shows the same network with a "
    "OneCycle schedule.",
}
SPLIT_NOTES = {"simsiam_lgbm"}  # notes about the heldout split, moot under protocol "study"
FULL_DATA = "val_size=0"  # the studies' own split: every training image, no validation
FULL_DATA_SUITE = "study-a-60k"
STUDY_PROTOCOL_SUITE = "study-protocol"


def full_data_group(row: Row, groups: Sequence[RunGroup]) -> RunGroup | None:
    """The configuration of the row's model that differs from its recipe only by training on
    every training image, as the studies did (no validation split)."""
    found = [g for g in groups
             if (g.model, g.dataset) == (row.figure.model, row.figure.dataset)
             and g.comparison.comparable
             and settings_vs_recipe(g.config, g.card) == FULL_DATA]  # fmt: skip
    return most_seeds(found)


def last_epoch_gain(
    group: RunGroup, epochs: Mapping[int, Sequence[Mapping[str, Any]]]
) -> float | None:
    """The mean rise of test accuracy over the last epoch (in points) when every seed's last
    epoch was its best and a rise: training stopped while still improving. None otherwise.
    Only the last stage's epochs count (a LightGBM probe after a linear one is another model,
    not a later epoch)."""
    gains = []
    for run in group.runs:
        scored = [e for e in epochs.get(run.run_id, []) if e.get("test_accuracy") is not None]
        last_stage = scored[-1].get("stage") if scored else None
        curve = [e["test_accuracy"] for e in scored if e.get("stage") == last_stage]
        if len(curve) < 2 or curve[-1] < max(curve) or curve[-1] <= curve[-2]:
            return None
        gains.append(100 * (curve[-1] - curve[-2]))
    return sum(gains) / len(gains) if gains else None


def solver_cap_note(group: RunGroup) -> str | None:
    """For an SVC row: whether libsvm hit its iteration cap, read from the runs' own
    `solver_iterations` (the slowest one-vs-one machine's count), never assumed."""
    counts = [v for v in group.values("solver_iterations") if isinstance(v, int)]
    if not counts:
        return None
    options = dict(group.config.get("model_options") or [])
    cap = options.get("max_iter", SVC_DEFAULT_MAX_ITER)
    if not isinstance(cap, int):
        return None
    capped = sum(1 for count in counts if cap > 0 and count >= cap)
    if capped:
        return (
            f"SVC's solver (libsvm) stopped at its cap max_iter={cap} in {capped} of {len(counts)} "
            "seed(s) before it converged, so the fit also depends on the images' order"
        )
    return (
        f"SVC's solver (libsvm) converged in {min(counts)}-{max(counts)} iterations in every "
        f"seed, under its cap max_iter={cap}: the cap played no part"
    )


def _evidence(row: Row, epochs: Mapping[int, Sequence[Mapping[str, Any]]]) -> list[str]:
    """What the row's own runs show about its shortfall: still improving at the end of the
    recipe's epochs; for study E (protocol not stated), the figure under the other protocol."""
    group, parts = row.group, []
    assert group is not None
    cap_note = solver_cap_note(group)
    if cap_note is not None:
        parts.append(cap_note)
    metric, _ = group_protocol(group)
    values = sorted(100 * v for v in group.values(metric or "") if isinstance(v, float))
    published = row.figure.test_accuracy
    if len(values) > 1 and published is not None:
        above_best = round(100 * (100 * published - values[-1]))  # of the 10,000 test images
        where = (
            f"above every one of them ({above_best} test image(s) of 10,000 above our best)"
            if 100 * published > values[-1]
            else "inside that range"
        )
        parts.append(
            f"our {len(values)} seeds range from {values[0]:.2f}% to {values[-1]:.2f}%, and the "
            f"published {100 * published:.2f}% (one run, seed unknown) is {where}"
        )
    gain = last_epoch_gain(group, epochs)
    if gain is not None:
        parts.append(
            f"in each of its {len(group.runs)} seed(s) the test accuracy was still rising at the "
            f"recipe's last epoch (+{gain:.2f} pt over the one before, on average): the study's "
            "epoch budget ends before it levels off (more epochs are not run here: the row "
            "keeps the study's recipe)"
        )
    best = group.stat(PUBLISHED_PROTOCOL)
    if row.figure.study == "E" and best is not None:
        parts.append(
            "the study does not say whether it reports the final model or the best epoch: the "
            f"maximum over epochs is {fmt.percent_stat(best)}, "
            + verdict(group, PUBLISHED_PROTOCOL, row.figure.to_dict(), row.needed).text
        )
    return parts


def _stage_kinds(group: RunGroup) -> list[str]:
    stages = (group.card.get("recipe") or {}).get("stages") or []
    return [str(stage.get("kind")) for stage in stages if isinstance(stage, Mapping)]


def pipeline_notes(rows: Sequence[Row]) -> list[str]:
    """Where the recipe a row's runs recorded (their model card, as trained) has a stage the
    study's pipeline lacks, what it adds and which figures it touches: the row stands for the
    published setting, not for exactly the study's code."""
    found = []
    for row in rows:
        group = row.group
        if group is None or "linear_probe" not in _stage_kinds(group):
            continue
        if row.figure.model == "dbn":
            found.append(
                "dbn (mnist): the recipe these runs recorded adds a linear-probe stage on the "
                "frozen RBM features before fine-tuning, which the study does not have; the "
                "figure is the fine-tuned model's, as the study's is."
            )
        elif row.figure.model == "simsiam_lgbm":
            found.append(
                "simsiam_lgbm (mnist): the recipe these runs recorded trains a linear probe "
                "(Linear(1152,10), 11,530 parameters) before the study's LightGBM probe; the "
                "study classifies with LightGBM only. Its parameter count includes that head, and "
                "its maximum over epochs also ranges over the linear probe's epochs."
            )
    return found


def notes(
    rows: Sequence[Row],
    groups: Sequence[RunGroup],
    epochs: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
) -> list[str]:
    """Under the table: for each row not met, what differs from the study, what its own runs'
    epochs show and, where the store has it, the same model trained on the study's own 60,000
    images."""
    found = []
    for row in rows:
        if row.group is None or row_verdict_of(row).label != "below":
            continue
        study_protocol = under_study_protocol(row.group)
        note = SHORTFALL_NOTES.get(row.figure.model)
        parts = [note] if note and not (study_protocol and row.figure.model in SPLIT_NOTES) else []
        parts += _evidence(row, epochs or {})
        full = None if study_protocol else full_data_group(row, groups)
        held_out = int(row.group.config.get("val_size") or 0)
        if full is not None:
            stat, protocol = protocol_stat(full)
            metric, _ = group_protocol(full)
            parts.append(
                f"trained on every training image as the study did ({FULL_DATA}, "
                f"`mnistbench suite {FULL_DATA_SUITE}`; the recipe holds {held_out:,} out for "
                f"the honest figure), {len(full.runs)} seed(s) reach {fmt.percent_stat(stat)} "
                f"({protocol}): " + verdict(full, metric, row.figure.to_dict(), row.needed).text
            )
        elif row.figure.study == "A" and held_out and not study_protocol:
            parts.append(
                f"the recipe holds {held_out:,} training images out for the honest figure; the "
                f"study trained on all of them: `mnistbench suite {STUDY_PROTOCOL_SUITE}` trains "
                "it at the study's protocol."
            )
        if parts:
            sentences = " ".join(
                part[0].upper() + part[1:] + ("" if part.endswith(".") else ".") for part in parts
            )
            found.append(f"{row.figure.model} ({row.figure.dataset}): {sentences}")
    return found
