"""Inference backends: one narrow interface, one file per backend, loaded lazily by name
(the names are in harness/registry.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness import registry
from harness.records import Generation, Message

REGISTRY = registry.BACKENDS
"""Kept for callers of the old name: the registry's backends."""


@dataclass(frozen=True)
class LmEvalTarget:
    """How lm-eval scores a backend's weights (MMLU/HumanEval, harness/benchmarks/runner.py)."""

    lm_type: str
    """lm-eval's model type name: `hf`, `gguf`, `local-completions`, `local-chat-completions`, ..."""
    model_args: Callable[[], dict[str, Any]]
    """lm-eval's model arguments, made on demand: called only when a benchmark is not cached, so it may
    load weights or start a server (released when the `lm_eval_model` block ends)."""
    has_loglikelihood: bool
    """The model answers loglikelihood requests (MMLU by log-likelihood); else MMLU is generative."""
    description: str
    """Which backend and method scores, in words, recorded with the result (e.g. "llama.cpp server, Q4_1 GGUF")."""
    identity: str
    """Stable id of engine + weights (+ adapter) for the benchmark cache key: no ports, no object ids."""
    serving: dict[str, Any] = field(default_factory=dict)
    """The backend's `serving` record (backend, quantization, file), stored with the result."""
    completes_text: bool = True
    """The model continues raw text (HumanEval sends a bare code prompt); a chat-only endpoint does not, so
    HumanEval is skipped there with that reason instead of failing inside lm-eval."""


class Backend(Protocol):
    """Constructed as `Backend(model_path, settings=<ModelConfig>, use_cache=bool)` by the runner
    (`load_backend`); `model_path` is resolve_model's local folder when the class says `local_weights = True`,
    else `model.name` as the user wrote it (a server's model id)."""

    name: str
    local_weights: bool
    """The backend runs local weights (transformers, llamacpp); False for a server that holds its own."""
    model_path: str
    device: str
    context_length: int
    serving: dict[str, Any]
    """What answers, for reproducibility: {"backend": name, "quantization": e.g. "Q4_1" | "float32" | None
    when unknown, "file": the weights file or model id}. Written to environment.json and metrics.json."""

    def generate(self, conversations: list[list[Message]], max_new_tokens: int,
                 stop: list[str], batch_size: int, progress: str | None = None) -> list[Generation]:
        """Greedy answers to chat conversations, in input order."""
        ...

    def render(self, messages: list[Message]) -> str:
        """The prompt text the model sees for these messages (its chat template)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def adapter(self, adapter_dir: str, cache_id: str) -> AbstractContextManager[Backend]:
        """The same weights with a PEFT adapter attached for the block's duration (a strategy with
        trained weights answers with it); `cache_id` names base + adapter in the generation cache."""
        ...

    def lm_eval_model(self, adapter_dir: str | None, cache_id: str | None) -> AbstractContextManager[LmEvalTarget]:
        """What lm-eval scores for these weights (plus the PEFT adapter at `adapter_dir`, named by `cache_id`,
        if any), valid for the block's duration; anything started for it stops when the block ends."""
        ...


def generate_with_cache(cache: Any, conversations: list[list[Message]], settings: dict[str, Any],
                        fresh: Callable[[list[list[Message]], int], list[Generation]]) -> list[Generation]:
    """Answers in input order: those in the generation cache (harness/gencache.py; None: no cache) are reused,
    the rest come from `fresh(missing_conversations, cached_count)` and are stored."""
    keys = [cache.key(c, settings) if cache else "" for c in conversations]
    results: dict[int, Generation] = {}
    if cache:
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None:
                results[i] = hit
    missing = [i for i in range(len(conversations)) if i not in results]
    if missing:
        results.update(zip(missing, fresh([conversations[i] for i in missing], len(results))))
        if cache:
            cache.put_many([(keys[i], results[i]) for i in missing])
    return [results[i] for i in range(len(conversations))]


def llama_cpp_available() -> bool:
    """llama-cpp-python is installed (found without importing it: the import loads a shared library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def choose_backend(requested: str, device: str = "auto", model: str | None = None) -> str:
    """The backend `model.backend` names; `auto` picks one for this machine: llamacpp on CPU when
    llama-cpp-python is installed and the model is or converts to a GGUF (`model`: its name or path,
    None to not check), transformers on CUDA and otherwise."""
    if requested != "auto":
        return requested
    from harness.devices import resolve_device

    if resolve_device(device) != "cpu":
        return "transformers"
    if not llama_cpp_available():
        _warn_once("llama-cpp-python is not installed: answering with transformers (float32); "
                   "`make setup` builds it for the faster llamacpp backend")
        return "transformers"
    if model is not None:
        from harness.gguf import can_serve

        if not can_serve(model):
            return "transformers"
    return "llamacpp"


_warned: set[str] = set()


def _warn_once(line: str) -> None:
    if line not in _warned:
        _warned.add(line)
        print(f"warning: {line}", file=sys.stderr)


def load_backend(name: str, model_path: str, **options: object) -> Backend:
    """The backend `name` (or auto's choice) for `model_path`; `options` go to its constructor (the runner
    passes `settings=cfg.model, use_cache=...`). With `auto`, a llamacpp backend that cannot load this model
    (a conversion that fails) falls back to transformers with one warning line."""
    settings = options.get("settings")
    device = str(options.get("device") or getattr(settings, "device", None) or "auto")
    chosen = choose_backend(name, device, model_path)
    if name == "auto" and chosen == "llamacpp":
        from harness.errors import HarnessError

        try:
            return registry.backend_class(chosen)(model_path, **options)
        except HarnessError as exc:
            _warn_once(f"llamacpp cannot serve {model_path} ({exc}); answering with transformers")
            chosen = "transformers"
    return registry.backend_class(chosen)(model_path, **options)
