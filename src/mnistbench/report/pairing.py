"""`mnistbench compare A B`: two of our configurations paired image by image on the test set.

A side is a run id, a config hash, or a model name narrowed by filters (the seeds of one
configuration pooled). Its runs' per-image predictions (artefacts predictions_final, or
predictions_best_val) are read and checked to be of the same test images on both sides; then
mnistbench.statistics.compare_correct gives the difference with its interval and p-value (exact
McNemar for one run each, the paired bootstrap over images and seeds otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnistbench.artefacts import (
    CORRUPTED_OUTCOMES,
    PREDICTIONS_BEST_VAL,
    PREDICTIONS_FINAL,
    PREDICTIONS_KIND,
    read_corrupted_outcomes,
    read_predictions,
)
from mnistbench.errors import MnistbenchError
from mnistbench.report.collect import config_key, latest_per_config
from mnistbench.statistics import (
    compare_correct,
    p_text,
    seeds_images_interval,
    verdict_between,
    wilson_interval,
)
from mnistbench.store import RunRecord, Store

WHICH = {"final": PREDICTIONS_FINAL, "best_val": PREDICTIONS_BEST_VAL}
CLEAN, CORRUPTED = "clean", "corrupted"  # --on: the clean test set, or every corruption of it
_HASH = re.compile(r"[0-9a-f]{6,16}")


class CompareError(MnistbenchError):
    """Two sides that cannot be paired (no predictions, other test images, no such runs)."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its runs (one per seed), each run's right/wrong per scored
    image, and what identifies those images (so both sides are checked to be the same)."""

    selector: str
    runs: list[RunRecord]
    outcomes: list[np.ndarray]  # per run: (n_test,) bool, or (corruptions, n_test) bool
    images: list[tuple]  # per run: the sizes and checksums of the images it was scored on
    on: str = CLEAN

    @property
    def correct(self) -> np.ndarray:
        return np.stack(self.outcomes)  # (seeds, n_test) or (seeds, corruptions, n_test)

    def describe(self) -> str:
        first = self.runs[0]
        ids = ", ".join(str(r.run_id) for r in self.runs)
        seeds = f"{len(self.runs)} seed{'s' if len(self.runs) > 1 else ''}"
        return f"{first.model} on {first.dataset}, {seeds} (run {ids})"


def _rerun_hint(run: RunRecord) -> str:
    config = run.config
    return (
        f"mnistbench run {run.model} --dataset {run.dataset} --seed {config.get('seed')} "
        f"--epochs {config.get('epochs')} --force (with the run's other settings)"
    )


def _same(stored: Any, given: Any) -> bool:
    """A config value against a filter's text: 'none' for unset, numbers by value (2e-3 is
    0.002), anything else as text."""
    text = str(given).strip()
    if stored is None:
        return text.lower() in ("none", "")
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        try:
            return float(text) == float(stored)
        except ValueError:
            return False
    return str(stored) == text


def _matches(run: RunRecord, filters: Mapping[str, Any]) -> bool:
    return all(_same(run.config.get(key), value) for key, value in filters.items())


def resolve(store: Store, selector: str, filters: Mapping[str, Any]) -> list[RunRecord]:
    """The finished runs a selector names: a run id, a config hash (or its first 6+ hex
    digits), or a model name with `filters` (config fields, e.g. dataset, seed, epochs)
    naming one configuration whose seeds are pooled."""
    finished = [r for r in store.list_runs() if r.status == "finished"]
    if selector.isdigit():
        return [store.get_run(int(selector))]
    if _HASH.fullmatch(selector):
        found = [r for r in finished if r.config_hash.startswith(selector)]
        if found:
            return latest_per_config(found)
    chosen = [r for r in finished if r.model == selector and _matches(r, filters)]
    if not chosen:
        narrowed = f" with {_filters_text(filters)}" if filters else ""
        raise CompareError(
            f"No finished run matches {selector!r}{narrowed}. Give a run id, a config hash or "
            "a model name (`mnistbench report --view zoo-small` lists what the store holds), "
            "and loosen the filters."
        )
    latest = latest_per_config(chosen)
    configurations: dict[str, list[RunRecord]] = {}
    for run in latest:
        configurations.setdefault(config_key(run.config), []).append(run)
    if len(configurations) > 1:
        differing = sorted(
            {
                key
                for run in latest
                for key, value in run.config.items()
                if key != "seed" and any(other.config.get(key) != value for other in latest)
            }
        )
        raise CompareError(
            f"{selector!r} names {len(configurations)} configurations of {selector} (they differ "
            f"in {', '.join(differing)}); only the seeds of one configuration are pooled. Narrow "
            "it with filters such as --dataset, --epochs or --subset, or give run ids."
        )
    return next(iter(configurations.values()))


def _filters_text(filters: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in filters.items())


def load_side(
    store: Store, selector: str, runs: Sequence[RunRecord], which: str, on: str = CLEAN
) -> Side:
    """The runs with their per-image outcomes on the clean test set (`on="clean"`), on all of
    MNIST-C's corruptions ("corrupted") or on one (its name); CompareError naming the runs
    that kept none."""
    if on != CLEAN:
        return _corrupted_side(store, selector, runs, which, on)
    name = WHICH[which]
    predictions, missing = [], []
    for run in runs:
        if which == "best_val" and run.metrics.get("test_accuracy_at_best_val") is None:
            raise CompareError(
                f"Run {run.run_id} ({run.model}) chose no epoch on validation (val_size=0, or "
                "no test score per epoch), so it has no best-validation model to compare. "
                "Compare its final model (leave out --which)."
            )
        found = _artefacts(store, run, name)
        if not found and which == "best_val":  # no best-val copy: validation chose the end
            found = _artefacts(store, run, PREDICTIONS_FINAL)
        if not found:
            missing.append(run)
            continue
        try:
            predictions.append(read_predictions(found[-1].content))
        except ValueError as error:
            raise CompareError(
                f"The predictions of run {run.run_id} ({run.model}) cannot be read: {error}. "
                f"Re-run it to record them again: {_rerun_hint(run)}."
            ) from error
    if missing:
        listed = _listed(missing)
        raise CompareError(
            f"No per-image predictions for {listed}: it was recorded before mnistbench kept "
            "them (or scored no test images), and a paired test needs every image's outcome. "
            f"Re-run it to record them, e.g. {_rerun_hint(missing[0])}; the counts alone give "
            "each run's Wilson interval in the reports, not a paired comparison."
        )
    return Side(
        selector,
        list(runs),
        [p.correct for p in predictions],
        [(p.n, p.labels_sha256) for p in predictions],
    )


def _artefacts(store: Store, run: RunRecord, name: str) -> list:
    return [a for a in store.artefacts(run.run_id) if a.kind == PREDICTIONS_KIND and a.name == name]


def _listed(runs: Sequence[RunRecord]) -> str:
    return "; ".join(f"run {r.run_id} ({r.model}, seed {r.config.get('seed')})" for r in runs)


def _corrupted_side(
    store: Store, selector: str, runs: Sequence[RunRecord], which: str, on: str
) -> Side:
    """Outcomes on the corrupted test sets `mnistbench evaluate` scored the final model on."""
    if which != "final":
        raise CompareError(
            "Corruptions are scored on each run's final model (`mnistbench evaluate`), so "
            "--on corrupted compares final models: leave out --which best_val."
        )
    outcomes, images, missing = [], [], []
    for run in runs:
        found = _artefacts(store, run, CORRUPTED_OUTCOMES)
        if not found:
            missing.append(run)
            continue
        try:
            scored = read_corrupted_outcomes(found[-1].content)
        except ValueError as error:
            raise CompareError(
                f"The corrupted-image outcomes of run {run.run_id} ({run.model}) cannot be "
                f"read: {error}. Score it again: mnistbench evaluate {run.run_id} --what "
                "corruptions."
            ) from error
        names = scored.names if on == CORRUPTED else (on,)
        if on != CORRUPTED and on not in scored.names:
            raise CompareError(
                f"Run {run.run_id} ({run.model}) was scored on {', '.join(scored.names)}, not "
                f"on {on!r}. Give --on corrupted (all of them) or one of those names."
            )
        rows = [scored.names.index(name) for name in names]
        # one corruption is one set of independent images: (n,), so McNemar applies
        outcomes.append(scored.correct[rows] if on == CORRUPTED else scored.correct[rows[0]])
        images.append(
            (scored.n, scored.labels_sha256, tuple((n, scored.images_sha256[n]) for n in names))
        )
    if missing:
        ids = " ".join(str(r.run_id) for r in missing)
        raise CompareError(
            f"No per-image outcomes on corrupted images for {_listed(missing)}: score them "
            f"with `mnistbench evaluate {ids} --what corruptions` (runs that kept their "
            "weights; evaluations from before the outcomes were kept need scoring again)."
        )
    return Side(selector, list(runs), outcomes, images, on)


def _same_images(a: Side, b: Side) -> None:
    if len(set(a.images) | set(b.images)) > 1:
        sizes = sorted({key[0] for key in (*a.images, *b.images)})
        what = "test images" if a.on == CLEAN else "corrupted test images"
        raise CompareError(
            f"{a.describe()} and {b.describe()} were scored on different {what} "
            f"({', '.join(f'{n:,}' for n in sizes)} images, or other labels or corrupted "
            "copies: another data set, --subset or corruption seed), and a paired test needs "
            "the same images on both sides. Compare runs of the same data set scored on the "
            "same test set (the same --subset, or none)."
        )


def compare_sides(a: Side, b: Side) -> dict[str, Any]:
    """The comparison as JSON-ready data (fractions; see `compare_text` for the words)."""
    _same_images(a, b)
    paired = compare_correct(a.correct, b.correct)
    verdict = verdict_between(paired)

    def side(s: Side) -> dict[str, Any]:
        correct = s.correct
        n = correct.shape[-1]
        accuracies = correct.reshape(len(s.runs), -1).mean(axis=1)
        entry: dict[str, Any] = {
            "selector": s.selector,
            "model": s.runs[0].model,
            "dataset": s.runs[0].dataset,
            "run_ids": [r.run_id for r in s.runs],
            "seeds": [r.config.get("seed") for r in s.runs],
            "accuracy": float(accuracies.mean()),
            "accuracies": [float(x) for x in accuracies],
        }
        if len(s.runs) == 1 and correct.ndim == 2:
            entry["accuracy_ci95"] = list(wilson_interval(int(correct.sum()), n))
            entry["interval_method"] = "95% CI, Wilson"
        else:
            interval = seeds_images_interval(accuracies, n, correct=correct)
            entry["accuracy_ci95"] = interval.as_list()
            entry["interval_method"] = interval.method
        return entry

    return {
        "on": a.on,
        "conditions": 1 if a.correct.ndim == 2 else int(a.correct.shape[1]),
        "n_test": paired.n_test,
        "a": side(a),
        "b": side(b),
        "a_only_correct": paired.a_only_correct,
        "b_only_correct": paired.b_only_correct,
        "difference": paired.difference,
        "difference_ci95": list(paired.difference_ci95),
        "p_value": paired.p_value,
        "p_at_floor": "p_floor" in paired.extra,  # no bootstrap replicate crossed zero
        "method": paired.method,
        "probability_of_improvement": paired.probability_of_improvement,
        "verdict": verdict.label,
    }


def compare_text(result: Mapping[str, Any]) -> str:
    """The comparison in words, for the terminal."""

    def pct(x: float) -> str:
        return f"{100 * x:.2f}%"

    def count(x: float) -> str:  # an average over pairs of seeds is not a whole number
        return f"{x:,}" if isinstance(x, int) else f"{x:,.1f}"

    def line(tag: str, s: Mapping[str, Any]) -> str:
        low, high = s["accuracy_ci95"]
        runs = ", ".join(str(i) for i in s["run_ids"])
        return (
            f"{tag}: {s['model']} on {s['dataset']}, {len(s['run_ids'])} run(s) ({runs}): "
            f"{pct(s['accuracy'])} ({s['interval_method']} {pct(low)}–{pct(high)})"
        )

    low, high = result["difference_ci95"]
    n = result["n_test"]
    on, conditions = result.get("on", CLEAN), result.get("conditions", 1)
    if on == CLEAN:
        scored, unit = f"{n:,} test images", "images"
    else:
        which = f"all {conditions} MNIST-C corruptions" if on == CORRUPTED else f"the {on} copy"
        scored = f"{n:,} test images under {which} (each image one resampling unit)"
        unit = "image-corruption pairs" if conditions > 1 else "images"
    lines = [
        *([] if on == CLEAN else [f"on: {which} of the test set (accuracies below are there)"]),
        line("A", result["a"]),
        line("B", result["b"]),
        f"A − B: {100 * result['difference']:+.2f} pt (95% CI {100 * low:+.2f} to "
        f"{100 * high:+.2f} pt) on {scored}; A alone right on "
        f"{count(result['a_only_correct'])} {unit}, B alone on "
        f"{count(result['b_only_correct'])}"
        + (
            " (averaged over pairs of seeds)"
            if len(result["a"]["run_ids"]) > 1 or len(result["b"]["run_ids"]) > 1
            else ""
        ),
        f"{p_text(result['p_value'], bool(result.get('p_at_floor')))} ({result['method']})",
    ]
    if result["probability_of_improvement"] is not None:
        lines.append(
            f"probability of improvement P(A > B) = {result['probability_of_improvement']:.2f} "
            "(rliable: over every pair of a seed of A and a seed of B)"
        )
    lines.append(f"verdict: {result['verdict']} (at the 5% level)")
    return "\n".join(lines)
