"""MMLU and HumanEval slices: read offline from their packages, deterministic, stratified by subject."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from harness.benchmarks import data
from harness.errors import HarnessError


def test_mmlu_drops_the_two_stray_header_rows():
    with data.mmlu_source().open() as f:
        raw = [json.loads(line) for line in f]
    assert len(raw) == 14_044 and sum(r["correct_answer"] == "answer" for r in raw) == 2
    rows = data.mmlu_rows()
    assert len(rows) == data.MMLU_ROWS == 14_042
    assert len(data.mmlu_subjects()) == 57
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["answer"] in range(4) and len(r["choices"]) == 4 and r["question"] != "question" for r in rows)


def test_humaneval_has_164_problems():
    rows = data.humaneval_rows()
    assert len(rows) == data.HUMANEVAL_PROBLEMS and rows[0]["id"] == "HumanEval/0"
    assert {"prompt", "test", "entry_point", "canonical_solution"} <= set(rows[0])


def test_allocation_is_proportional_and_sums_to_the_total():
    counts = data.allocate({"a": 10, "b": 30, "c": 60}, 10)
    assert counts == {"a": 1, "b": 3, "c": 6}
    assert sum(data.allocate(data.mmlu_subjects(), 100).values()) == 100


def test_mmlu_slice_is_deterministic_and_stratified():
    first = data.mmlu_slice(limit=100, seed=0)
    assert [r["id"] for r in first] == [r["id"] for r in data.mmlu_slice(limit=100, seed=0)]
    assert [r["id"] for r in first] != [r["id"] for r in data.mmlu_slice(limit=100, seed=1)]
    by_subject = Counter(r["subject"] for r in first)
    assert len(first) == 100
    # the largest subject (professional law, 1,534 of 14,042) gets its share: 100 * 1534 / 14042 = 10.9
    assert by_subject["professional law"] == 11


def test_mmlu_subjects_and_per_subject_cap():
    rows = data.mmlu_slice(["anatomy", "virology"], per_subject=3)
    assert Counter(r["subject"] for r in rows) == {"anatomy": 3, "virology": 3}
    capped = data.mmlu_slice(per_subject=2, limit=None)
    assert len(capped) == 2 * 57
    with pytest.raises(HarnessError, match="unknown subject 'astrology'"):
        data.mmlu_slice(["astrology"])


def test_humaneval_slice_is_deterministic_and_the_full_set_without_limit():
    picked = data.humaneval_slice(5, seed=0)
    assert [r["id"] for r in picked] == [r["id"] for r in data.humaneval_slice(5, seed=0)]
    assert [r["id"] for r in picked] != [f"HumanEval/{i}" for i in range(5)]  # a sample, not the first five
    assert len(data.humaneval_slice(None)) == 164


def test_materialize_names_the_file_by_its_content(tmp_path, monkeypatch):
    monkeypatch.setenv("FTRAG_CACHE", str(tmp_path))
    rows = data.mmlu_slice(limit=5)
    path, digest = data.materialize("mmlu", rows)
    assert path.parent == tmp_path / "benchmarks" / "data" and digest[:16] in path.name
    assert data.read_jsonl(path) == rows
    assert data.materialize("mmlu", rows) == (path, digest)
    assert data.materialize("mmlu", rows[:4])[1] != digest
