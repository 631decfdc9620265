"""Retrieval parts on their own: document reading, chunking, index choice, prompt packing, hit@k / MRR."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.config import RagConfig
from harness.data import Example
from harness.retrieval.chunking import Chunk, chunk_documents
from harness.retrieval.context import build_context, pack_passages
from harness.retrieval.documents import list_files, read_documents
from harness.retrieval.embedding import load_embedder
from harness.retrieval.index import build_index, choose_index, search
from harness.retrieval.quality import retrieval_quality
from tests.conftest import ASSETS


@pytest.fixture
def docs_task(tmp_path: Path) -> Path:
    """A task folder holding a copy of tests/assets/docs."""
    shutil.copytree(ASSETS / "docs", tmp_path / "docs")
    return tmp_path


def test_every_document_format_becomes_text(docs_task: Path) -> None:
    documents, skipped = read_documents(list_files(docs_task / "docs"), docs_task)
    assert skipped == []
    by_place = {(d.source, d.locator): d.text for d in documents}
    assert set(by_place) == {
        ("docs/harbor.md", ""), ("docs/gardening.txt", ""), ("docs/telescope.html", ""),
        ("docs/glaciers.jsonl", "line 1"), ("docs/glaciers.jsonl", "line 3"),  # line 2 has no text field
        ("docs/archive/chess.json", "record 1"), ("docs/archive/chess.json", "record 2"),
        ("docs/lighthouse.pdf", "page 1"),
    }
    html = by_place[("docs/telescope.html", "")]
    assert "objective lens pointing down" in html and "about 20 minutes outdoors" in html  # &nbsp; decoded
    assert "zqxjv" not in html and "color: #333" not in html and "<p>" not in html  # script, style, tags
    assert "built in 1874" in by_place[("docs/lighthouse.pdf", "page 1")]


def test_unreadable_files_are_skipped_with_a_reason(docs_task: Path) -> None:
    (docs_task / "docs" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs_task / "docs" / "scan.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs_task / "docs" / "empty.md").write_text("  \n")
    (docs_task / "docs" / "bad.json").write_text("{not json")
    (docs_task / "docs" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored, not reported
    documents, skipped = read_documents(list_files(docs_task / "docs"), docs_task)
    reasons = dict(skipped)
    assert set(reasons) == {"docs/latin1.txt", "docs/scan.pdf", "docs/empty.md", "docs/bad.json"}
    assert reasons["docs/latin1.txt"].startswith("not UTF-8") and "PDF" in reasons["docs/scan.pdf"]
    assert len(documents) == 8  # the readable ones are all still there


def test_chunks_are_overlapping_token_windows_that_keep_source_and_position(docs_task: Path) -> None:
    tokenizer = load_embedder(RagConfig().embedding_model).tokenizer
    documents, _ = read_documents([docs_task / "docs" / "harbor.md"], docs_task)
    chunks = chunk_documents(documents, tokenizer, size=32, overlap=8)
    assert len(chunks) >= 4
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks[:2]] == ["docs/harbor.md#0", "docs/harbor.md#1"]
    text = documents[0].text
    for a, b in itertools.pairwise(chunks):
        assert a.text == text[a.char_start:a.char_end] and a.source == "docs/harbor.md"
        assert b.char_start < a.char_end < b.char_end  # consecutive windows overlap
        shared = tokenizer(text[b.char_start:a.char_end], add_special_tokens=False)["input_ids"]
        assert 6 <= len(shared) <= 10  # about `overlap` tokens (a cut word may re-tokenize differently)
    assert all(c.tokens <= 32 for c in chunks)
    assert any("Ilse Varga" in c.text for c in chunks)  # original casing, not the uncased tokenizer's


def test_auto_index_is_exact_until_the_threshold_then_approximate() -> None:
    cfg = RagConfig(approximate_above=1000, k=8, hnsw_ef_search=4)
    assert choose_index(1000, cfg).kind == "flat"
    hnsw = choose_index(1001, cfg)
    assert hnsw.kind == "hnsw" and hnsw.ef_search == 8  # raised to k
    ivf = choose_index(100_000, replace(cfg, index="ivf"))
    assert ivf.nlist == 1265 and ivf.nprobe == 16  # 4 x sqrt(chunks)
    assert choose_index(10_000, replace(cfg, index="ivf")).nlist == 256  # at most 1 cluster per 39 points
    assert choose_index(100, replace(cfg, index="ivf")).nlist == 2


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_every_index_kind_finds_a_stored_vector(kind: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, _ = build_index(vectors, choose_index(len(vectors), RagConfig(index=kind, ivf_nprobe=64)))
    scores, ids = search(index, vectors[[5, 1234]], 3)
    assert ids[:, 0].tolist() == [5, 1234] and np.allclose(scores[:, 0], 1.0, atol=1e-4)


def _chunk(i: int, text: str, source: str = "docs/a.md") -> Chunk:
    return Chunk(f"{source}#{i}", source, text, "", i, 0, len(text), len(text.split()))


def test_packing_drops_the_lowest_ranked_passages_first() -> None:
    chunks = [_chunk(i, " ".join([f"w{i}"] * 10)) for i in range(5)]

    def make(context: str | None) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{context or ''}\n\nquestion words here"}]

    def count(messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) for m in messages)

    full = count(make(build_context("Passages:\n{passages}", chunks)))
    messages, used = pack_passages(chunks, "Passages:\n{passages}", make, count, budget=full)
    assert used == 5
    messages, used = pack_passages(chunks, "Passages:\n{passages}", make, count, budget=full - 1)
    assert used == 4 and "w3" in messages[0]["content"] and "w4" not in messages[0]["content"]
    messages, used = pack_passages(chunks, "Passages:\n{passages}", make, count, budget=5)
    assert used == 0 and messages == make(None)
    assert "[1] docs/a.md\nw0" in build_context("{passages}", chunks)  # each passage names its source


def test_hit_at_k_and_mrr_from_sources_and_verbatim_answers() -> None:
    chunks = [_chunk(0, "Ferries leave at noon from pier three.", "docs/ferry.md"),
              _chunk(1, "The harbor master is Ilse Varga.", "docs/harbor.md"),
              _chunk(2, "Bread is baked at six.", "docs/bakery.md")]

    def example(source: str | None, output: str) -> Example:
        return Example("x", "q", source=source, output=output)

    examples = [example("docs/harbor.md", "whatever"),    # by source: rank 2
                example("bakery.md", "whatever"),         # by source, relative to docs/: rank 1
                example(None, "the  harbor master is ILSE varga."),  # by answer: rank 2
                example(None, "Not in any chunk at all."),  # unlabeled
                example("docs/none.md", "no")]            # by source: miss
    ferry, harbor, bakery = (c.id for c in chunks)
    retrieved = [[ferry, harbor, bakery], [bakery, ferry], [ferry, harbor], [ferry, harbor], [ferry]]
    result = retrieval_quality(retrieved, examples, chunks, k=3)
    assert result["retrieval_labeled"] == 4
    assert result["hit_at_k"] == 0.75 and result["mrr"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    assert result["retrieval_by_answer"] == {"n": 1, "hit_at_k": 1.0, "mrr": 0.5}
    assert result["retrieval_by_source"]["n"] == 3
    assert retrieval_quality(retrieved, examples, chunks, k=1)["hit_at_k"] == 0.25  # only bakery at rank 1
