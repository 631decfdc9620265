"""The `label` scorer: classification. Each answer is mapped to one of the task's labels, or to "invalid".

The labels are task.yaml's `labels`, or else the distinct reference outputs of the train and dev examples
(a test label outside them is warned about and can never be answered right). An answer is normalized
(`normalize_label`: lowercase, punctuation to spaces except dots and hyphens inside a name, so `os.path` and
`x-ray` survive and "Utils." is `utils`) and mapped by the first rule that applies (`map_label`):

1. the whole answer is a label;
2. its first line starts with a label (the longest; a dotted name counts: `os.path.join` starts with `os.path`);
3. exactly one label occurs in it as a whole word (a label inside a longer one, `spam` in `not spam`, is the
   longer one's), however often it is repeated;
4. otherwise "invalid".

An item scores 1 when its answer maps to its reference's label, so paired tests stay on per-item
correctness (binary: McNemar). The whole set's figures are scikit-learn's (`label_figures`): accuracy,
macro-F1, per-class precision/recall/F1, the invalid-answer rate and the confusion matrix.

    from harness.scorers.label import map_label, normalize_label
    map_label("Utils.", {"utils": "utils", "os.path": "os.path"})  # ("utils", "exact")
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, DataError
from harness.scoring import Scored

INVALID = "invalid"
"""What an answer that names no label (or several) maps to; a column of the confusion matrix, never a class."""
MANY_CLASSES = 50
"""Above this many classes read from the data, a warning asks whether the task is a classification at all."""

_NOT_NAME_CHAR = re.compile(r"[^\w\s.\-]")
_LOOSE_JOINER = re.compile(r"(?<!\w)[.\-]+|[.\-]+(?!\w)")
"""Dots and hyphens not between two word characters: sentence punctuation, not part of a name."""


def normalize_label(text: str) -> str:
    """Lowercase, punctuation to spaces (dots and hyphens only inside a name), single spaces."""
    text = _NOT_NAME_CHAR.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return " ".join(_LOOSE_JOINER.sub(" ", text).split())


def labels_problem(labels: list[str]) -> str | None:
    """Why `labels` cannot be a classification's classes, or None."""
    seen: dict[str, str] = {}
    for label in labels:
        key = normalize_label(label)
        if not key:
            return f"{label!r} is only punctuation or blanks, which no answer can name"
        if key == INVALID:
            return f"{label!r} is reserved: answers that name no label are scored as {INVALID!r}"
        if key in seen:
            return f"{seen[key]!r} and {label!r} are the same label once normalized ({key!r})"
        seen[key] = label
    if len(seen) < 2:
        return f"lists {len(seen)} label(s): a classification needs at least 2"
    return None


def _occurrences(text: str, vocab: dict[str, str]) -> set[str]:
    """Normalized labels named in `text` as whole words, less those only inside a longer label's occurrence."""
    spans = []
    for key in vocab:
        pattern = re.compile(r"(?<![\w.\-])" + re.escape(key) + r"(?![\w.\-])")
        spans += [(m.start(), m.end(), key) for m in pattern.finditer(text)]
    return {key for start, end, key in spans
            if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans)}


