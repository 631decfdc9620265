"""The RAG strategy on real MiniLM, real FAISS and the real embedded model, over tests/assets/docs."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import RagConfig
from harness.errors import NotRun
from harness.retrieval import embedding
from harness.retrieval.embedding import embed_query
from harness.retrieval.store import open_corpus
from tests.conftest import ASSETS, write_task

SMALL = RagConfig(chunk_tokens=32, chunk_overlap=8)
"""Small chunks, so a document has several and the right one must win within it."""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache for the index, sharing the converted language model with the real cache."""
    from harness.models import cache_root

    models = cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("FTRAG_CACHE", str(cache))
    return cache


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    shutil.copytree(ASSETS / "docs", tmp_path / "task" / "docs")
    return tmp_path / "task"


def embedded_since(before: int) -> int:
    return embedding.EMBEDDED_CHUNKS[0] - before


def top(corpus, question: str):
    return corpus.retrieve(embed_query(corpus.embedder, question), 3)


def test_known_questions_retrieve_the_chunk_that_answers_them(task_dir: Path) -> None:
    corpus = open_corpus(task_dir / "docs", task_dir, SMALL)
    assert len({c.source for c in corpus.chunks}) == 6 and len(corpus.chunks) > 8
    best, score = top(corpus, "Who is the harbor master of Port Velmora?")[0]
    assert best.source == "docs/harbor.md" and "Ilse Varga" in best.text and 0 < score <= 1
    assert top(corpus, "How long is the Aletsch glacier?")[0][0].id == "docs/glaciers.jsonl:line1#0"
    assert top(corpus, "When was the Karst Point lighthouse built?")[0][0].source == "docs/lighthouse.pdf"
    assert top(corpus, "How should I store a refractor telescope?")[0][0].source == "docs/telescope.html"
    scores = [s for _, s in top(corpus, "When does the ferry leave?")]
    assert scores == sorted(scores, reverse=True)


def test_unchanged_inputs_embed_nothing_and_a_changed_file_rebuilds(task_dir: Path) -> None:
    before = embedding.EMBEDDED_CHUNKS[0]
    first = open_corpus(task_dir / "docs", task_dir, SMALL)
    assert embedded_since(before) == len(first.chunks) == first.cost["embedded_chunks"]
    assert not first.cost["cache_hit"] and first.cost["index_bytes"] > 0 and first.cost["embedding_s"] > 0

    before = embedding.EMBEDDED_CHUNKS[0]
    again = open_corpus(task_dir / "docs", task_dir, SMALL)
    assert embedded_since(before) == 0 and again.cost["cache_hit"] and again.cost["embedded_chunks"] == 0
    assert [c.id for c in again.chunks] == [c.id for c in first.chunks] and again.directory == first.directory
    assert again.cost["embedding_s"] == first.cost["embedding_s"]  # the original build's cost is kept

    hnsw = open_corpus(task_dir / "docs", task_dir, replace(SMALL, index="hnsw"))  # a new index, same vectors
    assert embedded_since(before) == 0 and hnsw.spec.kind == "hnsw"
    assert top(hnsw, "Who is the harbor master of Port Velmora?")[0][0].source == "docs/harbor.md"

    harbor = task_dir / "docs" / "harbor.md"
    harbor.write_text(harbor.read_text().replace("Ilse Varga", "Tomasz Brenner"))
    changed = open_corpus(task_dir / "docs", task_dir, SMALL)
    assert embedded_since(before) == len(changed.chunks) and changed.directory != first.directory
    assert "Tomasz Brenner" in top(changed, "Who is the harbor master of Port Velmora?")[0][0].text

    before = embedding.EMBEDDED_CHUNKS[0]
    open_corpus(task_dir / "docs", task_dir, replace(SMALL, chunk_overlap=4))  # chunking is part of the key
    assert embedded_since(before) > 0


def test_query_vectors_are_cached_with_their_measured_embedding_time(task_dir: Path) -> None:
    import numpy as np

    from harness.retrieval.store import load_embedder

    corpus = open_corpus(task_dir / "docs", task_dir, SMALL)
    texts = ["Who is the harbor master of Port Velmora?", "When was the Karst Point lighthouse built?"]
    first = corpus.query_vectors(texts)
    load_embedder.cache_clear()  # a new process: the rerun below must not need the model
    again = corpus.query_vectors(texts)
    assert load_embedder.cache_info().currsize == 0
    assert [c for *_, c in first] == [False, False] and [c for *_, c in again] == [True, True]
    for (v1, s1, _), (v2, s2, _) in zip(first, again):
        assert np.array_equal(v1, v2) and v1.shape == (1, 384) and s1 == s2 > 0
    fresh = corpus.query_vectors(texts, use_cache=False)  # compare --no-cache embeds again
    assert [c for *_, c in fresh] == [False, False] and np.allclose(fresh[0][0], first[0][0], atol=1e-5)
    assert corpus.retrieve(again[0][0], 1)[0][0].source == "docs/harbor.md"


