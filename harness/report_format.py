"""How the report writes numbers: money, durations, counts, latency kinds and Markdown tables.

Every figure a reader sees carries its unit, either in the value ("$0.035", "66 s") or in the
column header ("latency p50 / p95 (s)"). Pure functions, no imports from the other report modules.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from harness.registry import SCORERS

NOT_RUN = "—"
# A registered scorer scores an item in [0, 1] (the scorer contract, harness/scoring.py), so its axes are 0-1;
# a run made with a scorer no longer registered gets free axes.
BOUNDED_SCORERS = frozenset(SCORERS)
OLD_LATENCY = "batch wall time per answer (old run)"


def usd(value: float | None) -> str:
    """Money at a precision a reader can use: "$0", "< $0.01", "$0.035", "$6.46", "$1,230".

    Two significant figures below a dollar, cents below ten dollars, three significant figures above.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RUN
    if value == 0:
        return "$0"
    sign, x = ("-" if value < 0 else ""), abs(value)
    if x < 0.01:
        return f"{'> -' if sign else '< '}$0.01"
    if x < 1:
        decimals = max(2, 1 - math.floor(math.log10(x)))
        return f"{sign}${x:.{decimals}f}"
    if x < 10:
        return f"{sign}${x:.2f}"
    rounded = round(x, 2 - math.floor(math.log10(x)))
    return f"{sign}${rounded:,.0f}"


def duration(seconds: float | None) -> str:
    """A duration with its unit: "26 ms", "0.29 s", "66 s", "10 min", "2.5 h"."""
    if seconds is None:
        return NOT_RUN
    if seconds == 0:
        return "0 s"
    if seconds < 0.1:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def count(value: Any) -> str:
    """An item count as an integer ("120"); NOT_RUN when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RUN
    return f"{int(value):,}"


def latency_label(kind: str | None) -> str:
    """What a latency figure measured, from metrics' `latency_kind` (absent in runs made before it existed)."""
    if not kind:
        return OLD_LATENCY
    return "single-request latency" if kind == "single request" else kind


def byte_size(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def fact_line(key: str, value: Any) -> str:
    """`- index build: 0.0001 s` from ("index_build_s", 0.0001): the key's unit suffix becomes a unit."""
    if isinstance(value, bool):
        return f"- {key.replace('_', ' ')}: {'yes' if value else 'no'}"
    for suffix, unit in (("_per_s", "/s"), ("_seconds", " s"), ("_s", " s"), ("_gb", " GB")):
        if key.endswith(suffix) and isinstance(value, (int, float)):
            return f"- {key[: -len(suffix)].replace('_', ' ')}: {value:g}{unit}"
    if key.endswith("_bytes") and isinstance(value, (int, float)):
        return f"- {key[: -len('_bytes')].replace('_', ' ')}: {byte_size(value)}"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"- {key.replace('_', ' ')}: {value}"


def md_table(frame: pd.DataFrame) -> str:
    """A pipe table whose cells stay as written: no number re-parsing, `|` escaped, newlines flattened."""
    if frame.empty:
        return "(none)"
    cells = frame.astype(str).map(lambda s: re.sub(r"\s*\n\s*", " ", s).replace("|", "\\|"))
    cells.columns = [str(c).replace("|", "\\|") for c in cells.columns]
    return cells.to_markdown(index=False, disable_numparse=True)


def bullets(items: list[str]) -> str:
    return "\n".join(f"- {line}" for line in items)
