"""Retrieval-augmented generation: the top-k passages of the task's documents go into the prompt.

Same model, system prompt, k-shot examples and decoding as the `prompt` strategy (its dev-tuned prompt:
the same cached search record), so the two differ only by retrieval. `fit` loads or builds the cached
corpus (harness.retrieval.store), then, with `rag.search`, tunes k (each of `rag.search_k` and `rag.k`)
and then, at the best k, each chunk size of `rag.search_chunk_tokens` (an index of its own, cached like the
first) and whether to keep the prompt's shots, on the first `rag.search_dev_limit` dev items
(harness/search.py; each candidate row carries its dev hit@k). RAG prompts are long, so that budget is
small by default. `answer` embeds each question alone (the latency a single user sees), searches the
index, packs the passages into the context window and generates in batches. Every prediction records
what was retrieved and how long retrieval and generation took; `label_metrics` scores retrieval
against the test labels.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from harness.data import Example, Query
from harness.errors import NotRun
from harness.models import resolve_sentence_model
from harness.records import Build, FitRecord, Message, Prediction
from harness.retrieval.chunking import Chunk
from harness.retrieval.context import question_with_passages, retrieval_text
from harness.retrieval.quality import retrieval_quality
from harness.retrieval.store import Corpus, open_corpus
from harness.search import Candidate, DevAnswers, Skip, choose, examples_digest, model_identity, search, search_build
from harness.task import Task
from strategies import StrategyContext
from strategies.prompt import PromptStrategy, generation_flags

Hits = list[tuple[Chunk, float]]
"""One query's retrieved chunks with their scores, best first."""


