import numpy as np
import pytest

from harness.metrics import bootstrap_ci
from harness.stats import compare_strategies, holm, mcnemar_p


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