def map_label(answer: str, vocab: dict[str, str]) -> tuple[str, str]:
    """(label, the rule that found it) for an answer; `vocab` maps each normalized label to its written form.
    An answer that names no label, or several, is (INVALID, "no label" / "several labels")."""
    text = normalize_label(answer)
    if text in vocab:
        return vocab[text], "exact"
    first_line = normalize_label(next((line for line in answer.splitlines() if line.strip()), ""))
    # A dotted name starting with a label names it (`os.path.join`), but not a number (`1.5` is not label 1).
    starts = [k for k in vocab if first_line == k or first_line.startswith(k + " ")
              or (first_line.startswith(k + ".") and first_line[len(k) + 1:len(k) + 2].isalpha())]
    if starts:
        return vocab[max(starts, key=len)], "first line"
    named = _occurrences(text, vocab)
    if len(named) == 1:
        return vocab[named.pop()], "one label named"
    return INVALID, "several labels" if named else "no label"


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def label_figures(references: list[str], predicted: list[str], classes: list[str]) -> dict[str, Any]:
    """scikit-learn's figures for reference and predicted labels (predicted may be INVALID).

    Macro-F1 averages the classes that occur among the references: a class the test set lacks has no recall
    to measure, and answering it wrongly already costs the true class its recall. Per-class precision is None
    for a class never predicted, recall None for one with no test items. Confusion rows are the reference
    labels, columns the predicted ones with INVALID last; counts are items."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    present = [c for c in classes if c in set(references)]
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predicted, labels=classes, zero_division=math.nan)
    matrix = confusion_matrix(references, predicted, labels=[*classes, INVALID])[:len(classes)]
    invalid = sum(p == INVALID for p in predicted)
    return {
        "kind": "label",
        "n": len(references),
        "accuracy": float(accuracy_score(references, predicted)),
        "macro_f1": float(f1_score(references, predicted, labels=present, average="macro", zero_division=0)),
        "macro_f1_classes": len(present),
        "invalid_rate": invalid / len(references) if references else 0.0,
        "invalid": invalid,
        "per_class": {c: {"precision": _nan_to_none(p), "recall": _nan_to_none(r), "f1": _nan_to_none(f),
                          "support": int(s), "predicted": sum(x == c for x in predicted)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support)},
        "confusion": {"labels": list(classes), "columns": [*classes, INVALID], "matrix": matrix.tolist()},
    }


def vocabulary(labels: list[str]) -> dict[str, str]:
    """Normalized label -> label as written (the first written form of each)."""
    vocab: dict[str, str] = {}
    for label in labels:
        vocab.setdefault(normalize_label(label), label.strip())
    return vocab


def task_labels(config: Any, train_and_dev: list[Any], where: str) -> tuple[list[str], list[str]]:
    """(the classes, warnings): task.yaml's `labels`, or the distinct train/dev outputs (sorted). `where` names
    the setting for an error (`task.yaml:12: field 'labels'`)."""
    if config.labels:
        return list(config.labels), []
    found = sorted(vocabulary([ex.output for ex in train_and_dev]).values())
    if problem := labels_problem(found):
        raise ConfigError(f"{where}: empty, so the labels are the train and dev outputs, and {problem} "
                          f"({', '.join(map(repr, found[:5]))}): list the labels in task.yaml")
    warnings = []
    if len(found) > min(MANY_CLASSES, len(train_and_dev) / 2):
        warnings.append(f"scorer label: {len(found)} distinct outputs among {len(train_and_dev)} train and dev "
                        "examples are taken as the classes; list `labels` if the task is a classification")
    return found, warnings


def check_references(examples: list[Any], vocab: dict[str, str], listed: bool) -> list[str]:
    """Every reference is a label: with listed labels one that is not is bad data (DataError naming the item);
    with labels read from train and dev, a test label outside them is a warning (returned)."""
    unseen = [ex for ex in examples if normalize_label(ex.output) not in vocab]
    if unseen and listed:
        ex = unseen[0]
        raise DataError(f"{ex.origin}: field 'output': {ex.output[:80]!r} is not one of the labels in task.yaml "
                        f"({', '.join(vocab.values())}); {len(unseen)} reference(s) like it")
    if not unseen:
        return []
    names = sorted({ex.output.strip() for ex in unseen})
    return [f"scorer label: {len(unseen)} test item(s) have a label no train or dev example has "
            f"({', '.join(map(repr, names[:5]))}; first: {unseen[0].origin}): they count as wrong whatever the "
            "answer"]


def check_task_labels(config: Any, data: Any, path: Path) -> list[str]:
    """The task's labels against its data, when it is loaded (before a run starts): errors raised, warnings
    returned."""
    from harness.yaml_safe import compose_file, key_lines

    lines = key_lines(compose_file(path), path)
    labels, warnings = task_labels(config, data.train + data.dev,
                                   f"{path}:{lines.get('labels', lines.get('scorer', 1))}: field 'labels'")
    vocab = vocabulary(labels)
    if config.labels:
        check_references(data.train + data.dev, vocab, listed=True)
    return warnings + check_references(data.test, vocab, listed=bool(config.labels))


_DATA_LABELS: dict[tuple[str, str], list[str]] = {}
"""Labels read from a task's data, by (task folder, data settings): a dev search builds a scorer per candidate."""


def _labels_from_data(config: Any, task_dir: Path) -> list[str]:
    """The train and dev outputs as labels; the split is the run's (the same settings, the same hash order)."""
    key = (str(task_dir.resolve()), repr(config.data))
    if key not in _DATA_LABELS:
        from harness.task import load_task_data

        data = load_task_data(config, task_dir, allow_contamination=True)
        _DATA_LABELS[key] = task_labels(config, data.train + data.dev, f"{task_dir / 'task.yaml'}: field 'labels'")[0]
    return _DATA_LABELS[key]


class LabelScorer:
    """Maps each answer to a label and scores it 1 when that is the reference's label; figures per class."""

    def __init__(self, config: Any, task_dir: Path, backend: Callable[[], Any] | None = None) -> None:
        self.listed = bool(config.labels)
        labels = list(config.labels) if self.listed else _labels_from_data(config, task_dir)
        self.vocab = vocabulary(labels)
        self.labels_from = "task.yaml labels" if self.listed else "train and dev outputs"

    def score_all(self, predictions: list[str], examples: list[Any]) -> Scored:
        check_references(examples, self.vocab, self.listed)
        # A test label outside the vocabulary keeps its own row, so its items show in the confusion matrix.
        references = [self.vocab.get(normalize_label(ex.output), ex.output.strip()) for ex in examples]
        mapped = [map_label(p, self.vocab) for p in predictions]
        predicted = [label for label, _ in mapped]
        classes = list(self.vocab.values()) + sorted(set(references) - set(self.vocab.values()))
        summary = label_figures(references, predicted, classes)
        summary["labels_from"] = self.labels_from
        details = [{"label": label, "label_rule": rule, "reference_label": ref}
                   for (label, rule), ref in zip(mapped, references)]
        return Scored([float(p == r) for p, r in zip(predicted, references)], details, summary)
