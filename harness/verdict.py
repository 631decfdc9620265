"""The verdict: a stated rule applied to the measurements, with its reasons in plain sentences.

Rule: among the strategies that ran, exclude any whose weights lost significantly on a general
benchmark (forgetting). Take the best held-out score; every strategy statistically tied with it
(Holm-corrected paired test, alpha 0.05) is a candidate. Choose the candidate with the lowest total
cost at the expected volume (one-time + serving); on equal cost the simpler one (prompt, rag,
finetune). Differences inside the confidence interval are ties, never wins.
"""

from __future__ import annotations

from typing import Any

SIMPLICITY = {"prompt": 0, "rag": 1, "finetune": 2}
RULE = ("Among strategies that ran and did not forget significantly (MMLU/HumanEval), the best held-out "
        "score and every strategy statistically tied with it (Holm-corrected paired test, alpha 0.05) are "
        "candidates; the candidate with the lowest total cost at the expected volume wins, the simpler one "
        "on equal cost.")


def _tied(a: str, b: str, pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    for p in pairs:
        if {p["a"], p["b"]} == {a, b}:
            return p
    return None


def decide(metrics: dict[str, dict[str, Any]], pairs: list[dict[str, Any]], costs: dict[str, dict[str, Any]],
           forgetting: dict[str, dict[str, Any]], volume: int) -> dict[str, Any]:
    """Apply RULE. `forgetting` maps strategy -> benchmark -> {delta, p_value, significant_drop}."""
    ran = [n for n, m in metrics.items() if m.get("status") == "ok"]
    not_run = {n: m.get("status", "not run") for n, m in metrics.items() if n not in ran}
    reasons = [f"{n}: {why}." for n, why in not_run.items()]
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
        return {"rule": RULE, "choice": None, "candidates": [], "excluded": excluded, "reasons": reasons}

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
    choice = min(candidates, key=lambda n: (round(costs[n]["total_at_volume_usd"], 6), SIMPLICITY.get(n, 9)))
    if len(candidates) > 1:
        costs_text = ", ".join(f"{n} ${costs[n]['total_at_volume_usd']:.2f}" for n in candidates)
        reasons.append(f"Among the tied candidates, {choice} costs least for {volume:,} answers ({costs_text}).")
    elif len(eligible) == 1:
        reasons.append(f"{choice} is the only strategy that ran and qualified; nothing to compare it with.")
    else:
        reasons.append(f"{choice} has the best held-out score ({metrics[choice]['score']:.3f}) and no strategy "
                       "is tied with it.")
    return {"rule": RULE, "choice": choice, "candidates": candidates, "excluded": excluded, "reasons": reasons}


def _ci(pair: dict[str, Any], first: str) -> str:
    low, high = (pair["ci_low"], pair["ci_high"]) if pair["a"] == first else (-pair["ci_high"], -pair["ci_low"])
    return f"{low:+.3f}, {high:+.3f}"


def what_would_change(verdict: dict[str, Any], metrics: dict[str, dict[str, Any]], facts: dict[str, Any],
                      n_train: int, break_even: dict[str, Any], volume: int) -> list[str]:
    """Plain sentences on which facts would flip the verdict."""
    out = []
    choice = verdict["choice"]
    if choice == "finetune" and facts.get("docs_change") in ("weekly", "daily"):
        out.append("The documents change weekly or faster: every change needs a retrain; RAG re-indexes instead.")
    if choice != "finetune" and "finetune" in metrics and n_train < 500:
        out.append(f"Only {n_train} training examples: with 500 to 5,000 good examples a fine-tune may pull ahead.")
    if choice == "rag" and facts.get("docs_change") in ("never", "yearly"):
        out.append("The documents rarely change: if a fine-tune ties RAG after more data, it answers without "
                   "retrieval and with shorter prompts.")
    for rival, n in break_even.items():
        if n is None:
            continue
        if choice != "finetune" and n > volume:
            out.append(f"Above {n:,} answers, fine-tuning's one-time cost is repaid against {rival} by shorter, "
                       "cheaper answers (if its score stays tied).")
    if len(verdict["candidates"]) > 1:
        out.append("A larger test set narrows the confidence intervals and may break the tie.")
    return out


def criteria(metrics: dict[str, dict[str, Any]], pairs: list[dict[str, Any]], costs: dict[str, dict[str, Any]],
             facts: dict[str, Any], n_labeled: int, break_even: dict[str, Any], volume: int) -> list[dict[str, str]]:
    """The tutorial's fine-tune-vs-RAG criteria, each filled from task facts or measurements, with a reason."""
    ran = {n: m for n, m in metrics.items() if m.get("status") == "ok"}
    rows = []

    change = facts.get("docs_change", "unknown")
    if change in ("weekly", "daily"):
        rows.append(("Documents change frequency", "rag", f"documents change {change}: RAG re-indexes, a fine-tune "
                     "needs a retrain per change"))
    elif change in ("never", "yearly"):
        rows.append(("Documents change frequency", "finetune or rag", f"documents change {change}: a fine-tune "
                     "stays current between rare retrains"))
    else:
        rows.append(("Documents change frequency", "unknown", "set facts.docs_change in task.yaml"))

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
