"""kNN shots: for each question, the training examples most similar to it by embedding.

The prompt strategy's `shot_selection: knn` (and its search's knn candidates) use this instead of one
seeded sample for every question. Examples are embedded with the sentence-transformers model rag uses
(`rag.embedding_model`, the embedded MiniLM by default), as `retrieval_text` (request and input, no
template). The training vectors are cached on disk by the model's files and the examples' text, so a
rerun embeds nothing; query vectors go through rag's query-vector cache (harness/retrieval/embedding.py).

    python -c "from harness.shots import ShotPool"   # used by strategies/prompt.py
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from harness.data import Example, Query
from harness.models import cache_root, touch_used

CACHE_DIR = "shot_vectors"


class ShotPool:
    """Training examples and their normalized embeddings; `nearest(query, k)` picks a question's shots."""

    def __init__(self, train: list[Example], embedding_model: str, use_cache: bool = True) -> None:
        from harness.retrieval.context import retrieval_text
        from harness.retrieval.embedding import model_fingerprint

        self.examples = sorted(train, key=lambda e: e.id)  # the order of train on disk must not matter
        self.embedding_model = embedding_model
        self.use_cache = use_cache
        self.digest = model_fingerprint(embedding_model)
        texts = [retrieval_text(e.query()) for e in self.examples]
        key = hashlib.sha256(json.dumps([self.digest, texts]).encode()).hexdigest()[:32]
        self.vectors = self._load_or_embed(cache_root() / CACHE_DIR / f"{key}.npy", texts)

    def _load_or_embed(self, path: Path, texts: list[str]) -> np.ndarray:
        if self.use_cache and path.is_file():
            touch_used(path)
            return np.load(path)
        from harness.retrieval.embedding import load_embedder

        model = load_embedder(self.embedding_model)
        # The same encoder side as the questions they are compared with: both are questions.
        vectors = np.ascontiguousarray(model.encode_query(texts, batch_size=32, normalize_embeddings=True,
                                                          convert_to_numpy=True), dtype=np.float32)
        if self.use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)  # whole or absent: a crash mid-write leaves no half file under the key
        return vectors

    def nearest_many(self, queries: list[Query], k: int) -> list[list[Example]]:
        """Per query its k most similar examples, the most similar last: nearest the question it shows how to
        answer. Ties keep id order (a stable sort), so the choice is deterministic."""
        if k <= 0 or not self.examples:
            return [[] for _ in queries]
        from harness.retrieval.context import retrieval_text
        from harness.retrieval.embedding import QueryVectorCache, embed_query, load_embedder

        cache = QueryVectorCache(cache_root(), self.digest) if self.use_cache else None
        texts = [retrieval_text(q) for q in queries]
        found = {t: hit[0] for t in set(texts) if cache and (hit := cache.get(t)) is not None}
        fresh = [t for t in dict.fromkeys(texts) if t not in found]
        if fresh:
            model = load_embedder(self.embedding_model)
            embed_query(model, "warm-up")  # timed as rag times a query: rag may reuse these cached seconds
            embedded = []
            for text in fresh:
                began = time.perf_counter()
                vector = embed_query(model, text)
                embedded.append((text, vector, time.perf_counter() - began))
            found.update((t, v) for t, v, _ in embedded)
            if cache:
                cache.put_many(embedded)
        out = []
        for text in texts:
            similarity = self.vectors @ found[text].reshape(-1)
            order = np.argsort(-similarity, kind="stable")[:k]
            out.append([self.examples[i] for i in reversed(order)])
        return out
