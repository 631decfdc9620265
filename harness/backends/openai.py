"""Any OpenAI-compatible `/v1` server (vLLM, TGI, the llama.cpp server, Ollama's /v1, hosted APIs) as a backend.

    model: {backend: openai, base_url: "http://127.0.0.1:8000/v1", name: <the server's model id>,
            api_key_env: MY_KEY, concurrency: 4, retries: 3, timeout_s: 120, stream: false}

Chat completions through httpx: temperature 0 and a seed, stop strings, max_tokens; `concurrency`
requests in flight, answers in input order; retries with exponential backoff on connection errors,
timeouts, 429 and 5xx. Token counts come from the response's `usage`, latency is each request's wall
time, and with `stream: true` the time to first token too. Before any run folder exists the server must
answer /v1/models and list the model. The API key is read from the environment variable that
`api_key_env` names, never from task.yaml.
"""

from __future__ import annotations

import json
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

DEFAULT_CONTEXT = 2048
"""Context window assumed when neither the server nor `model.context_length` says (llama.cpp server's default)."""
SEED = 0
TOKENIZE_PATHS = ("/tokenize", "/extras/tokenize")
"""vLLM's and llama-cpp-python's tokenize endpoints, relative to the server root (base_url without /v1)."""


class OpenAIBackend:
    name = "openai"
    device = "server"
    local_weights = False
    """The weights live on the server: `model.name` is the server's model id, passed as written."""

    def __init__(self, model_path: str, settings: Any = None, use_cache: bool = True, *,
                 base_url: str | None = None, api_key_env: str | None = None, concurrency: int = 4,
                 retries: int = 3, timeout_s: float = 120.0, stream: bool = False, context_length: int | None = None,
                 backoff_s: float = 1.0, **_local_options: Any) -> None:
        """Checks the key variable and the server (it lists the model) now, in one line each on failure.
        `settings` (the task's ModelConfig) supplies the server keys when given; `_local_options` (dtype,
        device, threads) are the local backends' and mean nothing here."""
        import httpx

        if settings is not None:
            base_url, api_key_env, concurrency = settings.base_url, settings.api_key_env, settings.concurrency
            retries, timeout_s, stream = settings.retries, settings.timeout_s, settings.stream
            context_length = settings.context_length

        if not base_url:
            raise HarnessError("model.base_url: backend openai needs the server's URL, e.g. http://127.0.0.1:8000/v1")
        self.model_path = model_path
        self.base_url = base_url.rstrip("/")
        self.root_url = self.base_url.removesuffix("/v1")
        self.concurrency, self.retries, self.backoff_s, self.stream = concurrency, retries, backoff_s, stream
        headers = {"Content-Type": "application/json"}
        self._api_key = _read_key(api_key_env)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self._said: set[str] = set()
        self.entry = self._served_entry()
        reported = self.entry.get("max_model_len") or self.entry.get("context_length")
        self.context_length = int(reported or context_length or DEFAULT_CONTEXT)
        if not (reported or context_length):
            say_once(self._said, f"{self.base_url} does not report the context window: {DEFAULT_CONTEXT} tokens "
                                 "assumed (set model.context_length)")
        self._tokenize_path: str | None | bool = False  # False: not probed yet; None: the server has none
        self.token_count = "unknown"
        self.serving = {"backend": self.name, "quantization": None, "file": f"{model_path} at {self.base_url}",
                        "server": self.entry.get("owned_by")}
        self.cache = None
        if use_cache:
            from harness.gencache import GenerationCache
            from harness.models import cache_root

            # What answers: the server, the model id and what the server says of it (not `created`, a timestamp).
            about = {k: v for k, v in self.entry.items() if k != "created"}
            identity = f"openai:{self.base_url}:{model_path}:{json.dumps(about, sort_keys=True)}"
            self.cache = GenerationCache(cache_root(), identity)

    # -- requests ---------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, what: str, body: dict | None = None, root: bool = False) -> Any:
        """One call with retries; the JSON answer. Errors that another try would not fix are one line at once."""
        import httpx

        url = (self.root_url if root else self.base_url) + path

        def call() -> Any:
            try:
                response = self.client.request(method, url, json=body)
            except httpx.ConnectError as exc:
                raise Retryable(_connect_reason(exc)) from None
            except httpx.TimeoutException:
                raise Retryable(f"no answer within {self.client.timeout.read} s") from None
            except httpx.TransportError as exc:
                raise Retryable(f"{type(exc).__name__}: {exc}") from None
            if response.status_code in RETRY_STATUS:
                raise Retryable(f"HTTP {response.status_code} {_error_text(response)}")
            if response.status_code >= 400:
                raise HarnessError(f"{what}: {url}: HTTP {response.status_code} {_error_text(response)}")
            return response.json()

        return with_retries(call, self.retries, self.backoff_s, f"{what}: {url}")

    def _served_entry(self) -> dict[str, Any]:
        listing = self._request("GET", "/models", "model.base_url")
        served = [m for m in listing.get("data", []) if isinstance(m, dict)]
        for model in served:
            if model.get("id") == self.model_path:
                return model
        names = ", ".join(str(m.get("id")) for m in served) or "none"
        raise HarnessError(f"model.name: {self.model_path} is not served there (served: {names})")

    # -- the Backend protocol ---------------------------------------------------------------------------------

    def render(self, messages: list[Message]) -> str:
        return render_readable(messages)

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer where it has an endpoint for it (vLLM, llama.cpp), else an estimate."""
        if self._tokenize_path is False:
            self._tokenize_path = self._probe_tokenize()
            self.token_count = "server" if self._tokenize_path else "estimate (4 characters per token)"
            if not self._tokenize_path:
                say_once(self._said, f"{self.base_url} has no tokenize endpoint: token counts for packing "
                                     "passages are estimated (4 characters per token)")
        if not self._tokenize_path:
            return estimate_tokens(text)
        return len(self._tokenize(str(self._tokenize_path), text))

    def _tokenize(self, path: str, text: str) -> list[int]:
        body = {"model": self.model_path, "prompt": text, "input": text, "add_special_tokens": False}
        return list(self._request("POST", path, "count_tokens", body, root=True)["tokens"])

    def _probe_tokenize(self) -> str | None:
        for path in TOKENIZE_PATHS:
            try:
                response = self.client.post(self.root_url + path, json={"model": self.model_path, "prompt": "a b",
                                                                         "input": "a b", "add_special_tokens": False})
            except Exception:  # noqa: BLE001 -- a probe: any failure means "not this endpoint"
                continue
            if response.status_code == 200 and isinstance(response.json().get("tokens"), list):
                return path
        return None

    def generate(self, conversations: list[list[Message]], max_new_tokens: int,
                 stop: list[str], batch_size: int, progress: str | None = None) -> list[Generation]:
        """Answers in input order; `min(concurrency, batch_size)` requests in flight (batch_size 1: one at a
        time, the single-request latency); cached answers are reused."""
        return generate_on_server(self, conversations, {"max_new_tokens": max_new_tokens, "stop": stop,
                                                        "stream": self.stream, "seed": SEED}, batch_size, progress)

    def _chat(self, messages: list[Message], max_new_tokens: int, stop: list[str], in_flight: int) -> Generation:
        body: dict[str, Any] = {"model": self.model_path, "messages": messages, "max_tokens": max_new_tokens,
                                "temperature": 0, "seed": SEED, "stream": self.stream}
        if stop:
            body["stop"] = stop
        if self.entry.get("owned_by") == "me":  # llama-cpp-python's server: its default repeat_penalty is 1.1
            body["repeat_penalty"] = 1.0
        began = time.perf_counter()
        if self.stream:
            text, usage, first = self._stream(body, began)
        else:
            answer = self._request("POST", "/chat/completions", "generate", body)
            text, usage, first = answer["choices"][0]["message"].get("content") or "", answer.get("usage"), None
        elapsed = time.perf_counter() - began
        text = cut_at_stop(text, stop).strip()
        usage = usage or {}
        # in_flight requests share the server: this answer's compute share is its wall time / in_flight.
        return Generation(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          elapsed, in_flight, first_token_s=first)

    def _stream(self, body: dict[str, Any], began: float) -> tuple[str, dict | None, float | None]:
        """Server-sent events: the text, the usage (asked for with stream_options) and the time to first token."""
        import httpx

        body = {**body, "stream_options": {"include_usage": True}}
        url = self.base_url + "/chat/completions"

        def call() -> tuple[str, dict | None, float | None]:
            parts, usage, first = [], None, None
            try:
                with self.client.stream("POST", url, json=body) as response:
                    if response.status_code in RETRY_STATUS:
                        raise Retryable(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        response.read()
                        raise HarnessError(f"generate: {url}: HTTP {response.status_code} {_error_text(response)}")
                    for line in response.iter_lines():
                        if not line.startswith("data:") or line.strip() == "data: [DONE]":
                            continue
                        chunk = json.loads(line[5:])
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                first = first if first is not None else time.perf_counter() - began
                                parts.append(piece)
            except httpx.ConnectError as exc:
                raise Retryable(_connect_reason(exc)) from None
            except httpx.TransportError as exc:
                raise Retryable(f"{type(exc).__name__}: {exc}") from None
            return "".join(parts), usage, first

        return with_retries(call, self.retries, self.backoff_s, f"generate: {url}")

    @contextmanager
    def adapter(self, adapter_dir: str, cache_id: str) -> Iterator[OpenAIBackend]:
        raise NotRun(self.adapter_support() or "adapters are not supported on this backend")
        yield self  # pragma: no cover -- a generator, for @contextmanager

    def adapter_support(self) -> str | None:
        """Why a trained adapter cannot answer through this server (None: it can). Asked before training."""
        server = str(self.entry.get("owned_by") or "")
        if server == "vllm":
            return ("vLLM can load a LoRA adapter at run time (POST /v1/load_lora_adapter, with --enable-lora "
                    "and VLLM_ALLOW_RUNTIME_LORA_UPDATING), but the harness does not drive it yet; serve "
                    "base + adapter yourself, or fine-tune with model.backend transformers or llamacpp")
        if server == "me":  # what llama-cpp-python's server says it is
            return ("the llama.cpp server (llama-cpp-python) cannot load a LoRA adapter at run time; "
                    "fine-tune with model.backend llamacpp or transformers")
        return (f"an OpenAI-compatible server ({self.base_url}) has no standard way to load a LoRA adapter; "
                "fine-tune with model.backend llamacpp or transformers")

    @contextmanager
    def lm_eval_model(self, adapter_dir: str | None, cache_id: str | None) -> Iterator[LmEvalTarget]:
        from harness.backends.server_lm_eval import openai_target

        if adapter_dir is not None:
            raise NotRun(self.adapter_support() or "adapters are not supported on this backend")
        with _api_key_for_lm_eval(self._api_key):
            yield openai_target(self)


def _read_key(variable: str | None) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise HarnessError(f"model.api_key_env: the environment variable {variable} is not set (it should hold "
                           "the server's API key)")
    return value


@contextmanager
def _api_key_for_lm_eval(key: str | None) -> Iterator[None]:
    """lm-eval's API models read OPENAI_API_KEY; set for the pass only, so the key never enters model_args
    (which are hashed into cache keys and recorded)."""
    before = os.environ.get("OPENAI_API_KEY")
    if key:
        os.environ["OPENAI_API_KEY"] = key
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = before


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    return "connection refused" if "refused" in text.lower() else f"cannot connect ({text or type(exc).__name__})"


def _error_text(response: Any) -> str:
    try:
        detail = response.json()
        detail = detail.get("error", detail) if isinstance(detail, dict) else detail
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text
    return " ".join(str(detail).split())[:200]
