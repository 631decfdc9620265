"""What a judge's words mean: its verdict parsed to a grade, and how far its grades can be trusted.

`parse_verdict` reads PASS/FAIL (scale `binary`) or a grade 1-5 (scale `1-5`) out of the judge's raw reply,
or None when the reply does not say one grade (an echo of "PASS or FAIL", a number out of range).
`read_labels` reads `judge_labels.jsonl`, human grades of given answers:

    {"id": "<test item id>", "prediction": "<the answer text graded>", "grade": 1}

A label grades one answer text, so it calibrates any strategy that gave that text for that item, and never
an answer it did not see. `calibration` compares the judge's grades with those labels (agreement, Cohen's
kappa) or, without labels, with token_f1 >= 0.5 (agreement, kappa), and says the judge is uncalibrated.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

SCALES: dict[str, tuple[int, ...]] = {"binary": (0, 1), "1-5": (1, 2, 3, 4, 5)}
"""Scale name -> the grades it has (binary: 0 fail, 1 pass)."""
F1_PASS = 0.5
"""token_f1 at or above which the uncalibrated check counts an answer as passing."""
LABEL_KEYS = ("id", "prediction", "grade", "note")

_BINARY_WORDS = {"pass": 1, "passes": 1, "passed": 1, "correct": 1,
                 "fail": 0, "fails": 0, "failed": 0, "incorrect": 0}
_VERDICT_WORDS = ("pass", "passes", "passed", "fail", "fails", "failed")
"""Words that are a verdict anywhere in a reply. "correct" is one only after a label ("Verdict: correct"): a judge
that echoes the rubric ("The candidate is correct when...") has not said it."""
_BINARY_TOKEN = re.compile(r"\b(not\s+)?(" + "|".join(_VERDICT_WORDS) + r")\b", re.IGNORECASE)
_LABELED = r"\b(?:verdict|grade|score|rating|judge?ment)\s*(?:is|of)?\s*[:=\-]?\s*[*_\"'`]*\s*"
_BINARY_LABELED = re.compile(_LABELED + r"(" + "|".join(_BINARY_WORDS) + r")\b", re.IGNORECASE)
_NOT_IN_NUMBER = (r"(?<!\d)(?<!\d\.)", r"(?!\d|\.\d)")
"""Around a grade digit: not part of a longer or decimal number ("10", "4.5"), though "Grade: 2." is one."""
_NUMBER_LABELED = re.compile(_LABELED + r"([1-5])" + _NOT_IN_NUMBER[1], re.IGNORECASE)
_NUMBER_OUT_OF = re.compile(_NOT_IN_NUMBER[0] + r"([1-5])\s*(?:/|out\s+of)\s*5" + _NOT_IN_NUMBER[1], re.IGNORECASE)
_NUMBER_ALONE = re.compile(_NOT_IN_NUMBER[0] + r"([1-5])" + _NOT_IN_NUMBER[1])


def parse_verdict(text: str, scale: str) -> int | None:
    """The grade the reply states: a labeled one ("Verdict: PASS", "Score: 4") wins, the last if several;
    else the one grade the reply mentions. None when it mentions none, or several different ones."""
    if scale == "binary":
        labeled = _BINARY_LABELED.findall(text)
        if labeled:
            return _BINARY_WORDS[labeled[-1].lower()]
        # "not correct" is a fail; "PASS or FAIL" (the instructions echoed) names two grades: no verdict.
        said = {_BINARY_WORDS[word.lower()] ^ bool(negated) for negated, word in _BINARY_TOKEN.findall(text)}
    else:
        labeled = _NUMBER_LABELED.findall(text) or _NUMBER_OUT_OF.findall(text)
        if labeled:
            return int(labeled[-1])
        said = {int(n) for n in _NUMBER_ALONE.findall(text)}
    return said.pop() if len(said) == 1 else None


def grade_score(grade: int | None, scale: str) -> float:
    """A grade as a score in [0, 1]: pass 1, fail 0; 1-5 mapped linearly (1 -> 0, 3 -> 0.5, 5 -> 1).
    No grade (an unparseable verdict) scores 0, as the lowest grade."""
    if grade is None:
        return 0.0
    low, high = SCALES[scale][0], SCALES[scale][-1]
    return (grade - low) / (high - low)


@dataclass(frozen=True)
class Label:
    id: str
    prediction: str
    grade: int
    line: int


def read_labels(path: Path, scale: str) -> list[Label]:
    """The human grades in `path` (JSONL); any bad line is a ConfigError naming file, line and field."""
    allowed = SCALES[scale]
    labels: list[Label] = []
    seen: dict[tuple[str, str], int] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: expected a JSON object like "
                              '{"id": ..., "prediction": ..., "grade": ...}')
        for key in record:
            if key not in LABEL_KEYS:
                raise ConfigError(f"{where}: field '{key}': unknown key (allowed: {', '.join(LABEL_KEYS)})")
        for key in ("id", "prediction"):
            if not isinstance(record.get(key), str):
                raise ConfigError(f"{where}: field '{key}': expected a string, got {record.get(key)!r}")
        grade = record.get("grade")
        if isinstance(grade, bool) or not isinstance(grade, int) or grade not in allowed:
            raise ConfigError(f"{where}: field 'grade': {grade!r} is not a grade of judge.scale {scale} "
                              f"({', '.join(map(str, allowed))})")
        key = (record["id"], record["prediction"].strip())
        if key in seen:
            raise ConfigError(f"{where}: this id and prediction were already graded on line {seen[key]}")
        seen[key] = n
        labels.append(Label(record["id"], record["prediction"].strip(), grade, n))
    return labels


def _kappa(first: list[int], second: list[int], grades: tuple[int, ...]) -> float | None:
    """Cohen's kappa (quadratic weights on the ordinal 1-5 scale); None where it is undefined (one grade
    throughout both lists, so chance agreement is 1)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(first) | set(second)) < 2:
        return None
    value = cohen_kappa_score(first, second, labels=list(grades), weights="quadratic" if len(grades) > 2 else None)
    return float(value) if math.isfinite(value) else None