def test_undecodable_files_are_skipped_with_one_warning(task_dir: Path, capsys: pytest.CaptureFixture) -> None:
    (task_dir / "docs" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (task_dir / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    corpus = open_corpus(task_dir / "docs", task_dir, SMALL)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "docs/latin1.txt" in warnings[0] and "docs/broken.pdf" in warnings[0]
    assert "docs/harbor.md" not in warnings[0]
    assert {c.source for c in corpus.chunks} >= {"docs/harbor.md", "docs/lighthouse.pdf"}
    assert min(corpus.cost["skipped_files"]).startswith("docs/broken.pdf (")


@pytest.mark.parametrize("case", ["missing", "empty", "only_unreadable"])
def test_rag_is_not_run_without_documents(tmp_path: Path, case: str) -> None:
    from harness.config import TaskConfig
    from strategies import StrategyContext
    from strategies.rag import RagStrategy

    task = tmp_path / "t"
    if case != "missing":
        (task / "docs").mkdir(parents=True)
    if case == "only_unreadable":
        (task / "docs" / "blob.bin").write_bytes(b"\xff\xfe\x00\x01")

    def no_backend():
        raise AssertionError("rag must not load the model when it cannot run")

    ctx = StrategyContext(TaskConfig(), task, tmp_path / "out", no_backend)
    with pytest.raises(NotRun, match="^no documents"):
        RagStrategy().fit([], [], ctx)


QUESTIONS = [
    {"id": "harbor", "instruction": "Who is the harbor master of Port Velmora?",
     "output": "The harbor master of Port Velmora is Ilse Varga.", "source": "docs/harbor.md"},
    {"id": "lighthouse", "instruction": "When was the lighthouse on Karst Point built?",
     "output": "The lighthouse on Karst Point was built in 1874."},
    {"id": "tomato", "instruction": "How much light do tomato seedlings need?",
     "output": "Sixteen hours a day.", "source": "docs/gardening.txt"},
    {"id": "chess", "instruction": "What is en passant?", "output": "A pawn capture.",
     "source": "docs/archive/chess.json"},
]


def test_compare_runs_rag_and_records_retrieval(task_dir: Path, tmp_path: Path) -> None:
    """End to end through the runner: rag answers from the passages, with its costs and hit@k on disk."""
    from harness.runner import compare
    from harness.task import load_task
    from strategies import StrategyContext
    from strategies.rag import RagStrategy

    lines = [json.dumps(q) for q in QUESTIONS]
    # Fixed settings (no dev search): this test is about what retrieval records at k=2.
    write_task(task_dir, "scorer: contains\nstrategies: [rag]\nprompt: {search: false}\n"
               "rag: {k: 2, chunk_tokens: 64, chunk_overlap: 8, search: false}\n"
               "generation: {max_new_tokens: 16, stop: ['\\n']}\ndata: {train: train.jsonl, test: test.jsonl}\n",
               {"train.jsonl": "\n".join(lines[2:]) + "\n", "test.jsonl": "\n".join(lines[:2]) + "\n"})
    task = load_task(str(task_dir))
    run_dir = compare(task, tmp_path / "results", log=lambda *a: None, run_benchmarks=False)

    rag = json.loads((run_dir / "rag" / "metrics.json").read_text())
    assert rag["status"] == "ok" and rag["n"] == 2
    r = rag["retrieval"]  # metrics.json schema 2 (harness/run_schema.py): seconds, no unit suffixes
    assert r["labeled"] == 2 and r["hit_at_k"] == 1.0 and r["mrr"] == 1.0  # source, then answer
    assert r["by_source"]["n"] == 1 and r["by_answer"]["n"] >= 1
    assert r["p50"] > 0 and r["generation_p50"] > 0 and r["passages_in_prompt_mean"] == 2
    fit = rag["fit"]["details"]
    assert fit["chunks"] > 0 and fit["index"] == "flat" and fit["index_bytes"] > 0 and fit["build_s"] > 0

    predictions = [json.loads(line) for line in (run_dir / "rag" / "predictions.jsonl").read_text().splitlines()]
    harbor = predictions[0]
    assert harbor["retrieved"][0]["source"] == "docs/harbor.md" and len(harbor["retrieved"]) == 2
    assert harbor["prompt_tokens"] > 120  # system prompt, two passages of up to 64 tokens, the question
    assert harbor["latency_s"] == pytest.approx(harbor["retrieval_s"] + harbor["generation_s"], abs=1e-3)
    assert "1874" in predictions[1]["prediction"]  # from the PDF passage: an invented fact the model can't know

    ctx = StrategyContext(task.config, task.folder, tmp_path / "again", lambda: None)  # a rerun's fit
    again = RagStrategy().fit(task.data.train, task.data.dev, ctx).details
    assert again["cache_hit"] and again["embedded_chunks"] == 0 and again["cache_dir"] == fit["cache_dir"]
