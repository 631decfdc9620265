"""Training records: each example becomes a prompt/completion pair in the model's own chat format.

The prompt is rendered exactly as the `prompt` strategy renders a zero-shot question (system prompt +
user turn, the model's chat template with the generation prompt), so the model is trained on the text
it will see when answering. TRL's prompt/completion path then computes the loss on the completion
tokens only: the answer and the end-of-turn token that makes generation stop. TRL tokenizes the record's
text with the tokenizer's special tokens, the answering backends tokenize the rendered prompt without them;
so a BOS the template writes and the tokenizer adds again is dropped from the record's prompt (`drop_added_bos`),
and training sees the one BOS that answering sees.

Knowledge injection adds the task's documents as records with an empty prompt (loss on every token).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from harness.config import PromptConfig
from harness.data import Example, split_by_hash
from harness.prompting import build_messages
from harness.records import Message

DOC_SUFFIXES = (".md", ".txt", ".rst")


def render_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """The prompt text, as `TransformersBackend.render` builds it (a test keeps the two equal)."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def drop_added_bos(tokenizer: Any, text: str) -> str:
    """`text` without its leading BOS when the tokenizer adds a BOS itself (Llama-3-style tokenizers), else as is.

    SmolLM2's bos_token is '<|im_start|>', which its template writes at every turn, and its tokenizer adds none:
    its text is kept (unsloth's "found double BOS tokens" for it is a false alarm: it tests the template for
    the token's text, then tokenizes without special tokens, which adds nothing either way)."""
    bos = tokenizer.bos_token
    if not bos or not text.startswith(bos):
        return text
    adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    return text[len(bos):] if adds_bos else text


def stop_tokens(tokenizer: Any, eos_token_ids: list[int]) -> list[str]:
    """Tokens that end generation: the generation config's eos ids, then the tokenizer's eos."""
    tokens = [tokenizer.convert_ids_to_tokens(i) for i in eos_token_ids]
    return [t for t in dict.fromkeys([*tokens, tokenizer.eos_token]) if t]


def example_record(tokenizer: Any, messages: list[Message], answer: str, stops: list[str]) -> dict[str, str]:
    """{"prompt", "completion"}: the completion is what the template puts after the prompt (the answer
    and its end-of-turn token), trailing whitespace dropped since generation stops at that token."""
    rendered = render_prompt(tokenizer, messages)
    prompt = drop_added_bos(tokenizer, rendered)
    if tokenizer.chat_template:
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
        if full.startswith(rendered):
            completion = full[len(rendered):].rstrip()
            if any(completion.endswith(s) for s in stops):
                return {"prompt": prompt, "completion": completion}
    # No template, or one that doesn't end the turn with a stop token: TRL appends the eos token.
    return {"prompt": prompt, "completion": (" " if not tokenizer.chat_template else "") + answer}


def end_token(records: list[dict[str, str]], stops: list[str]) -> str:
    """The stop token the completions end with; TRL appends it to completions that lack it (documents)."""
    for record in records:
        for stop in stops:
            if record["completion"].endswith(stop):
                return stop
    return stops[-1]


def build_records(examples: list[Example], prompt: PromptConfig, tokenizer: Any,
                  stops: list[str]) -> list[dict[str, str]]:
    return [example_record(tokenizer, build_messages(ex, prompt, []), ex.output, stops) for ex in examples]


def doc_records(docs_dir: Path, tokenizer: Any, chunk_tokens: int) -> list[dict[str, str]]:
    """The documents as plain-text records of at most `chunk_tokens` tokens, split at blank lines."""
    records: list[dict[str, str]] = []
    files = sorted(p for p in docs_dir.rglob("*") if p.is_file() and p.suffix in DOC_SUFFIXES)
    for path in files:
        for chunk in _chunks(path.read_text(encoding="utf-8", errors="replace"), tokenizer, chunk_tokens):
            records.append({"prompt": "", "completion": chunk})
    return records


def _chunks(text: str, tokenizer: Any, limit: int) -> list[str]:
    pieces: list[str] = []
    for para in (p.strip() for p in text.split("\n\n")):
        ids = tokenizer(para, add_special_tokens=False)["input_ids"]
        # A paragraph longer than a chunk is cut into token windows.
        pieces += [para] if len(ids) <= limit else [tokenizer.decode(ids[i:i + limit])
                                                    for i in range(0, len(ids), limit)]
    chunks: list[str] = []
    current, size = [], 0
    for piece in filter(None, pieces):
        n = len(tokenizer(piece, add_special_tokens=False)["input_ids"]) + 1
        if current and size + n > limit:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def select_examples(train: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most `limit` examples, the first in seeded-hash order of their ids (stable as data grows)."""
    if limit is None or limit >= len(train):
        return list(train)
    ranked = sorted((hashlib.sha256(f"train:{seed}:{ex.id}".encode()).hexdigest(), ex.id) for ex in train)
    keep = {ex_id for _, ex_id in ranked[:limit]}
    return [ex for ex in train if ex.id in keep]


def split_dev(train: list[Example], dev: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """The task's dev split, or 10% of train carved by seeded hash when the task has none."""
    if dev:
        return train, dev
    return split_by_hash(train, 0.1, f"finetune-dev:{seed}")
