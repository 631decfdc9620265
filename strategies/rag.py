"""Retrieval-augmented generation: the top-k passages of the task's documents go into the prompt.

Same model, system prompt, k-shot examples and decoding as the `prompt` strategy, so the two differ
only by retrieval. `fit` loads or builds the cached corpus (harness.retrieval.store); `answer` embeds
each question alone (the latency a single user sees), searches the index, packs the passages into
the context window and generates in batches. Every prediction records what was retrieved and how
long retrieval and generation took; `label_metrics` scores retrieval against the test labels.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.data import Example, Query
from harness.models import resolve_sentence_model
from harness.records import Build, FitRecord, Message, Prediction
from harness.retrieval.chunking import Chunk
from harness.retrieval.context import question_with_passages, retrieval_text
from harness.retrieval.quality import retrieval_quality
from harness.retrieval.store import Corpus, open_corpus
from harness.task import Task
from strategies import StrategyContext
from strategies.prompt import PromptStrategy, generation_flags


class RagStrategy:
    name = "rag"
    complexity = 1

    def __init__(self, few_shot: bool = True) -> None:
        """`few_shot=False`: passages and question only (for weights trained on zero-shot prompts)."""
        self.few_shot = few_shot
        self.prompt = PromptStrategy()
        self.corpus: Corpus | None = None
        self.k = 0
        self.docs = "docs"

    def preflight(self, task: Task) -> None:
        """Before the run starts: the embedding model must resolve (a bad one is the user's input)."""
        resolve_sentence_model(task.config.rag.embedding_model, task.where("rag.embedding_model"))

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord:
        """Draw the prompt strategy's shots (when few-shot), then load (or build once) the chunk store and index."""
        began = time.perf_counter()
        cfg = ctx.config
        shots = self.prompt.fit(train, dev, ctx).details if self.few_shot else {}
        corpus = self.corpus = open_corpus(ctx.task_dir / cfg.docs, ctx.task_dir, cfg.rag)
        self.k, self.docs = cfg.rag.k, cfg.docs
        index = Build("index", corpus.cost["build_s"], corpus.device, f"{corpus.directory.name}/{corpus.spec.name}",
                      reused=corpus.cost["cache_hit"])
        return FitRecord(time.perf_counter() - began, corpus.device, {**corpus.cost, **shots}, one_time=(index,),
                         complexity=self.complexity)

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]:
        assert self.corpus is not None, "fit() first"
        cfg = ctx.config
        retrieved: list[list[tuple[Chunk, float]]] = []
        retrieval_s: list[float] = []
        vectors = self.corpus.query_vectors([retrieval_text(q) for q in queries], ctx.use_cache)
        for vector, embed_s, _ in vectors:
            began = time.perf_counter()
            retrieved.append(self.corpus.retrieve(vector, self.k))
            retrieval_s.append(embed_s + time.perf_counter() - began)

        backend = ctx.backend()
        budget = backend.context_length - cfg.generation.max_new_tokens

        def count(messages: list[Message]) -> int:
            return backend.count_tokens(backend.render(messages))  # type: ignore[attr-defined]

        conversations, used = [], []
        for query, hits in zip(queries, retrieved):
            messages, n = question_with_passages(query, [c for c, _ in hits], cfg.prompt, cfg.rag.context_template,
                                                 self.prompt.shots, count, budget)
            conversations.append(messages)
            used.append(n)
        generations = backend.generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
                                       cfg.generation.batch_size, progress=f"{self.name}: answering")
        predictions = []
        for query, hits, seconds, n, g, (_, _, cached_vector) in zip(queries, retrieved, retrieval_s, used,
                                                                      generations, vectors):
            extra: dict[str, Any] = {
                "retrieved": [{"chunk_id": c.id, "source": c.source, "score": round(s, 4)} for c, s in hits],
                "passages_in_prompt": n, "retrieval_s": round(seconds, 5), "generation_s": round(g.latency_s, 4),
                **generation_flags(g), **({"query_vector_cached": True} if cached_vector else {}),
            }
            # What a caller waits: its retrieval, then the generation batch holding its answer.
            predictions.append(Prediction(query.id, g.text, g.prompt_tokens, g.completion_tokens,
                                          seconds + g.latency_s, seconds + g.latency_s / g.batch_size, extra))
        return predictions

    def label_metrics(self, predictions: list[Prediction], examples: list[Example]) -> dict[str, Any]:
        """hit@k / MRR from the examples' sources and answers, and the retrieval/generation latency split."""
        assert self.corpus is not None, "fit() first"
        if not predictions:
            return {}
        ids = [[r["chunk_id"] for r in p.extra["retrieved"]] for p in predictions]
        retrieval = np.array([p.extra["retrieval_s"] for p in predictions])
        generation = np.array([p.extra["generation_s"] for p in predictions])
        return {
            **retrieval_quality(ids, examples, self.corpus.chunks, self.k, self.docs),
            "retrieval_p50_s": float(np.percentile(retrieval, 50)),
            "retrieval_p95_s": float(np.percentile(retrieval, 95)),
            "generation_p50_s": float(np.percentile(generation, 50)),
            "generation_p95_s": float(np.percentile(generation, 95)),
            "passages_in_prompt_mean": float(np.mean([p.extra["passages_in_prompt"] for p in predictions])),
            "cached_query_vectors": sum(bool(p.extra.get("query_vector_cached")) for p in predictions),
        }
