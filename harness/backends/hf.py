"""transformers backend: chat template, batched greedy generation with left padding, stop strings.

Prompts are sorted by length before batching (less padding), answers are returned in input order.
"""

from __future__ import annotations

import os
import time

from harness.records import Generation, Message


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_path: str, dtype: str = "auto", device: str = "auto",
                 threads: int | None = None, model=None, tokenizer=None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            dtype = "bfloat16" if self.device == "cuda" else "float32"
        self.model_path = model_path
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        self.tokenizer.clean_up_tokenization_spaces = False  # destructive for BPE tokenizers
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model or AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))

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
        import torch
        from tqdm import tqdm

        prompts = [self.render(c) for c in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        budget = max(1, self.context_length - max_new_tokens)
        truncated = [len(ids) > budget for ids in encoded]
        encoded = [ids[-budget:] for ids in encoded]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: dict[int, Generation] = {}
        bar = tqdm(total=len(order), desc=progress, unit="answer", disable=progress is None)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            inputs = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            began = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
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
