"""The verdict: a stated rule (RULE) applied to the measurements, with its reasons in plain sentences.

Differences inside the confidence interval are ties, never wins; ties go to the cheaper, then the simpler
strategy. With fewer than two strategies nothing was compared, and on a small test set (fewer than
MIN_TEST_ITEMS items) a tie or a constant score's zero-width interval is no evidence: no recommendation.
`caveats` lists what the figures cannot show: a small test set, forgetting that went unmeasured, and
benchmarks too coarse (base model at chance, too few items) to detect a drop. `criteria` fills the
tutorial's fine-tune-vs-RAG criteria from task facts and measurements.
"""

from __future__ import annotations

from typing import Any

from harness.caveats import degenerate, own_weights
from harness.metrics import MIN_TEST_ITEMS

SIMPLICITY = {"prompt": 0, "rag": 1, "finetune": 2}
RULE = ("Among strategies that ran and did not forget significantly (MMLU/HumanEval), the best held-out "
        "score and every strategy statistically tied with it (Holm-corrected paired test, alpha 0.05) are "
        "candidates; the candidate with the lowest total cost at the expected volume wins, the simpler one "
        "on equal cost. No recommendation when fewer than two strategies ran, nor, on fewer than "
        f"{MIN_TEST_ITEMS} test items, when it would rest on a tie or on a constant score.")


