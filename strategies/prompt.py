"""The prompt-engineered baseline: a system prompt plus k worked examples from train, tuned on dev.

With `prompt.search` (the default) `fit` tries, on the first `prompt.search_dev_limit` dev items, every
shot count of `prompt.search_k_shots` and `prompt.k_shot` that the context allows, each with seeded-random
shots (the same for every question) and kNN shots (per question, the most similar training examples by
embedding: harness/shots.py), under `prompt.system` and each of `prompt.system_alternatives`; the best dev
score wins (harness/search.py). A fine-tune gets dev for early stopping; this gives the baseline the same
care, so "fine-tuning beats prompting" is not an artefact of an untuned prompt. Without dev, or with
`search: false`, the settings are used as given. `rag` answers with the same prompt plus passages.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

from harness.config import PromptConfig, TaskConfig
from harness.data import Example, Query
from harness.prompting import build_messages
from harness.records import Build, FitRecord, Generation, Message, Prediction
from harness.search import Candidate, DevAnswers, Skip, examples_digest, model_identity, search, search_build
from harness.shots import ShotPool
from strategies import StrategyContext


def generation_flags(g: Generation) -> dict[str, bool | float]:
    """Per-prediction flags worth keeping: prompt truncated to fit, answer taken from the cache, and the
    time to first token (s) where a streaming server measured it."""
    flags: dict[str, bool | float] = {k: True for k in ("truncated", "cached") if getattr(g, k)}
    if g.first_token_s is not None:
        flags["first_token_s"] = round(g.first_token_s, 4)
    return flags


def to_predictions(queries: list[Query], generations: list[Generation]) -> list[Prediction]:
    """One Prediction per query; compute_s is the answer's share of its generation batch."""
    return [
        Prediction(q.id, g.text, g.prompt_tokens, g.completion_tokens, g.latency_s, g.latency_s / g.batch_size,
                   generation_flags(g))
        for q, g in zip(queries, generations)
    ]


def prompt_candidates(cfg: PromptConfig, train_size: int) -> list[Candidate]:
    """Cheapest first (fewer shots), so a tie on every count goes to the cheaper prompt."""
    ks = sorted({min(k, train_size) for k in (*cfg.search_k_shots, cfg.k_shot)})
    systems = list(dict.fromkeys([cfg.system, *cfg.system_alternatives]))
    out = []
    for s in range(len(systems)):
        suffix = f", system {s}" if len(systems) > 1 else ""
        for k in ks:
            for selection in ("random", "knn") if k else ("random",):
                label = f"k={k} {selection}{suffix}" if k else f"k=0{suffix}"
                out.append(Candidate(label, {"k_shot": k, "shot_selection": selection, "system": s}))
    return out


class PromptStrategy:
    name = "prompt"
    complexity = 0

    def __init__(self) -> None:
        self.k = 0
        self.selection = "random"
        self.system = 0
        """Index into [prompt.system, *prompt.system_alternatives]."""
        self.shots: list[Example] = []
        """The random shots (shot_selection random): the same for every question."""
        self.pool: ShotPool | None = None
        """kNN shots' training examples and vectors (shot_selection knn)."""

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord:
        """Search on dev (when asked and there is dev), then draw the chosen shots: nothing is trained."""
        began = time.perf_counter()
        cfg = ctx.config.prompt
        chosen: dict[str, Any] = {"k_shot": cfg.k_shot, "shot_selection": cfg.shot_selection, "system": 0}
        record = None
        if cfg.search and dev:
            record = self.search(train, dev, ctx)
            chosen = record["chosen_settings"] or chosen
        self.configure(chosen, train, ctx)
        details: dict[str, Any] = {"k_shot": self.k, "shot_selection": self.selection}
        if self.selection == "random":
            details["shot_ids"] = [s.id for s in self.shots]
        if self.system:
            details["system_prompt"] = self.prompt_config(ctx.config).system
        one_time: tuple[Build, ...] = ()
        if record is not None:
            details["search"] = record
            one_time = (search_build(record, ctx.backend().device),)
        return FitRecord(time.perf_counter() - began, "cpu", details, one_time=one_time, complexity=self.complexity)

    def search(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> dict[str, Any]:
        """The prompt search's record (harness/search.py), cached by content; rag reuses the same record."""
        cfg = ctx.config
        backend = ctx.backend()
        budget = backend.context_length - cfg.generation.max_new_tokens

        def answer(candidate: Candidate, items: list[Example]) -> DevAnswers:
            self.configure(candidate.settings, train, ctx)
            queries = [e.query() for e in items]
            conversations = self.conversations(queries, cfg)
            longest = max(backend.count_tokens(backend.render(c)) for c in conversations)  # type: ignore[attr-defined]
            if self.k and longest > budget:
                raise Skip(f"a prompt of {longest} tokens exceeds the {budget}-token context budget")
            generations = backend.generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
                                           cfg.generation.batch_size, progress=f"{self.name}: dev {candidate.label}")
            return DevAnswers([g.text for g in generations], [g.prompt_tokens for g in generations],
                              sum(g.cached for g in generations))

        generation = {k: v for k, v in dataclasses.asdict(cfg.generation).items() if k != "latency_sample"}
        key = {"model": model_identity(backend), "train": examples_digest(train), "generation": generation,
               "prompt": dataclasses.asdict(cfg.prompt), "embedding_model": cfg.rag.embedding_model}
        return search("prompt", prompt_candidates(cfg.prompt, len(train)), dev, cfg.prompt.search_dev_limit, answer,
                      ctx, key)

    def configure(self, settings: dict[str, Any], train: list[Example], ctx: StrategyContext) -> None:
        """Apply a candidate's settings: k, how shots are chosen, which system prompt."""
        cfg = ctx.config
        self.k = min(int(settings["k_shot"]), len(train))
        self.selection, self.system = settings["shot_selection"], int(settings["system"])
        pool = sorted(train, key=lambda e: e.id)  # deterministic whatever order train is read in
        self.shots = random.Random(cfg.prompt.shot_seed).sample(pool, self.k) if self.selection == "random" else []
        if self.selection == "knn" and self.pool is None:
            self.pool = ShotPool(train, cfg.rag.embedding_model, ctx.use_cache)

    def prompt_config(self, cfg: TaskConfig) -> PromptConfig:
        """The task's prompt settings with the chosen system prompt."""
        systems = list(dict.fromkeys([cfg.prompt.system, *cfg.prompt.system_alternatives]))
        return dataclasses.replace(cfg.prompt, system=systems[self.system])

    def shots_for(self, queries: list[Query]) -> list[list[Example]]:
        """Each query's shots: the one random draw, or its own nearest training examples."""
        if self.selection == "knn" and self.k:
            assert self.pool is not None, "configure() first"
            return self.pool.nearest_many(queries, self.k)
        return [self.shots for _ in queries]

    def conversations(self, queries: list[Query], cfg: TaskConfig) -> list[list[Message]]:
        prompt = self.prompt_config(cfg)
        return [build_messages(q, prompt, shots) for q, shots in zip(queries, self.shots_for(queries))]

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]:
        cfg = ctx.config
        backend = ctx.backend()
        generations = backend.generate(self.conversations(queries, cfg), cfg.generation.max_new_tokens,
                                       cfg.generation.stop, cfg.generation.batch_size,
                                       progress=f"{self.name}: answering")
        return to_predictions(queries, generations)
