"""The report's tables: the decision matrix (one row per strategy) and the paired comparisons.

Cells are strings with their units, so report.md, report.html and the terminal show the same text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report_format import NOT_RUN, count, duration, latency_label, usd
from harness.report_record import Cost, RunReport
from harness.run_schema import StrategyMetrics

LATENCY = "latency p50 / p95 (s)"


def bench_cell(a: RunReport, name: str, benchmark: str) -> str:
    result = (a.benchmarks.get(name) or {}).get(benchmark)
    if not result:
        return "not run"
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    if result.get("status", "ok") != "ok":
        return result.get("status", "not run")
    cell = f"{result['score']:.3f} ± {result['stderr']:.3f} (n={count(result['n'])})"
    f = a.forgetting.get(name, {}).get(benchmark)
    if f and f.get("status", "ok") == "ok":
        mark = "significant drop" if f["significant_drop"] else "not significant"
        cell += f", Δ {f['delta']:+.3f} (p = {f['p_value']:.3g}, {mark})"
    return cell


def latency_kinds(a: RunReport) -> set[str | None]:
    """The `latency_kind`s of the strategies that ran (None: a run from before the field existed)."""
    return {m.latency_kind for m in a.ran.values()}


def _latency_header(kinds: set[str | None]) -> str:
    if len(kinds) != 1:
        return LATENCY  # kinds differ: each cell names its own
    label = latency_label(next(iter(kinds)))
    return f"{label} p50 / p95 (s)" if label.endswith("latency") else f"{LATENCY}, {label}"


def _latency_cell(m: StrategyMetrics, per_cell_kind: bool) -> str:
    cell = f"{m.latency_p50:.2f} / {m.latency_p95:.2f}"
    r = m.retrieval
    if r is not None and r.p50 is not None and r.p95 is not None:
        cell += f" (of which retrieval {r.p50 * 1000:.0f} / {r.p95 * 1000:.0f} ms)"
    return cell + (f", {latency_label(m.latency_kind)}" if per_cell_kind else "")


def _one_time(m: StrategyMetrics, c: Cost) -> str:
    """USD and machine time of what the strategy built, naming builds it shares with other strategies."""
    if not c.one_time_compute:
        return "$0 (nothing to build)"
    devices = c.one_time_devices or [m.record.device]
    machines = " + ".join(dict.fromkeys("GPU" if d.startswith("cuda") else "CPU" for d in devices))
    shared = "".join(f"; {what} shared with {', '.join(names)}" for what, names in c.shared.items())
    return f"{usd(c.one_time)} ({duration(c.one_time_compute)} of {machines}{shared})"


def _throughput(m: StrategyMetrics) -> str:
    if m.throughput is None:
        return "n/a"
    return f"{m.throughput:.3g}" + (f" at batch size {m.batch_size}" if m.batch_size and _batches(m) else "")


def _batches(m: StrategyMetrics) -> bool:
    """Only transformers generates a batch of prompts at once; llama.cpp answers one prompt at a time per
    instance and a server as many as are in flight, so a batch size says nothing about them."""
    return (m.serving or {}).get("backend", "transformers") in ("transformers", "unsloth")


def matrix(a: RunReport) -> pd.DataFrame:
    """One row per strategy; a strategy that did not run says why in the score column and "—" elsewhere."""
    kinds = latency_kinds(a)
    latency_header = _latency_header(kinds)
    # The scoring pass records its batch size with its throughput; runs made before throughput have neither.
    with_throughput = any(m.batch_size is not None for m in a.strategies.values())
    with_hosted = any(c.hosted_per_1k_answers is not None for c in a.costs.values())
    rows = []
    for name, m in a.strategies.items():
        if not m.ok:
            rows.append({"strategy": name, "held-out score [95% CI]": m.status, "n": NOT_RUN})
            continue
        c = a.costs[name]
        row = {
            "strategy": name,
            "held-out score [95% CI]": f"{m.score:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"
                                       + (" (zero-width: spread not measurable)" if m.ci_degenerate else "")
                                       + (f" (mean of {len(m.seeds.seeds)} seeds)" if m.seeds else ""),
            "n": count(m.n),
            "MMLU (Δ vs base)": bench_cell(a, name, "mmlu"),
            "HumanEval (Δ vs base)": bench_cell(a, name, "humaneval"),
            latency_header: _latency_cell(m, len(kinds) > 1),
        }
        if with_throughput:
            row["throughput (answers/s)"] = _throughput(m)
        row["prompt tokens/answer"] = f"{m.prompt_tokens_mean:.0f}"
        row["one-time cost (USD)"] = _one_time(m, c)
        row["cost per 1,000 answers (USD)"] = usd(c.per_1k_answers)
        if with_hosted:
            row["hosted API per 1,000 answers (USD)"] = usd(c.hosted_per_1k_answers)
        rows.append(row)
    return pd.DataFrame(rows).fillna(NOT_RUN)


def pairs_table(pairs: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "pair": f"{p['a']} vs {p['b']}", "n": count(p["n"]), "difference": f"{p['diff']:+.3f}",
        "95% CI": f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]", "test": p["test"],
        "p": f"{p['p_value']:.3g}", "p (Holm)": f"{p['p_holm']:.3g}", "result": p["verdict"]} for p in pairs])


def verdict_line(v: dict[str, Any]) -> str:
    if v.get("choice") is None:
        return "No recommendation."
    tied = [c for c in v.get("candidates", []) if c != v["choice"]]
    return f"Recommended: {v['choice']}" + (f" (statistically tied with {', '.join(tied)})" if tied else "")