def _tied(a: str, b: str, pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    for p in pairs:
        if {p["a"], p["b"]} == {a, b}:
            return p
    return None


def _small(m: dict[str, Any]) -> bool:
    # Runs made before `small_sample` existed carry only n.
    return bool(m.get("small_sample", m.get("n", 0) < MIN_TEST_ITEMS))


def _result(choice: str | None, candidates: list[str], excluded: dict[str, str], reasons: list[str],
            small: bool) -> dict[str, Any]:
    return {"rule": RULE, "choice": choice, "candidates": candidates, "excluded": excluded, "reasons": reasons,
            "small_sample": small}


def decide(metrics: dict[str, dict[str, Any]], pairs: list[dict[str, Any]], costs: dict[str, dict[str, Any]],
           forgetting: dict[str, dict[str, Any]], volume: int) -> dict[str, Any]:
    """Apply RULE. `forgetting` maps strategy -> benchmark -> {delta, p_value, significant_drop}.

    Returns {rule, choice (None: no recommendation), candidates, excluded, reasons, small_sample}."""
    ran = [n for n, m in metrics.items() if m.get("status") == "ok"]
    not_run = {n: m.get("status", "not run") for n, m in metrics.items() if n not in ran}
    reasons = [f"{n}: {why}." for n, why in not_run.items()]
    small = any(_small(metrics[n]) for n in ran)
    if len(ran) == 1:
        only = metrics[ran[0]]
        reasons.append(f"Only {ran[0]} ran ({only['score']:.3f} on {only['n']} items); nothing was compared, "
                       "so there is no recommendation.")
        return _result(None, [], {}, reasons, small)
    excluded = {}
    for name in ran:
        drops = [f"{bench} {f['delta']:+.3f} (p = {f['p_value']:.3g})"
                 for bench, f in forgetting.get(name, {}).items() if f.get("status", "ok") == "ok"
                 and f.get("significant_drop")]
        if drops:
            excluded[name] = "significant forgetting: " + ", ".join(drops)
            reasons.append(f"{name} is excluded: its weights lost significantly on {', '.join(drops)}.")
    eligible = [n for n in ran if n not in excluded]
    if not eligible:
        reasons.append("No strategy both ran and kept its general abilities, so there is nothing to recommend.")
        return _result(None, [], excluded, reasons, small)

    best = max(eligible, key=lambda n: metrics[n]["score"])
    candidates = [best]
    for name in eligible:
        if name == best:
            continue
        pair = _tied(best, name, pairs)
        if pair and not pair["significant"]:
            candidates.append(name)
            gap = metrics[best]["score"] - metrics[name]["score"]
            reasons.append(f"{name} ({metrics[name]['score']:.3f}) is statistically tied with {best} "
                           f"({metrics[best]['score']:.3f}): difference {gap:+.3f}, "
                           f"95% CI [{_ci(pair, best)}], Holm-adjusted p = {pair['p_holm']:.3g}.")
        elif pair:
            reasons.append(f"{best} beats {name} ({metrics[best]['score']:.3f} vs {metrics[name]['score']:.3f}, "
                           f"Holm-adjusted p = {pair['p_holm']:.3g}).")
    n = min(metrics[name].get("n", 0) for name in eligible)
    constant = [name for name in eligible if _small(metrics[name]) and degenerate(metrics[name])]
    if constant:
        reasons.append(f"{', '.join(constant)} scored the same on each of its {n} items: the zero-width interval "
                       f"of so small a sample (fewer than {MIN_TEST_ITEMS} items) is not certainty, so there is "
                       "no recommendation.")
        return _result(None, candidates, excluded, reasons, small)
    if small and len(candidates) > 1:
        reasons.append(f"On {n} test items (fewer than {MIN_TEST_ITEMS}) a tie means the test set is too small to "
                       f"tell {' and '.join(candidates)} apart, not that they are equal, so there is no "
                       "recommendation.")
        return _result(None, candidates, excluded, reasons, small)

    choice = min(candidates, key=lambda n: (round(costs[n]["total_at_volume_usd"], 6), SIMPLICITY.get(n, 9)))
    if len(candidates) > 1:
        costs_text = ", ".join(f"{n} ${costs[n]['total_at_volume_usd']:.2f}" for n in candidates)
        reasons.append(f"Among the tied candidates, {choice} costs least for {volume:,} answers ({costs_text}).")
    elif len(eligible) == 1:
        reasons.append(f"{choice} is the only strategy that ran and qualified; nothing to compare it with.")
    else:
        reasons.append(f"{choice} has the best held-out score ({metrics[choice]['score']:.3f}) and no strategy "
                       "is tied with it.")
    if small:
        m = metrics[choice]
        reasons.append(f"The test set has only {n} items (fewer than {MIN_TEST_ITEMS}): {choice}'s score is "
                       f"uncertain (95% CI [{m['ci_low']:.3f}, {m['ci_high']:.3f}]); confirm on a larger test set.")
    return _result(choice, candidates, excluded, reasons, small)


def _ci(pair: dict[str, Any], first: str) -> str:
    low, high = (pair["ci_low"], pair["ci_high"]) if pair["a"] == first else (-pair["ci_high"], -pair["ci_low"])
    return f"{low:+.3f}, {high:+.3f}"


def what_would_change(verdict: dict[str, Any], metrics: dict[str, dict[str, Any]], facts: dict[str, Any],
                      n_train: int, break_even: dict[str, Any], volume: int) -> list[str]:
    """Plain sentences on which facts would flip the verdict."""
    out = []
    choice, change = verdict["choice"], facts.get("docs_change", "unknown")
    ran = [n for n, m in metrics.items() if m.get("status") == "ok"]
    if len(ran) == 1:
        out.append("Running a second strategy on the same test set gives something to compare, and a recommendation.")
    if choice == "finetune" and change in ("weekly", "daily"):
        out.append("The documents change weekly or faster: every change needs a retrain; RAG re-indexes instead.")
    if choice == "finetune" and change == "monthly":
        out.append("The documents change monthly: the fine-tune needs a retrain each month (12 a year); if RAG tied "
                   "it, RAG would keep up by re-indexing instead.")
    if choice == "finetune" and change not in RETRAINS_PER_YEAR:
        out.append("How often the documents change is not stated (facts.docs_change): if weekly or faster, each "
                   "change needs a retrain and RAG would fit better.")
    if choice != "finetune" and "finetune" in metrics and n_train < 500:
        out.append(f"Only {n_train} training examples: with 500 to 5,000 good examples a fine-tune may pull ahead.")
    if choice == "rag" and change in ("never", "yearly"):
        out.append("The documents rarely change: if a fine-tune ties RAG after more data, it answers without "
                   "retrieval and with shorter prompts.")
    if choice == "rag" and change == "monthly":
        out.append("The documents change monthly: a fine-tune would need 12 retrains a year to keep up; were they "
                   "to change yearly or never, a fine-tune that ties RAG would answer without retrieval.")
    for rival, n in break_even.items():
        if n is None:
            continue
        if choice != "finetune" and n > volume:
            out.append(f"Above {n:,} answers, fine-tuning's one-time cost is repaid against {rival} by shorter, "
                       "cheaper answers (if its score stays tied).")
    if verdict.get("small_sample"):
        out.append(f"A test set of at least {MIN_TEST_ITEMS} items narrows the confidence intervals enough for a "
                   "tie to mean something.")
    elif len(verdict["candidates"]) > 1:
        out.append("A larger test set narrows the confidence intervals and may break the tie.")
    return out


RETRAINS_PER_YEAR = {"never": 0, "yearly": 1, "monthly": 12, "weekly": 52, "daily": 365}
"""Retrains a fine-tune needs to stay as current as the documents."""
DOCS_CHANGE_CRITERION = {
    "unknown": ("unknown", "how often the documents change is unknown: set facts.docs_change in task.yaml (never, "
                "yearly, monthly, weekly or daily); it decides whether a fine-tune's retrains can keep up"),
    "never": ("finetune or rag", "documents never change: a fine-tune trained once stays current; RAG works too"),
    "yearly": ("finetune or rag", "documents change yearly: one retrain a year keeps a fine-tune current{cost}; "
               "{reindex}"),
    "monthly": ("rag", "documents change monthly: {reindex}; a monthly retrain is feasible but costs a training "
                "each month{cost}"),
    "weekly": ("rag", "documents change weekly: {reindex}; a fine-tune would need 52 retrains a year{cost}"),
    "daily": ("rag", "documents change daily: {reindex}; a fine-tune would need 365 retrains a year{cost}"),
}
"""(favours, reason) of the documents-change criterion for each config.DOCS_CHANGE value."""


def docs_change_row(change: str, retrain_usd: float | None, reindex_s: float | None) -> tuple[str, str]:
    """(favours, reason) for `change`, with the fine-tune's measured one-time cost (`retrain_usd`) as a yearly
    retraining bill and RAG's measured index build time (`reindex_s`) where the run has them."""
    if change not in DOCS_CHANGE_CRITERION:
        return "unknown", f"{change!r} is not a known value: set facts.docs_change in task.yaml"
    favours, template = DOCS_CHANGE_CRITERION[change]
    retrains = RETRAINS_PER_YEAR.get(change, 0)
    cost = f" (about ${retrains * retrain_usd:,.2f} a year at this run's training cost)" if retrain_usd else ""
    reindex = f"RAG re-indexes in {reindex_s:.0f} s (measured)" if reindex_s is not None else "RAG re-indexes"
    return favours, template.format(cost=cost, reindex=reindex)


def criteria(metrics: dict[str, dict[str, Any]], pairs: list[dict[str, Any]], costs: dict[str, dict[str, Any]],
             facts: dict[str, Any], n_labeled: int, break_even: dict[str, Any], volume: int) -> list[dict[str, str]]:
    """The tutorial's fine-tune-vs-RAG criteria, each filled from task facts or measurements, with a reason."""
    ran = {n: m for n, m in metrics.items() if m.get("status") == "ok"}
    rows = []

    tuned = [n for n in ran if own_weights(n, ran[n], {})]
    retrain_usd = costs[tuned[0]]["one_time_usd"] if tuned and tuned[0] in costs else None
    reindex_s = (ran["rag"].get("fit") or {}).get("seconds") if "rag" in ran else None
    rows.append(("Documents change frequency", *docs_change_row(facts.get("docs_change", "unknown"), retrain_usd,
                                                                reindex_s)))

    pair = _tied("rag", "prompt", pairs) if "rag" in ran and "prompt" in ran else None
    hit = ran.get("rag", {}).get("hit_at_k")
    if facts.get("needs_deep_understanding"):
        rows.append(("Knowledge requirements", "finetune", "task.yaml says the task needs deep understanding"))
    elif pair and pair["significant"] and ran["rag"]["score"] > ran["prompt"]["score"]:
        hit_text = f", retrieval hit@k {hit:.2f}" if hit is not None else ""
        rows.append(("Knowledge requirements", "rag", f"retrieval suffices: rag beats prompt by "
                     f"{ran['rag']['score'] - ran['prompt']['score']:+.3f} (p = {pair['p_holm']:.3g}){hit_text}"))
    elif pair:
        rows.append(("Knowledge requirements", "prompt or finetune", "retrieved passages did not improve the "
                     f"score significantly (p = {pair['p_holm']:.3g})"))
    else:
        rows.append(("Knowledge requirements", "unknown", "rag and prompt were not both measured"))

    if n_labeled >= 500:
        rows.append(("Training data available", "finetune", f"{n_labeled} labeled examples (>= 500 recommended)"))
    else:
        rows.append(("Training data available", "prompt or rag", f"only {n_labeled} labeled examples (< 500 "
                     "recommended for a fine-tune)"))

    if costs:
        cheapest = min(costs, key=lambda n: costs[n]["total_at_volume_usd"])
        repaid = {r: n for r, n in break_even.items() if n is not None}
        detail = "; ".join(f"fine-tune repays vs {r} after {n:,} answers" for r, n in repaid.items())
        rows.append(("Cost (long-term)", cheapest, f"lowest total for {volume:,} answers: "
                     f"${costs[cheapest]['total_at_volume_usd']:.2f}" + (f"; {detail}" if detail else "")))
    if ran:
        fastest = min(ran, key=lambda n: ran[n]["latency_p50_s"])
        rows.append(("Latency", fastest, "lowest p50: " + ", ".join(
            f"{n} {m['latency_p50_s']:.2f} s" for n, m in ran.items())))
    return [{"criterion": c, "favours": f, "reason": r} for c, f, r in rows]
