"""Build a complete run directory on disk without running models, for report/verdict/regress tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.config import TaskConfig
from harness.records import FitRecord


def make_run(root: Path, scores: dict[str, list[float]], *, fit_seconds: dict[str, float] | None = None,
             benchmarks: dict | None = None, not_run: dict[str, str] | None = None, name: str = "run-a",
             ids: list[str] | None = None, latency_s: float = 0.5, extra_metrics: dict[str, dict] | None = None,
             fit_details: dict[str, dict] | None = None, fits: dict[str, FitRecord] | None = None) -> Path:
    """scores: strategy -> per-item scores (binary here: exact_match), same item ids for all.

    Without `extra_metrics` the metrics are those of an old run (no latency_kind, no throughput);
    `fit_details` fills an old run's fit record (a fine-tune's engine and losses, a RAG index: no typed
    weights, builds or complexity); `fits` gives a strategy today's typed record instead.
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
        metrics = {"strategy": strategy, "status": "ok", "scorer": "exact_match", "n": n,
                   "score": sum(values) / n, "ci_low": max(0.0, sum(values) / n - 0.1),
                   "ci_high": min(1.0, sum(values) / n + 0.1), "binary": True, "latency_p50_s": latency_s,
                   "latency_p95_s": latency_s * 1.5, "compute_per_answer_s": latency_s / 4,
                   "prompt_tokens_mean": 100.0, "completion_tokens_mean": 10.0, "completion_tokens_per_s": 80.0,
                   "fit": dataclasses.asdict((fits or {})[strategy]) if strategy in (fits or {}) else {
                       "seconds": (fit_seconds or {}).get(strategy, 0.0), "device": "cpu",
                       "details": (fit_details or {}).get(strategy, {})},
                   **(extra_metrics or {}).get(strategy, {})}
        (run / strategy / "metrics.json").write_text(json.dumps(metrics))
    for strategy, why in (not_run or {}).items():
        (run / strategy).mkdir()
        (run / strategy / "metrics.json").write_text(json.dumps({"strategy": strategy, "status": f"not run: {why}"}))
    if benchmarks:
        (run / "benchmarks.json").write_text(json.dumps(benchmarks))
    (run / "manifest.json").write_text("{}")
    return run
