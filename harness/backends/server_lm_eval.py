"""MMLU/HumanEval through a server backend: which lm-eval model type scores it, decided by asking the server.

- A server whose /v1/completions returns prompt logprobs with `echo` (the llama.cpp server and vLLM do),
  serving a model whose tokenizer is here (`model.name` is a local folder, an `embedded:` name or a hub id
  in the local cache): lm-eval's `local-completions`, MMLU by log-likelihood.
- Otherwise: lm-eval's `local-chat-completions`, MMLU generative (the answer letter extracted), through
  the server's chat template. The target's description says which, and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends import LmEvalTarget
from harness.errors import HarnessError

PROBE_PROMPT = "The capital of France is Paris"


def openai_target(backend: Any) -> LmEvalTarget:
    """The lm-eval target for an OpenAIBackend (harness/backends/openai.py)."""
    where = f"{backend.model_path} at {backend.base_url}"
    common = {"model": backend.model_path, "num_concurrent": backend.concurrency,
              "max_retries": backend.retries + 1, "timeout": int(backend.client.timeout.read or 300),
              "max_length": backend.context_length}
    identity = f"openai:{backend.base_url}:{backend.model_path}:{backend.entry.get('owned_by')}"
    logprobs = completion_logprobs(backend)
    tokenizer = local_tokenizer(backend.model_path)
    if logprobs and tokenizer:
        args = {**common, "base_url": f"{backend.base_url}/completions", "tokenizer_backend": "huggingface",
                "tokenizer": tokenizer, "tokenized_requests": False}
        return LmEvalTarget("local-completions", lambda: args, True,
                            f"OpenAI-compatible server {where}: MMLU by log-likelihood (completion logprobs with "
                            f"echo, lm-eval local-completions, tokenizer {tokenizer})", identity, backend.serving)
    why = ("the server returns no prompt logprobs with echo" if not logprobs else
           f"no local tokenizer for {backend.model_path} to split prompt logprobs (serve the model under a "
           "local path, hub id or embedded: name to score by log-likelihood)")
    args = {**common, "base_url": f"{backend.base_url}/chat/completions"}
    return LmEvalTarget("local-chat-completions", lambda: args, False,
                        f"OpenAI-compatible server {where}: MMLU generative (lm-eval local-chat-completions), "
                        f"because {why}", identity, backend.serving)


def ollama_target(backend: Any) -> LmEvalTarget:
    """Ollama answers chat on its OpenAI-compatible /v1 without prompt logprobs: MMLU generative."""
    args = {"model": backend.model_path, "base_url": f"{backend.host}/v1/chat/completions",
            "num_concurrent": backend.concurrency, "max_retries": backend.retries + 1,
            "timeout": int(backend.timeout_s), "max_length": backend.context_length}
    return LmEvalTarget("local-chat-completions", lambda: args, False,
                        f"Ollama {backend.model_path} at {backend.host}: MMLU generative (lm-eval "
                        "local-chat-completions on Ollama's /v1; Ollama gives no prompt logprobs)",
                        f"ollama:{backend.host}:{backend.model_path}:{backend.digest}", backend.serving)


def completion_logprobs(backend: Any) -> bool:
    """One probe: does /v1/completions echo the prompt with a logprob per token (what log-likelihood needs)?"""
    body = {"model": backend.model_path, "prompt": PROBE_PROMPT, "max_tokens": 1, "echo": True, "logprobs": 1,
            "temperature": 0}
    try:
        answer = backend._request("POST", "/completions", "lm-eval probe", body)
    except HarnessError:
        return False
    choices = answer.get("choices") or [{}]
    logprobs = choices[0].get("logprobs") or {}
    echoed = logprobs.get("token_logprobs") or []
    return len(echoed) >= 3 and PROBE_PROMPT in (choices[0].get("text") or "")


def local_tokenizer(name: str) -> str | None:
    """A tokenizer for `name` available here without a network: an embedded model, a folder, a cached hub id."""
    if name.startswith("embedded:"):
        from harness.models import resolve_model

        try:
            return resolve_model(name)
        except HarnessError:
            return None
    if (Path(name).expanduser() / "tokenizer_config.json").is_file():
        return str(Path(name).expanduser().resolve())
    try:
        from huggingface_hub import try_to_load_from_cache

        return name if isinstance(try_to_load_from_cache(name, "tokenizer_config.json"), str) else None
    except Exception:  # noqa: BLE001 -- not a valid hub id: no tokenizer here
        return None
