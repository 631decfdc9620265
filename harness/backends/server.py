"""What the server backends (openai.py, ollama.py) share: retries with backoff, requests in flight in
input order, a readable prompt form, and a token estimate for servers without a tokenizer.

A server backend sends one request per conversation; `answer_all` keeps up to `workers` of them in
flight on threads (the HTTP clients are thread-safe) and returns the answers in input order. Answers
already in the generation cache (harness/gencache.py) are not requested again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from harness.errors import HarnessError
from harness.records import Generation, Message

T = TypeVar("T")
CHARS_PER_TOKEN = 4
"""The estimate used where a server cannot count tokens: about 4 characters per token for English BPE."""
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """A failure worth another try (connection refused, timeout, 429, 5xx); the message says which."""


def with_retries(call: Callable[[], T], retries: int, backoff_s: float, what: str) -> T:
    """`call()`, tried again up to `retries` times after a Retryable failure, waiting backoff_s, 2x, 4x...
    The last failure is one HarnessError line: `<what>: <reason> (after N retries)`."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Retryable as exc:
            if attempt == retries:
                tries = f" (after {retries} retr{'y' if retries == 1 else 'ies'})" if retries else ""
                raise HarnessError(f"{what}: {exc}{tries}") from None
            time.sleep(backoff_s * 2 ** attempt)
    raise AssertionError("unreachable")


def answer_all(conversations: list[list[Message]], answer_one: Callable[[list[Message]], Generation],
               workers: int, progress: str | None, cached: int = 0) -> list[Generation]:
    """`answer_one` on every conversation, `workers` at a time, in input order, with a progress bar."""
    from tqdm import tqdm

    desc = f"{progress} ({cached} cached)" if progress and cached else progress
    with tqdm(total=len(conversations), desc=desc, unit="answer", disable=progress is None) as bar:
        def one(messages: list[Message]) -> Generation:
            result = answer_one(messages)
            bar.update(1)
            return result

        if workers <= 1:
            return [one(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, conversations))  # map keeps input order


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the first stop string (servers cut at them too; some keep the stop in the text)."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[:min(cuts)] if cuts else text


def render_readable(messages: list[Message]) -> str:
    """A readable form of a chat: the server applies its own template, which the client cannot see."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nassistant:"


def estimate_tokens(text: str) -> int:
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def say_once(said: set[str], line: str) -> None:
    if line not in said:
        said.add(line)
        print(f"[model] {line}", file=sys.stderr, flush=True)


def generate_on_server(backend, conversations: list[list[Message]], settings: dict, batch_size: int,
                       progress: str | None) -> list[Generation]:
    """A server backend's `generate`: answers in input order, `min(concurrency, batch_size)` requests in flight
    (batch_size 1: one at a time, the single-request latency), cached answers reused. `backend._chat(messages,
    max_new_tokens, stop, in_flight)` sends one request; `settings` (max_new_tokens, stop and whatever else
    changes an answer) key the generation cache."""
    from harness.backends import generate_with_cache

    workers = max(1, min(backend.concurrency, batch_size))

    def fresh(missing: list[list[Message]], cached: int) -> list[Generation]:
        in_flight = min(workers, len(missing))
        return answer_all(missing, lambda m: backend._chat(m, settings["max_new_tokens"], settings["stop"],
                                                           in_flight), workers, progress, cached)

    return generate_with_cache(backend.cache, conversations, {**settings, "batch_size": batch_size}, fresh)

