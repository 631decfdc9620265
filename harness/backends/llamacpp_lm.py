"""lm-eval's model interface over the in-process llama.cpp backend (`lm_type` "ftrag-llamacpp").

Why not lm-eval's own `gguf` model against `python -m llama_cpp.server`: it asks for completions without
`max_tokens` (the server's default, 16 tokens, cuts every HumanEval answer short), and it drops the last
echoed token of a log-likelihood request on the assumption that one token was generated after it, which
is false whenever the model's next token is end-of-text (a continuation such as " A" then scores 0).
Here a log-likelihood is read from the model's own logits, and generation is the backend's greedy decoding.
"""

from __future__ import annotations

from typing import Any

import lm_eval.models  # noqa: F401 -- lm-eval's own model types first: see below
import numpy as np
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

# lm-eval (0.4.13) fills its model registry with its own types ("hf", "local-chat-completions", ...) only when
# `get_model` finds the registry empty; registered into an empty registry, this type would be the only one,
# and a later pass on transformers or a server in the same process would fail with "Unknown model 'hf'".

LM_TYPE = "ftrag-llamacpp"


@register_model(LM_TYPE)
class LlamaCppLM(LM):
    def __init__(self, backend: Any, **_lm_eval_options: Any) -> None:
        """`backend`: a LlamaCppBackend (with its adapter, if any); lm-eval's batch_size etc. do not apply."""
        super().__init__()
        self.backend = backend

    @property
    def llm(self):
        return self.backend._instances()[0]

    # ---- chat template (generative MMLU on an instruct model)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.backend.chat_template)

    @property
    def tokenizer_name(self) -> str:
        return f"llamacpp:{self.backend.file_id}"

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.backend.chat_template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.backend.render(chat_history)

    # ---- requests

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """As lm-eval's hf model: trailing spaces of the context move to the continuation, and the
        continuation's tokens are those of the whole text after the context's."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.backend.tokenize(context + continuation)
        context_ids = self.backend.tokenize(context)
        return context_ids, whole[len(context_ids):]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for request in tqdm(requests, disable=disable_tqdm, desc="loglikelihood", unit="request"):
            context, continuation = request.args
            context_ids, continuation_ids = self._encode_pair(context, continuation)
            out.append(self._score(context_ids, continuation_ids))
        return out

    def _score(self, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
        """Sum of log P(continuation token | everything before it), and whether each was the greedy choice."""
        llm = self.llm
        ids = (context_ids or [llm.token_bos()]) + continuation_ids
        budget = llm.n_ctx()
        ids = ids[-budget:]
        first = len(ids) - len(continuation_ids)
        self._feed(llm, ids[:first])
        total, greedy = 0.0, True
        for position in range(first, len(ids)):
            logits = self._last_logits(llm)
            top = float(logits.max())
            log_probs = logits - top - np.log(np.exp(logits - top).sum())
            token = ids[position]
            total += float(log_probs[token])
            greedy &= int(logits.argmax()) == token
            if position + 1 < len(ids):
                llm.eval([token])
        return total, greedy

    @staticmethod
    def _last_logits(llm) -> np.ndarray:
        """Logits after the last evaluated token (llama.cpp keeps only that row without logits_all)."""
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)

    @staticmethod
    def _feed(llm, ids: list[int]) -> None:
        """Evaluate `ids`, reusing the KV cache of a shared prefix (MMLU's choices share their question);
        at least the last token is evaluated again, for its logits."""
        keep = 0
        limit = min(llm.n_tokens, len(ids) - 1)
        cached = llm.input_ids
        while keep < limit and cached[keep] == ids[keep]:
            keep += 1
        llm.n_tokens = keep  # eval() drops the KV cache from here on
        llm.eval(ids[keep:])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        budget = self.llm.n_ctx()
        for request in tqdm(requests, disable=disable_tqdm, desc="generate", unit="request"):
            context, options = request.args
            until = options.get("until") or []
            max_tokens = int(options.get("max_gen_toks", 256))
            ids = self.backend.tokenize(context)[-max(1, budget - max_tokens):]
            result = self.llm.create_completion(ids, max_tokens=max_tokens, temperature=0.0, top_k=1, top_p=1.0,
                                                min_p=0.0, repeat_penalty=1.0,
                                                stop=[s for s in ([until] if isinstance(until, str) else until) if s]
                                                or None)
            out.append(result["choices"][0]["text"])
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError("rolling log-likelihood (perplexity tasks) is not used by the harness")
