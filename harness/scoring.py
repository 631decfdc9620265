"""Scorers: a prediction and a reference in, a score in [0, 1] out.

`exact_match` and `token_f1` use the SQuAD normalization (lowercase, no punctuation, no articles,
single spaces); `rouge_l` is the F-measure of Google's `rouge-score`; `choice_letter` extracts the
answer letter (A-J) of a multiple-choice reply; `contains` asks whether the normalized reference
occurs in the normalized prediction. Binary scorers make paired tests (McNemar) possible.
Each scorer is named, and marked binary or not, in harness/registry.py.

`score_items` is how the runner (and the export's re-score) scores a strategy's answers with any registered
scorer: a plain function per item, or a batch scorer (registry `batch=True`: a class configured by the task,
such as a label set or a judge model) that scores all answers at once and adds per-item details (the mapped
label, the judge's raw verdict) and figures for the whole set (macro-F1, the judge's calibration).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from harness.registry import SCORERS

Scorer = Callable[[str, str], float]
BINARY = frozenset(name for name, entry in SCORERS.items() if entry.binary)



@dataclass
class Scored:
    """A scorer's result for a list of answers, in their order."""

    scores: list[float]
    """Per item, in [0, 1]."""
    details: list[dict[str, Any]] = field(default_factory=list)
    """Per item, merged into its predictions.jsonl record (e.g. {"label": "utils"}); empty: none."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Figures for the whole set, stored as metrics.json's `scoring` (e.g. macro-F1, per-class recall)."""


def score_items(config: Any, task_dir: Path, predictions: list[str], examples: list[Any],
                backend: Callable[[], Any] | None = None) -> Scored:
    """Score `predictions` against `examples` (their `output`) with the task's scorer (`config.scorer`).

    `backend` (the run's shared backend, loaded on call) is handed to batch scorers that may need a model."""
    from harness import registry

    entry = SCORERS[config.scorer]
    if not entry.batch:
        scorer = registry.scorer(config.scorer)
        return Scored([float(scorer(p, ex.output)) for p, ex in zip(predictions, examples)])
    result = registry.load(entry.target)(config, task_dir, backend).score_all(predictions, examples)
    if len(result.scores) != len(predictions) or (result.details and len(result.details) != len(predictions)):
        raise RuntimeError(f"scorer {config.scorer} returned {len(result.scores)} scores for "
                           f"{len(predictions)} answers")
    return result


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@cache
def _rouge():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


_LETTER_PATTERNS = (
    re.compile(r"(?i:answer)(?:\s+is)?\s*:?\s*\(?([A-J])\)?(?![A-Za-z])"),  # "Answer: C", "answer is (B)"
    re.compile(r"^\s*(?:\(([A-J])\)|([A-J])(?:[.):]|\s*$))"),               # "(A) ...", "D. ...", "C"
    re.compile(r"\b([A-HJ])\b(?![a-z'])"),                                     # a lone capital; not "I"
)


def extract_choice(text: str) -> str | None:
    """The answer letter of a multiple-choice reply: 'Answer: C', '(B) ...', 'D.' or a lone capital."""
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        if match:
            return next(g for g in match.groups() if g)
    return None


def choice_letter(prediction: str, reference: str) -> float:
    ref = extract_choice(reference) or reference.strip().upper()
    return float(extract_choice(prediction) == ref)


def contains(prediction: str, reference: str) -> float:
    ref = normalize(reference)
    return float(bool(ref) and ref in normalize(prediction))

