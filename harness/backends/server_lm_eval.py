"""MMLU/HumanEval through a server backend: which lm-eval model type scores it, decided by asking the server.

- A server whose /v1/completions returns usable prompt logprobs with `echo` (vLLM's format; llama-cpp-python's
  server returns some, but not usable: see `completion_logprobs`), serving a model whose tokenizer is here
  (`model.name` a local folder, an `embedded:` name or a cached hub id): lm-eval's `local-completions`, MMLU
  by log-likelihood, the prompts sent as text (the server tokenizes them as it tokenizes everything else).
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
    no_logprobs = completion_logprobs(backend)
    tokenizer = local_tokenizer(backend.model_path)
    if not no_logprobs and tokenizer:
        args = {**common, "base_url": f"{backend.base_url}/completions", "tokenizer_backend": "huggingface",
                "tokenizer": tokenizer, "tokenized_requests": False}
        return LmEvalTarget("local-completions", lambda: args, True,
                            f"OpenAI-compatible server {where}: MMLU by log-likelihood (completion logprobs with "
                            f"echo, lm-eval local-completions, tokenizer {tokenizer})", identity, backend.serving)
    why = no_logprobs or (f"no local tokenizer for {backend.model_path} to split prompt logprobs (serve the model "
                          "under a local path, hub id or embedded: name to score by log-likelihood)")
    args = {**common, "base_url": f"{backend.base_url}/chat/completions"}
    return LmEvalTarget("local-chat-completions", lambda: args, False,
                        f"OpenAI-compatible server {where}: MMLU generative (lm-eval local-chat-completions), "
                        f"because {why}", identity, backend.serving, completes_text=False)


def ollama_target(backend: Any) -> LmEvalTarget:
    """Ollama answers chat on its OpenAI-compatible /v1 without prompt logprobs: MMLU generative."""
    args = {"model": backend.model_path, "base_url": f"{backend.host}/v1/chat/completions",
            "num_concurrent": backend.concurrency, "max_retries": backend.retries + 1,
            "timeout": int(backend.timeout_s), "max_length": backend.context_length}
    return LmEvalTarget("local-chat-completions", lambda: args, False,
                        f"Ollama {backend.model_path} at {backend.host}: MMLU generative (lm-eval "
                        "local-chat-completions on Ollama's /v1; Ollama gives no prompt logprobs)",
                        f"ollama:{backend.host}:{backend.model_path}:{backend.digest}", backend.serving,
                        completes_text=False)


def completion_logprobs(backend: Any) -> str | None:
    """One probe of /v1/completions with `echo`: None when its logprobs can score a continuation, else why not.

    lm-eval reads the continuation's logprobs as the echoed ones after the context, less the last (the one
    generated token). So the echoed tokens must spell the whole answer text, generated token included:
    llama-cpp-python 0.3.36's server echoes the prompt tokens only (and reports each one's logprob one
    position late), which would score every one-token continuation (an MMLU letter) 0."""
    body = {"model": backend.model_path, "prompt": PROBE_PROMPT, "max_tokens": 1, "echo": True, "logprobs": 1,
            "temperature": 0}
    try:
        answer = backend._request("POST", "/completions", "lm-eval probe", body)
    except HarnessError as exc:
        return f"its /v1/completions does not answer an echo request ({exc})"
    choice = (answer.get("choices") or [{}])[0]
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    if not values or len(values) != len(tokens):
        return "its /v1/completions returns no prompt logprobs with echo"
    if "".join(tokens) != choice.get("text") or not choice.get("text", "").startswith(PROBE_PROMPT):
        return ("its echoed logprobs do not cover the generated token (the llama-cpp-python server's do not, and "
                "they come one position late), so lm-eval would misread a continuation's log-likelihood")
    return None


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
