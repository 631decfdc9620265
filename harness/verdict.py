"""The verdict: a stated rule (RULE) applied to the measurements, with its reasons in plain sentences.

Differences inside the confidence interval are ties, never wins; ties go to the cheaper, then the simpler
strategy (the complexity rank of its fit record). With fewer than two strategies nothing was compared,
and on a small test set (fewer than MIN_TEST_ITEMS items) a tie or a constant score's zero-width interval
is no evidence: no recommendation. `caveats` lists what the figures cannot show: a small test set,
forgetting that went unmeasured, and benchmarks too coarse (base model at chance, too few items) to
detect a drop. `criteria` fills the tutorial's fine-tune-vs-RAG criteria from task facts and measurements.
Strategies are told apart by the facts of their fit records (trained weights, retrieval), never by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.metrics import MIN_TEST_ITEMS
from harness.report_record import Cost
from harness.run_schema import StrategyMetrics
from harness.seeds import verdict_sentences

Metrics = dict[str, StrategyMetrics]

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


def _small(m: StrategyMetrics) -> bool:
    return m.small_sample  # inferred from n for runs made before it was recorded (run_schema)


def _result(choice: str | None, candidates: list[str], excluded: dict[str, str], reasons: list[str],
            small: bool) -> dict[str, Any]:
    return {"rule": RULE, "choice": choice, "candidates": candidates, "excluded": excluded, "reasons": reasons,
            "small_sample": small}


def decide(metrics: Metrics, pairs: list[dict[str, Any]], costs: dict[str, Cost],
           forgetting: dict[str, dict[str, Any]], volume: int) -> dict[str, Any]:
    """Apply RULE. `forgetting` maps strategy -> benchmark -> {delta, p_value, significant_drop}.

    Returns {rule, choice (None: no recommendation), candidates, excluded, reasons, small_sample}."""
    ran = [n for n, m in metrics.items() if m.ok]
    not_run = {n: m.status for n, m in metrics.items() if n not in ran}
    reasons = [f"{n}: {why}." for n, why in not_run.items()] + _shared_weights({n: metrics[n] for n in ran})
    small = any(_small(metrics[n]) for n in ran)
    if len(ran) == 1:
        only = metrics[ran[0]]
        reasons.append(f"Only {ran[0]} ran ({only.score:.3f} on {only.n} items); nothing was compared, "
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

    best = max(eligible, key=lambda n: metrics[n].score or 0.0)
    candidates = [best]
    for name in eligible:
        if name == best:
            continue
        pair = _tied(best, name, pairs)
        if pair and not pair["significant"]:
            candidates.append(name)
            gap = (metrics[best].score or 0.0) - (metrics[name].score or 0.0)
            reasons.append(f"{name} ({metrics[name].score:.3f}) is statistically tied with {best} "
                           f"({metrics[best].score:.3f}): difference {gap:+.3f}, "
                           f"95% CI [{_ci(pair, best)}], Holm-adjusted p = {pair['p_holm']:.3g}.")
        elif pair:
            reasons.append(f"{best} beats {name} ({metrics[best].score:.3f} vs {metrics[name].score:.3f}, "
                           f"Holm-adjusted p = {pair['p_holm']:.3g}).")
    n = min(metrics[name].n for name in eligible)
    constant = [name for name in eligible if _small(metrics[name]) and metrics[name].ci_degenerate]
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

    choice = min(candidates, key=lambda n: (round(costs[n].total_at_volume, 6), metrics[n].record.complexity))
    if len(candidates) > 1:
        costs_text = ", ".join(f"{n} ${costs[n].total_at_volume:.2f}" for n in candidates)
        reasons.append(f"Among the tied candidates, {choice} costs least for {volume:,} answers ({costs_text}).")
    elif len(eligible) == 1:
        reasons.append(f"{choice} is the only strategy that ran and qualified; nothing to compare it with.")
    else:
        reasons.append(f"{choice} has the best held-out score ({metrics[choice].score:.3f}) and no strategy "
                       "is tied with it.")
    reasons += verdict_sentences(metrics, [choice, *(n for n in eligible if n != choice)])
    if small:
        m = metrics[choice]
        reasons.append(f"The test set has only {n} items (fewer than {MIN_TEST_ITEMS}): {choice}'s score is "
                       f"uncertain (95% CI [{m.ci_low:.3f}, {m.ci_high:.3f}]); confirm on a larger test set.")
    return _result(choice, candidates, excluded, reasons, small)


def _shared_weights(ran: Metrics) -> list[str]:
    """A sentence per set of trained weights that several strategies answer with: trained once, counted in each."""
    groups: dict[str, list[str]] = {}
    for name, m in ran.items():
        weights = m.record.weights
        if weights.trained:
            groups.setdefault(weights.key, []).append(name)
    return [f"{' and '.join(names)} answer with the same adapter ({key}), trained once and shared: each one's "
            "one-time cost counts that training, as either deployed alone would need it, and its MMLU/HumanEval "
            "results are the same." for key, names in groups.items() if len(names) > 1]


def _ci(pair: dict[str, Any], first: str) -> str:
    low, high = (pair["ci_low"], pair["ci_high"]) if pair["a"] == first else (-pair["ci_high"], -pair["ci_low"])
    return f"{low:+.3f}, {high:+.3f}"


def what_would_change(verdict: dict[str, Any], metrics: Metrics, facts: dict[str, Any],
                      n_train: int, break_even: dict[str, dict[str, Any]], volume: int) -> list[str]:
    """Plain sentences on which facts would flip the verdict, from what the chosen strategy answers with."""
    out = []
    choice, change = verdict["choice"], facts.get("docs_change", "unknown")
    ran = {n: m for n, m in metrics.items() if m.ok}
    if len(ran) == 1:
        out.append("Running a second strategy on the same test set gives something to compare, and a recommendation.")
    chosen = ran.get(choice) if choice else None
    trained = chosen is not None and chosen.record.weights.trained
    retrieving = chosen is not None and chosen.retrieves
    if trained and not retrieving:
        if change in ("weekly", "daily"):
            out.append("The documents change weekly or faster: every change needs a retrain; RAG re-indexes instead.")
        if change == "monthly":
            out.append("The documents change monthly: the fine-tune needs a retrain each month (12 a year); if RAG "
                       "tied it, RAG would keep up by re-indexing instead.")
        if change not in RETRAINS_PER_YEAR:
            out.append("How often the documents change is not stated (facts.docs_change): if weekly or faster, each "
                       "change needs a retrain and RAG would fit better.")
    if trained and retrieving:
        if change in ("monthly", "weekly", "daily"):
            out.append(f"The documents change {change}: {choice} re-indexes to keep its passages current, but its "
                       "adapter keeps what it learnt from the training data; answers that rely on trained-in facts "
                       "need a retrain.")
        if change not in RETRAINS_PER_YEAR:
            out.append("How often the documents change is not stated (facts.docs_change): retrieval keeps the "
                       f"passages current, but {choice}'s adapter would need a retrain for what it learnt.")
    if chosen is not None and not trained and any(m.record.weights.trained for m in ran.values()) \
            and n_train < 500:
        out.append(f"Only {n_train} training examples: with 500 to 5,000 good examples a fine-tune may pull ahead.")
    if retrieving and not trained and change in ("never", "yearly"):
        out.append("The documents rarely change: if a fine-tune ties RAG after more data, it answers without "
                   "retrieval and with shorter prompts.")
    if retrieving and not trained and change == "monthly":
        out.append("The documents change monthly: a fine-tune would need 12 retrains a year to keep up; were they "
                   "to change yearly or never, a fine-tune that ties RAG would answer without retrieval.")
    for tuned, rivals in break_even.items():
        n = rivals.get(choice) if choice and not trained else None
        if n is not None and n > volume:
            out.append(f"Above {n:,} answers, {tuned}'s one-time cost is repaid against {choice} by cheaper answers "
                       "(if its score stays tied).")
    if verdict.get("small_sample"):
        out.append(f"A test set of at least {MIN_TEST_ITEMS} items narrows the confidence intervals enough for a "
                   "tie to mean something.")
    elif len(verdict["candidates"]) > 1:
        out.append("A larger test set narrows the confidence intervals and may break the tie.")
    return out


RETRAINS_PER_YEAR = {"never": 0, "yearly": 1, "monthly": 12, "weekly": 52, "daily": 365}
"""Retrains a fine-tune needs to stay as current as the documents."""
RETRIEVAL, TRAINED, EITHER, UNKNOWN = "retrieval", "trained weights", "trained weights or retrieval", "unknown"
"""What a criterion favours, as facts; `criteria` names the strategies of the run that have them."""
DOCS_CHANGE_CRITERION = {
    "unknown": (UNKNOWN, "how often the documents change is unknown: set facts.docs_change in task.yaml (never, "
                "yearly, monthly, weekly or daily); it decides whether a fine-tune's retrains can keep up"),
    "never": (EITHER, "documents never change: a fine-tune trained once stays current; RAG works too"),
    "yearly": (EITHER, "documents change yearly: one retrain a year keeps a fine-tune current{cost}; {reindex}"),
    "monthly": (RETRIEVAL, "documents change monthly: {reindex}; a monthly retrain is feasible but costs a training "
                "each month{cost}"),
    "weekly": (RETRIEVAL, "documents change weekly: {reindex}; a fine-tune would need 52 retrains a year{cost}"),
    "daily": (RETRIEVAL, "documents change daily: {reindex}; a fine-tune would need 365 retrains a year{cost}"),
}
"""(favours, reason) of the documents-change criterion for each config.DOCS_CHANGE value."""


def docs_change_row(change: str, retrain_usd: float | None, reindex_s: float | None) -> tuple[str, str]:
    """(favours, reason) for `change`, with the measured training cost (`retrain_usd`) as a yearly retraining
    bill and the measured index build time (`reindex_s`) where the run has them."""
    if change not in DOCS_CHANGE_CRITERION:
        return UNKNOWN, f"{change!r} is not a known value: set facts.docs_change in task.yaml"
    favours, template = DOCS_CHANGE_CRITERION[change]
    retrains = RETRAINS_PER_YEAR.get(change, 0)
    cost = f" (about ${retrains * retrain_usd:,.2f} a year at this run's training cost)" if retrain_usd else ""
    reindex = f"RAG re-indexes in {reindex_s:.0f} s (measured)" if reindex_s is not None else "RAG re-indexes"
    return favours, template.format(cost=cost, reindex=reindex)


def _named(favours: str, ran: Metrics) -> str:
    """The strategies of this run with the favoured facts ("rag or rag_finetune"), else the facts themselves."""
    has: dict[str, Callable[[StrategyMetrics], bool]] = {
        RETRIEVAL: lambda m: m.retrieves, TRAINED: lambda m: m.record.weights.trained,
        EITHER: lambda m: m.record.weights.trained or m.retrieves}
    if favours not in has:
        return favours
    names = [n for n, m in ran.items() if has[favours](m)]
    return " or ".join(names) if names else favours


def criteria(metrics: Metrics, pairs: list[dict[str, Any]], costs: dict[str, Cost],
             facts: dict[str, Any], n_labeled: int, break_even: dict[str, dict[str, Any]],
             volume: int) -> list[dict[str, str]]:
    """The tutorial's fine-tune-vs-RAG criteria, each filled from task facts or measurements, with a reason."""
    ran = {n: m for n, m in metrics.items() if m.ok}
    fits = {n: m.record for n, m in ran.items()}
    rows = []

    trained = [n for n in ran if fits[n].weights.trained and n in costs]
    retrain_usd = min((costs[n].one_time for n in trained), default=None)  # the training alone
    reindex_s = next((b.seconds for f in fits.values() for b in f.one_time if b.what == "index"), None)
    favours, reason = docs_change_row(facts.get("docs_change", "unknown"), retrain_usd, reindex_s)
    rows.append(("Documents change frequency", _named(favours, ran), reason))
    rows.append(_knowledge_row(ran, fits, pairs, facts))

    if n_labeled >= 500:
        rows.append(("Training data available", _named(TRAINED, ran), f"{n_labeled} labeled examples (>= 500 "
                     "recommended)"))
    else:
        untrained = " or ".join(n for n in ran if not fits[n].weights.trained) or "no fine-tune"
        rows.append(("Training data available", untrained, f"only {n_labeled} labeled examples (< 500 "
                     "recommended for a fine-tune)"))

    if costs:
        cheapest = min(costs, key=lambda n: costs[n].total_at_volume)
        detail = "; ".join(f"{t} repays vs {r} after {n:,} answers" for t, rivals in break_even.items()
                           for r, n in rivals.items() if n)
        rows.append(("Cost (long-term)", cheapest, f"lowest total for {volume:,} answers: "
                     f"${costs[cheapest].total_at_volume:.2f}" + (f"; {detail}" if detail else "")))
    if ran:
        fastest = min(ran, key=lambda n: ran[n].latency_p50 or 0.0)
        rows.append(("Latency", fastest, "lowest p50: " + ", ".join(
            f"{n} {m.latency_p50:.2f} s" for n, m in ran.items())))
    return [{"criterion": c, "favours": f, "reason": r} for c, f, r in rows]


