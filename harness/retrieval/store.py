"""The corpus a RAG strategy searches: chunks, their embeddings and a FAISS index, cached on disk.

The cache folder is `cache_root()/rag/<key>/`, where the key hashes the documents' bytes and paths,
the embedding model's files and the chunking settings; a rerun with unchanged inputs embeds nothing,
and any changed document gives a new key (a full rebuild). The folder is written under a temporary
name and renamed when complete. Index files inside it are named by their build parameters, so
switching `rag.index` builds a new index from the stored embeddings without embedding again.

    manifest.json          what was built and what it cost (documents, chunks, seconds, skipped files)
    chunks.jsonl           one chunk per line, in embedding row order
    embeddings.npy         float32, normalized, one row per chunk
    index-<params>.faiss   a FAISS index over the rows; index-<params>.json its build cost
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import RagConfig
from harness.errors import NotRun
from harness.models import cache_root, touch_used
from harness.retrieval import INDEX_CACHE_DIR
from harness.retrieval import documents as docs_io
from harness.retrieval.chunking import Chunk, chunk_documents
from harness.retrieval.embedding import (
    QueryVectorCache,
    embed_chunks,
    embed_query,
    input_limit,
    load_embedder,
    model_fingerprint,
)
from harness.retrieval.index import (
    IndexSpec,
    build_index,
    choose_index,
    load_index,
    save_index,
    search,
)

FORMAT = 1
"""Bump when chunking or the cached layout changes meaning, so old caches are not reused."""


@dataclass
class Corpus:
    chunks: list[Chunk]
    index: Any
    spec: IndexSpec
    embedding_model: str
    model_digest: str
    """Content hash of the embedding model's files (the cache keys' half)."""
    directory: Path
    cost: dict[str, Any] = field(default_factory=dict)
    """Build cost and provenance, stored in the strategy's fit record."""

    @property
    def embedder(self) -> Any:
        """The sentence-transformers model, loaded on first use (a fully cached rerun never needs it)."""
        return load_embedder(self.embedding_model)

    @property
    def device(self) -> str:
        if load_embedder.cache_info().currsize:
            return str(self.embedder.device)
        from harness.devices import resolve_device

        return resolve_device("auto")  # where sentence-transformers would put it

    def retrieve(self, query_vector: np.ndarray, k: int) -> list[tuple[Chunk, float]]:
        """The k best chunks for one query vector, best first, with their inner-product scores."""
        scores, ids = search(self.index, query_vector, k)
        return [(self.chunks[i], float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def query_vectors(self, texts: list[str], use_cache: bool = True) -> list[tuple[np.ndarray, float, bool]]:
        """(vector, seconds to embed, from the cache?) per text. Each query is embedded alone, the latency
        one user sees; a cached vector keeps the seconds measured when it was embedded."""
        cache = QueryVectorCache(cache_root(), self.model_digest) if use_cache else None
        out: dict[int, tuple[np.ndarray, float, bool]] = {}
        for i, text in enumerate(texts):
            hit = cache.get(text) if cache else None
            if hit is not None:
                out[i] = (hit[0], hit[1], True)
        missing = [i for i in range(len(texts)) if i not in out]
        if missing:
            embed_query(self.embedder, "warm-up")  # the first encode pays one-off setup; keep it out of timings
            for i in missing:
                began = time.perf_counter()
                vector = embed_query(self.embedder, texts[i])
                out[i] = (vector, time.perf_counter() - began, False)
            if cache:
                cache.put_many([(texts[i], out[i][0], out[i][1]) for i in missing])
        return [out[i] for i in range(len(texts))]


def open_corpus(docs_dir: Path, task_dir: Path, cfg: RagConfig) -> Corpus:
    """Load the cached corpus for these inputs, building what is missing; NotRun without documents."""
    files, unlisted = docs_io.list_files_checked(docs_dir, within=task_dir)
    if unlisted:
        listed = "; ".join(f"{docs_io.source_name(path, task_dir)} ({reason})" for path, reason in unlisted)
        print(f"warning: rag: left out {len(unlisted)} path(s) under {docs_dir}: {listed}", file=sys.stderr, flush=True)
    if not files:
        raise NotRun(f"no documents ({docs_dir} is {'empty' if docs_dir.is_dir() else 'missing'})")
    if cfg.chunk_overlap >= cfg.chunk_tokens:
        raise NotRun(f"rag.chunk_overlap ({cfg.chunk_overlap}) must be smaller than rag.chunk_tokens "
                     f"({cfg.chunk_tokens})")
    digest = model_fingerprint(cfg.embedding_model)
    key = hashlib.sha256(json.dumps({
        "format": FORMAT, "documents": docs_io.fingerprint(files, task_dir), "model": digest,
        "chunk_tokens": cfg.chunk_tokens, "chunk_overlap": cfg.chunk_overlap,
    }, sort_keys=True).encode()).hexdigest()[:32]
    directory = cache_root() / INDEX_CACHE_DIR / key
    embedded = 0
    if not (directory / "manifest.json").is_file():  # a cached build passed the check below
        embedder = load_embedder(cfg.embedding_model)
        if cfg.chunk_tokens > input_limit(embedder):
            raise NotRun(f"rag.chunk_tokens ({cfg.chunk_tokens}) exceeds what {cfg.embedding_model} reads at once "
                         f"({input_limit(embedder)} tokens); lower it")
        embedded = _build_chunks(files, task_dir, cfg, embedder, directory)
    touch_used(directory / "manifest.json")
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    if manifest["skipped"]:
        listed = "; ".join(f"{source} ({reason})" for source, reason in manifest["skipped"])
        print(f"warning: rag: skipped {len(manifest['skipped'])} unreadable document file(s): {listed}",
              file=sys.stderr, flush=True)
    if not manifest["chunks"]:
        raise NotRun(f"no documents (no readable text in {docs_dir})")
    with (directory / "chunks.jsonl").open(encoding="utf-8") as f:
        chunks = [Chunk(**json.loads(line)) for line in f]
    spec = choose_index(len(chunks), cfg)
    index, index_cost = _open_index(directory, spec)
    cost = {
        "documents": manifest["documents"], "files": manifest["files"], "chunks": len(chunks),
        "chunk_tokens": cfg.chunk_tokens, "chunk_overlap": cfg.chunk_overlap,
        "embedding_model": cfg.embedding_model, "embedding_dim": manifest["dim"],
        "chunking_s": manifest["chunking_s"], "embedding_s": manifest["embedding_s"],
        "embedding_chunks_per_s": round(len(chunks) / manifest["embedding_s"], 1) if manifest["embedding_s"] else None,
        "index": spec.kind, "index_params": spec.params(), **index_cost,
        "build_s": round(manifest["chunking_s"] + manifest["embedding_s"] + index_cost["index_build_s"], 3),
        "cache_hit": embedded == 0, "embedded_chunks": embedded, "cache_dir": str(directory),
        "skipped_files": [f"{source} ({reason})" for source, reason in manifest["skipped"]]
        + [f"{docs_io.source_name(path, task_dir)} ({reason})" for path, reason in unlisted],
    }
    return Corpus(chunks, index, spec, cfg.embedding_model, digest, directory, cost)


def _build_chunks(files: list[Path], task_dir: Path, cfg: RagConfig, embedder: Any, directory: Path) -> int:
    """Read, chunk and embed the documents into `directory`; return the number of chunks embedded."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        began = time.perf_counter()
        documents, skipped = docs_io.read_documents(files, task_dir)
        chunks = chunk_documents(documents, embedder.tokenizer, cfg.chunk_tokens, cfg.chunk_overlap)
        chunking_s = time.perf_counter() - began
        print(f"[rag] embedding {len(chunks)} chunks of {len(documents)} documents with {cfg.embedding_model}",
              file=sys.stderr, flush=True)
        dim = embedder.get_embedding_dimension()
        vectors, embedding_s = embed_chunks(embedder, [c.text for c in chunks]) if chunks else (
            np.zeros((0, dim), np.float32), 0.0)
        np.save(tmp / "embeddings.npy", vectors)
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
        # manifest.json is written last: its presence means the folder is complete.
        (tmp / "manifest.json").write_text(json.dumps({
            "format": FORMAT, "files": len(files), "documents": len(documents), "chunks": len(chunks),
            "skipped": skipped, "dim": dim, "embedding_model": cfg.embedding_model,
            "chunk_tokens": cfg.chunk_tokens, "chunk_overlap": cfg.chunk_overlap,
            "chunking_s": round(chunking_s, 3), "embedding_s": round(embedding_s, 3),
        }, indent=2), encoding="utf-8")
        try:
            tmp.rename(directory)
        except OSError:  # another process finished the same build first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(chunks)


def _open_index(directory: Path, spec: IndexSpec) -> tuple[Any, dict[str, Any]]:
    """The index for `spec`, built from the stored embeddings on first use; and its build cost."""
    path = directory / f"index-{spec.name}.faiss"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        return load_index(path, spec), json.loads(meta.read_text(encoding="utf-8"))
    index, seconds = build_index(np.load(directory / "embeddings.npy"), spec)
    cost = {"index_build_s": round(seconds, 4), "index_bytes": save_index(index, path)}
    meta.write_text(json.dumps(cost), encoding="utf-8")
    return index, cost
