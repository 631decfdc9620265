"""The report's tables: the decision matrix (one row per strategy) and the paired comparisons.

Cells are strings with their units, so report.md, report.html and the terminal show the same text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report_format import NOT_RUN, count, duration, latency_label, usd

LATENCY = "latency p50 / p95 (s)"


def bench_cell(a: dict[str, Any], name: str, benchmark: str) -> str:
    result = (a["strategies"][name].get("benchmarks") or {}).get(benchmark)
    if not result:
        return "not run"
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    if result.get("status", "ok") != "ok":
        return result.get("status", "not run")
    cell = f"{result['score']:.3f} ± {result['stderr']:.3f} (n={count(result['n'])})"
    f = a["forgetting"].get(name, {}).get(benchmark)
    if f and f.get("status", "ok") == "ok":
        mark = "significant drop" if f["significant_drop"] else "not significant"
        cell += f", Δ {f['delta']:+.3f} (p = {f['p_value']:.3g}, {mark})"
    return cell


def latency_kinds(a: dict[str, Any]) -> set[str | None]:
    """The `latency_kind`s of the strategies that ran (None: a run from before the field existed)."""
    return {m.get("latency_kind") for m in a["strategies"].values() if m.get("status") == "ok"}


def _latency_header(kinds: set[str | None]) -> str:
    if len(kinds) != 1:
        return LATENCY  # kinds differ: each cell names its own
    label = latency_label(next(iter(kinds)))
    return f"{label} p50 / p95 (s)" if label.endswith("latency") else f"{LATENCY}, {label}"


def _latency_cell(m: dict[str, Any], per_cell_kind: bool) -> str:
    cell = f"{m['latency_p50_s']:.2f} / {m['latency_p95_s']:.2f}"
    if "retrieval_p50_s" in m:
        cell += f" (of which retrieval {m['retrieval_p50_s'] * 1000:.0f} / {m['retrieval_p95_s'] * 1000:.0f} ms)"
    return cell + (f", {latency_label(m.get('latency_kind'))}" if per_cell_kind else "")


def _one_time(m: dict[str, Any]) -> str:
    """USD and machine time of what the strategy built, naming builds it shares with other strategies."""
    c = m["cost"]
    if not c["one_time_s"]:
        return "$0 (nothing to build)"
    devices = c.get("one_time_devices") or [(m.get("fit") or {}).get("device", "cpu")]
    machines = " + ".join(dict.fromkeys("GPU" if d.startswith("cuda") else "CPU" for d in devices))
    shared = "".join(f"; {what} shared with {', '.join(names)}" for what, names in (c.get("shared") or {}).items())
    return f"{usd(c['one_time_usd'])} ({duration(c['one_time_s'])} of {machines}{shared})"


def _throughput(m: dict[str, Any]) -> str:
    rate = m.get("throughput_answers_per_s")
    if rate is None:
        return NOT_RUN
    return f"{rate:.3g}" + (f" at batch size {m['batch_size']}" if m.get("batch_size") else "")


def matrix(a: dict[str, Any]) -> pd.DataFrame:
    """One row per strategy; a strategy that did not run says why in the score column and "—" elsewhere."""
    kinds = latency_kinds(a)
    latency_header = _latency_header(kinds)
    with_throughput = any("throughput_answers_per_s" in m for m in a["strategies"].values())
    with_hosted = any((m.get("cost") or {}).get("hosted_per_1k_answers_usd") is not None
                      for m in a["strategies"].values())
    rows = []
    for name, m in a["strategies"].items():
        if m.get("status") != "ok":
            rows.append({"strategy": name, "held-out score [95% CI]": m.get("status", "not run"), "n": NOT_RUN})
            continue
        c = m["cost"]
        row = {
            "strategy": name,
            "held-out score [95% CI]": f"{m['score']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
                                       + (" (zero-width: spread not measurable)" if m.get("ci_degenerate") else ""),
            "n": count(m["n"]),
            "MMLU (Δ vs base)": bench_cell(a, name, "mmlu"),
            "HumanEval (Δ vs base)": bench_cell(a, name, "humaneval"),
            latency_header: _latency_cell(m, len(kinds) > 1),
        }
        if with_throughput:
            row["throughput (answers/s)"] = _throughput(m)
        row["prompt tokens/answer"] = f"{m['prompt_tokens_mean']:.0f}"
        row["one-time cost (USD)"] = _one_time(m)
        row["cost per 1,000 answers (USD)"] = usd(c["per_1k_answers_usd"])
        if with_hosted:
            row["hosted API per 1,000 answers (USD)"] = usd(c.get("hosted_per_1k_answers_usd"))
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
