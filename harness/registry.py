"""The one list of what the harness can run: strategies, backends and scorers, each a lazy "module:attr".

A new strategy, backend or scorer is one file plus one line here. Nothing is imported until it is
used (`python -m harness --help` stays instant); config.py derives its choices from these keys, so
task.yaml, `--strategies` and the README's key table follow this file. Strategy lines carry nothing
else: what a strategy built, which weights it answers with and how complex it is are facts of its
fit (harness.records.FitRecord), read by the runner, cost, verdict and report, never its name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScorerEntry:
    target: str
    """"module:function" taking (prediction, reference) and returning a score in [0, 1]; or, with `batch`,
    "module:Class" built as Class(config, task_dir, backend) whose `score_all(predictions, examples)` returns a
    `harness.scoring.Scored` (per-item scores and details, and figures for the whole set)."""
    binary: bool
    """Scores are 0 or 1 only: paired tests use McNemar and intervals Wilson's method."""
    batch: bool = False
    """Scores all answers at once with the task's config (labels, a judge model...), see `target`."""


STRATEGIES: dict[str, str] = {
    "prompt": "strategies.prompt:PromptStrategy",
    "rag": "strategies.rag:RagStrategy",
    "finetune": "strategies.finetune:FinetuneStrategy",
    "rag_finetune": "strategies.rag_finetune:RagFinetuneStrategy",
}
"""Strategy name -> "module:Class" (a `strategies.Strategy`); the order is the default run order."""

BACKENDS: dict[str, str] = {
    "transformers": "harness.backends.hf:TransformersBackend",
    "llamacpp": "harness.backends.llamacpp:LlamaCppBackend",
    "openai": "harness.backends.openai:OpenAIBackend",
    "ollama": "harness.backends.ollama:OllamaBackend",
}
"""Backend name (`model.backend`) -> "module:Class" (a `harness.backends.Backend`)."""

SCORERS: dict[str, ScorerEntry] = {
    "exact_match": ScorerEntry("harness.scoring:exact_match", binary=True),
    "token_f1": ScorerEntry("harness.scoring:token_f1", binary=False),
    "rouge_l": ScorerEntry("harness.scoring:rouge_l", binary=False),
    "choice_letter": ScorerEntry("harness.scoring:choice_letter", binary=True),
    "contains": ScorerEntry("harness.scoring:contains", binary=True),
    "label": ScorerEntry("harness.scorers.label:LabelScorer", binary=True, batch=True),
    # Not binary: scale 1-5 grades score 0.25 steps, and the sign-flip test is valid for 0/1 scores too.
    "judge": ScorerEntry("harness.scorers.judge:JudgeScorer", binary=False, batch=True),
}
"""Scorer name (`scorer`) -> its function and whether it is binary."""


def load(target: str) -> Any:
    """The object a "module:attr" entry names, imported now."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def strategy_class(name: str) -> Any:
    return load(STRATEGIES[name])


def backend_class(name: str) -> Any:
    return load(BACKENDS[name])


def scorer(name: str) -> Any:
    return load(SCORERS[name].target)
