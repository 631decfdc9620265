"""Per-strategy summary figures: score with a bootstrap 95% CI, latency percentiles, token usage."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.records import Prediction
from harness.scoring import BINARY


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


def summarize(scores: list[float], predictions: list[Prediction], scorer: str, seed: int = 0) -> dict[str, Any]:
    latency = np.array([p.latency_s for p in predictions])
    compute = np.array([p.compute_s for p in predictions])
    completion = np.array([p.completion_tokens for p in predictions])
    low, high = bootstrap_ci(scores, seed)
    return {
        "n": len(scores),
        "score": float(np.mean(scores)),
        "ci_low": low,
        "ci_high": high,
        "binary": scorer in BINARY,
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p95_s": float(np.percentile(latency, 95)),
        "compute_per_answer_s": float(compute.mean()),
        "prompt_tokens_mean": float(np.mean([p.prompt_tokens for p in predictions])),
        "completion_tokens_mean": float(completion.mean()),
        "completion_tokens_per_s": float(completion.sum() / compute.sum()) if compute.sum() > 0 else 0.0,
        "truncated_prompts": sum(bool(p.extra.get("truncated")) for p in predictions),
        "cached_answers": sum(bool(p.extra.get("cached")) for p in predictions),
    }
