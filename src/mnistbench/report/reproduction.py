"""The reproduction views: every published study row against our runs over seeds.

`reproduction`: one row per figure the studies publish (``mnistbench.studies.FIGURES``, studies
A-E, every dataset), set against the configuration run at exactly that figure's setting and the
model's recipe otherwise (seeds pooled): our figure under the study's own protocol, the honest
one (test accuracy at the best validation epoch), the published figure, the seeds we have and
need, and whether the figure is met, saying by which rule. A row with no such run says so.

`improved`: configurations of the same architectures at full scale but with a better recipe
than the published one (``src/mnistbench/suites/improved.toml``), against the same figures.
The notes under the reproduction table are reproduction_notes.py's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mnistbench.protocols import STUDY, STUDY_LIKE, protocol_label
from mnistbench.report import uncertainty
from mnistbench.report.collect import HONEST_PROTOCOL, RunGroup
from mnistbench.report.columns import group_protocol
from mnistbench.report.compare import (
    accuracy_text,
    precision_difference,
    protocol_fixed,
    setting_text,
    settings_vs_recipe,
)
from mnistbench.statistics import Verdict
from mnistbench.studies import FIGURES, PublishedFigure
from mnistbench.studies.catalog import current_setting

SEEDS_NEEDED = uncertainty.SEEDS_NEEDED
RULES = (
    uncertainty.VERDICT_RULE
    + " A row with fewer seeds than it needs says so beside its verdict. Study A and D picked "
    "the maximum test accuracy over epochs (optimistic); studies C and E the final model (E's "
    "protocol is not stated: final is used). Accuracy cells: mean ± std over seeds "
    f"{uncertainty.CI_HEADER}."
)


@dataclass(frozen=True)
class Row:
    """One published figure, the configuration run at its setting (None: not run) and the one
    that gives its honest figure: the same configuration when it held images out, else the
    heldout twin of a protocol "study" configuration (None: not run)."""

    figure: PublishedFigure
    group: RunGroup | None
    honest: RunGroup | None = None

    @property
    def needed(self) -> int:
        return SEEDS_NEEDED.get(self.figure.study, 3)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _is_figure(card_figure: Mapping[str, Any] | None, figure: PublishedFigure) -> bool:
    if card_figure is None:
        return False
    return (
        card_figure.get("study") == figure.study
        and card_figure.get("model") == figure.model
        and card_figure.get("dataset") == figure.dataset
        and _same(current_setting(dict(card_figure.get("setting") or {})), dict(figure.setting))
    )


def at_study_setting(group: RunGroup, figure: PublishedFigure) -> bool:
    """Whether the configuration is the figure's setting and the recipe in every other setting
    (speed settings such as bf16 aside: study C itself trained under AMP), at full scale."""
    comparison = group.comparison
    return comparison.study_setting and _is_figure(comparison.figure, figure)


def most_seeds(groups: Sequence[RunGroup]) -> RunGroup | None:
    return max(groups, key=lambda g: len(g.runs), default=None)  # max keeps the first of equals


def under_study_protocol(group: RunGroup) -> bool:
    return group.config.get("protocol") == STUDY


def same_recipe(a: RunGroup, b: RunGroup) -> bool:
    """Whether two configurations differ only in what a protocol decides (its name, the
    validation split, early stopping on it) and the seed: the settings both recorded (a run
    recorded before a setting existed has no key for it) are equal."""
    skip = protocol_fixed({**a.config, "protocol": STUDY}) | {"seed", "early_stopping_patience"}
    keys = (set(a.config) & set(b.config)) - skip
    return all(_same(a.config[k], b.config[k]) for k in keys)


def row_for(figure: PublishedFigure, groups: Sequence[RunGroup]) -> Row:
    """The figure's row: its protocol "study" configuration with the most seeds, beside the
    heldout configuration of the same recipe; without one, the heldout configuration alone
    (its honest figure from the same runs)."""
    at = [g for g in groups if at_study_setting(g, figure)]
    study = most_seeds([g for g in at if under_study_protocol(g)])
    if study is None:
        group = most_seeds(at)
        return Row(figure, group, group)
    heldout = [g for g in at if not under_study_protocol(g) and g.config.get("val_size")]
    return Row(figure, study, most_seeds([g for g in heldout if same_recipe(g, study)]))


def reproduction_rows(groups: Sequence[RunGroup]) -> list[Row]:
    """One row per published figure, in the studies' order."""
    return [row_for(figure, groups) for figure in FIGURES]


