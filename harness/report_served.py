"""The report's "Served (exported) models": a run's fine-tuned arm exported to GGUF (issue 16) and re-scored,
file by file, on the same held-out items through llama.cpp, beside the arm as the harness served it.

The export pipeline writes `<run_dir>/export/<strategy>/served.json` (schema_version 1) and moves the folder into
place only when complete, so a folder without one (a staging `export/.<name>.tmp`) is not read. `load_served`
parses every served.json once; a damaged one is left out with one warning naming the file (and line or field).
`served_warnings` and `served_body` turn the parsed files into the report's warnings and the section's Markdown.

Units as in served.json's `units` map: sizes in bytes (shown in MiB), latency in seconds, scores and agreement
as fractions 0-1 (agreement also shown in %). Any key may be missing from a row that did not run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError
from harness.report_format import NOT_RUN, count, latency_label, md_table
from harness.run_schema import StrategyMetrics

SERVED_FILE = "served.json"
HEADING = "Served (exported) models"
NUMBERS = ("size_bytes", "score", "ci_low", "ci_high", "n", "agreeing_items", "agreement", "delta", "delta_ci_low",
           "delta_ci_high", "p_value", "latency_p50", "latency_p95")
TEXTS = ("variant", "file", "quantization", "backend", "status", "test")
UNITS = {f"served.*.rows.*.{k}": u for k, u in (
    ("size_bytes", "bytes"), ("latency_p50", "s"), ("latency_p95", "s"), ("score", "fraction"),
    ("ci_low", "fraction"), ("ci_high", "fraction"), ("n", "items"), ("agreeing_items", "items"),
    ("agreement", "fraction"), ("delta", "fraction"), ("delta_ci_low", "fraction"), ("delta_ci_high", "fraction"))}
"""report.json's units for the `served` entries it carries (the arm's figures use the same units)."""
MIB = 2**20


def load_served(run_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every export/<strategy>/served.json by strategy (folder name), and one warning per damaged file."""
    export = run_dir / "export"
    served: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if not export.is_dir():
        return served, problems
    for folder in sorted(export.iterdir()):
        path = folder / SERVED_FILE
        # A dot-folder is the pipeline's staging area: never complete, even when a served.json is already there.
        if folder.name.startswith(".") or not path.is_file():
            continue
        where = f"export/{folder.name}/{SERVED_FILE}"
        try:
            served[folder.name] = _parse(path, where)
        except HarnessError as exc:
            problems.append(f"{exc}; its served models are not shown")
    return served, problems


def _parse(path: Path, where: str) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HarnessError(f"{where}: damaged served file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{where}:{exc.lineno}: damaged served file: {exc.msg}") from None
    except OSError as exc:
        raise HarnessError(f"{where}: unreadable served file: {exc.strerror}") from None
    if not isinstance(raw, dict):
        raise HarnessError(f"{where}: damaged served file: not a JSON object")
    _check(where, "arm", raw.get("arm"), dict)
    _check(where, "rows", raw.get("rows"), list)
    _check(where, "warnings", raw.get("warnings"), list)
    for i, warning in enumerate(raw.get("warnings") or []):
        _check(where, f"warnings[{i}]", warning, str)
    for key in ("score", "ci_low", "ci_high", "latency_p50", "latency_p95"):
        _check(where, f"arm.{key}", (raw.get("arm") or {}).get(key), (int, float))
    for i, row in enumerate(raw.get("rows") or []):
        _check(where, f"rows[{i}]", row, dict)
        for key in NUMBERS:
            _check(where, f"rows[{i}].{key}", row.get(key), (int, float))
        for key in TEXTS:
            _check(where, f"rows[{i}].{key}", row.get(key), str)
        _check(where, f"rows[{i}].significant_drop", row.get("significant_drop"), bool)
    return raw


