"""Intervals and verdicts as the report shows them: every accuracy cell with its 95% interval,
and every 'met?' cell from the one verdict rule (mnistbench.statistics.verdict_against_published).

Reports read what runs stored: a run's test size is its `n_test` metric, or for runs recorded
before it existed the test set's 10,000 images (at most `subset` of them with --subset). The
intervals here come from counts (accuracy x n_test), also for runs that kept per-image
predictions, so that a table reads the same for old and new runs; `mnistbench compare` uses
the predictions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mnistbench.report import format as fmt
from mnistbench.report.collect import FINAL_PROTOCOL, HONEST_PROTOCOL, RunGroup
from mnistbench.statistics import (
    Interval,
    Verdict,
    accuracy_interval,
    percent_range,
    seeds_images_interval,
    verdict_against_published,
)
from mnistbench.studies import FIGURES

# Seeds a row needs before its verdict stands: three wherever a study publishes an accuracy;
# study B publishes none, so one run shows the model trains at its recipe.
SEEDS_NEEDED = {"A": 3, "B": 1, "C": 3, "D": 3, "E": 3}
TEST_SET_IMAGES = 10_000  # MNIST's and Fashion-MNIST's test sets
# what an accuracy cell's bracket is, for table headers
CI_HEADER = "[95% CI: 1 seed Wilson; more, seeds × images bootstrap]"
VERDICT_RULE = (
    "Verdict (one rule in every table): 'consistent' when the published figure, one run of "
    "unknown seed, lies inside the 95% prediction interval for one run of our recipe (our "
    "seeds' spread plus the sampling of the test images; with one seed, the test sampling "
    "only); otherwise 'above' or 'below' (ours against it) by the gap in points and test "
    "images. A figure the study prints with '~' gets its side only, no precise gap. "
    "docs/statistics.md gives the method."
)
# studies whose figures are printed as approximate ('~'): no precise gap against them
APPROXIMATE = frozenset(
    (f.study, f.model, f.dataset) for f in FIGURES if getattr(f, "approximate", False)
)


def n_test(run_metrics: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    """The number of test images a run was scored on."""
    stored = run_metrics.get("n_test")
    if isinstance(stored, int) and not isinstance(stored, bool) and stored > 0:
        return stored
    subset = config.get("subset")
    if isinstance(subset, int) and not isinstance(subset, bool) and subset > 0:
        return min(subset, TEST_SET_IMAGES)
    return TEST_SET_IMAGES


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def accuracies(group: RunGroup, metric: str) -> tuple[list[float], int]:
    """The seeds' values of an accuracy metric (those that have one) and their test size (the
    smallest of the runs', should they differ)."""
    runs = [r for r in group.runs if _finite(r.metrics.get(metric))]
    values = [float(r.metrics[metric]) for r in runs]
    sizes = [n_test(r.metrics, r.config) for r in runs]
    return values, min(sizes, default=TEST_SET_IMAGES)


def interval(group: RunGroup, metric: str) -> Interval | None:
    """One seed: its Wilson interval; several: the seeds-and-images bootstrap of the mean."""
    values, size = accuracies(group, metric)
    if not values:
        return None
    if len(values) == 1:
        return accuracy_interval(values[0], size)
    return seeds_images_interval(values, size)


def accuracy_cell(group: RunGroup, metric: str) -> str:
    """'98.84 ± 0.10% [98.60–99.05%]': mean ± std over seeds and the 95% interval."""
    text = fmt.percent_stat(group.stat(metric))
    found = interval(group, metric)
    return text if found is None else f"{text} [{percent_range(found.low, found.high)}]"


def honest_cell(group: RunGroup) -> str:
    """RunGroup.accuracy() with its interval: test @ best val, else the final model's."""
    metric = HONEST_PROTOCOL if group.stat(HONEST_PROTOCOL) is not None else FINAL_PROTOCOL
    return accuracy_cell(group, metric)


def is_approximate(figure: Mapping[str, Any]) -> bool:
    """Whether the published figure was printed as approximate ('~98.8%')."""
    if figure.get("approximate"):
        return True
    key = (figure.get("study"), figure.get("model"), figure.get("dataset"))
    return key in APPROXIMATE


def published_verdict(
    group: RunGroup | None,
    metric: str | None,
    figure: Mapping[str, Any] | None,
    seeds_needed: int = 1,
) -> Verdict:
    """The one verdict of our configuration (its seeds' `metric`, the study's protocol) against
    a published figure (a model card's figure dict, or PublishedFigure.to_dict())."""
    published = None if figure is None else figure.get("test_accuracy")
    values: Sequence[float] = []
    size = TEST_SET_IMAGES
    if group is not None and metric is not None:
        values, size = accuracies(group, metric)
    return verdict_against_published(
        published,
        values,
        size,
        approximate=figure is not None and is_approximate(figure),
        seeds_needed=seeds_needed,
    )
