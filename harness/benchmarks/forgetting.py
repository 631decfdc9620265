"""Forgetting: the fine-tune's change on each general benchmark, on the same items, with a paired test.

Base and fine-tuned weights answer the same MMLU questions and HumanEval problems, so the change
is tested on per-item correctness with McNemar's test (statsmodels): only the items where the two
disagree carry information. The exact binomial version is used below 25 disagreements.
"""

from __future__ import annotations

from typing import Any

EXACT_BELOW = 25


def forgetting(base: dict[str, dict], tuned: dict[str, dict], alpha: float = 0.05) -> dict[str, dict]:
    """Fine-tuned minus base per benchmark, from two `run_general_benchmarks` results.

    Returns {benchmark: result}; each result has
      status             "ok" | "skipped"
      skipped            why there is no comparison (None when status is "ok")
    and, when status is "ok":
      metric             the benchmark's metric ("acc", "exact_match", "pass@1")
      n_paired           items scored for both weights (the comparison uses only these)
      base_score         base accuracy / pass@1 on the paired items
      tuned_score        fine-tuned accuracy / pass@1 on the paired items
      delta              tuned_score - base_score (negative: the fine-tune lost ground)
      base_only_correct  items only the base got right
      tuned_only_correct items only the fine-tune got right
      test               "McNemar exact" | "McNemar chi-square (continuity-corrected)"
      p_value            two-sided p-value of the paired test (1.0 when they never disagree)
      alpha              significance level
      significant        p_value < alpha
      significant_drop   significant and delta < 0: the fine-tune made the model forget
    """
    out: dict[str, dict] = {}
    for name in sorted(set(base) | set(tuned)):
        b, t = base.get(name) or {}, tuned.get(name) or {}
        if b.get("status") != "ok" or t.get("status") != "ok":
            why = b.get("skipped") or t.get("skipped") or "missing from one of the runs"
            out[name] = {"status": "skipped", "skipped": why}
        elif b["metric"] != t["metric"]:
            out[name] = {"status": "skipped", "skipped": f"different metrics ({b['metric']} vs {t['metric']})"}
        else:
            out[name] = paired_change(b["items"], t["items"], alpha) | {"metric": b["metric"]}
    return out


def paired_change(base_items: dict[str, int], tuned_items: dict[str, int], alpha: float = 0.05) -> dict[str, Any]:
    """McNemar's test on per-item correctness (1/0) of the items both dicts score."""
    from statsmodels.stats.contingency_tables import mcnemar

    ids = sorted(set(base_items) & set(tuned_items))
    if not ids:
        return {"status": "skipped", "skipped": "no item scored for both weights"}
    pairs = [(bool(base_items[i]), bool(tuned_items[i])) for i in ids]
    both = sum(b and t for b, t in pairs)
    base_only = sum(b and not t for b, t in pairs)
    tuned_only = sum(t and not b for b, t in pairs)
    neither = len(pairs) - both - base_only - tuned_only
    exact = base_only + tuned_only < EXACT_BELOW
    if base_only + tuned_only == 0:
        p_value = 1.0
    else:
        table = [[both, base_only], [tuned_only, neither]]
        p_value = float(mcnemar(table, exact=exact, correction=True).pvalue)
    n = len(pairs)
    delta = (tuned_only - base_only) / n
    return {
        "status": "ok", "skipped": None, "n_paired": n,
        "base_score": (both + base_only) / n, "tuned_score": (both + tuned_only) / n, "delta": delta,
        "base_only_correct": base_only, "tuned_only_correct": tuned_only,
        "test": "McNemar exact" if exact else "McNemar chi-square (continuity-corrected)",
        "p_value": p_value, "alpha": alpha, "significant": p_value < alpha,
        "significant_drop": p_value < alpha and delta < 0,
    }


def by_weights(bench: dict[str, Any]) -> dict[str, Any]:
    """benchmarks.json of any age in today's layout, where `forgetting` maps each weights key to its
    per-benchmark results. Runs made before it held one flat {benchmark: result} for the only trained
    weights there were; it is attributed to every non-base weights key of `by_strategy`."""
    flat = bench.get("forgetting") or {}
    if not any(isinstance(v, dict) and ("status" in v or "delta" in v) for v in flat.values()):
        return bench
    trained = {w for w in (bench.get("by_strategy") or {}).values() if w != "base"}
    return {**bench, "forgetting": {w: flat for w in sorted(trained)}}
