"""The uncertainty of every accuracy mnistbench reports, and the one verdict rule every view uses.

Torch-free and report-free: pure functions over counts, accuracies (fractions in [0, 1]) and
per-image correctness vectors, importable from the store, the report and the CLI alike.
docs/statistics.md says what each interval and test is and when to use which.

Stable API (other branches call these; keep the names and fields):

- ``wilson_interval(correct, n, confidence=0.95) -> (low, high)``: one run's test accuracy.
- ``accuracy_interval(accuracy, n_test)``: the same from a stored accuracy (runs that kept no
  per-image predictions).
- ``mcnemar_exact(a_correct, b_correct) -> McNemar``: two single runs on the same images.
- ``seeds_images_interval(accuracies, n_test, correct=None) -> Interval``: a configuration's
  mean over seeds (hierarchical bootstrap over seeds, then test images).
- ``one_run_prediction_interval(accuracies, n_test) -> Interval``: where one more run of the
  recipe would land (seed spread plus test sampling); the verdict rule uses it.
- ``paired_bootstrap(a_correct, b_correct) -> Paired``: two configurations, seeds x images.
- ``probability_of_improvement(a_scores, b_scores)``: rliable's P(A > B).
- ``compare_correct(a_correct, b_correct) -> Paired``: what `mnistbench compare` runs (exact
  McNemar for one run each, else the paired bootstrap).
- ``verdict_against_published(published, accuracies, n_test, ...) -> Verdict`` and
  ``verdict_between(paired) -> Verdict``: the one verdict rule.
- ``time_to_target_figures(times)``: a speedrun's time-to-target mean, median and IQR.

Every bootstrap is seeded (``BOOTSTRAP_SEED``), so a rebuilt table reads the same every time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # every interval mnistbench prints is a 95% one unless it says otherwise
# each 2.5% tail of a percentile interval is then estimated to ±0.25% (one standard error)
BOOTSTRAP_REPLICATES = 4000
BOOTSTRAP_SEED = 20241  # fixed: the same store renders the same intervals on every rebuild

WILSON = "95% CI, Wilson score over the test images"
SEEDS_IMAGES = "95% CI of the mean, hierarchical bootstrap (seeds, then test images)"
PREDICTION = "95% prediction interval for one run (seed spread + test sampling)"
MCNEMAR = "exact McNemar (two-sided binomial test on the discordant images)"
PAIRED = "paired bootstrap over test images (shared by A and B) and each side's seeds"


# ------------------------------------------------------------------------------------ types


@dataclass(frozen=True)
class Interval:
    """An interval on the accuracy scale (fractions), with the method that produced it."""

    low: float
    high: float
    method: str
    seed_spread_known: bool = True  # False: one seed, so the interval is test sampling only

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


@dataclass(frozen=True)
class McNemar:
    """Two runs scored on the same test images: who got which right, and the exact p-value."""

    n_test: int
    both_correct: int
    a_only_correct: int
    b_only_correct: int
    neither_correct: int
    p_value: float
    method: str = MCNEMAR

    @property
    def difference(self) -> float:
        """acc_A - acc_B: only the discordant images differ, so (a_only - b_only) / n."""
        return (self.a_only_correct - self.b_only_correct) / self.n_test


@dataclass(frozen=True)
class Paired:
    """Two configurations (one or more seeds each) compared on the same test images."""

    n_test: int
    seeds_a: int
    seeds_b: int
    a_only_correct: float  # images A got right and B wrong, averaged over pairs of seeds
    b_only_correct: float
    difference: float  # mean accuracy of A minus that of B (fraction)
    difference_ci95: tuple[float, float]
    p_value: float
    method: str
    probability_of_improvement: float | None = None  # rliable P(A > B); None with one seed each
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """What one view says about one row. `label` is one of LABELS; `text` is the cell."""

    label: str
    text: str
    gap_pt: float | None = None  # ours minus the reference, percentage points
    gap_images: int | None = None  # the same gap in test images
    interval: Interval | None = None


LABELS = (
    "consistent",  # the published figure lies inside our one-run 95% prediction interval
    "above",  # ours is above it: the published figure lies below the interval
    "below",  # ours is below it
    "not run",
    "no published figure",
    "A better",  # verdict_between: the paired test rejects no difference at 5%
    "B better",
    "no detectable difference",
)


# -------------------------------------------------------------------------- one run, counts


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval for `correct` successes out of `n` (scipy's binomtest)."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def correct_count(accuracy: float, n_test: int) -> int:
    """The number of images right behind a stored accuracy (stored as correct / n_test)."""
    return min(n_test, max(0, round(accuracy * n_test)))


def accuracy_interval(accuracy: float, n_test: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson interval of a run that kept its accuracy and test size but no predictions."""
    low, high = wilson_interval(correct_count(accuracy, n_test), n_test, confidence)
    return Interval(low, high, WILSON, seed_spread_known=False)


