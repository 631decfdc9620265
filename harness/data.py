"""Task data: read examples in any of the supported formats, and split them.

A file is JSONL or a JSON array (`harness.jsonfile`), CSV or Parquet (`harness.tables`, by suffix);
a hub dataset is `hf:owner/name[:config][#split]`. The record format is detected per source from its
first record, and every record is checked against it; a bad one raises `DataError` naming the file, the
line (or row) and the field:

    alpaca                            {"instruction", "input"?, "output"}
    prompt_completion                 {"prompt": str, "completion": str}
    chat                              {"messages": [{"role", "content"}, ...]}
    conversational_prompt_completion  {"prompt": [messages], "completion": [one assistant message]} (TRL)
    sharegpt                          {"conversations": [{"from": system|human|gpt, "value"}, ...]}

all with optional `id` and `source`. Splits are deterministic: examples are ordered by a seeded hash
of their id, so adding data moves few items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.jsonfile import read_records
from harness.tables import HubRef, read_csv, read_hub, read_parquet

ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
"""Chat roles as written -> as kept."""
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}
TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


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

def load_examples(path: Path) -> tuple[list[Example], str]:
    """All examples of one file, and the detected format (`csv:` or `parquet:` before it for tables)."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return parse_records(read_records(path), str(path))
    rows = read_csv(path) if kind == "csv" else read_parquet(path)
    examples, fmt = parse_records(rows, str(path))
    return examples, f"{kind}:{fmt}"


def load_hub_examples(ref: HubRef, split: str, where: str) -> tuple[list[Example], str]:
    """All examples of a hub dataset's split, and the detected format (`hf:` before it).

    `where` is task.yaml's `file:line: field 'key'`, for errors about the dataset as a whole.
    """
    examples, fmt = parse_records(read_hub(ref, split, where), ref.label(split))
    return examples, f"hf:{fmt}"


def detect_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "conversational_prompt_completion" if isinstance(record["prompt"], list) else "prompt_completion"
    return None


def parse_records(records: Iterable[tuple[int | str, Any]], label: str) -> tuple[list[Example], str]:
    """Examples from (location, record) pairs, the format detected from the first record; `label` names
    the source in errors and origins (`label:location`)."""
    examples: list[Example] = []
    fmt: str | None = None
    ids: dict[str, int | str] = {}
    for at, record in records:
        where = f"{label}:{at}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if fmt is None:
            fmt = detect_format(record)
            if fmt is None:
                hint = " (pre-templated 'text' is not supported)" if "text" in record else ""
                raise DataError(f"{where}: field 'messages'/'conversations'/'instruction'/'prompt': unrecognized "
                                f"format{hint}; expected alpaca (instruction, output), chat (messages), ShareGPT "
                                f"(conversations) or prompt/completion (strings or message lists)")
        example = _parse(record, fmt, where)
        if example.id in ids:
            if "id" in record:
                first = ids[example.id]
                raise DataError(f"{where}: field 'id': duplicate id {example.id!r} (first at "
                                f"{'line ' if isinstance(first, int) else ''}{first})")
            example = replace(example, id=f"{example.id}-{str(at).replace(' ', '')}")
        ids[example.id] = at
        examples.append(example)
    if fmt is None:
        raise DataError(f"{label}:1: no examples in file")
    return examples, fmt


def _text(record: dict, key: str, where: str, required: bool = True) -> str:
    if key not in record or record[key] is None:
        if required:
            raise DataError(f"{where}: field '{key}': missing")
        return ""
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}': expected a string, got {type(value).__name__}")
    _check_unicode(value, key, where)
    if required and not value.strip():
        raise DataError(f"{where}: field '{key}': empty")
    return value


