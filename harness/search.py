"""Dev-split tuning shared by the baselines: answer the first N dev items with each candidate setting, keep the best.

A strategy lists its candidates (a label and the settings it stands for) and a function that answers dev
queries with one. `search` answers and scores each with the task's scorer (harness.scoring.score_items, as
the runner scores the test), and picks the best mean dev score; ties go to the cheaper candidate (fewer
prompt tokens per answer), then to the one listed first. Only dev is read here: the test split is touched
once, afterwards, by the choice. The record (a row per candidate, the choice, the rule) goes into the
strategy's FitRecord details as `search`; the report's "Dev tuning" section reads it. It is cached under
cache_root()/search/<key>.json, the key hashing everything that decides it (model, examples, settings,
candidates), so a rerun answers nothing (`compare --no-cache` searches afresh).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.data import Example
from harness.models import cache_root, touch_used
from harness.records import Build

FORMAT = 1
"""Bump when a search's meaning changes (candidates, scoring, the rule), so old records are not reused."""
CACHE_DIR = "search"
RULE = "highest mean dev score; ties: fewer prompt tokens per answer, then the candidate listed first"


@dataclass(frozen=True)
class Candidate:
    label: str
    """How the report names it: "k=3 knn", "k=1 no shots"."""
    settings: dict[str, Any]
    """What the strategy applies when this candidate is chosen (JSON-serializable)."""


@dataclass(frozen=True)
class DevAnswers:
    """One candidate's answers to the dev items, in their order."""

    texts: list[str]
    prompt_tokens: list[int]
    cached: int = 0
    """Answers taken from the generation cache."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Figures of the candidate worth a column (e.g. rag's dev hit@k)."""


class Skip(Exception):
    """Raised by an answer function: this candidate cannot run (its prompt does not fit); the reason is shown."""


Answer = Callable[[Candidate, list[Example]], DevAnswers]


def examples_digest(examples: list[Example]) -> str:
    """Content hash of examples (every field, in order): a changed dev or train item is a new search."""
    blob = json.dumps([dataclasses.asdict(e) for e in examples], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_identity(backend: Any) -> dict[str, Any]:
    """What answers: engine, weights (their files, as the generation cache names them) and serving facts."""
    from harness.gencache import fingerprint_dir

    return {"backend": backend.name, "model": fingerprint_dir(backend.model_path), "serving": backend.serving,
            "context_length": backend.context_length}


def search(strategy: str, candidates: list[Candidate], dev: list[Example], limit: int, answer: Answer, ctx: Any,
           key_parts: dict[str, Any], follow_up: Callable[[list[dict[str, Any]]], list[Candidate]] | None = None,
           ) -> dict[str, Any]:
    """The search record: each candidate answers `dev[:limit]`; `follow_up(rows so far)` may add candidates
    that depend on the first round (rag: the best k without shots). `ctx` is the StrategyContext."""
    used = dev[:limit]
    key = hashlib.sha256(json.dumps({
        "format": FORMAT, "strategy": strategy, "scorer": ctx.config.scorer, "dev": examples_digest(used),
        "candidates": [dataclasses.asdict(c) for c in candidates], **key_parts,
    }, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = cache_root() / CACHE_DIR / f"{key}.json"
    if ctx.use_cache and path.is_file():
        touch_used(path)
        record = json.loads(path.read_text(encoding="utf-8"))
        _say(strategy, f"search record from the cache ({len(record['candidates'])} candidates on "
                       f"{record['dev_items']} dev items): chose {record['chosen']}")
        return {**record, "cached": True}

    began = time.perf_counter()
    _say(strategy, f"searching {len(candidates)} candidate(s)"
                   f"{' and follow-ups' if follow_up else ''} on {len(used)} of {len(dev)} dev items")
    rows = [_evaluate(strategy, c, used, answer, ctx, i, len(candidates)) for i, c in enumerate(candidates, 1)]
    extra = follow_up(rows) if follow_up else []
    rows += [_evaluate(strategy, c, used, answer, ctx, i, len(extra), "follow-up ") for i, c in enumerate(extra, 1)]
    best = choose(rows)
    record = {
        "dev_items": len(used), "dev_available": len(dev), "dev_limit": limit, "scorer": ctx.config.scorer,
        "candidates": rows, "chosen": best["candidate"] if best else None,
        "chosen_settings": best["settings"] if best else None, "rule": RULE,
        "answers": sum(r["dev_items"] for r in rows if r["dev_score"] is not None),
        "seconds": round(time.perf_counter() - began, 3), "cached": False, "key": key,
    }
    _say(strategy, f"chose {record['chosen'] or 'the configured settings (no candidate ran)'} after "
                   f"{record['answers']} dev answers in {record['seconds']:.0f} s")
    if ctx.use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)  # whole or absent
    return record


def search_build(record: dict[str, Any], device: str) -> Build:
    """The search as a one-time cost, like an index or a training: what it cost when first done (a record from the
    cache keeps its first seconds), on the machine that answered, named by its cache key (shared when equal)."""
    return Build("search", float(record.get("seconds") or 0.0), device, record.get("key"),
                 reused=bool(record.get("cached")))


def choose(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best row by RULE; None when every candidate was skipped."""
    ran = [(i, r) for i, r in enumerate(rows) if r["dev_score"] is not None]
    if not ran:
        return None
    # Scores are means of per-item scores: equal within float noise means equal.
    return min(ran, key=lambda ir: (-round(ir[1]["dev_score"], 9), ir[1]["prompt_tokens_mean"], ir[0]))[1]


def _evaluate(strategy: str, candidate: Candidate, dev: list[Example], answer: Answer, ctx: Any, i: int, n: int,
              stage: str = "") -> dict[str, Any]:
    from harness.scoring import score_items

    row: dict[str, Any] = {"candidate": candidate.label, "settings": candidate.settings, "dev_score": None,
                           "dev_items": len(dev), "prompt_tokens_mean": None, "seconds": 0.0, "cached_answers": 0,
                           "skipped": None}
    began = time.perf_counter()
    try:
        answers = answer(candidate, dev)
    except Skip as why:
        row["skipped"] = str(why)
        _say(strategy, f"{stage}candidate {i}/{n} {candidate.label}: skipped ({why})")
        return row
    scores = score_items(ctx.config, ctx.task_dir, answers.texts, dev, ctx.backend).scores
    row.update(dev_score=sum(scores) / len(scores) if scores else 0.0,
               prompt_tokens_mean=sum(answers.prompt_tokens) / max(1, len(answers.prompt_tokens)),
               seconds=round(time.perf_counter() - began, 3), cached_answers=answers.cached, **answers.extra)
    _say(strategy, f"{stage}candidate {i}/{n} {candidate.label}: dev {ctx.config.scorer} {row['dev_score']:.3f} "
                   f"on {len(dev)} items, {row['prompt_tokens_mean']:.0f} prompt tokens/answer, "
                   f"{row['seconds']:.1f} s")
    return row


def _say(strategy: str, line: str) -> None:
    print(f"[{strategy}] {line}", file=sys.stderr, flush=True)