def calibration(grades: list[int | None], predictions: list[str], examples: list[Any], scale: str,
                labels: list[Label] | None, labels_file: str | None) -> dict[str, Any]:
    """How far the judge agrees with human labels (matched by item id and answer text), or, without any
    label for these answers, with token_f1 >= 0.5 (the judge passes an answer at score >= 0.5: PASS, or 3 to 5
    on the 1-5 scale). Unparseable verdicts count as the lowest grade, as they score."""
    from harness.scoring import token_f1

    allowed = SCALES[scale]
    judged = [allowed[0] if g is None else g for g in grades]
    kappa_kind = "quadratic-weighted" if len(allowed) > 2 else "unweighted"
    human = {(label.id, label.prediction): label.grade for label in labels or []}
    pairs = [(human[(ex.id, p.strip())], j) for p, ex, j in zip(predictions, examples, judged)
             if (ex.id, p.strip()) in human]
    if pairs:
        people, judge = [h for h, _ in pairs], [j for _, j in pairs]
        return {"status": "calibrated", "labels_file": labels_file, "labels": len(human), "matched": len(pairs),
                "agreement": sum(h == j for h, j in pairs) / len(pairs),
                "kappa": _kappa(people, judge, allowed), "kappa_weights": kappa_kind}
    passed = [grade_score(g, scale) >= 0.5 for g in judged]
    f1_passed = [token_f1(p, ex.output) >= F1_PASS for p, ex in zip(predictions, examples)]
    reason = ("no judge_labels.jsonl" if labels is None else f"{labels_file} holds no labels" if not labels
              else f"no label in {labels_file} grades these answers")
    return {"status": "uncalibrated", "reason": reason, "labels_file": labels_file, "labels": len(human),
            "matched": 0, "second_scorer": "token_f1", "second_scorer_pass": F1_PASS,
            "agreement": sum(a == b for a, b in zip(passed, f1_passed)) / len(passed) if passed else None,
            "kappa": _kappa([int(x) for x in f1_passed], [int(x) for x in passed], (0, 1)),
            "kappa_weights": "unweighted"}


def length_figures(lengths: list[int], scores: list[float]) -> dict[str, Any]:
    """The verbosity check: Spearman's rank correlation of answer length (characters) with the judge's score
    (None when either is constant), and the mean length of answers at each score."""
    from scipy.stats import spearmanr

    by_score: dict[str, list[int]] = {}
    for n, s in zip(lengths, scores):
        by_score.setdefault(f"{s:g}", []).append(n)
    rho = None
    if len(set(lengths)) > 1 and len(set(scores)) > 1:
        rho = float(spearmanr(lengths, scores).statistic)
    return {"length_unit": "characters", "length_score_spearman": rho,
            "mean_length_by_score": {k: sum(v) / len(v) for k, v in sorted(by_score.items())}}
