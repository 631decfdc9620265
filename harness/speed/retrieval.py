"""Retrieval speed: FAISS search latency, exact vs approximate, at 10k and 100k chunks; MiniLM throughput.

    python -m harness.speed retrieval

Search latency uses synthetic vectors (embedding 100k real chunks would take hours on 2 shared
cores): 384 dimensions like MiniLM, drawn around 2,000 subtopic centres grouped in 200 topics that
share a common direction, then normalized. That mimics MiniLM on tasks/stdlib_qa/docs: mean cosine
to the nearest / 10th nearest neighbour 0.72 / 0.50 here, 0.76 / 0.51 there. Each query is searched
alone (batch 1, as the rag strategy does); queries are fresh draws from the same distribution.
recall@10 of an approximate index is the share of the exact top 10 it also returns. Index
parameters are RagConfig's defaults.

Embedding throughput is MiniLM on real chunks of tasks/stdlib_qa/docs (default chunking), batch 32,
plus the latency of embedding one query, the other half of a RAG lookup.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import RagConfig
from harness.retrieval.index import IndexSpec, build_index, choose_index, search

SIZES = (10_000, 100_000)
DIM = 384
TOPICS, SUBTOPICS = 200, 10
QUERIES = 300
K = 10
EMBED_CHUNKS = 256
DOCS = Path("tasks/stdlib_qa/docs")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def subtopic_centres(rng: np.random.Generator) -> np.ndarray:
    common = unit(rng.normal(size=DIM))
    topics = unit(unit(rng.normal(size=(TOPICS, DIM))) + common)
    return unit(np.repeat(topics, SUBTOPICS, axis=0) + rng.normal(scale=0.05, size=(TOPICS * SUBTOPICS, DIM)))


def clustered_vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Normalized points around random subtopic centres, each with its own spread."""
    spread = rng.uniform(0.02, 0.06, size=(n, 1))
    return unit(centres[rng.integers(len(centres), size=n)] + spread * rng.normal(size=(n, DIM)))


def query_seconds(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(seconds per query, result ids), searching one query at a time."""
    seconds, ids = [], []
    for q in queries:
        began = time.perf_counter()
        _, found = search(index, q[None, :], k)
        seconds.append(time.perf_counter() - began)
        ids.append(found[0])
    return np.array(seconds), np.array(ids)


def measure_indexes(rng: np.random.Generator) -> list[dict[str, Any]]:
    import faiss

    centres = subtopic_centres(rng)
    rows = []
    for n in SIZES:
        vectors = clustered_vectors(n, rng, centres)
        queries = clustered_vectors(QUERIES, rng, centres)
        exact_ids = None
        specs = [IndexSpec("flat"), choose_index(n, RagConfig(index="hnsw")), choose_index(n, RagConfig(index="ivf"))]
        for spec in specs:
            index, build_s = build_index(vectors, spec)
            index.search(queries[:5], K)  # warm-up
            seconds, ids = query_seconds(index, queries, K)
            if spec.exact:
                exact_ids = ids
            assert exact_ids is not None, "the exact index runs first"
            recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, exact_ids)])
            rows.append({"chunks": n, "index": spec.kind, "params": spec.params(), "build_s": round(build_s, 2),
                         "index_bytes": int(faiss.serialize_index(index).size),
                         "latency_p50_s": float(np.percentile(seconds, 50)),
                         "latency_p95_s": float(np.percentile(seconds, 95)),
                         f"recall_at_{K}_ratio": round(float(recall), 4)})
        del vectors
    return rows


def measure_embedding() -> dict[str, Any]:
    from harness.retrieval.chunking import chunk_documents
    from harness.retrieval.documents import list_files, read_documents
    from harness.retrieval.embedding import embed_chunks, embed_query, load_embedder

    cfg = RagConfig()
    model = load_embedder(cfg.embedding_model)
    documents, _ = read_documents(list_files(DOCS), DOCS.parent)
    chunks = chunk_documents(documents, model.tokenizer, cfg.chunk_tokens, cfg.chunk_overlap)[:EMBED_CHUNKS]
    embed_chunks(model, [c.text for c in chunks[:32]])  # warm-up
    _, seconds = embed_chunks(model, [c.text for c in chunks])
    single = []
    for c in chunks[:50]:
        began = time.perf_counter()
        embed_query(model, c.text[:120])
        single.append(time.perf_counter() - began)
    return {"embedding_model": cfg.embedding_model, "embedded_chunks": len(chunks),
            "chunk_tokens_mean": round(float(np.mean([c.tokens for c in chunks])), 1),
            "embedding_chunks_per_s": round(len(chunks) / seconds, 1),
            "query_embedding_p50_s": float(np.percentile(single, 50)),
            "query_embedding_p95_s": float(np.percentile(single, 95)), "device": str(model.device)}


def run(machine: dict) -> dict:
    import faiss

    rows = measure_indexes(np.random.default_rng(0))
    embedding = measure_embedding()
    lines = [
        "## Retrieval", "",
        (f"FAISS {faiss.__version__}; synthetic clustered "
         f"{DIM}-d normalized vectors, {QUERIES} single queries, top {K}. Latency is one search on one thread "
         "(no query embedding); recall is against the exact index."), "",
        "| chunks | index | parameters | build (s) | index (MiB) | p50 (ms) | p95 (ms) | recall@10 |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "exact"
        lines.append(f"| {r['chunks']:,} | {r['index']} | {params} | {r['build_s']:.2f} | "
                     f"{r['index_bytes'] / 2**20:.1f} | {r['latency_p50_s'] * 1e3:.2f} | "
                     f"{r['latency_p95_s'] * 1e3:.2f} | {r[f'recall_at_{K}_ratio']:.3f} |")
    e = embedding
    lines += ["", (f"Embedding ({e['embedding_model']} on {e['device']}, real stdlib_qa chunks of "
                   f"{e['chunk_tokens_mean']:.0f} tokens on average, batch 32): {e['embedding_chunks_per_s']:.1f} "
                   f"chunks/s; one query: p50 {e['query_embedding_p50_s'] * 1e3:.1f} ms, "
                   f"p95 {e['query_embedding_p95_s'] * 1e3:.1f} ms.")]
    return {"faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(), "dim": DIM,
            "queries": QUERIES, "k": K, "indexes": rows, "embedding": embedding, "markdown": "\n".join(lines)}
