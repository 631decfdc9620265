"""Ollama as a backend, through the `ollama` client's native chat API.

    model: {backend: ollama, name: "smollm2:135m", base_url: "http://127.0.0.1:11434"}

Host: `model.base_url`, else $OLLAMA_HOST, else http://127.0.0.1:11434. Greedy (temperature 0) with a
seed, stop strings, `num_ctx` from `model.context_length` (else the model's own window, which Ollama
reports), `num_predict` the answer budget. `concurrency` requests in flight, answers in input order,
retries with exponential backoff on connection errors, 429 and 5xx. Token counts are Ollama's
(prompt_eval_count, eval_count); with `stream: true` the time to first token is measured too. Before any
run folder exists, the server must answer and have the model pulled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.backends import LmEvalTarget
from harness.backends.server import (
    RETRY_STATUS,
    Retryable,
    cut_at_stop,
    estimate_tokens,
    generate_on_server,
    render_readable,
    say_once,
    with_retries,
)
from harness.errors import HarnessError, NotRun
from harness.records import Generation, Message

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_CONTEXT = 2048
"""Ollama's own default num_ctx, assumed when neither the model nor `model.context_length` says."""
SEED = 0


def ollama_host(base_url: str | None) -> str:
    host = base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    host = host if "://" in host else f"http://{host}"
    return host.rstrip("/").removesuffix("/v1")


class OllamaBackend:
    name = "ollama"
    device = "server"
    local_weights = False
    """The weights live in Ollama: `model.name` is Ollama's model name (`smollm2:135m`), passed as written."""

    def __init__(self, model_path: str, settings: Any = None, use_cache: bool = True, *,
                 base_url: str | None = None, concurrency: int = 4, retries: int = 3, timeout_s: float = 120.0,
                 stream: bool = False, context_length: int | None = None, backoff_s: float = 1.0,
                 **_local_options: Any) -> None:
        """Checks now that Ollama answers and has the model, in one line on failure."""
        import ollama

        if settings is not None:
            base_url, concurrency, retries = settings.base_url, settings.concurrency, settings.retries
            timeout_s, stream, context_length = settings.timeout_s, settings.stream, settings.context_length
        self.model_path = model_path
        self.host = ollama_host(base_url)
        self.concurrency, self.retries, self.backoff_s = concurrency, retries, backoff_s
        self.stream, self.timeout_s = stream, timeout_s
        self.client = ollama.Client(host=self.host, timeout=timeout_s)
        self._said: set[str] = set()
        pulled = self._call(self.client.list, "model.base_url").models
        names = {m.model: m for m in pulled}
        match = names.get(model_path) or names.get(f"{model_path}:latest")
        if match is None:
            raise HarnessError(f"model.name: {model_path} is not pulled in Ollama at {self.host} (pulled: "
                               f"{', '.join(sorted(names)) or 'none'}; `ollama pull {model_path}`)")
        self.digest = match.digest
        info = self._call(lambda: self.client.show(model_path), "model.name").modelinfo or {}
        reported = next((int(v) for k, v in info.items() if k.endswith(".context_length")), None)
        self.context_length = int(context_length or reported or DEFAULT_CONTEXT)
        self.num_ctx = context_length  # None: Ollama's own default
        self.serving = {"backend": self.name, "quantization": getattr(match.details, "quantization_level", None),
                        "file": f"{model_path} ({self.digest[:12]}) at {self.host}"}
        self.token_count = "estimate (4 characters per token)"
        self.cache = None
        if use_cache:
            from harness.gencache import GenerationCache
            from harness.models import cache_root

            self.cache = GenerationCache(cache_root(), f"ollama:{self.host}:{model_path}:{self.digest}")

    def _call(self, call: Any, what: str) -> Any:
        import ollama

        def attempt() -> Any:
            try:
                return call()
            except ConnectionError as exc:
                raise Retryable("connection refused" if "connect" in str(exc).lower() else str(exc)) from None
            except ollama.ResponseError as exc:
                if exc.status_code in RETRY_STATUS:
                    raise Retryable(f"HTTP {exc.status_code} {exc.error}") from None
                raise HarnessError(f"{what}: {self.host}: HTTP {exc.status_code} {exc.error}") from None
            except Exception as exc:  # noqa: BLE001 -- httpx timeouts and transport errors, worth a retry
                if type(exc).__module__.startswith("httpx"):
                    raise Retryable(f"{type(exc).__name__}: {exc}") from None
                raise

        return with_retries(attempt, self.retries, self.backoff_s, f"{what}: {self.host}")

    def render(self, messages: list[Message]) -> str:
        return render_readable(messages)

    def count_tokens(self, text: str) -> int:
        """Ollama has no tokenize endpoint: an estimate, said once."""
        say_once(self._said, "Ollama has no tokenize endpoint: token counts for packing passages are estimated "
                             "(4 characters per token)")
        return estimate_tokens(text)

    def generate(self, conversations: list[list[Message]], max_new_tokens: int,
                 stop: list[str], batch_size: int, progress: str | None = None) -> list[Generation]:
        """Answers in input order, `min(concurrency, batch_size)` requests in flight; cached ones reused."""
        settings = {"max_new_tokens": max_new_tokens, "stop": stop, "stream": self.stream, "seed": SEED,
                    "num_ctx": self.num_ctx}
        return generate_on_server(self, conversations, settings, batch_size, progress)

    def _chat(self, messages: list[Message], max_new_tokens: int, stop: list[str], in_flight: int) -> Generation:
        options: dict[str, Any] = {"temperature": 0, "seed": SEED, "num_predict": max_new_tokens}
        if stop:
            options["stop"] = stop
        if self.num_ctx:
            options["num_ctx"] = self.num_ctx

        def call() -> tuple[str, Any, float | None]:
            began = time.perf_counter()
            if not self.stream:
                response = self.client.chat(self.model_path, messages, options=options)
                return response.message.content or "", response, None
            parts, last, first = [], None, None
            for chunk in self.client.chat(self.model_path, messages, options=options, stream=True):
                if chunk.message.content:
                    first = first if first is not None else time.perf_counter() - began
                    parts.append(chunk.message.content)
                last = chunk
            return "".join(parts), last, first

        began = time.perf_counter()
        text, final, first = self._call(call, "generate")
        elapsed = time.perf_counter() - began
        # in_flight requests share the server: this answer's compute share is its wall time / in_flight.
        return Generation(cut_at_stop(text, stop).strip(), int(getattr(final, "prompt_eval_count", 0) or 0),
                          int(getattr(final, "eval_count", 0) or 0), elapsed, in_flight, first_token_s=first)

    @contextmanager
    def adapter(self, adapter_dir: str, cache_id: str) -> Iterator[OllamaBackend]:
        raise NotRun(self.adapter_support() or "adapters are not supported on this backend")
        yield self  # pragma: no cover -- a generator, for @contextmanager

    def adapter_support(self) -> str | None:
        """Ollama takes an adapter only in a Modelfile (`ADAPTER`), built by `ollama create`: not at run time."""
        return ("Ollama loads a LoRA adapter only through a Modelfile (`ollama create`), not at run time; "
                "fine-tune with model.backend llamacpp or transformers")

    @contextmanager
    def lm_eval_model(self, adapter_dir: str | None, cache_id: str | None) -> Iterator[LmEvalTarget]:
        from harness.backends.server_lm_eval import ollama_target

        if adapter_dir is not None:
            raise NotRun(self.adapter_support() or "adapters are not supported on this backend")
        yield ollama_target(self)
