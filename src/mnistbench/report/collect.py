"""What a report is built from: the store's runs, grouped across seeds, with summary statistics.

Everything here reads the store and returns plain data; tables, figures and the HTML page are
built on top of it, so the same numbers appear in every view.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mnistbench.report import cards
from mnistbench.report import format as fmt
from mnistbench.report.compare import Comparison, compare, settings_vs_recipe
from mnistbench.report.format import Stat
from mnistbench.store import Artefact, RunRecord, Store

# The three accuracy protocols shown side by side (run metric names from engine/summary.py).
PUBLISHED_PROTOCOL = "best_test_accuracy"  # max over epochs of test accuracy (studies A, D)
HONEST_PROTOCOL = "test_accuracy_at_best_val"  # test accuracy of the epoch chosen on validation
FINAL_PROTOCOL = "test_accuracy"  # the model after the last epoch


@dataclass
class RunGroup:
    """Finished runs whose configs are equal except for the seed (one point in a figure)."""

    key: str
    runs: list[RunRecord]

    @property
    def first(self) -> RunRecord:
        return self.runs[0]

    @property
    def model(self) -> str:
        return self.first.model

    @property
    def dataset(self) -> str:
        return self.first.dataset

    @property
    def config(self) -> dict[str, Any]:
        return {k: v for k, v in self.first.config.items() if k != "seed"}

    @property
    def seeds(self) -> list[Any]:
        return [r.config.get("seed") for r in self.runs]

    @property
    def device(self) -> str:
        return str(self.first.environment.get("device") or self.first.config.get("device", "?"))

    @property
    def card(self) -> dict[str, Any]:
        """The model card its runs were recorded with (the first seed's)."""
        return cards.card_of(self.first)

    @functools.cached_property
    def comparison(self) -> Comparison:
        """The published figure this configuration is set against, if any."""
        return compare(self.first.config, self.card)

    def values(self, metric: str) -> list[Any]:
        return [r.metrics.get(metric) for r in self.runs]

    def stat(self, metric: str) -> Stat | None:
        return Stat.of(r.metrics.get(metric) for r in self.runs)

    def accuracy(self) -> Stat | None:
        """The honest accuracy, falling back to the final one for runs without validation."""
        return self.stat(self.accuracy_protocol())

    def accuracy_protocol(self) -> str:
        """HONEST_PROTOCOL, or FINAL_PROTOCOL for runs without a validation split."""
        return HONEST_PROTOCOL if self.stat(HONEST_PROTOCOL) is not None else FINAL_PROTOCOL


@dataclass
class ReportData:
    """The store's contents as a report needs them."""

    store_path: str
    runs: list[RunRecord]  # every run, latest per config hash, ordered by run_id
    finished: list[RunRecord]
    not_finished: list[RunRecord]  # failed, diverged, interrupted, running: listed, not plotted
    groups: list[RunGroup]
    epochs: dict[int, list[dict]] = field(default_factory=dict)
    artefacts: dict[int, list[Artefact]] = field(default_factory=dict)

    def groups_of(self, model: str) -> list[RunGroup]:
        return [g for g in self.groups if g.model == model]


def recipe_groups(groups: Sequence[RunGroup]) -> list[RunGroup]:
    """One configuration per model and dataset, the one closest to the model's recipe: fewest
    settings changed from it (a CUDA run's bf16 counts as one), then most seeds, then a CPU
    run, then the oldest. The figures that show one point per model use these."""
    chosen: dict[tuple[str, str], RunGroup] = {}

    def rank(group: RunGroup) -> tuple:
        changed = settings_vs_recipe(group.first.config, group.card)
        count = 0 if changed == "recipe" else changed.count("=")
        return (count, -len(group.runs), group.device != "cpu", group.first.run_id)

    for group in groups:
        key = (group.model, group.dataset)
        if key not in chosen or rank(group) < rank(chosen[key]):
            chosen[key] = group
    return [g for g in groups if chosen.get((g.model, g.dataset)) is g]


def latest_per_config(runs: list[RunRecord]) -> list[RunRecord]:
    """Keep the newest run of each config hash (a --force rerun replaces the older one).

    Newest by start time, then run id: merged stores number runs in the order they were merged
    (results/*.jsonl alphabetically), so an old interrupted run merged after a newer finished
    one of the same config would otherwise hide it."""
    latest: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: (r.started_at or "", r.run_id)):
        latest[run.config_hash] = run
    return sorted(latest.values(), key=lambda r: (r.dataset, r.model, r.run_id))


