"""Retrieval over a task's documents, one file per concern:

    documents.py   read every file under docs/ into text (txt, md, html, json/jsonl, pdf)
    chunking.py    split texts into overlapping windows of embedding-model tokens
    embedding.py   sentence-transformers: load a model, embed chunks and queries
    index.py       FAISS: exact inner product, or HNSW / IVF above a size threshold
    store.py       the cached corpus (chunks + embeddings + index) keyed by a content hash
    quality.py     hit@k and MRR from labels the data already carries (source, answer)

`strategies/rag.py` puts these together; `harness/speed/retrieval.py` measures them.
"""

INDEX_CACHE_DIR = "rag"
"""The corpus cache's folder under `cache_root()` (named before other strategies retrieved; kept so
existing caches stay valid)."""
