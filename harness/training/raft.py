"""RAFT-style training records: each example's prompt carries the passages retrieved for its question.

With `finetune.train_with_context`, `rag_finetune` trains an adapter of its own on the prompts it answers
with: the same index, the same k, RAG's context template, packed by the same function
(`harness.retrieval.context.question_with_passages`) into the same token budget. A deterministic share
of the examples (`finetune.distractor_share`, drawn by seeded hash of their ids) sees distractors only:
the passages that could answer it (`harness.retrieval.quality.answers`) are left out and the
next-ranked passages that cannot take their place, so the model learns to use context and to answer
without it when it does not help (Zhang et al. 2024, "RAFT").

Only train and dev examples come here: the runner never hands a strategy the test split.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config import PromptConfig
from harness.data import Example
from harness.retrieval.chunking import Chunk
from harness.retrieval.context import question_with_passages, retrieval_text
from harness.retrieval.quality import answers
from harness.training.formatting import example_record, render_prompt

if TYPE_CHECKING:  # numpy and FAISS load with the corpus, not with the fine-tune strategy
    from harness.retrieval.store import Corpus


@dataclass(frozen=True)
class TrainingContext:
    """What a context-trained adapter's examples are formatted with; `key()` goes into its cache key."""

    corpus: Corpus
    index_id: str
    """The index's content id (the `rag` strategy's index build): other documents, other adapter."""
    k: int
    distractor_share: float
    template: str
    """`rag.context_template`."""
    docs: str = "docs"
    """The task's docs folder, for the source test of `answers`."""
    use_cache: bool = True
    """Cache the questions' query vectors (as `rag` does for test queries)."""

    def key(self) -> dict[str, Any]:
        return {"index": self.index_id, "k": self.k, "distractor_share": self.distractor_share,
                "template": self.template, "answer_test": "source-or-whole-words-v1"}


@dataclass(frozen=True)
class ContextRecords:
    records: list[dict[str, str]]
    distractor_ids: list[str]
    """Examples whose passages are distractors only."""
    trimmed: int
    """Examples given fewer passages than the answer-time budget allows, so the answer fits max_seq_length."""
    passages: list[list[str]]
    """Chunk ids in each record's prompt, in rank order."""


def distractor_ids(examples: list[Example], share: float, seed: int) -> set[str]:
    """round(share x n) example ids, the first in seeded-hash order (the same ids on every run)."""
    ranked = sorted((hashlib.sha256(f"distractor:{seed}:{ex.id}".encode()).hexdigest(), ex.id) for ex in examples)
    return {ex_id for _, ex_id in ranked[:round(share * len(examples))]}


def ranked_passages(corpus: Corpus, vector: Any, example: Example, k: int, distractors_only: bool,
                    docs: str = "docs") -> list[Chunk]:
    """The top k passages for the example's question; with `distractors_only`, the top k that cannot answer it."""
    if not distractors_only:
        return [c for c, _ in corpus.retrieve(vector, k)]
    total = len(corpus.chunks)
    depth = min(total, 2 * k)
    while True:  # search deeper until k non-answering passages are found or the corpus is exhausted
        kept = [c for c, _ in corpus.retrieve(vector, depth) if not answers(c, example, docs)]
        if len(kept) >= k or depth >= total:
            return kept[:k]
        depth = min(total, depth * 4)


def context_records(examples: list[Example], context: TrainingContext, prompt: PromptConfig, tokenizer: Any,
                    stops: list[str], seed: int, budget: int, max_length: int, split: str = "train") -> ContextRecords:
    """Prompt/completion records whose prompts hold the retrieved passages (see the module docstring).

    `budget` is the answer-time prompt budget (context window less generation.max_new_tokens); a record
    that would then not fit `max_length` with its answer gets fewer passages, the lowest-ranked dropped.
    """
    def count(messages: list[dict[str, str]]) -> int:  # as the transformers backend counts a prompt
        return len(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"])

    def length(record: dict[str, str]) -> int:  # as the training counts a sequence: + the end token TRL adds
        return len(tokenizer(record["prompt"] + record["completion"], add_special_tokens=False)["input_ids"]) + 1

    chosen = distractor_ids(examples, context.distractor_share, seed)
    if examples:
        print(f"[finetune] retrieving {context.k} passages for {len(examples)} {split} examples "
              f"({len(chosen)} with distractors only)", file=sys.stderr, flush=True)
    vectors = context.corpus.query_vectors([retrieval_text(ex) for ex in examples], context.use_cache)
    records, passages, trimmed = [], [], 0
    for example, (vector, _, _) in zip(examples, vectors):
        chunks = ranked_passages(context.corpus, vector, example, context.k, example.id in chosen, context.docs)
        messages, used = question_with_passages(example, chunks, prompt, context.template, [], count, budget)
        record = example_record(tokenizer, messages, example.output, stops)
        over = length(record) - max_length
        if over > 0 and used:
            trimmed += 1
            messages, used = question_with_passages(example, chunks, prompt, context.template, [], count,
                                                    count(messages) - over)
            record = example_record(tokenizer, messages, example.output, stops)
        records.append(record)
        passages.append([c.id for c in chunks[:used]])
    return ContextRecords(records, sorted(chosen), trimmed, passages)