def _check(where: str, name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """None passes (any key may be missing); a bool is not a number."""
    if value is None or (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        return
    expected = {dict: "an object", list: "a list", str: "text", bool: "true or false"}.get(kind, "a number")
    raise HarnessError(f"{where}: damaged served file: field '{name}' should be {expected}, got {value!r}"[:300])


def _number(value: Any, spec: str) -> str:
    return NOT_RUN if value is None else format(value, spec)


def _ok(row: dict[str, Any]) -> bool:
    return row.get("status") == "ok"


def _label(row: dict[str, Any]) -> str:
    variant = row.get("variant") or "?"
    return f"{variant} ({row['file']})" if row.get("file") else variant


def _drops(strategy: str, data: dict[str, Any]) -> list[str]:
    """One sentence per served model whose score dropped significantly against the arm."""
    rows = data.get("rows") or []
    return [_drop_sentence(strategy, row) for row in rows if _ok(row) and row.get("significant_drop")]


def served_warnings(served: dict[str, dict[str, Any]]) -> list[str]:
    """Every exported strategy's warnings for the report's warnings list (the pipeline's named by strategy)."""
    out = []
    for strategy, data in served.items():
        out += [f"{strategy} (served): {w}" for w in data.get("warnings") or []] + _drops(strategy, data)
    return out


def _drop_sentence(strategy: str, row: dict[str, Any]) -> str:
    how = ", ".join(str(row[k]) for k in ("file", "quantization", "backend") if row.get(k))
    sentence = f"{strategy} served as {row.get('variant') or '?'}" + (f" ({how})" if how else "")
    sentence += " scores significantly lower than in the harness"
    if row.get("delta") is not None:
        sentence += f": {abs(row['delta']):.3f} lower (fraction of items"
        if row.get("delta_ci_low") is not None and row.get("delta_ci_high") is not None:
            sentence += f"; 95% CI of the change {row['delta_ci_low']:+.3f} to {row['delta_ci_high']:+.3f}"
        sentence += ")"
    if row.get("p_value") is not None:
        sentence += f", p = {row['p_value']:.3g}" + (f" ({row['test']})" if row.get("test") else "")
    return sentence + "."


def _score(values: dict[str, Any]) -> str:
    if values.get("score") is None:
        return NOT_RUN
    ci = (f" [{values['ci_low']:.3f}, {values['ci_high']:.3f}]"
          if values.get("ci_low") is not None and values.get("ci_high") is not None else "")
    return f"{values['score']:.3f}{ci}"


def _latency(values: dict[str, Any]) -> str:
    p50, p95 = values.get("latency_p50"), values.get("latency_p95")
    if p50 is None and p95 is None:
        return NOT_RUN
    kind = f", {values['latency_kind']}" if values.get("latency_kind") else ""
    return f"{_number(p50, '.2f')} / {_number(p95, '.2f')}{kind}"


def _agreement(row: dict[str, Any]) -> str:
    items, n, share = row.get("agreeing_items"), row.get("n"), row.get("agreement")
    if share is None and items is not None and n:
        share = items / n
    if items is None:
        return NOT_RUN if share is None else f"{share * 100:.1f}%"
    return f"{count(items)} of {count(n)}" + (f" ({share * 100:.1f}%)" if share is not None else "")


def _change(row: dict[str, Any]) -> str:
    if row.get("delta") is None:
        return NOT_RUN
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    ci = f" [{low:+.3f}, {high:+.3f}]" if low is not None and high is not None else ""
    return f"{row['delta']:+.3f}{ci}"


def _p(row: dict[str, Any]) -> str:
    if row.get("p_value") is None:
        return NOT_RUN
    return f"{row['p_value']:.3g}" + (f" ({row['test']})" if row.get("test") else "")


def _arm_values(data: dict[str, Any], m: StrategyMetrics | None) -> dict[str, Any]:
    """The arm's figures from served.json; a score (with its CI) or latency pair it lacks from metrics.json, each
    taken whole from one file so a cell never mixes two measurements."""
    arm = data.get("arm") or {}
    values = {k: v for k, v in arm.items() if v is not None}
    if m is None or not m.ok:
        return values
    if arm.get("score") is None:
        values |= {"score": m.score, "ci_low": m.ci_low, "ci_high": m.ci_high}
    # served.json's arm names its median only; the metrics' p95 completes it when both are the same measurement.
    if arm.get("latency_p50") is None or (arm["latency_p50"] == m.latency_p50 and arm.get("latency_p95") is None):
        values |= {"latency_p50": m.latency_p50, "latency_p95": m.latency_p95}
        if m.latency_kind != "single request":
            values["latency_kind"] = latency_label(m.latency_kind)
    values.setdefault("n", m.n)
    for key in ("backend", "quantization"):
        if (m.serving or {}).get(key) is not None:
            values.setdefault(key, (m.serving or {})[key])
    return values


def served_table(strategy: str, data: dict[str, Any], m: StrategyMetrics | None) -> pd.DataFrame:
    """The in-harness arm, then one row per served model; a model that did not run says why in its score cell."""
    arm = _arm_values(data, m)
    rows = [{"answered by": f"{strategy}, in the harness", "backend": arm.get("backend", NOT_RUN),
             "quantization": arm.get("quantization", NOT_RUN), "file size (MiB)": NOT_RUN,
             "held-out score [95% CI]": _score(arm), "n": count(arm.get("n", data.get("test_items"))),
             "same answer as in harness (items, %)": "(reference)", "change vs in harness [95% CI]": "(reference)",
             "p (test)": NOT_RUN, "latency p50 / p95 (s)": _latency(arm)}]
    for row in data.get("rows") or []:
        cells = {"answered by": _label(row), "backend": row.get("backend") or NOT_RUN,
                 "quantization": row.get("quantization") or NOT_RUN,
                 "file size (MiB)": NOT_RUN if row.get("size_bytes") is None else f"{row['size_bytes'] / MIB:,.1f}"}
        if not _ok(row):
            status = row.get("status") or "no status recorded"
            rows.append({**cells, "held-out score [95% CI]": status if status.startswith("not run")
                         else f"not run: {status}"})
            continue
        rows.append({**cells, "held-out score [95% CI]": _score(row), "n": count(row.get("n")),
                     "same answer as in harness (items, %)": _agreement(row),
                     "change vs in harness [95% CI]": _change(row), "p (test)": _p(row),
                     "latency p50 / p95 (s)": _latency(row)})
    return pd.DataFrame(rows).fillna(NOT_RUN)


def _explanation(strategy: str, data: dict[str, Any], scorer: str) -> str:
    items = f"the same {count(data['test_items'])}" if data.get("test_items") is not None else "the same"
    return (f"Served: the exported GGUF file answering {items} held-out items through llama.cpp (or the backend a "
            f"row names), greedy, with the same prompts as {strategy} in the harness; scores are "
            f"`{data.get('scorer') or scorer}` as fractions 0-1 with 95% CIs; same answer counts items whose answer "
            f"text is identical to the harness's; change is served minus in-harness on the same items, with its "
            f"95% CI and the test named; latency in seconds per answer.")


def served_body(served: dict[str, dict[str, Any]], strategies: dict[str, StrategyMetrics], scorer: str) -> str:
    """The section's Markdown: per exported strategy its table, the line saying what served means, its warnings."""
    parts = []
    for strategy, data in served.items():
        parts += [f"### {strategy}", md_table(served_table(strategy, data, strategies.get(strategy))),
                  _explanation(strategy, data, scorer)]
        warnings = list(data.get("warnings") or []) + _drops(strategy, data)
        if warnings:
            parts.append("\n".join(f"- Warning: {w}" for w in warnings))
    return "\n\n".join(parts)
