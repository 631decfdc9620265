"""Prompt assembly: retrieved passages, labelled with their source, packed into the context window.

Passages keep their rank order. When the prompt with all k passages would not leave room for the
answer budget, the lowest-ranked passages are dropped first (the largest prefix that fits is found
by bisection, so a long prompt is counted about log2(k) times, not k).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.prompting import fill
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