def _knowledge_row(ran: Metrics, fits: dict[str, Any], pairs: list[dict[str, Any]],
                   facts: dict[str, Any]) -> tuple[str, str, str]:
    """Does retrieval add knowledge? Each strategy that retrieves against one on the same weights without."""
    if facts.get("needs_deep_understanding"):
        return "Knowledge requirements", _named(TRAINED, ran), "task.yaml says the task needs deep understanding"
    tested = []
    for r in (n for n in ran if ran[n].retrieves):
        for b in (n for n in ran if not ran[n].retrieves and fits[n].weights.key == fits[r].weights.key):
            pair = _tied(r, b, pairs)
            if pair:
                tested.append((r, b, pair))
    if not tested:
        return ("Knowledge requirements", UNKNOWN, "no strategy was measured both with and without retrieval on "
                "the same weights")
    wins = [(r, b, p) for r, b, p in tested if p["significant"] and (ran[r].score or 0) > (ran[b].score or 0)]
    if wins:
        said = []
        for r, b, p in wins:
            retrieval = ran[r].retrieval
            hit = retrieval.hit_at_k if retrieval is not None else None
            said.append(f"{r} beats {b} by {(ran[r].score or 0) - (ran[b].score or 0):+.3f} (p = {p['p_holm']:.3g})"
                        + (f", retrieval hit@k {hit:.2f}" if hit is not None else ""))
        return "Knowledge requirements", " or ".join(r for r, _, _ in wins), "retrieval suffices: " + "; ".join(said)
    without = " or ".join(dict.fromkeys(b for _, b, _ in tested))
    said = "; ".join(f"{r} vs {b} p = {p['p_holm']:.3g}" for r, b, p in tested)
    return ("Knowledge requirements", without, f"retrieved passages did not improve the score significantly ({said})")
