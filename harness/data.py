"""Task data: read alpaca, chat or prompt/completion examples, split them, check contamination.

Formats are detected per file from its first record; every record is then checked against that
format, and a bad one raises `DataError` naming the file, the line and the field. Splits are
deterministic: examples are ordered by a seeded hash of their id, so adding data moves few items.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import DataError

MIN_RECOMMENDED_TRAIN = 500
MIN_SAFE_TRAIN = 200
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Query:
    """What a strategy sees of a test item: everything but the reference answer."""

    id: str
    instruction: str
    """The request: alpaca instruction, chat's last user message, or the prompt."""
    input: str = ""
    """Alpaca `input` (context for the instruction); empty for other formats."""
    system: str | None = None
    """A system message carried by the example itself (chat format)."""
    history: tuple[tuple[str, str], ...] = ()
    """Earlier chat turns as (role, content), before the last user message."""


@dataclass(frozen=True)
class Example(Query):
    """A labeled example: a query plus its reference answer and where it came from."""

    source: str | None = None
    """Document the answer comes from, when the data names it: a label (retrieval hit@k), so it is
    not part of the Query a strategy sees."""
    output: str = ""
    origin: str = ""
    """`file:line` of the record."""

    def query(self) -> Query:
        return Query(self.id, self.instruction, self.input, self.system, self.history)


@dataclass
class TaskData:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    formats: dict[str, str] = field(default_factory=dict)
    """Detected format per data file."""
    warnings: list[str] = field(default_factory=list)
    contamination: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- reading

def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record) from a JSONL file or a JSON array file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8") from None
    if text.lstrip().startswith("["):
        yield from _read_json_array(path, text)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from None


def _read_json_array(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise DataError(f"{path}:{text.count(chr(10)) + 1}: invalid JSON: array is not closed")
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        yield line, record


def detect_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "chat"
    if "instruction" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    return None


def load_examples(path: Path) -> tuple[list[Example], str]:
    """All examples of one file, and the detected format."""
    examples: list[Example] = []
    fmt: str | None = None
    ids: dict[str, int] = {}
    for line, record in read_records(path):
        where = f"{path}:{line}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if fmt is None:
            fmt = detect_format(record)
            if fmt is None:
                hint = " (pre-templated 'text' is not supported)" if "text" in record else ""
                raise DataError(f"{where}: field 'messages'/'instruction'/'prompt': unrecognized format{hint}; "
                                f"expected alpaca (instruction, output), chat (messages) or prompt/completion")
        example = _parse(record, fmt, where)
        if example.id in ids:
            if "id" in record:
                raise DataError(f"{where}: field 'id': duplicate id {example.id!r} (first at line {ids[example.id]})")
            example = replace(example, id=f"{example.id}-{line}")
        ids[example.id] = line
        examples.append(example)
    if fmt is None:
        raise DataError(f"{path}:1: no examples in file")
    return examples, fmt


def _text(record: dict, key: str, where: str, required: bool = True) -> str:
    if key not in record or record[key] is None:
        if required:
            raise DataError(f"{where}: field '{key}': missing")
        return ""
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}': expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field '{key}': empty")
    return value


def _parse(record: dict, fmt: str, where: str) -> Example:
    source = _text(record, "source", where, required=False) or None
    system: str | None = None
    history: tuple[tuple[str, str], ...] = ()
    if fmt == "alpaca":
        instruction = _text(record, "instruction", where)
        inp = _text(record, "input", where, required=False)
        output = _text(record, "output", where)
    elif fmt == "prompt_completion":
        instruction, inp = _text(record, "prompt", where), ""
        output = _text(record, "completion", where)
    else:
        system, history, instruction, output = _parse_chat(record.get("messages"), where)
        inp = ""
    if "id" in record:
        if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
            raise DataError(f"{where}: field 'id': expected a string or integer")
        ex_id = str(record["id"])
    else:
        key = json.dumps([system, history, instruction, inp, output], ensure_ascii=False)
        ex_id = "h" + hashlib.sha1(key.encode()).hexdigest()[:12]
    return Example(ex_id, instruction, inp, system, history, source=source, output=output, origin=where)


def _parse_chat(messages: Any, where: str) -> tuple[str | None, tuple[tuple[str, str], ...], str, str]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages': expected a non-empty list")
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        field_name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise DataError(f"{where}: field '{field_name}': expected an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise DataError(f"{where}: field '{field_name}.role': {role!r} is not one of {', '.join(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str):
            raise DataError(f"{where}: field '{field_name}.content': expected a string")
        turns.append((role, content))
    system = turns.pop(0)[1] if turns[0][0] == "system" else None
    if len(turns) < 2 or turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise DataError(f"{where}: field 'messages': must end with a user message then the assistant answer")
    if not turns[-1][1].strip():
        raise DataError(f"{where}: field 'messages[{len(messages) - 1}].content': empty answer")
    return system, tuple(turns[:-2]), turns[-2][1], turns[-1][1]


# ---------------------------------------------------------------- splitting

def split_by_hash(examples: list[Example], fraction: float, seed: int | str) -> tuple[list[Example], list[Example]]:
    """(rest, held_out): the first round(n * fraction) examples in seeded-hash order are held out."""
    def rank(ex: Example) -> str:
        return hashlib.sha256(f"{seed}:{ex.id}".encode()).hexdigest()

    ordered = sorted(examples, key=rank)
    n_out = max(1, round(len(examples) * fraction)) if fraction > 0 else 0
    held = {ex.id for ex in ordered[:n_out]}
    return [e for e in examples if e.id not in held], [e for e in examples if e.id in held]


# ---------------------------------------------------------------- contamination

_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_prompt(q: Query) -> str:
    parts = [c for _, c in q.history] + [q.instruction, q.input]
    return " ".join(" ".join(parts).lower().translate(_PUNCT).split())


def check_contamination(train: list[Example], test: list[Example], n: int) -> dict[str, Any]:
    """Exact prompt overlaps (ids) and near-duplicates (shared word n-grams) between train and test.

    N-grams that occur in more than 10% of training items are template boilerplate ("Answer in one
    sentence") and don't count; a test item is a near-duplicate when at least half of its remaining
    n-grams occur in train.
    """
    train_prompts: dict[str, Example] = {normalize_prompt(e): e for e in train}
    exact = [(t, train_prompts[p]) for t in test if (p := normalize_prompt(t)) in train_prompts]

    def grams(ex: Example) -> set[tuple[str, ...]]:
        words = (normalize_prompt(ex) + " " + ex.output.lower().translate(_PUNCT)).split()
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    doc_freq: Counter[tuple[str, ...]] = Counter()
    train_grams: set[tuple[str, ...]] = set()
    for ex in train:
        g = grams(ex)
        doc_freq.update(g)
        train_grams |= g
    boiler = {g for g, c in doc_freq.items() if c > max(2, 0.1 * len(train))}
    near = []
    for ex in test:
        g = grams(ex) - boiler
        if g and len(g & train_grams) / len(g) >= 0.5:
            near.append(ex.id)
    return {
        "exact_overlap": [{"test": t.origin, "train": r.origin, "id": t.id} for t, r in exact],
        "near_duplicates": near,
        "ngram": n,
        "test_items": len(test),
    }


def size_warnings(n_train: int) -> list[str]:
    if n_train < MIN_SAFE_TRAIN:
        return [f"only {n_train} training examples: fewer than {MIN_SAFE_TRAIN} often overfits a fine-tune"]
    if n_train < MIN_RECOMMENDED_TRAIN:
        return [f"only {n_train} training examples: below the recommended minimum of {MIN_RECOMMENDED_TRAIN}"]
    return []

