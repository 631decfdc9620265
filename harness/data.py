"""Task data: read alpaca, chat or prompt/completion examples, and split them.

Formats are detected per file from its first record; every record is then checked against that
format, and a bad one raises `DataError` naming the file, the line and the field. Splits are
deterministic: examples are ordered by a seeded hash of their id, so adding data moves few items.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from harness.errors import DataError

MAX_RECORD_BYTES = 1 << 20
"""Largest record (a JSONL line, or one element of a JSON array), checked before it is parsed."""
MAX_ARRAY_FILE_BYTES = 512 << 20
"""Largest JSON-array file: it is parsed whole. JSONL is read line by line, with no cap on the file."""
ROLES = ("system", "user", "assistant")
_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(r"[ \t\r\n]*")


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

def read_records(path: Path, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[tuple[int, Any]]:
    r"""Yield (line number, parsed record) from a JSONL file or a JSON array file.

    A JSONL line ends at "\n" only: U+2028, U+0085, \x0b and \x0c are legal inside JSON strings, and
    str.splitlines would cut records there. Lines are read in binary and their size checked before they
    are decoded and parsed, so a runaway line costs at most `max_record_bytes` of memory.
    """
    try:
        with path.open("rb") as f:
            if _first_byte(f) == b"[":
                yield from _read_json_array(path, f, max_record_bytes)
                return
            number = 0
            while raw := f.readline(max_record_bytes + 2):  # + 2: room for "\r\n"
                number += 1
                line = (raw.removeprefix(_BOM) if number == 1 else raw).removesuffix(b"\n").removesuffix(b"\r")
                if len(line) > max_record_bytes:
                    size = len(line) + (0 if raw.endswith(b"\n") else _skip_line(f))
                    raise DataError(f"{path}:{number}: record is {size:,} bytes, over the limit of "
                                    f"{max_record_bytes:,} (MAX_RECORD_BYTES)")
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid UTF-8 (byte {exc.start + 1} of the line)") from None
                if text.strip(" \t"):
                    yield number, _parse_json(text, path, number)
    except OSError as exc:
        raise DataError(f"{path}:1: cannot read the file ({exc.strerror})") from None


def _first_byte(f: BinaryIO) -> bytes:
    """The first byte after a BOM and whitespace (b"" for an empty file); the file is rewound."""
    if f.read(len(_BOM)) != _BOM:
        f.seek(0)
    while (byte := f.read(1)) in (b" ", b"\t", b"\r", b"\n"):
        pass
    f.seek(0)
    return byte


def _skip_line(f: BinaryIO) -> int:
    """Read past the rest of an over-long line in bounded chunks; its remaining length in bytes."""
    skipped = 0
    while chunk := f.readline(1 << 20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            return skipped - len(chunk) + len(chunk.rstrip(b"\r\n"))
    return skipped


class _NotFinite(ValueError):
    """NaN, Infinity or a float that overflows: Python's json takes them, JSON does not."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _reject_constant(name: str) -> Any:
    raise _NotFinite(name)


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_reject_constant, strict=False)
r"""strict=False: raw control characters (\x0b, \x0c, tabs) inside strings load, as many writers emit them."""


def _parse_json(text: str, path: Path, line: int, start: int | None = None) -> Any:
    """The JSON value that is `text`, or (value, end) for the one at `start` (then error lines are absolute)."""
    try:
        return _DECODER.decode(text) if start is None else _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        where = f"{path}:{line if start is None else exc.lineno}"
        raise DataError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    except _NotFinite as exc:
        raise DataError(f"{path}:{line}: invalid JSON: {exc} is not a number JSON allows") from None
    except ValueError:  # int() past Python's digit limit
        raise DataError(f"{path}:{line}: invalid JSON: an integer with too many digits") from None
    except RecursionError:
        raise DataError(f"{path}:{line}: invalid JSON: nested too deeply") from None


def _read_json_array(path: Path, f: BinaryIO, max_record_bytes: int) -> Iterator[tuple[int, Any]]:
    """The records of a file holding one JSON array, each with the line it starts on.

    Parsed record by record so that line numbers are known; the commas are checked here, since a
    missing, doubled or trailing one would otherwise merge or drop records without a word.
    """
    raw = f.read(MAX_ARRAY_FILE_BYTES + 1)
    if len(raw) > MAX_ARRAY_FILE_BYTES:
        raise DataError(f"{path}:1: a JSON array file may be at most {MAX_ARRAY_FILE_BYTES:,} bytes; "
                        f"use JSONL (one record per line), which is read line by line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8") from None
    del raw
    line, counted = 1, 0

    def line_at(pos: int) -> int:  # incremental: positions only grow, so the text is counted once
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def fail(pos: int, problem: str) -> NoReturn:
        raise DataError(f"{path}:{line_at(pos)}: invalid JSON array: {problem}")

    pos = _skip_space(text, text.index("[") + 1)
    after_comma = False
    while True:
        if pos >= len(text):
            fail(pos, "not closed with ']'")
        if text[pos] == "]":
            if after_comma:
                fail(pos, "a trailing comma after the last record")
            break
        if text[pos] == ",":
            fail(pos, "a comma with no record before it")
        start = line_at(pos)
        record, end = _parse_json(text, path, start, pos)
        size = end - pos  # characters: a quarter of the bytes at least, so most records need no encoding
        if size * 4 > max_record_bytes and (size := len(text[pos:end].encode())) > max_record_bytes:
            fail(pos, f"record is {size:,} bytes, over the limit of {max_record_bytes:,} (MAX_RECORD_BYTES)")
        yield start, record
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] not in ",]":
            fail(pos, "missing comma between records")
        after_comma = pos < len(text) and text[pos] == ","
        if after_comma:
            pos = _skip_space(text, pos + 1)
    if (pos := _skip_space(text, pos + 1)) < len(text):
        fail(pos, "content after the closing ']'")


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


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
    _check_unicode(value, key, where)
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


def _parse_chat(messages: Any, where: str) -> tuple[str | None, tuple[tuple[str, str], ...], str, str]:
    """An optional system message first, then user and assistant turns alternating, ending with the answer."""
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
        _check_unicode(content, f"{field_name}.content", where)
        expected = ("user", "assistant")[(i - (messages[0].get("role") == "system")) % 2]
        if role != expected and not (role == "system" and i == 0):
            problem = "a system message may only come first" if role == "system" else (
                f"expected {expected}: after an optional system message, user and assistant alternate")
            raise DataError(f"{where}: field '{field_name}.role': {role!r}: {problem}")
        turns.append((role, content))
    system = turns.pop(0)[1] if turns[0][0] == "system" else None
    if len(turns) < 2 or turns[-1][0] != "assistant":
        raise DataError(f"{where}: field 'messages': must end with a user message then the assistant answer")
    if not turns[-1][1].strip():
        raise DataError(f"{where}: field 'messages[{len(messages) - 1}].content': empty answer")
    if not turns[-2][1].strip():
        raise DataError(f"{where}: field 'messages[{len(messages) - 2}].content': empty question")
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