def config_key(config: dict[str, Any], ignore: Sequence[str] = ("seed",)) -> str:
    """Canonical text of a config without some fields: equal keys = runs that differ only there."""
    return json.dumps(
        {k: v for k, v in config.items() if k not in ignore}, sort_keys=True, default=str
    )


def group_runs(runs: Iterable[RunRecord], ignore: Sequence[str] = ("seed",)) -> list[RunGroup]:
    """Group runs whose configs agree on every field but `ignore`, in first-seen order."""
    groups: dict[str, RunGroup] = {}
    for run in runs:
        key = config_key(run.config, ignore)
        groups.setdefault(key, RunGroup(key, [])).runs.append(run)
    return list(groups.values())


def load(store: Store) -> ReportData:
    """Read everything a report shows from `store` (runs, their epochs and artefacts)."""
    runs = sorted(latest_per_config(store.list_runs()), key=lambda r: r.run_id)
    finished = [r for r in runs if r.status == "finished"]
    # a config retried after a failure shows its finished run only
    finished_hashes = {r.config_hash for r in finished}
    not_finished = [
        r
        for r in store.list_runs()
        if r.status != "finished" and r.config_hash not in finished_hashes
    ]
    ordered = sorted(finished, key=lambda r: (r.dataset, r.model, r.run_id))
    return ReportData(
        store_path=str(store.path),
        runs=runs,
        finished=finished,
        not_finished=not_finished,
        groups=group_runs(ordered),
        epochs={r.run_id: store.epochs(r.run_id) for r in finished},
        artefacts={r.run_id: store.artefacts(r.run_id) for r in finished},
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower cost (x) and higher accuracy (y).

    Returned in order of increasing cost.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def full_data_groups(groups: Sequence[RunGroup]) -> list[RunGroup]:
    """The groups trained and tested on the whole data set: a `--subset` run's accuracy and
    time per epoch are not comparable with anyone's, so trade-off plots leave them out."""
    return [group for group in groups if not group.config.get("subset")]


def varying_families(
    groups: Sequence[RunGroup], fields: Sequence[str], label: Callable[[RunGroup], Any]
) -> list[list[RunGroup]]:
    """Sets of groups that differ only in `fields` (besides the seed), with ≥ 2 distinct labels."""
    families: dict[str, list[RunGroup]] = {}
    for group in groups:
        families.setdefault(config_key(group.first.config, ("seed", *fields)), []).append(group)
    return [f for f in families.values() if len({label(g) for g in f}) >= 2]


def group_labels(groups: Sequence[RunGroup]) -> dict[str, str]:
    """Short label per group: the model, plus the settings that tell its groups apart."""
    labels: dict[str, str] = {}
    by_model: dict[tuple[str, str], list[RunGroup]] = {}
    for group in groups:
        by_model.setdefault((group.model, group.dataset), []).append(group)
    for siblings in by_model.values():
        keys = sorted({k for g in siblings for k in g.config})
        varying = [
            k for k in keys if len({json.dumps(g.config.get(k), default=str) for g in siblings}) > 1
        ]
        for group in siblings:
            detail = ", ".join(
                fmt.setting(k, group.config.get(k)) for k in varying if k != "dataset"
            )
            labels[group.key] = f"{group.model} ({detail})" if detail else group.model
    return labels
