"""The cost model: one-time cost, cost per 1,000 answers, total cost at the expected volume,
and the break-even volume after which fine-tuning's one-time cost is repaid.

Prices come from the task's `cost:` section (USD per machine hour; optional USD per 1,000 tokens
for a hosted model). Times come from the run's measurements: fit seconds (training, index build)
and the seconds of compute per answer (its share of the generation batch, plus retrieval for RAG).
"""

from __future__ import annotations

from typing import Any

ONE_TIME_KEYS = ("build_s", "train_seconds")


def hourly_price(device: str, cost_cfg: dict[str, Any]) -> float:
    return cost_cfg["gpu_usd_per_hour"] if device.startswith("cuda") else cost_cfg["cpu_usd_per_hour"]


def strategy_cost(metrics: dict[str, Any], cost_cfg: dict[str, Any], serve_device: str) -> dict[str, Any]:
    """Cost figures of one strategy that ran; every key names its unit."""
    fit = metrics.get("fit", {})
    fit_device = fit.get("device", "cpu")
    details = fit.get("details") or {}
    # What building the index or training cost when first done, even when this run reused it.
    one_time_s = float(next((details[k] for k in ONE_TIME_KEYS if details.get(k) is not None), fit.get("seconds", 0.0)))
    per_answer_s = float(metrics["compute_per_answer_s"])  # includes retrieval for rag
    per_1k_usd = per_answer_s * 1000 / 3600 * hourly_price(serve_device, cost_cfg)
    tokens = metrics["prompt_tokens_mean"] + metrics["completion_tokens_mean"]
    out = {
        "one_time_s": one_time_s,
        "one_time_usd": one_time_s / 3600 * hourly_price(fit_device, cost_cfg),
        "per_answer_s": per_answer_s,
        "per_1k_answers_usd": per_1k_usd,
        "tokens_per_answer": tokens,
        "hosted_per_1k_answers_usd": None,
    }
    if cost_cfg.get("hosted_usd_per_1k_tokens") is not None:
        out["hosted_per_1k_answers_usd"] = tokens * cost_cfg["hosted_usd_per_1k_tokens"]
    volume = cost_cfg["expected_answers"]
    out["total_at_volume_usd"] = out["one_time_usd"] + per_1k_usd * volume / 1000
    return out


def break_even(costs: dict[str, dict[str, Any]], tuned: str = "finetune") -> dict[str, Any]:
    """Answers after which `tuned`'s extra one-time cost is repaid by cheaper answers, per rival.

    None means never: the rival answers as cheaply or cheaper, so the one-time cost is never repaid.
    """
    if tuned not in costs:
        return {}
    ft = costs[tuned]
    result = {}
    for name, c in costs.items():
        if name == tuned:
            continue
        saving_per_answer = (c["per_1k_answers_usd"] - ft["per_1k_answers_usd"]) / 1000
        extra_once = ft["one_time_usd"] - c["one_time_usd"]
        if extra_once <= 0:
            result[name] = 0
        elif saving_per_answer <= 0:
            result[name] = None
        else:
            result[name] = int(extra_once / saving_per_answer) + 1
    return result
