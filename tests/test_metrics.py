"""Per-strategy intervals: Wilson for binary scorers, bootstrap for continuous ones, and the small-sample flags."""

import math

import pytest
from scipy.stats import norm

from harness.metrics import MIN_TEST_ITEMS, score_ci, summarize, wilson_ci
from harness.records import Prediction

Z = norm.ppf(0.975)


def predictions(n: int) -> list[Prediction]:
    return [Prediction(f"i{k}", "p", 100, 10, 0.5, 0.1) for k in range(n)]


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    # Wilson (1927): centre (k + z^2/2) / (n + z^2), half-width z sqrt(k(n-k)/n + z^2/4) / (n + z^2).
    centre = (k + Z**2 / 2) / (n + Z**2)
    half = Z * math.sqrt(k * (n - k) / n + Z**2 / 4) / (n + Z**2)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(2, 2), (0, 2), (15, 30), (26, 100), (0, 10)])
def test_wilson_matches_the_closed_form(k, n):
    assert wilson_ci(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)


def test_two_of_two_is_not_zero_width():
    low, high = wilson_ci(2, 2)
    assert low == pytest.approx(2 / (2 + Z**2))  # 0.342: k = n puts the lower bound at n / (n + z^2)
    assert high == pytest.approx(1.0)
    m = summarize([1.0, 1.0], predictions(2), "exact_match")
    assert m["ci_method"] == "wilson" and m["binary"]
    assert m["ci_low"] == pytest.approx(0.3424, abs=1e-4) and m["ci_high"] == pytest.approx(1.0)
    assert not m["ci_degenerate"] and m["small_sample"]


def test_constant_continuous_sample_is_flagged_not_certain():
    m = summarize([0.0, 0.0], predictions(2), "token_f1")
    assert m["ci_method"] == "bootstrap" and not m["binary"]
    assert m["ci_low"] == m["ci_high"] == 0.0
    assert m["ci_degenerate"] and m["small_sample"]


def test_varied_continuous_sample_gets_a_bootstrap_interval():
    scores = [k / 50 for k in range(50)]
    flags = score_ci(scores, binary=False)
    assert flags["ci_method"] == "bootstrap" and not flags["ci_degenerate"] and not flags["small_sample"]
    assert flags["ci_low"] < sum(scores) / 50 < flags["ci_high"]


def test_small_sample_threshold_is_min_test_items():
    assert score_ci([1.0, 0.0] * (MIN_TEST_ITEMS // 2) + [1.0], binary=True)["small_sample"] is False
    assert score_ci([1.0, 0.0] * ((MIN_TEST_ITEMS - 1) // 2), binary=True)["small_sample"] is True


def test_summarize_keeps_its_keys():
    """Its figures are fields of the typed metrics.json record, named without unit suffixes."""
    import dataclasses

    from harness.run_schema import StrategyMetrics

    m = summarize([1.0, 0.0, 1.0], predictions(3), "contains")
    for key in ("n", "score", "ci_low", "ci_high", "binary", "ci_method", "ci_degenerate", "small_sample",
                "latency_p50", "latency_p95", "compute_per_answer", "prompt_tokens_mean",
                "completion_tokens_mean", "completion_token_rate", "truncated_prompts", "cached_answers"):
        assert key in m, key
    assert set(m) <= {f.name for f in dataclasses.fields(StrategyMetrics)}
    assert m["n"] == 3 and m["score"] == pytest.approx(2 / 3)
