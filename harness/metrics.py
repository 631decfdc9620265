"""Per-strategy summary figures: score with a 95% CI, latency percentiles, token usage.

Binary scorers (exact match, choice letter, contains) get a Wilson score interval, which stays
honest at small n and at 0% or 100% (never zero-width for n >= 1). Continuous scorers (token F1,
ROUGE-L) get scipy's seeded percentile bootstrap; a constant continuous sample gives the bootstrap
nothing to resample, so its zero-width interval is flagged `ci_degenerate` rather than shown as certainty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.records import Prediction
from harness.scoring import BINARY

MIN_TEST_ITEMS = 30
"""Below this many scored items a test set is "small": even at best (a 50% score) the 95% Wilson interval
is about +-0.17 wide at n = 30 and +-0.26 at n = 10, so only large differences between strategies can be
told apart, and a tie there says the test set is too small, not that the strategies are equal."""


def wilson_ci(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels); (nan, nan) for n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def bootstrap_ci(scores: list[float], seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy), seeded; a constant sample has a zero-width CI."""
    from scipy.stats import bootstrap

    values = np.asarray(scores, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean()) if len(values) else float("nan")
        return mean, mean
    result = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=2000,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def score_ci(scores: list[float], binary: bool, seed: int = 0) -> dict[str, Any]:
    """The mean score's 95% CI by the method that fits the scorer, with the flags the verdict reads.

    Returns {ci_low, ci_high, ci_method ("wilson" | "bootstrap"), ci_degenerate, small_sample}.
    `ci_degenerate` is True when the interval has zero width (a constant or one-item continuous sample):
    the bootstrap could not measure the spread, which is not the same as there being none.
    """
    n = len(scores)
    if binary:
        # Binary scores are 0/1, so their sum is the count of correct answers.
        low, high = wilson_ci(int(round(sum(scores))), n)
        method = "wilson"
    else:
        low, high = bootstrap_ci(scores, seed)
        method = "bootstrap"
    return {"ci_low": low, "ci_high": high, "ci_method": method,
            "ci_degenerate": bool(n == 0 or high - low <= 0), "small_sample": n < MIN_TEST_ITEMS}


def summarize(scores: list[float], predictions: list[Prediction], scorer: str, seed: int = 0) -> dict[str, Any]:
    """metrics.json's figures for one strategy, named as `harness.run_schema.StrategyMetrics` names them (units
    there: seconds, tokens, fractions): score, its CI (see `score_ci`), latency, tokens, cache use."""
    latency = np.array([p.latency_s for p in predictions])
    compute = np.array([p.compute_s for p in predictions])
    completion = np.array([p.completion_tokens for p in predictions])
    binary = scorer in BINARY
    return {
        "n": len(scores),
        "score": float(np.mean(scores)),
        **score_ci(scores, binary, seed),
        "binary": binary,
        "latency_p50": float(np.percentile(latency, 50)),
        "latency_p95": float(np.percentile(latency, 95)),
        "compute_per_answer": float(compute.mean()),
        "prompt_tokens_mean": float(np.mean([p.prompt_tokens for p in predictions])),
        "completion_tokens_mean": float(completion.mean()),
        "completion_token_rate": float(completion.sum() / compute.sum()) if compute.sum() > 0 else 0.0,
        "truncated_prompts": sum(bool(p.extra.get("truncated")) for p in predictions),
        "cached_answers": sum(bool(p.extra.get("cached")) for p in predictions),
    }
