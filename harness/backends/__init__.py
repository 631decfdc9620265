"""Inference backends: one narrow interface, one file per backend, loaded lazily by name
(the names are in harness/registry.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from harness import registry
from harness.records import Generation, Message

REGISTRY = registry.BACKENDS
"""Kept for callers of the old name: the registry's backends."""


class Backend(Protocol):
    name: str
    model_path: str
    device: str
    context_length: int

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


def choose_backend(requested: str, device: str = "auto") -> str:
    """The backend `model.backend` names; `auto` picks one for this machine."""
    if requested != "auto":
        return requested
    return "transformers"


def load_backend(name: str, model_path: str, **options: object) -> Backend:
    return registry.backend_class(choose_backend(name))(model_path, **options)
