"""The data that flows between backends, strategies and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]
"""A chat message: {"role": "system" | "user" | "assistant", "content": str}."""


@dataclass(frozen=True)
class Generation:
    """One model answer with its usage and timing."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    """Wall time of the batch that produced this answer: what a caller in that batch waited."""
    batch_size: int
    """Answers generated together with this one; latency_s / batch_size is its compute share."""
    truncated: bool = False
    """The prompt was cut from the left to fit the model's context window."""
    cached: bool = False
    """Taken from the generation cache: text, tokens and latency as measured when first generated."""


@dataclass(frozen=True)
class Prediction:
    """A strategy's answer to one test query."""

    id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    compute_s: float
    """This answer's share of generation time (batch time / batch size), seconds."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Strategy-specific facts (retrieved passages, retrieval seconds...)."""


@dataclass
class FitRecord:
    """What fitting a strategy cost and produced; stored in its metrics.json."""

    seconds: float = 0.0
    device: str = "cpu"
    details: dict[str, Any] = field(default_factory=dict)
