"""The prompt-engineered baseline: system prompt plus k worked examples drawn from train."""

from __future__ import annotations

import random
import time

from harness.data import Example, Query
from harness.prompting import build_messages
from harness.records import FitRecord, Generation, Prediction
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


class PromptStrategy:
    name = "prompt"
    complexity = 0

    def __init__(self) -> None:
        self.shots: list[Example] = []

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord:
        """Draw k shots deterministically (sorted by id, then a seeded sample): nothing is trained."""
        began = time.perf_counter()
        k = min(ctx.config.prompt.k_shot, len(train))
        pool = sorted(train, key=lambda e: e.id)
        self.shots = random.Random(ctx.config.prompt.shot_seed).sample(pool, k)
        return FitRecord(time.perf_counter() - began, "cpu", {"k_shot": k, "shot_ids": [s.id for s in self.shots]},
                         complexity=self.complexity)

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]:
        cfg = ctx.config
        conversations = [build_messages(q, cfg.prompt, self.shots) for q in queries]
        backend = ctx.backend()
        generations = backend.generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
                                       cfg.generation.batch_size, progress=f"{self.name}: answering")
        return to_predictions(queries, generations)
