"""What one user waits for: single-request latency, measured apart from the batched scoring pass.

The scoring pass answers in batches (fast, but each answer's wall time is its whole batch's), so its
per-answer latency is neither what a user waits for nor throughput. After scoring, a strategy
answers a fixed sample of the same test queries again, one request at a time (batch size 1), and
those wall times (retrieval included for RAG) are the user-facing p50/p95. Throughput is reported
separately, from the scoring pass: answers per second of compute at the batch size used.

Probe answers go through the generation cache like any other (keyed by batch size 1 where the batch
matters), so a warm rerun reuses their measured times; they are flagged `cached` in `latency.jsonl`. On
llama.cpp the batch does not matter (each instance answers one prompt at a time), so the probes are the
scoring pass's own answers and single-request times, found in the cache rather than generated again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import Query
from harness.records import Prediction

LATENCY_KIND = "single request"


def probe_queries(queries: list[Query], sample: int) -> list[Query]:
    """`sample` queries spread evenly over the test order (the same items for every strategy)."""
    if sample >= len(queries):
        return list(queries)
    picks = np.linspace(0, len(queries) - 1, sample).round().astype(int)
    return [queries[i] for i in dict.fromkeys(picks.tolist())]


def single_request_latency(strategy: Any, queries: list[Query], ctx: Any, sample: int,
                           out_dir: Path) -> dict[str, Any]:
    """Answer a sample one at a time; write `latency.jsonl`; return the latency figures for metrics.json
    (named as `harness.run_schema.StrategyMetrics` names them; seconds)."""
    if sample <= 0:
        return {"latency_kind": "batch wall time (single-request latency not measured: latency_sample is 0)"}
    chosen = probe_queries(queries, sample)
    cfg = ctx.config
    one_at_a_time = dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, batch_size=1))
    predictions: list[Prediction] = strategy.answer(chosen, dataclasses.replace(ctx, config=one_at_a_time))
    with (out_dir / "latency.jsonl").open("w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps({"id": p.id, "latency_s": round(p.latency_s, 4), "prompt_tokens": p.prompt_tokens,
                                "completion_tokens": p.completion_tokens,
                                "cached": bool(p.extra.get("cached"))}) + "\n")
    seconds = np.array([p.latency_s for p in predictions])
    return {"latency_kind": LATENCY_KIND, "latency_sample": len(predictions),
            "latency_p50": float(np.percentile(seconds, 50)), "latency_p95": float(np.percentile(seconds, 95)),
            "latency_cached": sum(bool(p.extra.get("cached")) for p in predictions)}


def throughput(summary: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """Answers per second of compute in the scoring pass, and the batch wall times it replaces as latency."""
    per_answer = summary.get("compute_per_answer") or 0.0
    return {"batch_size": batch_size, "throughput": 1.0 / per_answer if per_answer > 0 else None,
            "batch_latency_p50": summary["latency_p50"], "batch_latency_p95": summary["latency_p95"]}
