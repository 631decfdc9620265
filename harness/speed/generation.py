"""Generation speed of the harness's own backends on the same 50 stdlib_qa prompts, side by side:
transformers (float32 weights dequantized from the GGUF) one at a time and batched, and llamacpp (the
Q4_1 GGUF itself) with one instance on all cores and with k instances answering side by side (each on
cores / k threads). Greedy, no generation cache. Run with `make bench` (or `python -m harness.speed generation`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PROMPTS = 50
NEW_TOKENS = 32
BATCHES = (1, 8)
MODEL = "embedded:smollm2-135m-instruct"


def _prompts() -> list[list[dict[str, str]]]:
    rows = Path("tasks/stdlib_qa/data.jsonl").read_text().splitlines()[:PROMPTS]
    return [[{"role": "system", "content": "Answer in one sentence."},
             {"role": "user", "content": json.loads(r)["instruction"]}] for r in rows]


def _measure(backend, conversations, batch_size: int, label: str) -> dict[str, Any]:
    backend.generate(conversations[:2], 4, [], batch_size)  # warm-up: weights loaded, first kernels run
    began = time.perf_counter()
    out = backend.generate(conversations, NEW_TOKENS, [], batch_size, progress=f"[bench] {label}")
    seconds = time.perf_counter() - began
    tokens = sum(g.completion_tokens for g in out)
    return {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
            "answers": [g.text for g in out]}


def _llamacpp(path: str, conversations) -> list[dict[str, Any]] | str:
    from harness.backends import llama_cpp_available

    if not llama_cpp_available():
        return "llama-cpp-python is not installed (`make setup` builds it once, ~5 min on 2 cores)"
    from harness.backends.llamacpp import LlamaCppBackend

    cores = os.cpu_count() or 1
    # (instances, threads in all): one instance on every core, one on one core, and k instances side by side.
    layouts = sorted({(1, cores), (1, 1), *((k, cores) for k in (2, 4) if k <= max(2, cores))})
    rows = []
    for workers, threads in layouts:
        backend = LlamaCppBackend(path, use_cache=False, threads=threads, workers=workers)
        label = f"llamacpp {workers} x {threads // workers} thread(s)"
        rows.append({"workers": workers, "threads": threads, **_measure(backend, conversations, 1, label)})
        del backend
    return rows


def run(machine: dict) -> dict[str, Any]:
    from harness.backends.hf import TransformersBackend
    from harness.models import resolve_model

    path = resolve_model(MODEL)
    conversations = _prompts()
    hf = TransformersBackend(path, use_cache=False)
    transformers = {b: _measure(hf, conversations, b, f"transformers batch {b}") for b in BATCHES}
    llama = _llamacpp(path, conversations)
    best_hf = max(transformers, key=lambda b: transformers[b]["tokens_per_s"])
    result: dict[str, Any] = {
        "prompts": PROMPTS, "max_new_tokens": NEW_TOKENS, "transformers_dtype": hf.dtype,
        "transformers": {str(b): {k: v for k, v in r.items() if k != "answers"} for b, r in transformers.items()},
        "transformers_best_batch": best_hf,
    }
    lines = ["## Generation", "",
             f"{PROMPTS} prompts from stdlib_qa, greedy, at most {NEW_TOKENS} new tokens, SmolLM2-135M-Instruct, "
             "through the harness's backends (no generation cache), measured one after the other in this run.", "",
             "| backend | weights | layout | tokens/s | wall s |", "| --- | --- | --- | --- | --- |"]
    for b, r in transformers.items():
        lines.append(f"| transformers | {hf.dtype} | batch of {b} | {r['tokens_per_s']:.1f} | {r['seconds']:.1f} |")
    if isinstance(llama, str):
        result["llamacpp"] = {"skipped": llama}
        lines += ["", f"llamacpp: {llama}"]
    else:
        best = max(llama, key=lambda r: r["tokens_per_s"])
        reference = transformers[best_hf]
        same = sum(a == b for a, b in zip(best["answers"], transformers[1]["answers"]))
        result["llamacpp"] = [{k: v for k, v in r.items() if k != "answers"} for r in llama]
        result["llamacpp_best"] = {"workers": best["workers"], "threads": best["threads"]}
        result["llamacpp_vs_transformers_ratio"] = round(best["tokens_per_s"] / reference["tokens_per_s"], 2)
        result["same_answers"] = same
        for r in llama:
            layout = f"{r['workers']} instance(s) x {r['threads'] // r['workers']} thread(s)"
            lines.append(f"| llamacpp | Q4_1 GGUF | {layout} | {r['tokens_per_s']:.1f} | {r['seconds']:.1f} |")
        lines += ["", f"llamacpp (best layout) / transformers (best batch, {best_hf}): "
                      f"**{result['llamacpp_vs_transformers_ratio']:.2f}x** tokens/s. "
                      f"Identical answers: {same} of {PROMPTS} (Q4_1 vs float32 weights: they may differ)."]
    result["markdown"] = "\n".join(lines)
    return result
