"""RAFT-style training records (harness/training/raft.py) on real MiniLM, real FAISS and the embedded
model's tokenizer, over tests/assets/docs: the passages in each training prompt, the distractor share,
and the prompt being exactly the one `rag_finetune` answers with. No training here (see
tests/test_raft_e2e.py)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.config import PromptConfig, RagConfig, TaskConfig
from harness.data import Example
from harness.retrieval.chunking import Chunk
from harness.retrieval.quality import answers
from harness.training import formatting
from harness.training.raft import TrainingContext, context_records, distractor_ids
from tests.conftest import ASSETS

RAG = RagConfig(k=2, chunk_tokens=32, chunk_overlap=8)
NEW_TOKENS = 4
"""generation.max_new_tokens: the answer-time prompt budget is the context window (8,192) less this."""
PROMPT = PromptConfig(system="Answer briefly.")
EXAMPLES = [
    Example("harbor", "Who is the harbor master of Port Velmora?", output="Ilse Varga", source="docs/harbor.md"),
    Example("ferry", "When does the ferry to the mainland leave?", output="at noon from pier three"),
    Example("glacier", "How long is the Aletsch glacier?", output="about 23 kilometres long"),
    Example("tomato", "How much light do tomato seedlings need?", output="sixteen hours of light a day",
            source="docs/gardening.txt"),
    Example("lighthouse", "When was the Karst Point lighthouse built?", output="1874"),
    Example("telescope", "How should I store a refractor telescope?", output="upright, capped, dry"),
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache for the index, sharing the converted language model with the real cache."""
    from harness.models import cache_root

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(cache_root() / "models", target_is_directory=True)
    monkeypatch.setenv("FTRAG_CACHE", str(cache))
    return cache


@pytest.fixture
def corpus(tmp_path: Path):
    from harness.retrieval.store import open_corpus

    shutil.copytree(ASSETS / "docs", tmp_path / "task" / "docs")
    return open_corpus(tmp_path / "task" / "docs", tmp_path / "task", RAG)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from harness.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"))


def records(corpus, tokenizer, share: float = 0.5, seed: int = 0, max_length: int = 2048):
    context = TrainingContext(corpus, "test-index", RAG.k, share, RAG.context_template)
    stops = formatting.stop_tokens(tokenizer, [2])
    return context_records(EXAMPLES, context, PROMPT, tokenizer, stops, seed, 8192 - NEW_TOKENS, max_length)


def test_a_passage_answers_by_its_source_or_the_whole_answer_in_it() -> None:
    def chunk(text: str, source: str = "docs/other.md") -> Chunk:
        return Chunk(f"{source}#0", source, text, "", 0, 0, len(text), 8)

    harbor = EXAMPLES[0]
    assert answers(chunk("Nothing about it.", "docs/harbor.md"), harbor)  # its source document
    assert answers(chunk("Nothing about it.", "docs/harbor.md"), dataclasses.replace(harbor, source="harbor.md"))
    assert answers(chunk("The master is ILSE\n  varga, since 2001."), harbor)  # case and spacing ignored
    assert not answers(chunk("Ilse Vargas keeps the tide tables."), harbor)  # whole words only
    assert answers(chunk("It was built in 1874."), EXAMPLES[4])  # short answers count too
    assert not answers(chunk("It was built in 18745."), EXAMPLES[4])
    assert not answers(chunk("Anything."), Example("x", "q", output=""))


def test_the_distractor_share_is_exact_and_seeded() -> None:
    examples = [Example(f"ex{i}", f"question {i}", output="a") for i in range(40)]
    chosen = distractor_ids(examples, 0.25, seed=0)
    assert len(chosen) == 10 and chosen == distractor_ids(list(reversed(examples)), 0.25, seed=0)
    assert chosen != distractor_ids(examples, 0.25, seed=1) and len(distractor_ids(examples, 0.25, seed=1)) == 10
    assert distractor_ids(examples, 0.0, 0) == set() and len(distractor_ids(examples, 1.0, 0)) == 40
    # More examples keep the earlier choices: the order is by hash, not by position.
    assert chosen <= distractor_ids(examples + [Example("new", "q", output="a")], 0.5, seed=0)


def test_training_prompts_carry_the_top_passages_or_distractors_only(corpus, tokenizer) -> None:
    from harness.retrieval.embedding import embed_query

    built = records(corpus, tokenizer)
    chosen = set(built.distractor_ids)
    assert len(chosen) == 3 and built.trimmed == 0 and len(built.records) == len(EXAMPLES)
    by_id = {c.id: c for c in corpus.chunks}
    for example, record, ids in zip(EXAMPLES, built.records, built.passages):
        passages = [by_id[i] for i in ids]
        assert len(passages) == RAG.k and all(p.text.strip() in record["prompt"] for p in passages)
        assert record["prompt"].index("Question:") < record["prompt"].index(example.instruction)
        assert record["completion"] == f"{example.output}<|im_end|>"
        if example.id in chosen:
            assert not any(answers(p, example) for p in passages), example.id
        else:
            top = corpus.retrieve(embed_query(corpus.embedder, example.instruction), RAG.k)
            assert ids == [c.id for c, _ in top], example.id
    # The top passages answer these questions, so the distractor examples really lost them.
    answered = [e.id for e, ids in zip(EXAMPLES, built.passages) if any(answers(by_id[i], e) for i in ids)]
    assert set(answered) <= {e.id for e in EXAMPLES} - chosen and len(answered) >= 2
    assert records(corpus, tokenizer) == built  # deterministic: same records, same distractors
    assert set(records(corpus, tokenizer, seed=3).distractor_ids) != chosen


def test_a_record_too_long_for_max_seq_length_drops_its_lowest_passages(corpus, tokenizer) -> None:
    full = records(corpus, tokenizer, share=0.0)
    lengths = [len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) + 1
               for r in full.records]
    limit = max(lengths) - 5
    cut = records(corpus, tokenizer, share=0.0, max_length=limit)
    assert cut.trimmed == sum(n > limit for n in lengths) >= 1
    for before, after in zip(full.passages, cut.passages):
        assert after == before[:len(after)]  # the top-ranked ones kept, in order
    assert all(len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) + 1 <= limit
               for r in cut.records)


def test_the_training_prompt_is_the_prompt_rag_finetune_answers_with(corpus, tokenizer, backend, tmp_path) -> None:
    """rag_finetune's answer path (RagStrategy without shots) on the same questions: the same passages and
    a prompt of exactly as many tokens as the training record's."""
    from strategies import StrategyContext
    from strategies.rag import RagStrategy

    built = records(corpus, tokenizer, share=0.0)
    config = dataclasses.replace(TaskConfig(), prompt=PROMPT, rag=RAG,
                                 generation=dataclasses.replace(TaskConfig().generation, max_new_tokens=NEW_TOKENS))
    rag = RagStrategy(few_shot=False)
    rag.corpus, rag.k = corpus, RAG.k
    ctx = StrategyContext(config, tmp_path, tmp_path / "out", lambda: backend, use_cache=False)
    predictions = rag.answer([e.query() for e in EXAMPLES], ctx)
    for prediction, record, ids in zip(predictions, built.records, built.passages):
        assert [r["chunk_id"] for r in prediction.extra["retrieved"]] == ids
        assert prediction.extra["passages_in_prompt"] == len(ids)
        assert prediction.prompt_tokens == backend.count_tokens(record["prompt"])
