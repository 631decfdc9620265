"""FAISS indexes over normalized vectors (inner product = cosine): exact, HNSW or IVF.

`index: auto` is exact (`IndexFlatIP`) up to `approximate_above` chunks and HNSW above. Build-time
parameters are part of the index's file name; search-time ones (efSearch, nprobe) are set on load.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import RagConfig

MIN_POINTS_PER_CLUSTER = 39
"""FAISS warns when k-means has fewer training points than this per IVF cluster."""


@dataclass(frozen=True)
class IndexSpec:
    kind: str
    """flat, hnsw or ivf."""
    m: int = 0
    ef_construction: int = 0
    ef_search: int = 0
    nlist: int = 0
    nprobe: int = 0

    @property
    def name(self) -> str:
        """Build parameters only: two specs that differ in search parameters share one index file."""
        if self.kind == "hnsw":
            return f"hnsw-m{self.m}-efc{self.ef_construction}"
        if self.kind == "ivf":
            return f"ivf-nlist{self.nlist}"
        return "flat"

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def params(self) -> dict[str, int]:
        if self.kind == "hnsw":
            return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}
        if self.kind == "ivf":
            return {"nlist": self.nlist, "nprobe": self.nprobe}
        return {}


def choose_index(n_vectors: int, cfg: RagConfig) -> IndexSpec:
    """The index `cfg` asks for, with sizes resolved for this many vectors."""
    kind = cfg.index
    if kind == "auto":
        kind = "hnsw" if n_vectors > cfg.approximate_above else "flat"
    if kind == "hnsw":
        return IndexSpec("hnsw", m=cfg.hnsw_m, ef_construction=cfg.hnsw_ef_construction,
                         ef_search=max(cfg.hnsw_ef_search, cfg.k))
    if kind == "ivf":
        nlist = cfg.ivf_nlist or round(4 * math.sqrt(n_vectors))
        nlist = max(1, min(nlist, n_vectors // MIN_POINTS_PER_CLUSTER))
        return IndexSpec("ivf", nlist=nlist, nprobe=min(cfg.ivf_nprobe, nlist))
    return IndexSpec("flat")


def build_index(vectors: np.ndarray, spec: IndexSpec) -> tuple[Any, float]:
    """(FAISS index holding `vectors` in row order, build seconds)."""
    import faiss

    began = time.perf_counter()
    dim = vectors.shape[1]
    if spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
    elif spec.kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, spec.nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    set_search_params(index, spec)
    return index, time.perf_counter() - began


def set_search_params(index: Any, spec: IndexSpec) -> None:
    if spec.kind == "hnsw":
        index.hnsw.efSearch = spec.ef_search
    elif spec.kind == "ivf":
        index.nprobe = spec.nprobe


def save_index(index: Any, path: Path) -> int:
    """Write atomically (temp file, then rename); return the file's size in bytes."""
    import faiss

    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    tmp.replace(path)
    return path.stat().st_size


def load_index(path: Path, spec: IndexSpec) -> Any:
    import faiss

    index = faiss.read_index(str(path))
    set_search_params(index, spec)
    return index


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row ids), each (n_queries, k) best first; id -1 where fewer than k vectors exist.

    A single query runs on one OpenMP thread: it has no parallel work, and on a busy CPU the idle
    threads' barrier waits dominate (flat, 20k vectors, 2 shared cores: 16 ms on 2 threads, 0.9 ms on 1).
    """
    import faiss

    if len(queries) != 1:
        return index.search(queries, min(k, index.ntotal))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, min(k, index.ntotal))
    finally:
        faiss.omp_set_num_threads(threads)