# What an earlier recipe did, as its run's model card and config show it (the card records the
# recipe a run was resolved with): runs recorded before a recipe took the study's code's way
# stay in the table, named by what they ran. (Probes recorded before their stage stated its
# clipping clipped at 1.0; the DBN's and SimSiam's earlier stages and views; MicroResNet's
# earlier init; study D's earlier augmentation; the SVCs' earlier images.)
def _stages(group: RunGroup) -> list[Mapping[str, Any]]:
    return list((group.card.get("recipe") or {}).get("stages") or [])


def _stage_names(group: RunGroup) -> list[str]:
    return [str(s.get("name")) for s in _stages(group)]


def _options(group: RunGroup) -> dict[str, Any]:
    return {str(k): v for k, v in group.config.get("model_options") or []}


EARLIER_RECIPES: tuple[tuple[str, Any], ...] = (
    (
        "linear probe clipped at 1.0",
        lambda g: any(
            s.get("kind") == "linear_probe" and "grad_clip" not in (s.get("options") or {})
            for s in _stages(g)
        ),
    ),
    ("Kaiming-normal conv init", lambda g: g.model == "microresnet" and not _options(g)),
    (
        "mean-field CD-1 visibles, a probe before fine-tuning, fine-tuning clipped at 1.0",
        lambda g: g.model == "dbn" and not _options(g),
    ),
    (
        "one-resample bilinear views, a linear probe's epochs in its maximum",
        lambda g: g.model == "simsiam_lgbm" and "linear_probe" in _stage_names(g),
    ),
    ("bilinear augmentation, brightness first", lambda g: g.config.get("augment") == "study_d"),
    (
        "the first 10,000 of a seed-dependent 55,000",
        lambda g: g.model.startswith("svm_") and g.config.get("subset") == 10_000,
    ),
)


def earlier_recipe(group: RunGroup) -> list[str]:
    """What the configuration ran that today's recipe no longer does (empty: today's)."""
    return [text for text, ran in EARLIER_RECIPES if ran(group)]


def trained_on(group: RunGroup | None) -> str:
    """The 'Protocol' cell: the configuration's protocol, its split, and an earlier recipe."""
    if group is None:
        return "—"
    label = protocol_label(group.config)
    held_out = int(group.config.get("val_size") or 0)
    text = {
        STUDY: f"study: {svc_sample(group) or 'every training image'}",
        STUDY_LIKE: "heldout setting, no validation split (the study's data)",
    }.get(label, f"heldout: {held_out:,} held out")
    earlier = earlier_recipe(group)
    return text + (f"; earlier recipe: {', '.join(earlier)}" if earlier else "")


def svc_sample(group: RunGroup) -> str | None:
    """Which 10,000 images an SVC under the study protocol fit on (None for other models)."""
    if not group.model.startswith("svm_"):
        return None
    if dict(group.config.get("model_options") or []).get("fit_sample") == "first":
        return "the first 10,000 of all 60,000"
    return "a random 10,000 of all 60,000 per seed"


def improved_groups(groups: Sequence[RunGroup]) -> list[RunGroup]:
    """Full-scale configurations of a study model that changed its recipe (not a speed-only
    change) and are set against a published accuracy."""
    chosen = []
    for group in groups:
        comparison = group.comparison
        if not comparison.comparable or comparison.figure is None:
            continue
        if comparison.figure.get("test_accuracy") is None or comparison.study_setting:
            continue
        chosen.append(group)
    return chosen


# ------------------------------------------------------------------------------------ cells


def verdict(
    group: RunGroup | None, metric: str | None, figure: Mapping[str, Any] | None, needed: int
) -> Verdict:
    """The one verdict rule (mnistbench.statistics) for `group`'s `metric` against `figure`."""
    return uncertainty.published_verdict(group, metric, figure, needed)


