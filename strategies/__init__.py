"""Strategies: `fit` on train (and dev), then `answer` test queries. One file per strategy, plus
one line in harness/registry.py.

A strategy never sees the test split's answers: the runner hands it `Query` objects only. What
its fit built, the weights it answers with and its complexity go in its `FitRecord`: the runner,
cost, verdict and report read those facts, never the strategy's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness import registry
from harness.backends import Backend
from harness.config import TaskConfig
from harness.data import Example, Query
from harness.records import FitRecord, Prediction

REGISTRY = registry.STRATEGIES
"""Kept for callers of the old name: the registry's strategies."""


@dataclass
class StrategyContext:
    """What the runner gives a strategy: the task, a shared model, and a folder of its own."""

    config: TaskConfig
    task_dir: Path
    out_dir: Path
    """This strategy's folder in the run directory, for its artifacts."""
    backend: Callable[[], Backend]
    """The shared base-model backend, loaded on first call and reused by every strategy."""
    use_cache: bool = True
    """False under `compare --no-cache`: strategies' own caches of measured work are bypassed too."""


class Strategy(Protocol):
    """`fit` may raise `harness.errors.NotRun` to be reported as "not run: <why>".

    Optionally a strategy defines `preflight(task)`: checks of its own input that raise
    `HarnessError` before the run directory exists (e.g. RAG's embedding model resolves).

    Optionally a strategy defines `label_metrics(predictions, examples) -> dict`: figures that need
    the test labels (e.g. retrieval hit@k), computed by the runner after all answers are in.
    """

    name: str

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord: ...

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]: ...


def create(name: str) -> Strategy:
    return registry.strategy_class(name)()
