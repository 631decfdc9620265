"""Retrieval quality from labels the data already has: hit@k and MRR, without asking the user.

An example is labeled two ways when it can be:
- by source: it names its source document (`source: docs/json.md`); a retrieved chunk is relevant when
  it comes from that file (the path may also be given relative to the docs folder).
- by answer: its reference answer (at least MIN_ANSWER_WORDS words, compared lowercased with
  whitespace collapsed) occurs verbatim in some chunk of the corpus; a retrieved chunk is relevant
  when it contains the answer. An answer found in no chunk leaves the example unlabeled.

The headline `hit_at_k` / `mrr` use the source label where there is one, else the answer label.

`answers(chunk, example)` is the same test turned the other way, for RAFT-style training: which
passages must be left out so that an example sees distractors only (harness/training/raft.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.data import Example
from harness.retrieval.chunking import Chunk

MIN_ANSWER_WORDS = 3
"""Shorter answers ("yes", "42") occur by chance in unrelated chunks and would inflate hit@k."""


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def from_source(chunk: Chunk, source: str, docs_prefix: str = "docs") -> bool:
    """Does the chunk come from `source` (relative to the task folder, or to the docs folder)?"""
    wanted = source.removeprefix("./")
    return wanted in (chunk.source, chunk.source.removeprefix(docs_prefix.rstrip("/") + "/"))


def answers(chunk: Chunk, example: Example, docs_prefix: str = "docs") -> bool:
    """Could this passage answer the example: it comes from the example's source document, or holds its
    reference answer as whole words (case and whitespace ignored).

    Unlike hit@k's answer label, any answer length counts: here a false positive only swaps a passage
    for the next-ranked one, while a miss would leave the answer among the "distractors".
    """
    if example.source and from_source(chunk, example.source, docs_prefix):
        return True
    answer = normalize(example.output)
    return bool(answer) and re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", normalize(chunk.text)) is not None


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    """1/rank of the first relevant item (ranks from 1), 0 when none is."""
    return next((1.0 / rank for rank, hit in enumerate(relevant, start=1) if hit), 0.0)


def _summary(ranks: list[float]) -> dict[str, Any]:
    if not ranks:
        return {"n": 0, "hit_at_k": None, "mrr": None}
    return {"n": len(ranks), "hit_at_k": sum(r > 0 for r in ranks) / len(ranks), "mrr": sum(ranks) / len(ranks)}


def retrieval_quality(retrieved: list[list[str]], examples: list[Example], chunks: list[Chunk], k: int,
                      docs_prefix: str = "docs") -> dict[str, Any]:
    """hit@k and MRR over the examples that carry a usable label; `retrieved` holds chunk ids per example."""
    by_id = {c.id: c for c in chunks}
    texts = [normalize(c.text) for c in chunks]
    by_source: list[float] = []
    by_answer: list[float] = []
    headline: list[float] = []
    for ids, example in zip(retrieved, examples):
        hits = [by_id[i] for i in ids[:k]]
        rank_source = rank_answer = None
        if example.source:
            rank_source = reciprocal_rank([from_source(c, example.source, docs_prefix) for c in hits])
            by_source.append(rank_source)
        answer = normalize(example.output)
        if len(answer.split()) >= MIN_ANSWER_WORDS and any(answer in t for t in texts):
            rank_answer = reciprocal_rank([answer in normalize(c.text) for c in hits])
            by_answer.append(rank_answer)
        label = rank_source if rank_source is not None else rank_answer
        if label is not None:
            headline.append(label)
    overall = _summary(headline)
    return {
        "retrieval_k": k, "retrieval_labeled": overall["n"], "hit_at_k": overall["hit_at_k"], "mrr": overall["mrr"],
        "retrieval_by_source": _summary(by_source), "retrieval_by_answer": _summary(by_answer),
    }