def _ours(group: RunGroup, metric: str | None, protocol: str) -> str:
    """'98.84 ± 0.10% [98.60–99.05%] (max over epochs)': our figure with its interval, named
    by the protocol it follows, and what of the study's setting our runs changed for speed
    ('differs: precision=bf16')."""
    if metric is None:
        return "—"
    stat = group.stat(metric)
    text = uncertainty.accuracy_cell(group, metric) + (
        f" ({protocol})" if protocol and stat else ""
    )
    differences = () if stat is None else group.comparison.differences
    return text + (f"; differs: {', '.join(differences)}" if differences else "")


def row_verdict_of(row: Row) -> Verdict:
    """The row's verdict: its figure under the study's protocol against the published one."""
    metric = None if row.group is None else group_protocol(row.group)[0]
    return verdict(row.group, metric, row.figure.to_dict(), row.needed)


def row_verdict(row: Row) -> str:
    """The row's 'Verdict' cell."""
    return row_verdict_of(row).text


def _honest_cell(row: Row) -> str:
    honest = row.honest
    if honest is None:
        return "—" if row.group is None else "not run (heldout)"
    text = uncertainty.accuracy_cell(honest, HONEST_PROTOCOL)
    if honest is not row.group:  # its own configuration: say how many seeds and what it ran
        earlier = earlier_recipe(honest)
        text += f" ({len(honest.runs)} seeds, heldout"
        text += f"; earlier recipe: {', '.join(earlier)})" if earlier else ")"
    return text


def row_cells(row: Row) -> list[str]:
    figure, group = row.figure, row.group
    seeds = 0 if group is None else len(group.runs)
    ours = "—"
    if group is not None:
        metric, protocol = group_protocol(group)
        ours = _ours(group, metric, protocol)
        if figure.test_accuracy is None:  # study B: the final model
            ours = uncertainty.accuracy_cell(group, "test_accuracy") + " (final)"
    return [
        figure.study,
        figure.model,
        figure.dataset,
        figure.setting_text,
        f"{seeds} of {row.needed}" if seeds else "not run",
        trained_on(group),
        ours,
        _honest_cell(row),
        figure.accuracy_text,
        row_verdict(row),
    ]


ROW_HEADER = [
    "Study", "Model", "Dataset", "Published setting", "Seeds (have of need)",
    "Our runs: protocol, recipe",
    f"Ours, study's protocol (mean ± std {uncertainty.CI_HEADER})",
    f"Ours, honest: test @ best val (mean ± std {uncertainty.CI_HEADER})", "Published",
    "Verdict (rule above; PI = 95% prediction interval for one run)",
]  # fmt: skip


def improved_cells(group: RunGroup) -> list[str]:
    figure = group.comparison.figure or {}
    metric, protocol = group_protocol(group)
    needed = SEEDS_NEEDED.get(str(figure.get("study")), 3)
    return [
        str(figure.get("study", "—")),
        group.model,
        group.dataset,
        _changed_with_precision(group),
        str(len(group.runs)),
        _ours(group, metric, protocol),
        uncertainty.accuracy_cell(group, HONEST_PROTOCOL),
        f"{accuracy_text(figure)} ({setting_text(figure)})",
        verdict(group, metric, figure, needed).text,
    ]


def _changed_with_precision(group: RunGroup) -> str:
    """What the configuration changed from its recipe, plus bf16 where it trained in it (a
    CUDA recipe's default, so not a change from the recipe, but a change from the studies)."""
    changed = settings_vs_recipe(group.config, group.card)
    precision = precision_difference(group.config)
    if precision is None or "precision=" in changed:
        return changed
    return f"{changed}; {precision} (the studies: fp32)"


IMPROVED_HEADER = [
    "Study", "Model", "Dataset", "Changed from the recipe", "Seeds",
    f"Ours, study's protocol (mean ± std {uncertainty.CI_HEADER})",
    f"Ours, honest: test @ best val (mean ± std {uncertainty.CI_HEADER})",
    "Published (its setting)", "Verdict (rule above; PI = 95% prediction interval for one run)",
]  # fmt: skip
