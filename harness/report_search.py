"""The report's "Dev tuning" section: how each arm used the dev split, with each search's table and choice.

Read from the fit records alone (harness/search.py writes `search` into a strategy's fit details; rag also
keeps the prompt search it reused as `prompt_search`; a fine-tune's dev use is early stopping), so an old
run without searches says that each arm used its settings as given. Also `model_not_docs`: the sentence
that says when retrieval found the answer but the model did not use it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report_format import count, duration, md_table
from harness.run_schema import StrategyMetrics

HIT_FOUND = 0.5
"""hit@k at or above this counts as "retrieval finds the answer" ..."""
SCORE_SHARE = 0.5
"""... and a score under this share of hit@k as "the model does not use it"."""


def model_not_docs(hit_at_k: float | None, score: float | None, k: int | None, where: str) -> str | None:
    """The sentence for hit@k high and score low, else None."""
    if hit_at_k is None or score is None or hit_at_k < HIT_FOUND or score >= SCORE_SHARE * hit_at_k:
        return None
    return (f"On {where}, retrieval put the answer in the top {k} passages for {hit_at_k:.0%} of the labeled items, "
            f"yet the score is {score:.3f}: this points at the model, not the docs (the passages hold the answer "
            "and the model does not use it).")


def search_table(record: dict[str, Any]) -> pd.DataFrame:
    rows = record.get("candidates") or []
    with_hits = any(r.get("hit_at_k") is not None for r in rows)
    table = []
    for r in rows:
        row = {"candidate": r["candidate"],
               f"dev {record.get('scorer', 'score')} (0-1)": "—" if r["dev_score"] is None else f"{r['dev_score']:.3f}",
               "dev items": count(r["dev_items"] if r["dev_score"] is not None else None),
               "prompt tokens/answer": "—" if r["prompt_tokens_mean"] is None else f"{r['prompt_tokens_mean']:.0f}"}
        if with_hits:
            row["dev hit@k (0-1)"] = "—" if r.get("hit_at_k") is None else f"{r['hit_at_k']:.3f}"
        row["time (s)"] = f"{r['seconds']:.1f}"
        row["note"] = ("chosen" if r["candidate"] == record.get("chosen")
                       else f"skipped: {r['skipped']}" if r.get("skipped") else "")
        table.append(row)
    return pd.DataFrame(table)


def search_summary(record: dict[str, Any]) -> str:
    ran = sum(r["dev_score"] is not None for r in record.get("candidates") or [])
    chosen = f"Chose **{record['chosen']}**" if record.get("chosen") else "No candidate ran: the settings as given"
    cached = " (search record from the cache: times as first measured)" if record.get("cached") else ""
    return (f"{chosen} by {record.get('rule', 'dev score')}. Dev budget: {count(record.get('answers'))} answers "
            f"({ran} candidates x {count(record.get('dev_items'))} of {count(record.get('dev_available'))} dev "
            f"items), {duration(record.get('seconds'))}{cached}.")


def _chosen_row(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in record.get("candidates") or [] if r["candidate"] == record.get("chosen")), None)


def arm_body(name: str, m: StrategyMetrics, others: dict[str, StrategyMetrics]) -> str:
    """One arm's dev use, in words, with its search table(s)."""
    details = m.record.details
    parts = []
    if details.get("engine"):
        parts.append(f"Dev use: early stopping on {count(details.get('dev_examples'))} validation examples "
                     f"(validation loss per epoch; best of {count(details.get('epochs_run'))} epochs kept). No "
                     "answers are generated on dev.")
    prompt_search = details.get("prompt_search")
    if prompt_search:
        # The arm whose own search this is (the same cache key): shown there, not twice.
        owner = next((n for n, o in others.items() if prompt_search.get("key")
                      and (o.record.details.get("search") or {}).get("key") == prompt_search["key"]), None)
        shared = owner is not None
        parts.append(f"Prompt: the prompt search's choice, {prompt_search.get('chosen') or 'the settings as given'}"
                     + (f" (the same search as {owner}'s, shown there)." if shared else ":"))
        if not shared:
            parts += [md_table(search_table(prompt_search)), search_summary(prompt_search)]
    record = details.get("search")
    if record:
        parts += [md_table(search_table(record)), search_summary(record)]
        row = _chosen_row(record)
        if row and (line := model_not_docs(row.get("hit_at_k"), row["dev_score"], row["settings"].get("k"),
                                           "dev with the chosen settings")):
            parts.append(line)
    if not parts:
        parts.append("Dev use: none; the settings as given (search off, or no dev split).")
    return f"### {name}\n\n" + "\n\n".join(parts)


def dev_tuning_body(strategies: dict[str, StrategyMetrics], split: dict[str, Any]) -> str | None:
    """The section's text; None when no arm searched (an old run, or every search off: nothing was tuned)."""
    ran = {n: m for n, m in strategies.items() if m.ok}
    if not any(m.record.details.get("search") or m.record.details.get("prompt_search") for m in ran.values()):
        return None
    intro = (f"Every arm may use the same {count(split.get('dev'))} dev examples, never the test split: a search "
             "answers its first N dev items with each candidate, keeps the best dev score and answers the test "
             "once, with that choice. Scores here are dev scores, not comparable with the test figures above.")
    return "\n\n".join([intro, *(arm_body(n, m, ran) for n, m in ran.items())])
