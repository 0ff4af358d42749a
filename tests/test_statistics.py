"""mnistbench.statistics against hand computations and the reference libraries (scipy,
statsmodels): Wilson, exact McNemar, the seeds-and-images interval, the one-run prediction
interval, the paired bootstrap, the probability of improvement and the verdict rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from mnistbench import statistics as st


def test_wilson_matches_a_hand_computation():
    # 8 of 10: p = 0.8, z = 1.959964, z^2 / n = 0.384146;
    # centre = (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half = 1.959964 / 1.384146 * sqrt(0.016 + 0.009604) = 0.226578
    low, high = st.wilson_interval(8, 10)
    assert low == pytest.approx(0.716740 - 0.226578, abs=2e-6)
    assert high == pytest.approx(0.716740 + 0.226578, abs=2e-6)


@pytest.mark.parametrize(("correct", "n"), [(980, 1000), (9841, 10000), (0, 50), (50, 50), (3, 7)])
def test_wilson_matches_statsmodels(correct, n):
    expected = proportion_confint(correct, n, alpha=0.05, method="wilson")
    assert st.wilson_interval(correct, n) == pytest.approx(expected, abs=1e-12)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        st.wilson_interval(11, 10)


def test_accuracy_interval_reads_the_count_behind_a_stored_accuracy():
    interval = st.accuracy_interval(0.9841, 10_000)
    assert (interval.low, interval.high) == pytest.approx(st.wilson_interval(9841, 10_000))
    assert not interval.seed_spread_known


def test_exact_mcnemar_on_constructed_predictions():
    # 12 images: both right on 6, A alone on 4, B alone on 1, neither on 1.
    a = [1] * 6 + [1] * 4 + [0] * 1 + [0]
    b = [1] * 6 + [0] * 4 + [1] * 1 + [0]
    result = st.mcnemar_exact(a, b)
    assert (result.both_correct, result.a_only_correct) == (6, 4)
    assert (result.b_only_correct, result.neither_correct) == (1, 1)
    # by hand: P(X <= 1 or X >= 4), X ~ Bin(5, 1/2) = (1 + 5 + 5 + 1) / 32 = 0.375
    assert result.p_value == pytest.approx(12 / 32)
    assert result.p_value == pytest.approx(stats.binomtest(4, 5, 0.5).pvalue)
    assert result.difference * result.n_test == pytest.approx(4 - 1)


def test_mcnemar_without_discordant_images_is_one():
    assert st.mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0


def test_seeds_images_interval_without_seed_spread_is_the_test_sampling_interval():
    # three seeds at exactly 98.00% on 10,000 images: only the test images vary, and the mean's
    # interval is Binomial(10,000, 0.98) / 10,000's central 95% (97.72-98.27% from scipy)
    interval = st.seeds_images_interval([0.98, 0.98, 0.98], 10_000)
    expected = stats.binom.ppf([0.025, 0.975], 10_000, 0.98) / 10_000
    assert interval.low == pytest.approx(expected[0], abs=1.5e-4)
    assert interval.high == pytest.approx(expected[1], abs=1.5e-4)


def test_seeds_images_interval_grows_with_seed_spread_and_is_reproducible():
    narrow = st.seeds_images_interval([0.98, 0.98, 0.98], 10_000)
    wide = st.seeds_images_interval([0.975, 0.98, 0.985], 10_000)
    assert wide.high - wide.low > (narrow.high - narrow.low) + 0.004
    assert st.seeds_images_interval([0.975, 0.98, 0.985], 10_000) == wide


def test_seeds_images_interval_from_predictions_matches_counts_when_seeds_agree():
    rng = np.random.default_rng(1)
    one = rng.random(2_000) < 0.9
    correct = np.stack([one, one])  # two seeds, identical predictions
    from_predictions = st.seeds_images_interval(correct.mean(1), 2_000, correct=correct)
    from_counts = st.seeds_images_interval(correct.mean(1), 2_000)
    assert from_predictions.low == pytest.approx(from_counts.low, abs=2e-3)
    assert from_predictions.high == pytest.approx(from_counts.high, abs=2e-3)


def test_image_resampling_counts_follow_the_multinomial_law():
    # Multinomial(n, 1/n each), worked by hand: every row sums to n; a count has mean 1 and
    # variance 1 - 1/n; two counts of one row have covariance -1/n (correlation -1/(n-1))
    n, replicates = 50, 20_000
    counts = st._image_weights(np.random.default_rng(3), n, replicates)
    assert counts.shape == (replicates, n) and counts.dtype == np.float32
    assert np.all(counts.sum(1) == n) and np.all(counts == np.round(counts)) and counts.min() >= 0
    assert counts.mean() == pytest.approx(1.0, abs=2e-3)
    assert counts.var(0).mean() == pytest.approx(1 - 1 / n, abs=0.02)
    cov = np.cov(counts[:, :10], rowvar=False)
    assert cov[~np.eye(10, dtype=bool)].mean() == pytest.approx(-1 / n, abs=0.004)
    # a count's law is Binomial(n, 1/n): P(0) = (1 - 1/n)^n = 0.3642 for n = 50
    assert np.mean(counts == 0) == pytest.approx((1 - 1 / n) ** n, abs=0.005)


def test_prediction_interval_worked_by_hand():
    # seeds 0.945, 0.95, 0.955 on 10,000 images: s^2 = 2.5e-5, seed part 2.5e-5 * 4/3 =
    # 3.3333e-5, test part 0.95 * 0.05 / 1e4 = 4.75e-6; df = (3.8083e-5)^2 / ((3.3333e-5)^2 / 2)
    # = 2.6106, half = t(0.975, 2.6106) * sqrt(3.8083e-5) = t * 0.0061712
    seed_var, test_var = 2.5e-5 * 4 / 3, 0.95 * 0.05 / 10_000
    df = (seed_var + test_var) ** 2 / (seed_var**2 / 2)
    assert df == pytest.approx(2.6106, abs=1e-4)
    half = stats.t.ppf(0.975, df) * 0.0061712
    interval = st.one_run_prediction_interval([0.945, 0.95, 0.955], 10_000)
    assert (interval.low, interval.high) == pytest.approx((0.95 - half, 0.95 + half), abs=1e-6)
    # zero seed spread: the normal test-sampling interval, 0.98 ± 1.96 * 0.0014
    flat = st.one_run_prediction_interval([0.98, 0.98], 10_000)
    assert flat.high - 0.98 == pytest.approx(1.959964 * 0.0014, abs=1e-6)


def test_prediction_interval_of_one_seed_is_its_wilson_interval():
    interval = st.one_run_prediction_interval([0.9841], 10_000)
    assert (interval.low, interval.high) == pytest.approx(st.wilson_interval(9841, 10_000))
    assert not interval.seed_spread_known


def test_probability_of_improvement_by_hand():
    # pairs (a, b): 0.99 beats all three, 0.97 beats 0.96, ties 0.97 (a half), loses to 0.98
    assert st.probability_of_improvement([0.99, 0.97], [0.96, 0.97, 0.98]) == pytest.approx(
        (3 + 1 + 0.5) / 6
    )


def test_paired_bootstrap_difference_and_discordant_counts():
    rng = np.random.default_rng(2)
    a = rng.random((3, 1_000)) < 0.95
    b = rng.random((2, 1_000)) < 0.85
    paired = st.paired_bootstrap(a, b)
    assert paired.difference == pytest.approx(a.mean() - b.mean())
    assert paired.difference_ci95[0] > 0  # a 10-pt gap on 1,000 images is far beyond noise
    assert paired.p_value == pytest.approx(2 / (1 + st.BOOTSTRAP_REPLICATES))
    a_only = np.mean([np.sum(x & ~y) for x in a for y in b])
    b_only = np.mean([np.sum(~x & y) for x in a for y in b])
    assert paired.a_only_correct - paired.b_only_correct == pytest.approx(a_only - b_only)
    assert paired.probability_of_improvement == 1.0


def test_paired_bootstrap_sees_no_difference_between_identical_configurations():
    rng = np.random.default_rng(3)
    a = rng.random((2, 500)) < 0.9
    paired = st.paired_bootstrap(a, a.copy())
    assert paired.difference == 0
    assert paired.p_value == 1.0


def test_compare_correct_uses_exact_mcnemar_for_single_runs():
    a = np.array([1, 1, 1, 1, 0, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 1, 1, 1, 0, 0], bool)
    paired = st.compare_correct(a, b)
    assert (paired.a_only_correct, paired.b_only_correct) == (4, 1)
    assert paired.p_value == pytest.approx(stats.binomtest(4, 5).pvalue)
    assert paired.difference * 8 == pytest.approx(4 - 1)
    assert paired.method.startswith(st.MCNEMAR)


def test_paired_refuses_different_test_sets():
    with pytest.raises(ValueError, match="not the same images"):
        st.paired_bootstrap(np.ones((1, 10), bool), np.ones((1, 12), bool))


# ------------------------------------------------------------------------- the verdict rule


def test_verdict_consistent_when_published_inside_the_prediction_interval():
    verdict = st.verdict_against_published(0.9805, [0.9802, 0.9790, 0.9811], 10_000, seeds_needed=3)
    assert verdict.label == "consistent"
    assert verdict.interval.contains(0.9805)
    assert verdict.text.startswith("consistent (-0.04 pt")


def test_verdict_below_says_the_gap_in_points_and_images():
    # mean 98.01% against 98.80%: the interval (97.60-98.42%, worked in the PI test's way) is
    # below the published figure
    verdict = st.verdict_against_published(0.988, [0.9802, 0.9790, 0.9811], 10_000)
    assert verdict.label == "below"
    assert verdict.gap_images == -79
    assert verdict.text.startswith("below by 0.79 pt (79 of 10,000 test images; one-run 95% PI")


def test_verdict_above():
    verdict = st.verdict_against_published(0.95, [0.9802, 0.9790, 0.9811], 10_000)
    assert verdict.label == "above"
    assert verdict.gap_images == 301


def test_verdict_on_an_approximate_figure_gives_no_precise_gap():
    verdict = st.verdict_against_published(0.988, [0.9802, 0.9790, 0.9811], 10_000, True)
    assert verdict.label == "below"
    assert verdict.gap_pt is None and "no precise gap" in verdict.text
    assert "0.79" not in verdict.text


def test_verdict_with_one_seed_says_the_spread_is_unknown_and_the_seeds_missing():
    verdict = st.verdict_against_published(0.99, [0.9841], 10_000, seeds_needed=3)
    assert verdict.label == "below"
    assert "seed spread unknown" in verdict.text and verdict.text.endswith("only 1 of 3 seeds")


def test_verdict_without_runs_or_published_figure():
    assert st.verdict_against_published(None, [0.98], 10_000).label == "no published figure"
    assert st.verdict_against_published(0.98, [], 10_000).label == "not run"


def test_verdict_between_two_of_our_rows():
    a = np.zeros(1_000, bool)
    a[:950] = True
    b = np.zeros(1_000, bool)
    b[:900] = True
    assert st.verdict_between(st.compare_correct(a, b)).label == "A better"
    assert st.verdict_between(st.compare_correct(b, a)).label == "B better"
    assert st.verdict_between(st.compare_correct(a, a)).label == "no detectable difference"


def test_paired_bootstrap_over_conditions_resamples_whole_images():
    """(seeds, conditions, images): an image under k identical conditions is one unit, so the
    interval equals the one from the (seeds, images) matrix; counts are of pairs."""
    rng = np.random.default_rng(3)
    a = rng.random((2, 500)) < 0.8
    b = rng.random((3, 500)) < 0.75
    flat = st.paired_bootstrap(a, b, replicates=600)
    stacked = st.paired_bootstrap(np.stack([a] * 4, 1), np.stack([b] * 4, 1), replicates=600)
    assert stacked.difference_ci95 == pytest.approx(flat.difference_ci95)
    assert stacked.p_value == pytest.approx(flat.p_value)
    assert stacked.a_only_correct == pytest.approx(4 * flat.a_only_correct)
    assert stacked.extra["conditions"] == 4.0
    # conditions that differ: the difference is the mean over images and conditions
    a3, b3 = rng.random((1, 3, 400)) < 0.9, rng.random((1, 3, 400)) < 0.6
    paired = st.compare_correct(a3, b3)
    assert paired.difference == pytest.approx(a3.mean() - b3.mean())
    assert paired.method == st.paired_bootstrap(a3, b3).method  # no McNemar across conditions
    assert paired.p_value < 0.01


def test_a_bootstrap_p_with_no_replicate_across_zero_says_it_is_at_the_floor():
    """p = 2 (1 + 0) / (1 + R) is the smallest the bootstrap can give: printed as a bound."""
    a = np.ones((1, 300), dtype=bool)
    b = np.zeros((2, 300), dtype=bool)
    paired = st.paired_bootstrap(a, b, replicates=999)
    assert paired.p_value == pytest.approx(2 / 1000)
    assert paired.extra["p_floor"] == paired.p_value
    assert "p ≤ 0.002" in st.verdict_between(paired).text
    close = st.paired_bootstrap(a[:, :1].repeat(300, 1), a.repeat(2, 0), replicates=999)
    assert "p_floor" not in close.extra and "p = 1" in st.verdict_between(close).text
