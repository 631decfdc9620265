"""Build a complete run directory on disk without running models, for report/verdict/regress tests.

Metrics are written through the same typed record the runner writes (`StrategyMetrics.to_json()`), so
a fixture run is a schema-2 run. Runs of older schemas are frozen in tests/assets/runs/.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from harness.config import TaskConfig
from harness.metrics import MIN_TEST_ITEMS
from harness.records import FitRecord
from harness.run_schema import StrategyMetrics


def make_run(root: Path, scores: dict[str, list[float]], *, fit_seconds: dict[str, float] | None = None,
             benchmarks: dict | None = None, not_run: dict[str, str] | None = None, name: str = "run-a",
             ids: list[str] | None = None, latency_s: float = 0.5, extra_metrics: dict[str, dict] | None = None,
             fit_details: dict[str, dict] | None = None, fits: dict[str, FitRecord] | None = None) -> Path:
    """scores: strategy -> per-item scores (binary here: exact_match), same item ids for all.

    Without `extra_metrics` a strategy's latency has no `latency_kind` and it has no throughput (as a run
    made before single-request latency); `extra_metrics` sets StrategyMetrics fields by name (a
    RetrievalMetrics under "retrieval"). `fit_details` fills a fit record without typed weights, builds
    or complexity, which FitRecord.from_dict infers (a fine-tune's engine and losses, a RAG index's
    build_s); `fits` gives a strategy its typed record instead.
    """
    run = root / name
    run.mkdir(parents=True)
    cfg = dataclasses.asdict(dataclasses.replace(TaskConfig(), name="fixture", scorer="exact_match"))
    n = len(next(iter(scores.values())))
    ids = ids or [f"item{i}" for i in range(n)]
    strategies = list(scores) + list(not_run or {})
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "run.json").write_text(json.dumps({"task": "fixture", "strategies": strategies}))
    (run / "split.json").write_text(json.dumps({"sizes": {"train": 900, "dev": 100, "test": n, "scored": n},
                                                "test_ids": ids, "warnings": ["only a fixture"],
                                                "contamination": {}}))
    (run / "environment.json").write_text(json.dumps({"cpu_count": 2, "model": {"device": "cpu"}}))
    for strategy, values in scores.items():
        (run / strategy).mkdir()
        preds = [{"id": i, "prediction": "p", "reference": "r", "score": s, "prompt_tokens": 100,
                  "completion_tokens": 10, "latency_s": latency_s, "compute_s": latency_s / 4}
                 for i, s in zip(ids, values)]
        (run / strategy / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
        fit = (fits or {}).get(strategy) or FitRecord.from_dict(
            {"seconds": (fit_seconds or {}).get(strategy, 0.0), "device": "cpu",
             "details": (fit_details or {}).get(strategy, {})})
        metrics = _metrics(strategy, values, fit, latency_s, (extra_metrics or {}).get(strategy, {}))
        (run / strategy / "metrics.json").write_text(json.dumps(metrics.to_json()))
    for strategy, why in (not_run or {}).items():
        (run / strategy).mkdir()
        (run / strategy / "metrics.json").write_text(json.dumps(StrategyMetrics(strategy, f"not run: {why}").to_json()))
    if benchmarks:
        (run / "benchmarks.json").write_text(json.dumps(benchmarks))
    (run / "manifest.json").write_text("{}")
    return run


def _metrics(strategy: str, values: list[float], fit: FitRecord, latency_s: float,
             extra: dict[str, Any]) -> StrategyMetrics:
    """A strategy's record with a +-0.1 interval around its mean (not a real CI: the tests set the scores)."""
    n, mean = len(values), sum(values) / len(values)
    low, high = max(0.0, mean - 0.1), min(1.0, mean + 0.1)
    metrics = StrategyMetrics(strategy, "ok", "exact_match", n=n, score=mean, ci_low=low, ci_high=high,
                              ci_degenerate=low == high, small_sample=n < MIN_TEST_ITEMS, binary=True,
                              latency_p50=latency_s, latency_p95=latency_s * 1.5, compute_per_answer=latency_s / 4,
                              prompt_tokens_mean=100.0, completion_tokens_mean=10.0, completion_token_rate=80.0,
                              fit=fit)
    return dataclasses.replace(metrics, **extra)
