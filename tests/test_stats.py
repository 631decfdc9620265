import numpy as np
import pytest

from harness.metrics import bootstrap_ci
from harness.stats import above_chance, compare_strategies, holm, mcnemar_p, min_detectable_drop, sign_flip_p


def test_mcnemar_matches_published_chi_square_example():
    # Wikipedia's McNemar example: b=121, c=59 -> chi2 = 21.36, p = 3.8e-6 (no continuity correction).
    from statsmodels.stats.contingency_tables import mcnemar

    result = mcnemar([[101, 121], [59, 33]], exact=False, correction=False)
    assert result.statistic == pytest.approx(21.3556, abs=1e-3)
    assert result.pvalue == pytest.approx(3.815e-6, rel=1e-3)


def test_mcnemar_exact_on_few_discordant_pairs():
    # 6 discordant pairs, all favouring a: exact two-sided binomial p = 2 * 0.5**6 = 0.03125
    a = np.array([1] * 10 + [1] * 6 + [0] * 4)
    b = np.array([1] * 10 + [0] * 6 + [0] * 4)
    assert mcnemar_p(a, b) == pytest.approx(0.03125)
    assert mcnemar_p(a, a) == 1.0


def test_holm_known_values():
    # Holm: sorted p (0.01, 0.02, 0.04) * (3, 2, 1) = (0.03, 0.04, 0.04 after monotone max)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


def test_bootstrap_ci_covers_true_mean_about_95_percent():
    rng = np.random.default_rng(123)
    covered = 0
    for trial in range(200):
        sample = rng.binomial(1, 0.3, size=120).astype(float)
        low, high = bootstrap_ci(list(sample), seed=trial)
        covered += low <= 0.3 <= high
    assert 0.90 <= covered / 200 <= 0.99


def test_compare_strategies_tie_and_win():
    n = 200
    strong = {f"i{k}": 1.0 for k in range(n)}
    weak = {f"i{k}": float(k % 2) for k in range(n)}
    almost = dict(strong, i0=0.0, i1=0.0)
    pairs = {(p.a, p.b): p for p in compare_strategies({"a": strong, "b": weak, "c": almost}, binary=True)}
    assert pairs[("a", "b")].verdict == "a better" and pairs[("a", "b")].significant
    assert pairs[("a", "c")].verdict == "tie" and not pairs[("a", "c")].significant
    assert pairs[("a", "b")].p_holm >= pairs[("a", "b")].p_value
    cont = compare_strategies({"x": {"i1": 0.5, "i2": 0.7}, "y": {"i1": 0.5, "i2": 0.7}}, binary=False)
    assert cont[0].verdict == "tie" and cont[0].diff == 0.0


def test_constant_paired_difference_on_two_items_is_not_significant():
    # Both items moved the same way: what two coin flips do half the time (the bootstrap said p = 0).
    a, b = np.array([0.6, 0.6]), np.array([0.2, 0.2])
    assert sign_flip_p(a, b) == pytest.approx(0.5)
    assert sign_flip_p(np.array([0.6] * 6), np.array([0.2] * 6)) == pytest.approx(2 / 2**6)
    (pair,) = compare_strategies({"x": {"i1": 0.6, "i2": 0.5}, "y": {"i1": 0.2, "i2": 0.1}}, binary=False)
    assert pair.verdict == "tie" and pair.p_value == pytest.approx(0.5) and pair.test == "sign-flip permutation"


def test_sign_flip_p_detects_a_real_shift():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    assert sign_flip_p(a + 0.1, a - rng.random(300) * 0.01) < 0.001
    assert sign_flip_p(a, a) == 1.0


@pytest.mark.parametrize("p_base, n", [(0.5, 100), (0.45, 100), (0.6, 1000), (0.3, 57)])
def test_min_detectable_drop_has_the_stated_power(p_base, n):
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    drop = min_detectable_drop(p_base, n)
    power = NormalIndPower().power(proportion_effectsize(p_base, p_base - drop), nobs1=n, alpha=0.05, ratio=1.0)
    assert power == pytest.approx(0.8, abs=1e-4)


def test_min_detectable_drop_known_value():
    # Cohen's h for 80% power at two-sided 0.05 with 100 per arm: (z_0.975 + z_0.8) * sqrt(2 / 100) = 0.3962.
    from scipy.stats import norm

    h = (norm.ppf(0.975) + norm.ppf(0.8)) * np.sqrt(2 / 100)
    expected = 0.5 - np.sin(np.arcsin(np.sqrt(0.5)) - h / 2) ** 2
    assert min_detectable_drop(0.5, 100) == pytest.approx(expected, abs=1e-4)
    assert min_detectable_drop(0.5, 100) == pytest.approx(0.193, abs=0.001)
    assert min_detectable_drop(0.1, 10) is None  # 1 of 10: even a fall to 0 is within the noise
    assert min_detectable_drop(0.0, 10) is None


def test_above_chance():
    assert above_chance(26, 100, 0.25) == (False, pytest.approx(0.4465, abs=1e-3))
    assert above_chance(40, 100, 0.25)[0]
    assert above_chance(0, 10, 0.0) == (False, 1.0) and above_chance(1, 10, 0.0)[0]
