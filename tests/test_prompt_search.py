"""Dev-tuned baselines (harness/search.py, strategies/prompt.py, strategies/rag.py): the search picks the better
candidate on dev, never reads the test split, is cached by content; kNN shots, the config keys and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data import Example
from harness.errors import ConfigError
from harness.search import choose
from tests.conftest import private_cache, write_task

# A task where one candidate is clearly better on dev: every answer is "banana", whatever the question.
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "What colour is the sky?",
             "Who wrote Hamlet?", "What is two plus two?", "What is the boiling point of water?",
             "Which planet is largest?", "What language is spoken in Brazil?", "What is the opposite of hot?",
             "How many days are in a week?", "What gas do plants breathe in?", "What is frozen water called?"]
TEST_QUESTIONS = ["Name the longest river in Africa.", "What is the square root of nine?"]


def lines(questions: list[str], prefix: str) -> str:
    return "".join(json.dumps({"id": f"{prefix}{i}", "instruction": q, "output": "banana"}) + "\n"
                   for i, q in enumerate(questions))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    yield from private_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def model(cache):
    from harness.backends import load_backend
    from harness.models import resolve_model

    return load_backend("transformers", resolve_model("embedded:smollm2-135m-instruct"), use_cache=True)


class Recording:
    """The real backend, recording every conversation it is asked to render or answer; `refuse` makes
    generating an error (a cached search must generate nothing)."""

    def __init__(self, inner, refuse: bool = False) -> None:
        self.inner, self.refuse, self.seen = inner, refuse, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def render(self, messages):
        self.seen.append(messages)
        return self.inner.render(messages)

    def generate(self, conversations, *args, **kwargs):
        assert not self.refuse, "a cached search generated"
        self.seen.extend(conversations)
        return self.inner.generate(conversations, *args, **kwargs)


def banana_task(folder: Path):
    from harness.task import load_task

    write_task(folder, "scorer: contains\nstrategies: [prompt]\ndata: {train: train.jsonl, dev: dev.jsonl, "
               "test: test.jsonl}\ngeneration: {max_new_tokens: 8, batch_size: 4, stop: ['\\n']}\n"
               "prompt:\n  search_k_shots: [3]\n",
               {"train.jsonl": lines(QUESTIONS[:4], "t"), "dev.jsonl": lines(QUESTIONS[4:8], "d"),
                "test.jsonl": lines(TEST_QUESTIONS, "x")})
    return load_task(str(folder))


def test_the_search_picks_the_clearly_better_candidate_and_never_reads_test(model, tmp_path: Path) -> None:
    """Zero-shot answers the questions; three shots answering "banana" teach the task: clearly better on dev."""
    from strategies import StrategyContext
    from strategies.prompt import PromptStrategy

    task = banana_task(tmp_path / "banana")
    recorder = Recording(model)
    ctx = StrategyContext(task.config, task.folder, tmp_path / "out", lambda: recorder)
    strategy = PromptStrategy()
    fit = strategy.fit(task.data.train, task.data.dev, ctx)  # fit sees train and dev only, by signature

    record = fit.details["search"]
    rows = {r["candidate"]: r for r in record["candidates"]}
    assert list(rows) == ["k=0", "k=3 random", "k=3 knn"]  # k_shot 0 and search_k_shots [3]
    best = max(rows["k=3 random"]["dev_score"], rows["k=3 knn"]["dev_score"])
    assert best >= rows["k=0"]["dev_score"] + 0.5  # clearly better
    assert record["chosen"] != "k=0" and rows[record["chosen"]]["dev_score"] == best
    assert fit.details["k_shot"] == 3 and record["dev_items"] == 4 and record["answers"] == 12
    assert not record["cached"]

    seen = json.dumps(recorder.seen)
    assert all(q in seen for q in QUESTIONS[4:8])  # the dev questions were asked ...
    assert not any(q in seen for q in TEST_QUESTIONS)  # ... and no test question, during fit
    predictions = strategy.answer([e.query() for e in task.data.test], ctx)
    assert all(q in json.dumps(recorder.seen) for q in TEST_QUESTIONS)  # the test, once, with the choice
    assert len(predictions) == 2 and all(p.prompt_tokens > rows["k=0"]["prompt_tokens_mean"] for p in predictions)

    again = PromptStrategy().fit(task.data.train, task.data.dev, StrategyContext(
        task.config, task.folder, tmp_path / "again", lambda: Recording(model, refuse=True)))
    assert again.details["search"]["cached"] and again.details["search"]["chosen"] == record["chosen"]


def test_knn_shots_are_the_nearest_training_examples_most_similar_last(cache) -> None:
    from harness.shots import ShotPool

    train = [Example("a", "How do I bake sourdough bread?", output="x"),
             Example("b", "What is the tallest mountain on Earth?", output="y"),
             Example("c", "Which yeast is best for baking bread at home?", output="z"),
             Example("d", "How fast does light travel?", output="w")]
    pool = ShotPool(train, "embedded:all-MiniLM-L6-v2")
    (shots,) = pool.nearest_many([Example("q", "Tips for baking bread with yeast?").query()], 2)
    assert {s.id for s in shots} == {"a", "c"} and shots[-1].id == "c"
    assert ShotPool(list(reversed(train)), "embedded:all-MiniLM-L6-v2").vectors.tobytes() == pool.vectors.tobytes()


def row(label: str, score: float | None, tokens: float | None) -> dict:
    return {"candidate": label, "settings": {}, "dev_score": score, "prompt_tokens_mean": tokens}


def test_ties_go_to_the_cheaper_candidate_and_skipped_ones_never_win() -> None:
    assert choose([row("long", 0.5, 300.0), row("short", 0.5, 120.0), row("worse", 0.25, 50.0)])["candidate"] == "short"
    assert choose([row("first", 0.5, 100.0), row("second", 0.5, 100.0)])["candidate"] == "first"
    assert choose([row("skipped", None, None), row("ran", 0.0, 10.0)])["candidate"] == "ran"
    assert choose([row("skipped", None, None)]) is None


@pytest.mark.parametrize("value, problem", [
    ("[0, two]", "expected a list of integers"), ("[true]", "expected a list of integers"),
    ("[0, 65]", "65 is above the maximum 64"), ("[3, 3]", "3 is listed twice"),
])
def test_search_k_shots_must_be_a_list_of_small_integers(tmp_path: Path, value: str, problem: str) -> None:
    from harness.config import load_task_config

    write_task(tmp_path, f"data: {{file: all.jsonl}}\nprompt:\n  search_k_shots: {value}\n", {"all.jsonl": ""})
    with pytest.raises(ConfigError, match=f"task.yaml:3: field 'prompt.search_k_shots': .*{problem}"):
        load_task_config(tmp_path / "task.yaml")
    write_task(tmp_path, "data: {file: all.jsonl}\nprompt:\n  search_k_shots: [0, 2]\n", {"all.jsonl": ""})
    assert load_task_config(tmp_path / "task.yaml").prompt.search_k_shots == [0, 2]


SEARCH = {"dev_items": 16, "dev_available": 40, "dev_limit": 16, "scorer": "exact_match", "answers": 32,
          "seconds": 75.0, "cached": False, "chosen": "k=1", "rule": "highest mean dev score",
          "candidates": [{"candidate": "k=1", "settings": {"k": 1, "shots": False}, "dev_score": 0.125,
                          "dev_items": 16, "prompt_tokens_mean": 410.0, "seconds": 30.0, "hit_at_k": 0.8},
                         {"candidate": "k=4", "settings": {"k": 4, "shots": False}, "dev_score": 0.0,
                          "dev_items": 16, "prompt_tokens_mean": 1400.0, "seconds": 45.0, "hit_at_k": 0.9},
                         {"candidate": "k=8", "settings": {"k": 8, "shots": False}, "dev_score": None,
                          "dev_items": 16, "prompt_tokens_mean": None, "seconds": 0.0,
                          "skipped": "a prompt of 9000 tokens exceeds the 8064-token context budget"}]}


def test_the_report_shows_each_arms_dev_use_and_says_when_the_model_ignores_the_passages(tmp_path: Path) -> None:
    from harness.report import write_report
    from harness.run_schema import RetrievalMetrics
    from tests.run_fixture import make_run

    scores = {"prompt": [1.0] * 10 + [0.0] * 30, "rag": [0.0] * 40, "finetune": [1.0] * 20 + [0.0] * 20}
    details = {"rag": {"chunks": 11, "build_s": 3.0, "search": SEARCH},
               "finetune": {"engine": "peft", "dev_examples": 40, "epochs_run": 3, "adapter_dir": "finetune/a"}}
    retrieval = RetrievalMetrics(k=1, labeled=40, hit_at_k=0.8, by_source={"n": 40, "hit_at_k": 0.8, "mrr": 0.8})
    run = make_run(tmp_path, scores, fit_details=details, extra_metrics={"rag": {"retrieval": retrieval}})
    md = write_report(run).read_text()
    tuning = md.split("## Dev tuning", 1)[1].split("\n## ", 1)[0]
    assert "| k=1 " in tuning and "| 0.125 " in tuning and "chosen" in tuning and "skipped: a prompt of 9000" in tuning
    assert "dev hit@k (0-1)" in tuning and "time (s)" in tuning and "Dev budget: 32 answers" in tuning
    assert "early stopping on 40 validation examples" in tuning  # the fine-tune's dev use, stated too
    assert "### prompt\n\nDev use: none" in tuning
    assert tuning.count("points at the model, not the docs") == 1  # dev: hit@1 0.8, score 0.125
    retrieval_section = md.split("## Retrieval", 1)[1].split("\n## ", 1)[0]
    assert "80% of the labeled items, yet the score is 0.000: this points at the model, not the docs" in (
        retrieval_section)


def test_rag_tunes_k_and_chunk_size_on_dev_with_hit_at_k_per_candidate(model, tmp_path: Path) -> None:
    """Two k on two dev questions (the prompt fixed at zero shots: no shot follow-up); the choice is what rag
    answers with, and each row says how often retrieval found the answer."""
    import shutil

    from harness.task import load_task
    from strategies import StrategyContext
    from strategies.rag import RagStrategy
    from tests.conftest import ASSETS

    shutil.copytree(ASSETS / "docs", tmp_path / "t" / "docs")
    dev = [{"id": "harbor", "instruction": "Who is the harbor master of Port Velmora?", "output": "Ilse Varga",
            "source": "docs/harbor.md"},
           {"id": "lighthouse", "instruction": "When was the lighthouse on Karst Point built?", "output": "1874",
            "source": "docs/lighthouse.pdf"}]
    other = {"id": "chess", "instruction": "What is en passant?", "output": "A pawn capture."}
    write_task(tmp_path / "t", "scorer: contains\nstrategies: [rag]\nprompt: {search: false}\n"
               "rag: {k: 2, search_k: [1], chunk_tokens: 64, chunk_overlap: 8}\ndata: {train: train.jsonl, "
               "dev: dev.jsonl, test: test.jsonl}\ngeneration: {max_new_tokens: 16, stop: ['\\n']}\n",
               {"train.jsonl": json.dumps(other) + "\n", "dev.jsonl": "".join(json.dumps(d) + "\n" for d in dev),
                "test.jsonl": json.dumps({**other, "id": "x", "instruction": "How do knights move?"}) + "\n"})
    task = load_task(str(tmp_path / "t"))
    rag = RagStrategy()
    fit = rag.fit(task.data.train, task.data.dev, StrategyContext(task.config, task.folder, tmp_path / "o",
                                                                  lambda: model))
    record = fit.details["search"]
    best_k = max(record["candidates"][:2], key=lambda r: r["dev_score"])["settings"]["k"]
    # No shots: no "no shots" follow-up; the default other chunk size (128 tokens) at the best k.
    assert [r["candidate"] for r in record["candidates"]] == ["k=1", "k=2", f"k={best_k} chunks of 128 tokens"]
    assert [r["settings"]["chunk_tokens"] for r in record["candidates"]] == [64, 64, 128]
    assert [r["retrieval_labeled"] for r in record["candidates"]] == [2, 2, 2]  # all name their source
    assert record["candidates"][0]["hit_at_k"] >= 0.5 and record["candidates"][1]["hit_at_k"] == 1.0
    assert rag.k == record["chosen_settings"]["k"] == fit.details["rag_k"] and not fit.details["shots_in_prompt"]
    chunk = record["chosen_settings"]["chunk_tokens"]
    assert fit.details["chunk_tokens"] == chunk and rag.corpus is rag.corpora[chunk] and set(rag.corpora) == {64, 128}
    assert len(rag.corpora[128].chunks) < len(rag.corpora[64].chunks)  # a second index, of larger chunks
    assert record["dev_items"] == 2 and record["answers"] == 6
