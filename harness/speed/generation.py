"""Generation speed: batched vs one item at a time (transformers), and transformers vs llama.cpp
on the same GGUF model (SmolLM2-135M-Instruct Q4_1), measured side by side on the same prompts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

PROMPTS = 16
NEW_TOKENS = 32
BATCH = 8


def _prompts() -> list[list[dict[str, str]]]:
    rows = Path("tasks/stdlib_qa/data.jsonl").read_text().splitlines()[:PROMPTS]
    return [[{"role": "system", "content": "Answer in one sentence."},
             {"role": "user", "content": json.loads(r)["instruction"]}] for r in rows]


def _transformers(backend, conversations, batch_size: int) -> dict[str, float]:
    backend.generate(conversations[:2], 4, [], batch_size)  # warm-up
    began = time.perf_counter()
    out = backend.generate(conversations, NEW_TOKENS, [], batch_size)
    seconds = time.perf_counter() - began
    tokens = sum(g.completion_tokens for g in out)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def _llama_cpp(conversations) -> dict[str, Any]:
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed (`make bench` builds it once, ~3.5 min on 2 cores)"}
    import os

    from harness.models import EMBEDDED_GGUF, package_dir

    package, filename = EMBEDDED_GGUF["smollm2-135m-instruct"]
    llm = Llama(str(package_dir(package) / filename), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    llm.create_chat_completion(conversations[0], max_tokens=4, temperature=0.0)
    began = time.perf_counter()
    tokens = 0
    for conv in conversations:
        out = llm.create_chat_completion(conv, max_tokens=NEW_TOKENS, temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def run(machine: dict) -> dict[str, Any]:
    from harness.backends import load_backend
    from harness.models import resolve_model

    backend = load_backend("transformers", resolve_model("embedded:smollm2-135m-instruct"))
    conversations = _prompts()
    single = _transformers(backend, conversations, 1)
    batched = _transformers(backend, conversations, BATCH)
    llama = _llama_cpp(conversations)
    result: dict[str, Any] = {
        "prompts": PROMPTS, "max_new_tokens": NEW_TOKENS, "batch_size": BATCH,
        "transformers_single_tokens_per_s": single["tokens_per_s"],
        "transformers_batched_tokens_per_s": batched["tokens_per_s"],
        "batched_vs_single_ratio": batched["tokens_per_s"] / single["tokens_per_s"],
        "llama_cpp": llama,
    }
    lines = ["## Generation", "",
             f"{PROMPTS} prompts from stdlib_qa, greedy, at most {NEW_TOKENS} new tokens, SmolLM2-135M-Instruct.", "",
             "| engine | mode | tokens/s |", "| --- | --- | --- |",
             f"| transformers ({backend.dtype}) | one at a time | {single['tokens_per_s']:.1f} |",
             f"| transformers ({backend.dtype}) | batch of {BATCH} | {batched['tokens_per_s']:.1f} |"]
    if "tokens_per_s" in llama:
        result["llama_cpp_vs_transformers_single_ratio"] = llama["tokens_per_s"] / single["tokens_per_s"]
        lines.append(f"| llama.cpp (Q4_1 GGUF) | one at a time | {llama['tokens_per_s']:.1f} |")
        lines += ["", f"llama.cpp / transformers, one at a time: "
                      f"**{result['llama_cpp_vs_transformers_single_ratio']:.2f}x**"]
    else:
        lines += ["", f"llama.cpp: {llama['skipped']}"]
    lines += [f"Batched / one at a time (transformers): **{result['batched_vs_single_ratio']:.2f}x**"]
    result["markdown"] = "\n".join(lines)
    return result
