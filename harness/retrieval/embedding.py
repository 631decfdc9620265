"""sentence-transformers embeddings: load a model once per process, embed chunks and queries.

Vectors are L2-normalized, so inner product is cosine similarity. Documents and queries go through
`encode_document` / `encode_query`, which apply the model's own query/document prompts where it
defines them (e5, bge...); MiniLM has none. `EMBEDDED_CHUNKS` counts every chunk embedded in this
process: the cache tests assert on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.gencache import read_cache_log
from harness.models import resolve_sentence_model

EMBEDDED_CHUNKS = [0]
"""Chunks embedded by `embed_chunks` in this process (a one-element list so callers see updates)."""


def model_path(name: str) -> str:
    """Directory or hub id of a sentence-transformers model; `embedded:` names load offline."""
    return resolve_sentence_model(name)


@cache
def load_embedder(name: str) -> Any:
    """The SentenceTransformer for `name` (cached: tests and strategies share one copy)."""
    from sentence_transformers import SentenceTransformer

    path = model_path(name)
    try:
        return SentenceTransformer(path)
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one line for the user
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"rag.embedding_model {name!r}: cannot load {path}: {first_line}") from None


def model_fingerprint(name: str) -> str:
    """Content hash of a model directory (so a retrained model in the same folder rebuilds); a hub id as is."""
    path = Path(model_path(name))
    if not path.is_dir():
        return f"hub:{name}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def input_limit(model: Any) -> int:
    """Most content tokens one input can hold: the model's max_seq_length less [CLS]/[SEP]-style tokens."""
    return int(model.max_seq_length) - model.tokenizer.num_special_tokens_to_add()


def embed_chunks(model: Any, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, float]:
    """(float32 matrix of normalized vectors, seconds)."""
    began = time.perf_counter()
    vectors = model.encode_document(texts, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=len(texts) > 2000)
    EMBEDDED_CHUNKS[0] += len(texts)
    return np.ascontiguousarray(vectors, dtype=np.float32), time.perf_counter() - began


@contextmanager
def one_cpu_thread(model: Any) -> Iterator[None]:
    """Run torch on one CPU thread for a while, then restore the count.

    One query is too little work to split: with two threads on a busy machine every layer waits at a
    thread barrier for a descheduled thread (measured on 2 shared cores: 480 ms a query, 11 ms on one).
    """
    import torch

    if model.device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def embed_query(model: Any, text: str) -> np.ndarray:
    """A (1, dim) normalized float32 vector."""
    with one_cpu_thread(model):
        vector = model.encode_query([text], normalize_embeddings=True, convert_to_numpy=True)
    return np.ascontiguousarray(vector, dtype=np.float32)


class QueryVectorCache:
    """Query vectors by embedding model (its files' content) and query text, with the seconds the
    embedding took when it was measured; a rerun then loads no embedding model. One append-only JSONL
    per model under cache_root()/query_vectors/ (vectors as base64 float32 bytes: exact)."""

    def __init__(self, root: Path, model_digest: str) -> None:
        self.path = root / "query_vectors" / f"{model_digest[:32]}.jsonl"
        self.entries: dict[str, tuple[str, float]] = {
            r["key"]: (r["vector"], r["embed_s"]) for r in read_cache_log(self.path)}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, text: str) -> tuple[np.ndarray, float] | None:
        hit = self.entries.get(self.key(text))
        if hit is None:
            return None
        vector = np.frombuffer(base64.b64decode(hit[0]), dtype=np.float32)
        return vector.reshape(1, -1).copy(), hit[1]

    def put_many(self, items: list[tuple[str, np.ndarray, float]]) -> None:
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for text, vector, seconds in items:
                encoded = base64.b64encode(np.ascontiguousarray(vector, dtype=np.float32).tobytes()).decode()
                f.write(json.dumps({"key": self.key(text), "vector": encoded, "embed_s": seconds}) + "\n")
