"""Prompt assembly: retrieved passages, labelled with their source, packed into the context window.

Passages keep their rank order. When the prompt with all k passages would not leave room for the
answer budget, the lowest-ranked passages are dropped first (the largest prefix that fits is found
by bisection, so a long prompt is counted about log2(k) times, not k).

`question_with_passages` is the one place a question and its passages become messages: `rag` answers
with it, and RAFT-style training (harness/training/raft.py) formats its examples with it, so a
context-trained adapter is trained on exactly the prompts it answers.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.config import PromptConfig
from harness.data import Example, Query
from harness.prompting import build_messages, fill
from harness.records import Message
from harness.retrieval.chunking import Chunk


def passage_block(rank: int, chunk: Chunk) -> str:
    where = f"{chunk.source}, {chunk.locator}" if chunk.locator else chunk.source
    return f"[{rank}] {where}\n{chunk.text.strip()}"


def build_context(template: str, chunks: list[Chunk]) -> str:
    """`template` with {passages} filled in ({{ }} are literal braces; braces inside passages stay text)."""
    return fill(template, passages="\n\n".join(passage_block(r, c) for r, c in enumerate(chunks, start=1)))


def pack_passages(chunks: list[Chunk], template: str, make_messages: Callable[[str | None], list[Message]],
                  count_tokens: Callable[[list[Message]], int], budget: int) -> tuple[list[Message], int]:
    """(messages, passages used): the most top-ranked passages whose prompt fits in `budget` tokens.

    With not even one passage fitting, the question goes alone (the backend then truncates it if needed).
    """
    def fits(n: int) -> bool:
        return count_tokens(make_messages(build_context(template, chunks[:n]))) <= budget

    if not chunks or fits(len(chunks)):
        used = len(chunks)
    else:
        low, high = 0, len(chunks) - 1  # fits(low) is assumed; fits(high + 1) is known false
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        used = low
    return make_messages(build_context(template, chunks[:used]) if used else None), used


def retrieval_text(query: Query) -> str:
    """What is embedded to search: the request and its input, without the prompt template."""
    return f"{query.instruction}\n{query.input}".strip()


def question_with_passages(query: Query, chunks: list[Chunk], prompt: PromptConfig, template: str,
                           shots: list[Example], count_tokens: Callable[[list[Message]], int],
                           budget: int) -> tuple[list[Message], int]:
    """(messages, passages used): the prompt's messages with the passages packed before the question."""
    def make(context: str | None) -> list[Message]:
        return build_messages(query, prompt, shots, context=context)

    return pack_passages(chunks, template, make, count_tokens, budget)
