"""llama.cpp backend, in process (llama-cpp-python): the default on CPU, ~6x transformers' float32 speed.

The model's GGUF loads directly (an embedded model's package file, a `*.gguf`, a folder holding one); a
transformers folder is converted once (harness/gguf.py). The chat template comes from the GGUF's metadata
and is rendered with jinja2 the way transformers renders it, so both backends see the same prompt text.
Decoding is greedy and one sequence at a time per llama.cpp instance; `workers` instances (each with
threads / workers threads) answer side by side, which measured faster than one instance on all cores
for small models (harness/speed/generation.py). A PEFT adapter is converted to a llama.cpp LoRA and
applied at load (`lora_path`). Answers go through the generation cache as with transformers; its
identity names this backend, the GGUF's content id and quantization, and the adapter.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.backends import LmEvalTarget, generate_with_cache
from harness.records import Generation, Message

DEFAULT_CONTEXT = 8192
"""At most this many tokens of context unless model.context_length says otherwise (KV memory grows with it)."""
WORKERS = 1
"""llama.cpp instances answering side by side (set from the measurement in harness/speed/generation.py)."""


class LlamaCppBackend:
    name = "llamacpp"
    local_weights = True
    device = "cpu"

    def __init__(self, model_path: str, settings: Any = None, use_cache: bool = True, threads: int | None = None,
                 context_length: int | None = None, gguf_outtype: str = "f16", workers: int | None = None,
                 **_ignored: object) -> None:
        """Finds (or converts) the GGUF and reads its metadata now; the weights load on the first generation
        that misses the cache. `settings` (the task's ModelConfig) supplies threads, context_length and
        gguf_outtype when given. Options of other backends (dtype, device) are ignored."""
        from harness import gguf
        from harness.gencache import GenerationCache
        from harness.models import cache_root

        if settings is not None:
            threads, context_length, gguf_outtype = settings.threads, settings.context_length, settings.gguf_outtype
        self.model_path = model_path
        self.gguf = gguf.model_gguf(model_path, gguf_outtype)
        meta = gguf.describe(self.gguf)
        self.quantization: str = meta["quantization"]
        self.chat_template: str | None = meta["chat_template"]
        self.context_length = int(context_length or min(int(meta["context_length"] or 2048), DEFAULT_CONTEXT))
        self.threads = threads or os.cpu_count() or 1
        self.workers = max(1, min(workers or WORKERS, self.threads))
        self.file_id = gguf.file_id(self.gguf)
        self.dtype = self.quantization  # what environment.json's `dtype` shows for this backend
        self.lora: Path | None = None
        self._adapter_dir: str | None = None
        self._pool: list[Any] = []  # loaded llama.cpp instances, one per worker
        self._lock = threading.Lock()
        self._template = _compile(self.chat_template) if self.chat_template else None
        self._tokenizer = None  # a vocab-only instance: tokens without loading the weights
        self.use_cache = use_cache
        self.cache = GenerationCache(cache_root(), self._identity()) if use_cache else None

    def _identity(self, adapter: str = "") -> str:
        base = f"llamacpp:{self.file_id}:{self.quantization}:ctx{self.context_length}"
        return f"{base}+{adapter}" if adapter else base

    @property
    def serving(self) -> dict[str, Any]:
        record = {"backend": self.name, "quantization": self.quantization, "file": str(self.gguf)}
        return record | ({"adapter": self._adapter_dir} if self._adapter_dir else {})

    # ---- prompt and tokens

    def render(self, messages: list[Message]) -> str:
        """The prompt text: the GGUF's chat template, or a plain one for models without it."""
        if self._template is None:
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n\n".join(lines) + "\n\nAssistant:"
        return self._template.render(messages=messages, add_generation_prompt=True, **self._special_tokens_text)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of prompt text as the model reads it: special tokens such as <|im_start|> parsed, no BOS
        added (the chat template writes one where the model wants it), as transformers does."""
        return self._vocab().tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @functools.cached_property
    def _special_tokens_text(self) -> dict[str, str]:
        return self._special_tokens()

    def _special_tokens(self) -> dict[str, str]:
        vocab = self._vocab()

        def text(token_id: int) -> str:
            return vocab.detokenize([token_id], special=True).decode("utf-8", errors="replace") if token_id >= 0 else ""

        return {"bos_token": text(vocab.token_bos()), "eos_token": text(vocab.token_eos())}

    def _vocab(self):
        if self._tokenizer is None and self._pool:
            self._tokenizer = self._pool[0]
        if self._tokenizer is None:
            import llama_cpp
            from llama_cpp._internals import LlamaModel  # pinned 0.3.36: a model without a context

            # The vocabulary alone, without a context (a vocab-only Llama() makes one and logs a warning).
            params = llama_cpp.llama_model_default_params()
            params.vocab_only = True
            self._tokenizer = LlamaModel(path_model=str(self.gguf), params=params, verbose=False)
        return self._tokenizer

    # ---- weights

    def _instances(self) -> list[Any]:
        """The loaded llama.cpp instances (loaded on first use; the adapter converted then, too)."""
        with self._lock:
            if not self._pool:
                from llama_cpp import Llama

                if self._adapter_dir is not None and self.lora is None:
                    from harness.gguf import adapter_gguf

                    self.lora = adapter_gguf(self._adapter_dir, self.model_path)
                per_worker = max(1, self.threads // self.workers)
                # flash_attn: in llama-cpp-python 0.3.36 on CPU, the default attention path evaluates a
                # prompt of more than one token wrongly (SmolLM2 answers "La femme de France..." to "What is
                # the capital of France?"; token by token, or with flash attention, "...is Paris.").
                self._pool = [Llama(str(self.gguf), n_ctx=self.context_length, n_threads=per_worker,
                                    n_threads_batch=per_worker, n_batch=512, seed=0, flash_attn=True, verbose=False,
                                    lora_path=str(self.lora) if self.lora else None)
                              for _ in range(self.workers)]
            return self._pool

    @contextmanager
    def adapter(self, adapter_dir: str, cache_id: str) -> Iterator[LlamaCppBackend]:
        """The same GGUF with a PEFT adapter applied (converted to a llama.cpp LoRA once, on the first generation
        that misses the cache), as a backend of its own; its instances are freed when the block ends."""
        view = copy.copy(self)
        view._adapter_dir, view.lora, view._pool, view._lock = adapter_dir, None, [], threading.Lock()
        view._tokenizer = self._vocab()  # an adapter does not change the vocabulary
        if self.use_cache:
            from harness.gencache import GenerationCache
            from harness.models import cache_root

            view.cache = GenerationCache(cache_root(), self._identity(cache_id))
        try:
            yield view
        finally:
            for llm in view._pool:
                llm.close()
            view._pool = []

    @contextmanager
    def lm_eval_model(self, adapter_dir: str | None, cache_id: str | None) -> Iterator[LmEvalTarget]:
        """lm-eval scores through this process's llama.cpp (harness/backends/llamacpp_lm.py): log-likelihoods
        from the model's logits, generation as `generate` does it; the adapter applied as when answering."""
        with (self.adapter(adapter_dir, cache_id or adapter_dir) if adapter_dir else _same(self)) as view:
            def model_args() -> dict[str, Any]:
                from harness.backends.llamacpp_lm import LM_TYPE  # registers the model type with lm-eval

                assert LM_TYPE == "ftrag-llamacpp"
                return {"backend": view}

            yield LmEvalTarget(
                lm_type="ftrag-llamacpp", model_args=model_args, has_loglikelihood=True,
                description=f"llama.cpp in process ({self.quantization} GGUF{' + LoRA' if adapter_dir else ''})",
                identity=view._identity(cache_id or "") if adapter_dir else self._identity(), serving=view.serving)

    # ---- generation

    def generate(self, conversations: list[list[Message]], max_new_tokens: int,
                 stop: list[str], batch_size: int, progress: str | None = None) -> list[Generation]:
        """Greedy answers in input order; cached ones are reused, the rest generated by the workers.

        `batch_size` changes nothing here: each instance answers one prompt at a time, so an answer's text and
        wall time are those of a single request whatever the caller's batch. It is left out of the cache key,
        and the single-request latency sample (harness/latency.py) finds the scoring pass's answers there
        instead of generating them again."""
        settings = {"max_new_tokens": max_new_tokens, "stop": stop}
        return generate_with_cache(self.cache, conversations, settings, lambda todo, cached: self._generate(
            todo, max_new_tokens, stop, progress, cached))

    def _generate(self, conversations: list[list[Message]], max_new_tokens: int, stop: list[str],
                  progress: str | None, cached: int) -> list[Generation]:
        from tqdm import tqdm

        pool = self._instances()
        budget = max(1, self.context_length - max_new_tokens)
        prompts = [self.tokenize(self.render(c)) for c in conversations]
        desc = f"{progress} ({cached} cached)" if progress and cached else progress
        bar = tqdm(total=len(prompts), desc=desc, unit="answer", disable=progress is None)
        free = list(pool)  # each worker thread takes an instance for one answer at a time
        free_lock = threading.Lock()

        def answer(ids: list[int]) -> Generation:
            with free_lock:
                llm = free.pop()
            try:
                return self._answer(llm, ids, budget, max_new_tokens, stop)
            finally:
                with free_lock:
                    free.append(llm)
                bar.update(1)

        # llama.cpp releases the GIL while it computes, so worker threads run on separate cores.
        with ThreadPoolExecutor(max_workers=len(pool)) as executor:
            results = list(executor.map(answer, prompts))
        bar.close()
        return results

    def _answer(self, llm, ids: list[int], budget: int, max_new_tokens: int, stop: list[str]) -> Generation:
        truncated = len(ids) > budget
        ids = ids[-budget:]
        began = time.perf_counter()
        out = llm.create_completion(ids, max_tokens=max_new_tokens, temperature=0.0, top_k=1, top_p=1.0,
                                    min_p=0.0, repeat_penalty=1.0, stop=[s for s in stop if s] or None)
        elapsed = time.perf_counter() - began
        text = out["choices"][0]["text"]
        return Generation(text.strip(), len(ids), int(out["usage"]["completion_tokens"]), elapsed, 1, truncated)


@contextmanager
def _same(backend: LlamaCppBackend) -> Iterator[LlamaCppBackend]:
    yield backend


def _compile(template: str):
    """The chat template as transformers compiles it (sandboxed jinja2, trim_blocks, lstrip_blocks,
    loopcontrols, `raise_exception`, `tojson` keeping non-ASCII, a `{% generation %}` block rendered as its
    body), so the prompt text matches."""
    import json

    from jinja2 import nodes
    from jinja2.exceptions import TemplateError
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        # transformers uses the tag to mark assistant tokens for training; a prompt needs only its text.
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        from datetime import datetime

        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template)
