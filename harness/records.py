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
    first_token_s: float | None = None
    """Time to the first answer token, seconds: measured by streaming server backends only (else None)."""


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


@dataclass(frozen=True)
class Weights:
    """The weights a strategy answers with: the base model, or the base model plus a LoRA adapter."""

    kind: str = "base"
    """"base" | "adapter"."""
    adapter_dir: str | None = None
    """The adapter's folder, relative to the run directory (the run is written in a staging folder first)."""
    content_id: str | None = None
    """Names the adapter by content (its training cache key): the same id is the same weights, in any strategy."""

    @property
    def trained(self) -> bool:
        """Weights of its own, which can have forgotten what the base model knew."""
        return self.kind != "base"

    @property
    def key(self) -> str:
        """The key of these weights in benchmarks.json: "base", or "adapter:<content id>"."""
        return "base" if not self.trained else f"{self.kind}:{self.content_id or self.adapter_dir}"


BASE = Weights()


@dataclass(frozen=True)
class Build:
    """Something a strategy built once and reuses for every answer: an index, an adapter."""

    what: str
    """"index" | "adapter" (| "fit" for a run made before builds were recorded)."""
    seconds: float = field(metadata={"unit": "s"})
    """What building it cost when first done, even when this run reused it from the cache."""
    device: str
    """Where it was built ("cpu", "cuda"): the machine price of `seconds`."""
    content_id: str | None = None
    """Names it by content: strategies whose builds share an id share one build."""
    reused: bool = False
    """This run took it from the cache instead of building it."""


@dataclass(frozen=True)
class FitRecord:
    """What fitting a strategy cost and produced; stored as `fit` in its metrics.json."""

    seconds: float = field(default=0.0, metadata={"unit": "s"})
    """Wall time of this run's fit (a cache hit costs little; see `one_time` for what building cost)."""
    device: str = "cpu"
    details: dict[str, Any] = field(default_factory=dict)
    """Everything else the strategy wants shown: shots, index sizes, the training record."""
    weights: Weights = BASE
    one_time: tuple[Build, ...] = ()
    """Its one-time cost, one entry per thing built (none: nothing to build)."""
    complexity: int = field(kw_only=True)
    """Rank in the verdict's simplicity order (lower is simpler): tied on cost, the simpler strategy wins."""

    @property
    def one_time_s(self) -> float:
        return sum(b.seconds for b in self.one_time)

    @property
    def retrieves(self) -> bool:
        return any(b.what == "index" for b in self.one_time)

    @classmethod
    def from_dict(cls, fit: dict[str, Any] | None) -> FitRecord:
        """The record as metrics.json stores it; a run made before weights, builds and complexity were
        recorded gets them inferred from its details (adapter_dir, build_s, train_seconds)."""
        fit = fit or {}
        device, details = fit.get("device", "cpu"), fit.get("details") or {}
        if "weights" in fit:
            weights = Weights(**fit["weights"])
        elif details.get("adapter_dir") or details.get("merged_dir"):
            adapter = details.get("adapter_dir") or details.get("merged_dir")
            weights = Weights("adapter", details.get("adapter_dir"), details.get("cache_key") or adapter)
        else:
            weights = BASE
        if "one_time" in fit:
            one_time = tuple(Build(**b) for b in fit["one_time"])
        else:
            one_time = _old_builds(fit, details, device, weights)
        complexity = fit.get("complexity")
        if complexity is None:  # old run: 2 for trained weights, 1 more for retrieval (prompt 0 ... rag_finetune 3)
            complexity = 2 * weights.trained + any(b.what == "index" for b in one_time)
        return cls(float(fit.get("seconds", 0.0)), device, details, weights, one_time, complexity=int(complexity))


def _old_builds(fit: dict[str, Any], details: dict[str, Any], device: str, weights: Weights) -> tuple[Build, ...]:
    """An old run's one-time cost: the index build or training it recorded, else its fit seconds."""
    reused = bool(details.get("cache_hit"))
    builds = []
    if details.get("build_s") is not None:
        builds.append(Build("index", float(details["build_s"]), device, details.get("cache_dir"), reused))
    if details.get("train_seconds") is not None:
        builds.append(Build("adapter", float(details["train_seconds"]), device, weights.content_id, reused))
    if not builds and fit.get("seconds"):
        builds.append(Build("fit", float(fit["seconds"]), device))
    return tuple(builds)
