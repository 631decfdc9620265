"""Tabular data: CSV and Parquet files (through pandas) and hub datasets (through `datasets`).

Each reader yields (location, record) as `harness.jsonfile.read_records` does, a record being the
row's cells by column name, so `harness.data` detects and checks formats with the same code as for
JSON. A location is the row's line for CSV (the header is line 1) and `row N` for Parquet and hub
rows (0-based, as pandas and `datasets` index them). Rows are checked against MAX_RECORD_BYTES
once parsed; the file as a whole, which pandas reads at once, against MAX_TABLE_BYTES first.

A hub dataset is named `hf:owner/name`, optionally followed by `:config` and `#split` (a slice as
`datasets` takes it works too: `#train[:1000]`).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.jsonfile import MAX_RECORD_BYTES, capped_text

MAX_TABLE_BYTES = 512 << 20
"""Largest CSV file, and largest Parquet file once decompressed: pandas reads them whole."""
HUB_PREFIX = "hf:"
_NAME = r"[A-Za-z0-9][\w.-]{0,95}"
HUB_REF = re.compile(rf"hf:(?P<repo>{_NAME}(?:/{_NAME})?)(?::(?P<config>{_NAME}))?"
                     r"(?:#(?P<split>\w[\w.-]*(?:\[[\w:%+-]*\])?))?")


@dataclass(frozen=True)
class HubRef:
    repo: str
    config: str | None
    split: str | None
    """None: the default of the key that names the dataset."""

    def label(self, split: str) -> str:
        """`hf:owner/name[:config]#split`: how the rows' locations and the detected format name it."""
        return f"{HUB_PREFIX}{self.repo}{':' + self.config if self.config else ''}#{split}"


def parse_hub_ref(text: str) -> HubRef | None:
    """The parts of `hf:owner/name[:config][#split]`, or None when `text` is not spelled so."""
    match = HUB_REF.fullmatch(text)
    return HubRef(match["repo"], match["config"], match["split"]) if match else None


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, cells) per row; blank rows are skipped. Every cell is a string: `007` stays `007`, `NA` is text."""
    import pandas as pd

    try:
        with path.open("rb") as f:
            text = capped_text(path, f, MAX_TABLE_BYTES, f"a CSV file may be at most {MAX_TABLE_BYTES:,} bytes; "
                               "split it, or use JSONL (read line by line)")
    except OSError as exc:
        raise DataError(f"{path}:1: cannot read the file ({exc.strerror})") from None
    try:
        # skip_blank_lines=False keeps blank lines as rows, so that row i is line i + 2 (before multi-line cells)
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}:1: no examples in file (no header row)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        message = _first_line(exc).removeprefix("Error tokenizing data. C error: ")
        line = re.search(r"\bline (\d+)", message)
        row = re.search(r"\brow (\d+)", message)  # the tokenizer's rows count the header as row 0
        at = int(line[1]) if line else int(row[1]) + 1 if row else 1
        raise DataError(f"{path}:{at}: invalid CSV: {message}") from None
    del text
    columns = [str(c) for c in frame.columns]
    line = 2 + sum(c.count("\n") for c in columns)
    for cells in zip(*(frame[c].tolist() for c in frame.columns)):
        if any(cells):
            yield line, _record(columns, cells, f"{path}:{line}")
        line += 1 + sum(c.count("\n") for c in cells)  # a quoted cell may span lines


def read_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`row N`, cells) per row, nulls left out; list and struct columns (chat messages) as lists and dicts."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        size = path.stat().st_size
        meta = pq.ParquetFile(path).metadata
    except OSError as exc:
        raise DataError(f"{path}:1: cannot read the file ({exc.strerror or _first_line(exc)})") from None
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(f"{path}:1: not a readable Parquet file ({_first_line(exc)})") from None
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if max(size, unpacked) > MAX_TABLE_BYTES:
        raise DataError(f"{path}:1: a Parquet file may hold at most {MAX_TABLE_BYTES:,} bytes of data, this one "
                        f"{max(size, unpacked):,}; split it, or use JSONL (read line by line)")
    try:
        frame = pd.read_parquet(path, dtype_backend="pyarrow")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}:1: not a readable Parquet file ({_first_line(exc)})") from None
    columns = [str(c) for c in frame.columns]
    for i, cells in enumerate(zip(*(frame[c].tolist() for c in frame.columns))):
        yield f"row {i}", _record(columns, cells, f"{path}:row {i}", pd.NA)


def read_hub(ref: HubRef, split: str, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`row N`, row) of a hub dataset's split; `where` (task.yaml's line and field) prefixes a failure to load.

    Offline (harness.models.hub_reachable), only the local datasets cache is read.
    """
    from harness.models import hub_reachable

    online = hub_reachable()
    import datasets

    if not online:
        datasets.config.HF_HUB_OFFLINE = True  # read when datasets is imported, which may predate the probe
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity_error()  # each cached load warns "Using the latest cached version"
    try:
        dataset = datasets.load_dataset(ref.repo, ref.config, split=split)
    except Exception as exc:  # datasets raises many kinds: not found, offline, unknown split or config
        raise DataError(f"{where}: {_hub_problem(ref, split, exc, online)}") from None
    finally:
        datasets.logging.set_verbosity(verbosity)
    label = ref.label(split)
    for i, row in enumerate(dataset):
        yield f"row {i}", _record([str(k) for k in row], row.values(), f"{label}:row {i}")


def _hub_problem(ref: HubRef, split: str, exc: Exception, online: bool) -> str:
    from datasets.exceptions import DatasetNotFoundError

    if not online and isinstance(exc, (ConnectionError, FileNotFoundError)):
        return (f"dataset {ref.repo!r} is not in the local datasets cache and the hub is not reachable (offline); "
                f"load it once online, or give a local file")
    if isinstance(exc, DatasetNotFoundError):
        return f"no dataset {ref.repo!r} on the hub (or it is private or gated: set HF_TOKEN)"
    if isinstance(exc, ValueError) and "split" in str(exc).lower():
        return f"split {split!r} of {ref.repo!r}: {_first_line(exc)}"
    return f"cannot load {ref.repo!r}: {type(exc).__name__}: {_first_line(exc)}"


def _record(columns: list[str], cells: Iterable[Any], where: str, na: Any = None) -> dict[str, Any]:
    """The row as a record: null cells (and an empty `id`, all a CSV can say for "none") left out, size checked."""
    record: dict[str, Any] = {}
    size = 0
    for name, value in zip(columns, cells):
        if value is None or value is na or isinstance(value, float) and math.isnan(value):
            continue
        if name == "id" and value == "":
            continue
        record[name] = value
        size += _size(value)
    if size > MAX_RECORD_BYTES:
        raise DataError(f"{where}: record is {size:,} bytes, over the limit of {MAX_RECORD_BYTES:,} "
                        f"(MAX_RECORD_BYTES)")
    return record


def _size(value: Any) -> int:
    """UTF-8 bytes of the text in a cell, nested lists and structs included: the part that can be large."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
