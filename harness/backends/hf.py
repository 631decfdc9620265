"""transformers backend: chat template, batched greedy generation with left padding, stop strings.

Prompts are sorted by length before batching (less padding), answers are returned in input order.
Answers already in the generation cache (harness/gencache.py) are not generated again, and the
weights load only when something has to be generated.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from harness.backends import LmEvalTarget, generate_with_cache
from harness.config import generation_batch_size
from harness.devices import resolve_device, resolve_dtype
from harness.records import Generation, Message


class TransformersBackend:
    name = "transformers"
    local_weights = True

    def __init__(self, model_path: str, dtype: str = "auto", device: str = "auto",
                 threads: int | None = None, model=None, tokenizer=None, cache_id: str | None = None,
                 use_cache: bool = True, settings: Any = None) -> None:
        """The tokenizer loads now, the weights on the first generation that misses the cache.

        `cache_id` names the weights in the generation cache (default: a fingerprint of the model
        directory); pass a distinct one for a preloaded model such as base + adapter. `settings` (the
        task's ModelConfig) supplies dtype, device and threads when given.
        """
        import torch
        from transformers import AutoConfig, AutoTokenizer

        from harness.gencache import GenerationCache, fingerprint_dir
        from harness.models import cache_root

        if settings is not None:
            dtype, device, threads = settings.dtype, settings.device, settings.threads
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model_path = model_path
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        self.tokenizer.clean_up_tokenization_spaces = False  # destructive for BPE tokenizers
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._model = model
        if model is not None:
            self._prepare(model)
        config = model.config if model is not None else AutoConfig.from_pretrained(model_path)
        self.context_length = int(getattr(config, "max_position_embeddings", 2048))
        # A preloaded model (e.g. base + adapter) is not what model_path holds: without a cache_id
        # naming it, caching would serve the base model's answers for it.
        if model is not None and cache_id is None:
            use_cache = False
        identity = f"{cache_id or fingerprint_dir(model_path)}:{self.dtype}:{self.device}"
        self.cache = GenerationCache(cache_root(), identity) if use_cache else None
        self._base: TransformersBackend | None = None  # set on adapter views: the backend that owns the weights
        self._adapter_dir: str | None = None

    @contextmanager
    def adapter(self, adapter_dir: str, cache_id: str) -> Iterator[TransformersBackend]:
        """This backend's weights with a PEFT adapter on top, as a backend of its own, without a second
        copy of the base model; the adapter is taken off again when the block ends.

        The adapter attaches on the first generation that misses the cache (`cache_id` names base +
        adapter there), so an all-cached answer loads nothing.
        """
        view = copy.copy(self)
        view._model, view._base, view._adapter_dir = None, self, adapter_dir
        if self.cache is not None:
            from harness.gencache import GenerationCache
            from harness.models import cache_root

            view.cache = GenerationCache(cache_root(), f"{cache_id}:{self.dtype}:{self.device}")
        try:
            yield view
        finally:
            if view._model is not None:
                view._model.unload()  # removes the LoRA layers in place: the base model is as it was
                view._model = None

    @property
    def serving(self) -> dict[str, Any]:
        return {"backend": self.name, "quantization": self.dtype, "file": self.model_path}

    @contextmanager
    def lm_eval_model(self, adapter_dir: str | None, cache_id: str | None) -> Iterator[LmEvalTarget]:
        """lm-eval's `hf` model on the weights already in memory (loaded on demand), the adapter attached
        for the block: no second copy of the model."""
        attach = self.adapter(adapter_dir, cache_id or adapter_dir) if adapter_dir else nullcontext(self)
        with attach as view:
            # lm-eval takes a model object as `pretrained` (its own tokenizer from the path).
            yield LmEvalTarget(
                lm_type="hf", model_args=lambda: {"pretrained": view.model, "tokenizer": self.model_path},
                has_loglikelihood=True, description=f"transformers ({self.dtype}, {self.device}), lm-eval hf",
                identity=f"transformers:{self.dtype}:{self.device}", serving=self.serving)

    @property
    def model(self):
        if self._model is None and self._base is not None:
            from peft import PeftModel

            self._model = PeftModel.from_pretrained(self._base.model, self._adapter_dir).eval()
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            self._prepare(AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype)))
        return self._model

    def _prepare(self, model) -> None:
        model.to(self.device).eval()
        self._model = model
        self.dtype = str(model.dtype).removeprefix("torch.")

    def render(self, messages: list[Message]) -> str:
        """The prompt text: the model's chat template, or a plain one for models without it."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(lines) + "\n\nAssistant:"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, conversations: list[list[Message]], max_new_tokens: int,
                 stop: list[str], batch_size: int, progress: str | None = None) -> list[Generation]:
        """Answers in input order; cached ones are reused, the rest generated in length-sorted batches
        (`batch_size` 0: this device's default, harness.config.generation_batch_size)."""
        batch_size = generation_batch_size(batch_size, self.device)
        settings = {"max_new_tokens": max_new_tokens, "stop": stop, "batch_size": batch_size}
        return generate_with_cache(self.cache, conversations, settings, lambda todo, cached: self._generate(
            todo, max_new_tokens, stop, batch_size, progress, cached))

    def _generate(self, conversations: list[list[Message]], max_new_tokens: int, stop: list[str],
                  batch_size: int, progress: str | None, cached: int) -> list[Generation]:
        import torch
        from tqdm import tqdm

        model = self.model
        prompts = [self.render(c) for c in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        budget = max(1, self.context_length - max_new_tokens)
        truncated = [len(ids) > budget for ids in encoded]
        encoded = [ids[-budget:] for ids in encoded]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: dict[int, Generation] = {}
        desc = f"{progress} ({cached} cached)" if progress and cached else progress
        bar = tqdm(total=len(order), desc=desc, unit="answer", disable=progress is None)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            inputs = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            began = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    **inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                    top_k=None, stop_strings=stop or None, tokenizer=self.tokenizer,
                    pad_token_id=self.tokenizer.pad_token_id)
            elapsed = time.perf_counter() - began
            new_tokens = out[:, inputs["input_ids"].shape[1]:].tolist()
            for i, tokens in zip(batch, new_tokens):
                used = self._until_eos(tokens)
                text = self._cut_at_stop(self.tokenizer.decode(used, skip_special_tokens=True).lstrip(), stop)
                results[i] = Generation(text.strip(), len(encoded[i]), len(used), elapsed, len(batch),
                                        truncated[i])
            bar.update(len(batch))
        bar.close()
        return [results[i] for i in range(len(conversations))]

    def _until_eos(self, tokens: list[int]) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        for n, token in enumerate(tokens):
            if token in eos_ids:
                return tokens[:n]
        return tokens

    @staticmethod
    def _cut_at_stop(text: str, stop: list[str]) -> str:
        cuts = [text.find(s) for s in stop if s and s in text]
        return text[:min(cuts)] if cuts else text