# --------------------------------------------------------------------------- two single runs


def mcnemar_exact(
    a_correct: Sequence[bool] | np.ndarray, b_correct: Sequence[bool] | np.ndarray
) -> McNemar:
    """The exact McNemar test (McNemar 1947; Dietterich 1998's recommendation for two
    classifiers on one test set): under no difference, each image only one run got right is
    equally likely to be A's or B's, so a_only ~ Binomial(a_only + b_only, 1/2)."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two vectors over the same images, got {a.shape} and {b.shape}")
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    return McNemar(
        n_test=int(a.size),
        both_correct=int(np.sum(a & b)),
        a_only_correct=a_only,
        b_only_correct=b_only,
        neither_correct=int(np.sum(~a & ~b)),
        p_value=mcnemar_p_value(a_only, b_only),
    )


def mcnemar_p_value(a_only: int, b_only: int) -> float:
    """Two-sided exact binomial p-value on the discordant counts (1.0 when there are none)."""
    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(a_only, discordant, 0.5, alternative="two-sided").pvalue)


# ----------------------------------------------------------------- a configuration's seeds


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _seed_weights(rng: np.random.Generator, seeds: int, replicates: int) -> np.ndarray:
    """(replicates, seeds) resampling weights that sum to 1 per replicate."""
    return rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates) / seeds


def _image_weights(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """(replicates, n) resampling counts of the test images (each row sums to n).

    Counted from n uniform picks per replicate: the same Multinomial(n, 1/n each) law as
    `rng.multinomial`, which draws one binomial per image and took 0.4 s per 500 x 10,000
    block (the robustness view spent two minutes here); picks and a bincount per row take ~8x
    less."""
    picks = rng.integers(0, n, size=(replicates, n), dtype=np.int32)
    counts = np.empty((replicates, n), dtype=np.float32)
    for row, row_picks in enumerate(picks):  # row by row: each bincount stays in cache
        counts[row] = np.bincount(row_picks, minlength=n)
    return counts


def _correct_matrix(correct: np.ndarray | Sequence[Sequence[bool]]) -> np.ndarray:
    """(seeds, images) right/wrong, or (seeds, conditions, images) when each image is scored
    under several conditions (e.g. corruptions): the image stays the resampling unit."""
    matrix = np.asarray(correct, dtype=bool)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim not in (2, 3) or matrix.shape[-1] == 0 or 0 in matrix.shape:
        raise ValueError(
            f"need a (seeds, images) or (seeds, conditions, images) correctness array, got "
            f"shape {matrix.shape}"
        )
    return matrix


def _per_image(matrix: np.ndarray) -> np.ndarray:
    """(seeds, images) score per image: right/wrong, or the fraction of its conditions right."""
    return matrix.astype(np.float32) if matrix.ndim == 2 else matrix.mean(1, dtype=np.float32)


def seeds_images_interval(
    accuracies: Sequence[float],
    n_test: int,
    correct: np.ndarray | None = None,
    confidence: float = CONFIDENCE,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """A confidence interval for a configuration's mean accuracy over seeds that counts both
    the seed-to-seed spread and the sampling of the test images: a hierarchical percentile
    bootstrap (seeds resampled with replacement, then test images).

    With per-image predictions (`correct`: a (seeds, n_test) boolean matrix, or (seeds,
    conditions, n_test) with each image scored under several corruptions) the images are
    resampled once per replicate and shared by every seed, as the seeds were scored on the same
    images. From counts alone the test sampling is drawn as Binomial(n_test, mean*) / n_test
    once per replicate: the seeds' errors on the shared images treated as fully correlated,
    the conservative bound (their real correlation is high but unknown without predictions).
    Written by hand: scipy.stats.bootstrap resamples one level only. With one seed this is the
    test-sampling interval alone, and says so (seed_spread_known=False)."""
    rng = np.random.default_rng(seed)
    values = np.asarray(accuracies, dtype=float)
    if correct is not None:
        matrix = _correct_matrix(correct)  # (seeds, [conditions,] images): images resampled
        seeds, n = matrix.shape[0], matrix.shape[-1]
        means = np.empty(replicates)
        as_float = _per_image(matrix)
        for start in range(0, replicates, 500):  # chunks keep (chunk, n) weights small
            chunk = min(500, replicates - start)
            images = _image_weights(rng, n, chunk)  # (chunk, n)
            per_seed = images @ as_float.T / n  # (chunk, seeds)
            means[start : start + chunk] = np.sum(_seed_weights(rng, seeds, chunk) * per_seed, 1)
    else:
        if values.size == 0:
            raise ValueError("need at least one accuracy")
        seeds, n = values.size, n_test
        # in whole images: integer sums are exact on every machine (a float matmul's order of
        # additions is the BLAS's), so committed tables rebuild byte for byte anywhere
        correct = np.array([correct_count(float(v), n) for v in values], dtype=np.int64)
        picks = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates)
        resampled = (picks @ correct) / (seeds * n)  # (replicates,) mean accuracy of the pick
        means = rng.binomial(n, resampled) / n
    low, high = _percentile(means, confidence)
    return Interval(low, high, SEEDS_IMAGES, seed_spread_known=seeds > 1)


def one_run_prediction_interval(
    accuracies: Sequence[float], n_test: int, confidence: float = CONFIDENCE
) -> Interval:
    """Where the test accuracy of ONE more run of the recipe would fall, on a fresh draw of
    test images: a normal prediction interval with variance s^2 (1 + 1/k) (seed spread, k seeds,
    sample variance s^2) + m (1 - m) / n (binomial test sampling at the mean m), and the
    Welch-Satterthwaite degrees of freedom (the test part's variance is known, infinite df).

    Parametric by choice: a bootstrap over 3 seeds cannot reach beyond the 3 values it has,
    and the t quantile is what widens the interval for so few seeds. With one seed the seed
    spread is unknown: the run's Wilson interval, marked seed_spread_known=False."""
    values = np.asarray(accuracies, dtype=float)
    k = values.size
    if k == 0:
        raise ValueError("need at least one accuracy")
    if k == 1:
        low, high = wilson_interval(correct_count(float(values[0]), n_test), n_test, confidence)
        return Interval(low, high, PREDICTION, seed_spread_known=False)
    mean = float(values.mean())
    seed_var = float(values.var(ddof=1)) * (1 + 1 / k)
    test_var = mean * (1 - mean) / n_test
    total = seed_var + test_var
    df = math.inf if seed_var == 0 else total**2 / (seed_var**2 / (k - 1))
    quantile = float(
        stats.norm.ppf(0.5 + confidence / 2)
        if math.isinf(df)
        else stats.t.ppf(0.5 + confidence / 2, df)
    )
    half = quantile * math.sqrt(total)
    return Interval(max(0.0, mean - half), min(1.0, mean + half), PREDICTION)


# ---------------------------------------------------------------- two configurations, paired


def probability_of_improvement(a_scores: Sequence[float], b_scores: Sequence[float]) -> float:
    """rliable's probability of improvement (Agarwal et al. 2021) on one task: P(X > Y) +
    0.5 P(X = Y) over every pair of a run of A and a run of B, i.e. the Mann-Whitney U of A
    divided by the number of pairs (scipy.stats.mannwhitneyu counts ties as one half)."""
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("need at least one run on each side")
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").statistic / (a.size * b.size))


def paired_bootstrap(
    a_correct: np.ndarray | Sequence[Sequence[bool]],
    b_correct: np.ndarray | Sequence[Sequence[bool]],
    confidence: float = CONFIDENCE,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> Paired:
    """Two configurations scored on the same test images, each with one or more seeds: the
    difference of their mean accuracies with a paired hierarchical bootstrap interval (one
    resample of the test images per replicate, shared by A and B, so the pairing by image is
    kept; each side's seeds resampled with replacement on their own, as seeds of different
    configurations are not paired). Two-sided p-value from the same replicates:
    (1 + replicates on the far side of zero) x 2 / (1 + replicates), capped at 1, so p < 0.05
    exactly when the 95% interval excludes zero. With (seeds, conditions, images) arrays an
    image's score is the fraction of its conditions it got right, so the same image under 15
    corruptions is resampled as one unit, not as 15 independent ones; the A-only and B-only
    counts are then of (image, condition) pairs. Written by hand: neither scipy nor
    statsmodels has a two-level paired bootstrap."""
    a = _correct_matrix(a_correct)
    b = _correct_matrix(b_correct)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"A has shape {a.shape[1:]} per seed and B {b.shape[1:]}: not the same images"
        )
    n = a.shape[-1]
    rng = np.random.default_rng(seed)
    a_float, b_float = _per_image(a), _per_image(b)
    differences = np.empty(replicates)
    for start in range(0, replicates, 500):
        chunk = min(500, replicates - start)
        images = _image_weights(rng, n, chunk)  # (chunk, n), shared by A and B
        a_means = np.sum(_seed_weights(rng, a.shape[0], chunk) * (images @ a_float.T / n), 1)
        b_means = np.sum(_seed_weights(rng, b.shape[0], chunk) * (images @ b_float.T / n), 1)
        differences[start : start + chunk] = a_means - b_means
    difference = float(a.mean() - b.mean())
    below = int(np.sum(differences <= 0))
    above = int(np.sum(differences >= 0))
    p_value = min(1.0, 2 * (1 + min(below, above)) / (1 + replicates))
    a_only = float(np.mean([np.sum(x & ~y) for x in a for y in b]))
    b_only = float(np.mean([np.sum(~x & y) for x in a for y in b]))
    improvement = None
    if a.shape[0] > 1 or b.shape[0] > 1:
        improvement = probability_of_improvement(
            a.reshape(a.shape[0], -1).mean(1), b.reshape(b.shape[0], -1).mean(1)
        )
    return Paired(
        n_test=n,
        seeds_a=a.shape[0],
        seeds_b=b.shape[0],
        a_only_correct=a_only,
        b_only_correct=b_only,
        difference=difference,
        difference_ci95=_percentile(differences, confidence),
        p_value=p_value,
        method=PAIRED,
        probability_of_improvement=improvement,
        extra={
            **({} if a.ndim == 2 else {"conditions": float(a.shape[1])}),
            # no replicate on the far side of zero: p is the smallest the bootstrap can give
            **({"p_floor": p_value} if min(below, above) == 0 else {}),
        },
    )


def compare_correct(
    a_correct: np.ndarray | Sequence[Sequence[bool]],
    b_correct: np.ndarray | Sequence[Sequence[bool]],
    confidence: float = CONFIDENCE,
) -> Paired:
    """The comparison `mnistbench compare` and every paired view use: one seed each, the exact
    McNemar p-value (its difference interval from the paired bootstrap over images); several
    seeds on either side, or several conditions per image (corruptions), the paired
    bootstrap's p-value (and rliable's probability of improvement over seeds)."""
    a = _correct_matrix(a_correct)
    b = _correct_matrix(b_correct)
    paired = paired_bootstrap(a, b, confidence)
    # McNemar counts independent images; an image under several conditions is not independent
    if a.shape[0] > 1 or b.shape[0] > 1 or a.ndim == 3:
        return paired
    exact = mcnemar_exact(a[0], b[0])
    return Paired(
        n_test=exact.n_test,
        seeds_a=1,
        seeds_b=1,
        a_only_correct=exact.a_only_correct,
        b_only_correct=exact.b_only_correct,
        difference=exact.difference,
        difference_ci95=paired.difference_ci95,
        p_value=exact.p_value,
        method=f"{MCNEMAR}; difference interval: paired bootstrap over test images",
    )


# ------------------------------------------------------------------------------- speedruns


def time_to_target_figures(times: Sequence[float]) -> dict[str, object]:
    """Mean, median and interquartile range (numpy's linear percentiles) of the seeds'
    time-to-target, in seconds: the median and IQR sit beside the mean because one slow seed (a
    shared machine, a late compile) moves the mean and not them."""
    if not times:
        return {"time_to_target_mean_s": None, "time_to_target_median_s": None,
                "time_to_target_iqr_s": None, "time_to_target_seeds": 0}  # fmt: skip
    q1, median, q3 = (float(q) for q in np.percentile(np.asarray(times, float), [25, 50, 75]))
    return {
        "time_to_target_mean_s": float(np.mean(times)),
        "time_to_target_median_s": median,
        "time_to_target_iqr_s": [q1, q3],
        "time_to_target_seeds": len(times),
    }


# --------------------------------------------------------------------------- the verdict rule


def percent_range(low: float, high: float, digits: int = 2) -> str:
    """'98.40-98.72%' for an interval of fractions."""
    return f"{100 * low:.{digits}f}–{100 * high:.{digits}f}%"


def verdict_against_published(
    published: float | None,
    accuracies: Sequence[float],
    n_test: int,
    approximate: bool = False,
    seeds_needed: int = 1,
    confidence: float = CONFIDENCE,
) -> Verdict:
    """Our configuration (its seeds' test accuracies under the study's protocol, fractions)
    against a published single run: 'consistent' when the published figure lies inside the
    95% prediction interval for one run of our recipe, else 'above' or 'below' (ours against
    it) by X pt (Y test images), with the interval. An `approximate` published figure (printed
    with '~') gets its side of the interval but no precise gap. Fewer seeds than
    `seeds_needed` are said beside the verdict; one seed means the seed spread is unknown."""
    if published is None:
        return Verdict("no published figure", "— (no published accuracy)")
    values = [float(a) for a in accuracies]
    if not values:
        return Verdict("not run", "not run")
    interval = one_run_prediction_interval(values, n_test, confidence)
    mean = sum(values) / len(values)
    gap = mean - published
    gap_pt = 100 * gap
    gap_images = round(gap * n_test)
    shown = percent_range(interval.low, interval.high)
    where = f"one-run 95% PI {shown}"
    if not interval.seed_spread_known:
        where += " (test sampling only: 1 seed, seed spread unknown)"
    if interval.contains(published):
        label = "consistent"
    else:
        label = "above" if published < interval.low else "below"
    if approximate:  # '~98.8%': which side, never a gap to the hundredth of a point
        text = f"{label} (published figure approximate, no precise gap; {where})"
    elif label == "consistent":
        text = f"consistent ({gap_pt:+.2f} pt; {where})"
    else:
        images = f"{abs(gap_images):,} of {n_test:,} test images"
        text = f"{label} by {abs(gap_pt):.2f} pt ({images}; {where})"
    if len(values) < seeds_needed:
        text += f"; only {len(values)} of {seeds_needed} seeds"
    return Verdict(
        label, text, None if approximate else gap_pt, None if approximate else gap_images, interval
    )


def p_text(p_value: float, at_floor: bool = False) -> str:
    """'p = 0.0123', or 'p ≤ 0.0005' where no bootstrap replicate crossed zero, so the
    bootstrap cannot say how much smaller p is."""
    return f"p ≤ {p_value:.2g}" if at_floor else f"p = {p_value:.3g}"


def verdict_between(paired: Paired, alpha: float = 1 - CONFIDENCE) -> Verdict:
    """One of our rows against another of ours, from the paired test: 'A better' or 'B better'
    when its p-value is under `alpha`, else 'no detectable difference'."""
    low, high = paired.difference_ci95
    gap_pt = 100 * paired.difference
    ci = f"95% CI {100 * low:+.2f} to {100 * high:+.2f} pt"
    detail = f"{gap_pt:+.2f} pt, {ci}, {p_text(paired.p_value, 'p_floor' in paired.extra)}"
    if paired.p_value < alpha:
        label = "A better" if paired.difference > 0 else "B better"
    else:
        label = "no detectable difference"
    interval = Interval(low, high, paired.method)
    return Verdict(
        label, f"{label} ({detail})", gap_pt, round(paired.difference * paired.n_test), interval
    )
