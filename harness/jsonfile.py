"""Reading JSONL and JSON-array data files into (line number, parsed record), safely.

A record's size is checked before it is parsed, JSON that Python's json takes but JSON does not (NaN,
Infinity, huge integers) is refused, and a JSON array's commas are checked; every problem raises a
one-line `DataError` naming the file and the line. `harness.data` turns the records into examples.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from harness.errors import DataError

MAX_RECORD_BYTES = 1 << 20
"""Largest record: a JSONL line or a JSON array element, checked before it is parsed; a table row, after."""
MAX_ARRAY_FILE_BYTES = 512 << 20
"""Largest JSON-array file: it is parsed whole. JSONL is read line by line, with no cap on the file."""
_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(r"[ \t\r\n]*")


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


def capped_text(path: Path, f: BinaryIO, cap: int, too_big: str) -> str:
    """At most `cap` bytes of an open file, decoded as UTF-8 (a BOM is fine); a one-line DataError naming
    the line of the first bad byte, or saying `too_big` when the file is longer. For files parsed whole."""
    raw = f.read(cap + 1)
    if len(raw) > cap:
        raise DataError(f"{path}:1: {too_big}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (save the file as UTF-8)") from None


def _read_json_array(path: Path, f: BinaryIO, max_record_bytes: int) -> Iterator[tuple[int, Any]]:
    """The records of a file holding one JSON array, each with the line it starts on.

    Parsed record by record so that line numbers are known; the commas are checked here, since a
    missing, doubled or trailing one would otherwise merge or drop records without a word.
    """
    text = capped_text(path, f, MAX_ARRAY_FILE_BYTES, f"a JSON array file may be at most {MAX_ARRAY_FILE_BYTES:,} "
                       "bytes; use JSONL (one record per line), which is read line by line")
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