def _parse(record: dict, fmt: str, where: str) -> Example:
    source = _text(record, "source", where, required=False) or None
    system: str | None = None
    history: tuple[tuple[str, str], ...] = ()
    inp = ""
    if fmt == "alpaca":
        instruction = _text(record, "instruction", where)
        inp = _text(record, "input", where, required=False)
        output = _text(record, "output", where)
    elif fmt == "prompt_completion":
        instruction = _text(record, "prompt", where)
        output = _text(record, "completion", where)
    elif fmt == "chat":
        system, history, instruction, output = _parse_turns(_messages(record, "messages", where), "messages", where)
    elif fmt == "sharegpt":
        turns = _messages(record, "conversations", where)
        system, history, instruction, output = _parse_turns(turns, "conversations", where, ("from", "value"),
                                                            SHAREGPT_ROLES)
    else:  # conversational_prompt_completion: the completion is the answer, the prompt all before it
        prompt, completion = _messages(record, "prompt", where), _messages(record, "completion", where)
        if len(completion) != 1:
            raise DataError(f"{where}: field 'completion': expected one assistant message, got {len(completion)}")
        system, history, instruction, output = _parse_turns(prompt + completion, "prompt", where)
    if "id" in record:
        if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
            raise DataError(f"{where}: field 'id': expected a string or integer")
        ex_id = str(record["id"])
        _check_unicode(ex_id, "id", where)
    else:
        key = json.dumps([system, history, instruction, inp, output], ensure_ascii=False)
        ex_id = "h" + hashlib.sha1(key.encode()).hexdigest()[:12]
    return Example(ex_id, instruction, inp, system, history, source=source, output=output, origin=where)


def _check_unicode(text: str, field_name: str, where: str) -> None:
    """A lone surrogate ("\\ud800" in JSON) parses, then crashes the first UTF-8 write of a result."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{where}: field '{field_name}': not valid Unicode (lone surrogate "
                        f"U+{ord(text[exc.start]):04X} at character {exc.start + 1})") from None


def _messages(record: dict, key: str, where: str) -> list[tuple[str, Any]]:
    """(field name, message) for each message of the list `record[key]`."""
    messages = record.get(key)
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field '{key}': expected a non-empty list")
    return [(f"{key}[{i}]", message) for i, message in enumerate(messages)]


def _parse_turns(messages: list[tuple[str, Any]], list_name: str, where: str,
                 keys: tuple[str, str] = ("role", "content"),
                 roles: dict[str, str] = ROLES) -> tuple[str | None, tuple[tuple[str, str], ...], str, str]:
    """(system, history, question, answer) of a conversation: an optional system message first, then user
    and assistant turns alternating, ending with the answer. Errors name each message by its field."""
    role_key, content_key = keys
    first = messages[0][1]
    starts_with_system = isinstance(first, dict) and roles.get(str(first.get(role_key))) == "system"
    turns: list[tuple[str, str]] = []
    for i, (name, message) in enumerate(messages):
        if not isinstance(message, dict):
            raise DataError(f"{where}: field '{name}': expected an object with {role_key} and {content_key}")
        written = message.get(role_key)
        role = roles.get(written) if isinstance(written, str) else None
        if role is None:
            raise DataError(f"{where}: field '{name}.{role_key}': {written!r} is not one of {', '.join(roles)}")
        content = message.get(content_key)
        if not isinstance(content, str):
            raise DataError(f"{where}: field '{name}.{content_key}': expected a string")
        _check_unicode(content, f"{name}.{content_key}", where)
        expected = ("user", "assistant")[(i - starts_with_system) % 2]
        if role != expected and not (role == "system" and i == 0):
            problem = "a system message may only come first" if role == "system" else (
                f"expected {expected}: after an optional system message, user and assistant alternate")
            raise DataError(f"{where}: field '{name}.{role_key}': {written!r}: {problem}")
        turns.append((role, content))
    system = turns.pop(0)[1] if turns[0][0] == "system" else None
    if len(turns) < 2 or turns[-1][0] != "assistant":
        raise DataError(f"{where}: field '{list_name}': must end with a user message then the assistant answer")
    if not turns[-1][1].strip():
        raise DataError(f"{where}: field '{messages[-1][0]}.{content_key}': empty answer")
    if not turns[-2][1].strip():
        raise DataError(f"{where}: field '{messages[-2][0]}.{content_key}': empty question")
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
