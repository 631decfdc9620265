"""The cost model: one-time cost, cost per 1,000 answers, total cost at the expected volume,
and the break-even volume after which trained weights' one-time cost is repaid.

Prices come from the task's `cost:` section (USD per machine hour; optional USD per 1,000 tokens
for a hosted model). Times come from the run's measurements: the one-time builds of each fit record
(index, training: what each cost when first done, at the price of the machine it ran on) and the
seconds of compute per answer (its share of the generation batch, plus retrieval where there is one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.records import FitRecord
from harness.report_record import Cost
from harness.run_schema import StrategyMetrics


def hourly_price(device: str, cost_cfg: dict[str, Any]) -> float:
    return cost_cfg["gpu_usd_per_hour"] if device.startswith("cuda") else cost_cfg["cpu_usd_per_hour"]


def strategy_cost(metrics: StrategyMetrics, cost_cfg: dict[str, Any], serve_device: str) -> Cost:
    """Cost figures of one strategy that ran (USD and seconds, harness/run_schema.py)."""
    fit = metrics.record
    one_time = sum(b.seconds / 3600 * hourly_price(b.device, cost_cfg) for b in fit.one_time)
    per_answer = float(metrics.compute_per_answer or 0.0)  # includes retrieval
    per_1k = per_answer * 1000 / 3600 * hourly_price(serve_device, cost_cfg)
    tokens = (metrics.prompt_tokens_mean or 0.0) + (metrics.completion_tokens_mean or 0.0)
    hosted = cost_cfg.get("hosted_usd_per_1k_tokens")
    return Cost(one_time=one_time, one_time_compute=fit.one_time_s,
                one_time_devices=tuple(sorted({b.device for b in fit.one_time})), per_answer_compute=per_answer,
                per_1k_answers=per_1k, tokens_per_answer=tokens,
                hosted_per_1k_answers=tokens * hosted if hosted is not None else None,
                total_at_volume=one_time + per_1k * cost_cfg["expected_answers"] / 1000)


def shared_builds(fits: dict[str, FitRecord]) -> dict[str, dict[str, list[str]]]:
    """strategy -> {what: the other strategies whose fit has the same build (same content id)}.

    A shared build was made once; each strategy's one-time cost still counts it, because either one
    deployed alone would need it."""
    owners: dict[tuple[str, str], list[str]] = {}
    for name, fit in fits.items():
        for b in fit.one_time:
            if b.content_id:
                owners.setdefault((b.what, b.content_id), []).append(name)
    out: dict[str, dict[str, list[str]]] = {}
    for (what, _), names in owners.items():
        for name in names:
            if len(names) > 1:
                out.setdefault(name, {})[what] = [n for n in names if n != name]
    return out


def break_even(costs: dict[str, Cost], trained: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """For each strategy with trained weights, the answers after which its extra one-time cost is repaid
    by cheaper answers, per rival: {trained: {rival: answers}}.

    0: it costs no more once; None: never, the rival answers as cheaply or cheaper.
    """
    result: dict[str, dict[str, int | None]] = {}
    for tuned in (t for t in trained if t in costs):
        ft = costs[tuned]
        result[tuned] = {}
        for name, c in costs.items():
            if name == tuned:
                continue
            saving_per_answer = (c.per_1k_answers - ft.per_1k_answers) / 1000
            extra_once = ft.one_time - c.one_time
            if extra_once <= 0:
                result[tuned][name] = 0
            elif saving_per_answer <= 0:
                result[tuned][name] = None
            else:
                result[tuned][name] = int(extra_once / saving_per_answer) + 1
    return result