class RagStrategy:
    name = "rag"
    complexity = 1

    def __init__(self, few_shot: bool = True, search: bool = True) -> None:
        """`few_shot=False`: passages and question only (for weights trained on zero-shot prompts).
        `search=False`: no dev tuning of its own (rag_finetune's weights do not exist yet when this fits)."""
        self.few_shot = few_shot
        self.tune = search
        self.prompt = PromptStrategy()
        self.corpus: Corpus | None = None
        self.k = 0
        self.use_shots = few_shot
        self.docs = "docs"
        self.corpora: dict[int, Corpus] = {}
        """Corpus per chunk size, opened by the search."""

    def preflight(self, task: Task) -> None:
        """Before the run starts: the embedding model must resolve (a bad one is the user's input)."""
        resolve_sentence_model(task.config.rag.embedding_model, task.where("rag.embedding_model"))

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord:
        """The prompt strategy's (searched) prompt when few-shot, the cached chunk store and index, then rag's
        own search on dev."""
        began = time.perf_counter()
        cfg = ctx.config
        corpus = self.corpus = open_corpus(ctx.task_dir / cfg.docs, ctx.task_dir, cfg.rag)
        self.corpora = {cfg.rag.chunk_tokens: corpus}
        details: dict[str, Any] = dict(corpus.cost)
        searches: tuple[Build, ...] = ()
        if self.few_shot:
            prompt_fit = self.prompt.fit(train, dev, ctx)
            searches = prompt_fit.one_time  # the prompt's search, shared with the prompt arm (same key)
            prompt = dict(prompt_fit.details)
            if "search" in prompt:
                details["prompt_search"] = prompt.pop("search")
            details.update(prompt)
        self.k, self.docs, self.use_shots = cfg.rag.k, cfg.docs, self.few_shot
        chunk_tokens = cfg.rag.chunk_tokens
        if self.tune and cfg.rag.search and dev:
            record = details["search"] = self.search(train, dev, ctx)
            searches += (search_build(record, ctx.backend().device),)
            chosen = record["chosen_settings"]
            if chosen:
                self.k, self.use_shots = chosen["k"], chosen["shots"]
                chunk_tokens = chosen.get("chunk_tokens", cfg.rag.chunk_tokens)
                corpus = self.corpus = self._corpus(chunk_tokens, ctx)
                if chunk_tokens != cfg.rag.chunk_tokens:
                    details.update(corpus.cost)  # the chosen index's build, as the index of this arm
        details.update(rag_k=self.k, shots_in_prompt=bool(self.use_shots and self.prompt.k),
                       chunk_tokens=chunk_tokens)
        index = Build("index", corpus.cost["build_s"], corpus.device, f"{corpus.directory.name}/{corpus.spec.name}",
                      reused=corpus.cost["cache_hit"])
        return FitRecord(time.perf_counter() - began, corpus.device, details, one_time=(index, *searches),
                         complexity=self.complexity)

    def _corpus(self, chunk_tokens: int, ctx: StrategyContext) -> Corpus:
        """The corpus chunked at `chunk_tokens` (built once, then cached like any index); the configured overlap,
        or an eighth of the chunk when the overlap would not fit in it."""
        if chunk_tokens not in self.corpora:
            rag = ctx.config.rag
            overlap = rag.chunk_overlap if rag.chunk_overlap < chunk_tokens else chunk_tokens // 8
            settings = dataclasses.replace(rag, chunk_tokens=chunk_tokens, chunk_overlap=overlap)
            self.corpora[chunk_tokens] = open_corpus(ctx.task_dir / ctx.config.docs, ctx.task_dir, settings)
        return self.corpora[chunk_tokens]

    def search(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> dict[str, Any]:
        """Each k with the prompt's shots (if it has any); then, at the best k, each other chunk size and no shots."""
        assert self.corpus is not None, "open the corpus first"
        cfg = ctx.config
        chunk = cfg.rag.chunk_tokens
        shots = self.few_shot and self.prompt.k > 0
        candidates = [Candidate(f"k={k}" + (" with shots" if shots else ""), {"k": k, "shots": shots,
                                                                            "chunk_tokens": chunk})
                      for k in sorted({*cfg.rag.search_k, cfg.rag.k})]

        def follow_up(rows: list[dict[str, Any]]) -> list[Candidate]:
            best = choose(rows)
            if not best:
                return []
            k = best["settings"]["k"]
            sizes = [Candidate(f"k={k} chunks of {c} tokens" + (" with shots" if shots else ""),
                               {"k": k, "shots": shots, "chunk_tokens": c})
                     for c in sorted(set(cfg.rag.search_chunk_tokens) - {chunk})]
            return sizes + ([Candidate(f"k={k} no shots", {"k": k, "shots": False, "chunk_tokens": chunk})]
                            if shots else [])

        def answer(candidate: Candidate, items: list[Example]) -> DevAnswers:
            k = candidate.settings["k"]
            try:
                corpus = self._corpus(candidate.settings["chunk_tokens"], ctx)
            except NotRun as why:
                raise Skip(str(why)) from None
            queries = [e.query() for e in items]
            retrieved, _, _, conversations, _ = self.prompts(queries, ctx, k, candidate.settings["shots"], corpus)
            generations = ctx.backend().generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
                                                 cfg.generation.batch_size,
                                                 progress=f"{self.name}: dev {candidate.label}")
            quality = retrieval_quality([[c.id for c, _ in hits] for hits in retrieved], items, corpus.chunks, k,
                                        cfg.docs)
            return DevAnswers([g.text for g in generations], [g.prompt_tokens for g in generations],
                              sum(g.cached for g in generations),
                              {"hit_at_k": quality["hit_at_k"], "retrieval_labeled": quality["retrieval_labeled"]})

        generation = {k: v for k, v in dataclasses.asdict(cfg.generation).items() if k != "latency_sample"}
        key = {"model": model_identity(ctx.backend()), "train": examples_digest(train), "generation": generation,
               "prompt": dataclasses.asdict(cfg.prompt), "rag": dataclasses.asdict(cfg.rag),
               "corpus": f"{self.corpus.directory.name}/{self.corpus.spec.name}",
               "prompt_chosen": [self.prompt.k, self.prompt.selection, self.prompt.system]}
        return search("rag", candidates, dev, cfg.rag.search_dev_limit, answer, ctx, key, follow_up=follow_up)

    def prompts(self, queries: list[Query], ctx: StrategyContext, k: int, use_shots: bool,
                corpus: Corpus | None = None
                ) -> tuple[list[Hits], list[float], list[tuple[Any, float, bool]], list[list[Message]], list[int]]:
        """(retrieved, retrieval seconds, query vectors, conversations, passages used) per query, for k passages
        of `corpus` (default: the arm's)."""
        corpus = corpus or self.corpus
        assert corpus is not None, "fit() first"
        cfg = ctx.config
        retrieved: list[Hits] = []
        retrieval_s: list[float] = []
        vectors = corpus.query_vectors([retrieval_text(q) for q in queries], ctx.use_cache)
        for vector, embed_s, _ in vectors:
            began = time.perf_counter()
            retrieved.append(corpus.retrieve(vector, k))
            retrieval_s.append(embed_s + time.perf_counter() - began)

        backend = ctx.backend()
        budget = backend.context_length - cfg.generation.max_new_tokens

        def count(messages: list[Message]) -> int:
            return backend.count_tokens(backend.render(messages))  # type: ignore[attr-defined]

        prompt = self.prompt.prompt_config(cfg)
        shots = self.prompt.shots_for(queries) if use_shots else [[] for _ in queries]
        conversations, used = [], []
        for query, hits, examples in zip(queries, retrieved, shots):
            messages, n = question_with_passages(query, [c for c, _ in hits], prompt, cfg.rag.context_template,
                                                 examples, count, budget)
            conversations.append(messages)
            used.append(n)
        return retrieved, retrieval_s, vectors, conversations, used

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]:
        cfg = ctx.config
        retrieved, retrieval_s, vectors, conversations, used = self.prompts(queries, ctx, self.k, self.use_shots)
        generations = ctx.backend().generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
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
