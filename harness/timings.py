"""Where a compare's wall time went: each phase timed as it runs, kept in the run's timings.json.

The runner opens a `Stopwatch` before the model loads and times each phase with `clock.phase(...)`:
the model load, then per strategy its fit (dev search, index, training; cached parts take no time),
its answers on the test items, their scoring, any extra training seeds and the single-request latency
sample, then the MMLU/HumanEval benchmarks. `timings.json` is written just before the report, so the
report's "Wall time" section and the last terminal line say which phase dominates a slow run: the
profile a user needs before cutting anything. The report's own writing is the only part not timed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.report_format import duration

FILE = "timings.json"
UNTIMED = "untimed (split, records, environment)"
"""The row for the wall time between the timed phases."""


@dataclass(frozen=True)
class Phase:
    phase: str
    """What ran: "model load", "fit", "answer", "score", "extra seeds", "latency sample", "benchmarks"."""
    seconds: float
    """Wall time of the phase (s)."""
    strategy: str = ""
    """The strategy it ran for; empty for the run-wide phases."""


@dataclass
class Stopwatch:
    """The phases of one run, in the order they ran, and the run's wall time since the stopwatch began."""
    phases: list[Phase] = field(default_factory=list)
    began: float = field(default_factory=time.perf_counter)

    @contextmanager
    def phase(self, phase: str, strategy: str = "") -> Iterator[None]:
        """Time the block; a phase that raises is recorded too (a stopped run says where it stopped)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append(Phase(phase, round(time.perf_counter() - start, 3), strategy))

    def record(self) -> dict[str, Any]:
        """timings.json: the phases and the total wall time so far, in seconds."""
        return {"unit": "s", "total_s": round(time.perf_counter() - self.began, 3),
                "phases": [asdict(p) for p in self.phases]}


def parse(raw: Any, where: str = FILE) -> tuple[float, list[Phase]]:
    """(total seconds, phases) of a timings.json; a damaged one is named in one line (HarnessError)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("phases"), list):
        raise HarnessError(f"{where}: damaged run file: expected an object with a 'phases' list")
    phases = []
    for number, row in enumerate(raw["phases"], start=1):
        try:
            phases.append(Phase(str(row["phase"]), float(row["seconds"]), str(row.get("strategy") or "")))
        except (TypeError, KeyError, ValueError):
            raise HarnessError(f"{where}: phases[{number}]: damaged run file: needs 'phase' and 'seconds' "
                               "(a number)") from None
    total = raw.get("total_s")
    if not isinstance(total, (int, float)) or isinstance(total, bool):
        raise HarnessError(f"{where}: total_s: damaged run file: not a number of seconds")
    return float(total), phases


def rows(total: float, phases: list[Phase]) -> list[tuple[str, float]]:
    """(label, seconds) per phase, the longest first, with the untimed rest as its own row."""
    merged: dict[str, float] = {}
    for p in phases:
        label = f"{p.strategy}: {p.phase}" if p.strategy else p.phase
        merged[label] = merged.get(label, 0.0) + p.seconds
    rest = total - sum(merged.values())
    if rest >= 0.5:
        merged[UNTIMED] = rest
    return sorted(merged.items(), key=lambda item: -item[1])


def terminal_line(record: dict[str, Any], top: int = 3) -> str:
    """"wall time 41 min until the report: finetune: fit 23 min (56%), ..." (the longest phases)."""
    total, phases = parse(record)
    shown = [f"{label} {duration(s)} ({s / total:.0%})" for label, s in rows(total, phases)[:top] if total > 0]
    return f"wall time {duration(total)} until the report" + (": " + ", ".join(shown) if shown else "")


def wall_time_body(record: dict[str, Any] | None, cached_answers: int = 0) -> str | None:
    """The report's "Wall time" section: a sentence naming the longest phase and the table; None for runs
    made before timings.json existed."""
    if not record:
        return None
    import pandas as pd

    from harness.report_format import md_table

    total, phases = parse(record)
    table = rows(total, phases)
    if not table or total <= 0:
        return None
    longest, seconds = table[0]
    cache = (f" {cached_answers} answers came from the generation cache, so a cold run takes longer."
             if cached_answers else "")
    intro = (f"The run took {duration(total)} of wall time until the report was written; the longest phase was "
             f"**{longest}**, {duration(seconds)} ({seconds / total:.0%}). A fit includes the dev search, the "
             "index and the training; parts found in the caches take no time here." + cache)
    frame = pd.DataFrame([{"phase": label, "wall time (s)": f"{s:,.1f}", "share (%)": f"{100 * s / total:.1f}"}
                          for label, s in table])
    return intro + "\n\n" + md_table(frame)
