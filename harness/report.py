"""The decision-matrix report, rebuilt from a run directory alone:
`python -m harness report results/<task>/<run-id>` writes report.json, report.md and report.html.

`analyze` turns the run's files into one dict (report.json, stable keys); the Markdown, the HTML
and the terminal summary are renderings of that dict.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness import cost as cost_model
from harness import verdict as verdict_rule
from harness.config import TaskConfig
from harness.errors import HarnessError
from harness.stats import compare_strategies

SCHEMA_VERSION = 1


def _read(path: Path) -> Any:
    """A JSON file of a run, None when absent; a damaged one is named in one line (HarnessError)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: damaged run file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}: damaged run file: {exc.msg}") from None


def _read_jsonl(path: Path) -> list[Any]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: damaged run file (not UTF-8)") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{path}:{number}: damaged run file: {exc.msg}") from None
        if not isinstance(record, dict) or "id" not in record or "score" not in record:
            raise HarnessError(f"{path}:{number}: damaged run file: a prediction needs 'id' and 'score'")
        records.append(record)
    return records


def _with_defaults(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Keys added to the schema after a run was made get their defaults, so old runs still report."""
    merged = dict(defaults)
    for key, value in values.items():
        merged[key] = _with_defaults(value, defaults[key]) if isinstance(defaults.get(key), dict) else value
    return merged


def load_run(run_dir: Path) -> dict[str, Any]:
    config = _read(run_dir / "config.json")
    if not isinstance(config, dict):
        raise HarnessError(f"{run_dir}/config.json: not a run directory (missing or not a JSON object)")
    config = _with_defaults(config, dataclasses.asdict(TaskConfig()))
    run = _read(run_dir / "run.json") or {}
    metrics, items = {}, {}
    for name in run.get("strategies", config["strategies"]):
        metrics[name] = _read(run_dir / name / "metrics.json") or {
            "strategy": name, "status": "not run: no metrics.json (interrupted?)"}
        pred_path = run_dir / name / "predictions.jsonl"
        if metrics[name].get("status") == "ok" and pred_path.is_file():
            items[name] = _read_jsonl(pred_path)
    return {"config": config, "run": run, "split": _read(run_dir / "split.json") or {},
            "environment": _read(run_dir / "environment.json") or {}, "metrics": metrics, "items": items,
            "benchmarks": _read(run_dir / "benchmarks.json") or {}}


def analyze(run_dir: Path, final_dir: Path | None = None) -> dict[str, Any]:
    """Everything the report shows; `final_dir` is where the run will live when it is still staged."""
    run = load_run(run_dir)
    cfg, metrics, env = run["config"], run["metrics"], run["environment"]
    ok = {n: m for n, m in metrics.items() if m.get("status") == "ok"}
    scores = {n: {p["id"]: p["score"] for p in run["items"][n]} for n in ok if n in run["items"]}
    binary = any(m.get("binary") for m in ok.values())
    pairs = [p.as_dict() for p in compare_strategies(scores, binary, seed=cfg["data"]["split_seed"])]
    serve_device = env.get("model", {}).get("device", "cpu")
    costs = {n: cost_model.strategy_cost(m, cfg["cost"], serve_device) for n, m in ok.items()}
    break_even = cost_model.break_even(costs)
    bench = run["benchmarks"]
    forgetting = {"finetune": bench["forgetting"]} if bench.get("forgetting") else {}
    volume = cfg["cost"]["expected_answers"]
    sizes = run["split"].get("sizes", {})
    n_labeled = cfg["facts"].get("labeled_examples") or sizes.get("train", 0) + sizes.get("dev", 0)
    decision = verdict_rule.decide(metrics, pairs, costs, forgetting, volume)
    return {
        "schema_version": SCHEMA_VERSION,
        "task": cfg["name"],
        "description": cfg.get("description", ""),
        "run_dir": str(final_dir or run_dir),
        "run_id": (final_dir or run_dir).name,
        "scorer": cfg["scorer"],
        "warnings": run["split"].get("warnings", []) + bench.get("warnings", []) + _fit_warnings(metrics),
        "split": sizes,
        "strategies": {n: {**m, "cost": costs.get(n), "benchmarks": _bench_for(bench, n)}
                       for n, m in metrics.items()},
        "pairs": pairs,
        "break_even_answers": break_even,
        "forgetting": forgetting,
        "verdict": decision,
        "what_would_change": verdict_rule.what_would_change(decision, metrics, cfg["facts"], n_labeled,
                                                            break_even, volume),
        "criteria": verdict_rule.criteria(metrics, pairs, costs, cfg["facts"], n_labeled, break_even, volume),
        "config": cfg,
        "environment": env,
        "contamination": run["split"].get("contamination", {}),
        "latencies_s": {n: [p["latency_s"] for p in run["items"][n]]
                        for n in run["items"]},
    }


def _fit_warnings(metrics: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name, m in metrics.items():
        skipped = ((m.get("fit") or {}).get("details") or {}).get("skipped_files")
        if skipped:
            out.append(f"{name}: {len(skipped)} document(s) could not be read and were skipped: "
                       + ", ".join(str(s) for s in skipped[:10]))
    return out


def _bench_for(bench: dict[str, Any], strategy: str) -> dict[str, Any] | None:
    """The general-benchmark results of the weights this strategy uses (base or base+adapter)."""
    weights = bench.get("by_strategy", {}).get(strategy)
    return bench.get("weights", {}).get(weights) if weights else None


def _bench_cell(a: dict[str, Any], name: str, benchmark: str) -> str:
    result = (a["strategies"][name].get("benchmarks") or {}).get(benchmark)
    if not result:
        return "not run"
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    if result.get("status", "ok") != "ok":
        return result.get("status", "not run")
    cell = f"{result['score']:.3f} ± {result['stderr']:.3f} (n={result['n']})"
    f = a["forgetting"].get(name, {}).get(benchmark)
    if f and f.get("status", "ok") == "ok":
        mark = "significant drop" if f["significant_drop"] else "not significant"
        cell += f", Δ {f['delta']:+.3f} (p = {f['p_value']:.3g}, {mark})"
    return cell


def matrix(a: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, m in a["strategies"].items():
        if m.get("status") != "ok":
            rows.append({"strategy": name, "held-out score [95% CI]": m.get("status", "not run")})
            continue
        c = m["cost"]
        latency = f"{m['latency_p50_s']:.2f} / {m['latency_p95_s']:.2f}"
        if "retrieval_p50_s" in m:
            latency += f" (of which retrieval {m['retrieval_p50_s'] * 1000:.0f} / {m['retrieval_p95_s'] * 1000:.0f} ms)"
        rows.append({
            "strategy": name,
            "held-out score [95% CI]": f"{m['score']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]",
            "n": m["n"],
            "MMLU (Δ vs base)": _bench_cell(a, name, "mmlu"),
            "HumanEval (Δ vs base)": _bench_cell(a, name, "humaneval"),
            "latency p50 / p95 (s)": latency,
            "prompt tokens/answer": f"{m['prompt_tokens_mean']:.0f}",
            "one-time cost (USD)": f"{c['one_time_usd']:.4f} ({c['one_time_s']:.0f} s)",
            "cost per 1,000 answers (USD)": f"{c['per_1k_answers_usd']:.4f}",
        })
    return pd.DataFrame(rows).fillna("")


def render_markdown(a: dict[str, Any]) -> str:
    cfg, env = a["config"], a["environment"]
    v = a["verdict"]
    lines = [f"# {a['task']}: prompt vs RAG vs fine-tune", ""]
    if a["description"]:
        lines += [a["description"], ""]
    if a["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in a["warnings"]] + [""]
    lines += ["## Verdict", "", f"**{_verdict_line(v)}**", ""] + [f"- {r}" for r in v["reasons"]] + [""]
    if a["what_would_change"]:
        lines += ["What would change it:", ""] + [f"- {w}" for w in a["what_would_change"]] + [""]
    lines += [f"Rule: {v['rule']}", "", "## Decision matrix", "",
              f"Scorer `{a['scorer']}` (0 to 1, higher is better) on {a['split'].get('scored', '?')} held-out items; "
              "95% CIs by seeded bootstrap. Latency is the wall time of the generation batch holding the answer "
              f"(batch size {cfg['generation']['batch_size']}). Costs use {cfg['cost']['cpu_usd_per_hour']} USD/h "
              f"(CPU) and {cfg['cost']['gpu_usd_per_hour']} USD/h (GPU).", "",
              matrix(a).to_markdown(index=False), ""]
    cached = {n: m["cached_answers"] for n, m in a["strategies"].items() if m.get("cached_answers")}
    if cached:
        lines += ["Answers reused from the generation cache (text, tokens and latency as first measured): " +
                  ", ".join(f"{n} {c}" for n, c in cached.items()) + ". `--no-cache` measures afresh.", ""]
    lines += ["## Paired comparisons", ""]
    if a["pairs"]:
        lines.append(pd.DataFrame([{
            "pair": f"{p['a']} vs {p['b']}", "n": p["n"], "difference": f"{p['diff']:+.3f}",
            "95% CI": f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]", "test": p["test"],
            "p": f"{p['p_value']:.3g}", "p (Holm)": f"{p['p_holm']:.3g}", "result": p["verdict"]}
            for p in a["pairs"]]).to_markdown(index=False))
    else:
        lines.append("Fewer than two strategies ran: nothing to compare.")
    lines += ["", "## Criteria", "", pd.DataFrame(a["criteria"]).to_markdown(index=False), ""]
    lines += _details(a)
    lines += ["## Setup", "",
              f"- Model `{cfg['model']['name']}` on {env.get('model', {}).get('device', '?')} "
              f"({env.get('model', {}).get('dtype', '?')}), greedy, at most {cfg['generation']['max_new_tokens']} "
              f"new tokens, stop {cfg['generation']['stop']!r}; {cfg['prompt']['k_shot']}-shot prompt",
              f"- Split: {a['split'].get('train', '?')} train / {a['split'].get('dev', '?')} dev / "
              f"{a['split'].get('test', '?')} test examples",
              f"- Contamination: {len(a['contamination'].get('exact_overlap', []))} exact prompt overlaps, "
              f"{len(a['contamination'].get('near_duplicates', []))} near-duplicates",
              f"- Machine: {env.get('cpu_count', '?')} CPU cores, {env.get('ram_gib', '?')} GiB RAM, "
              f"{env.get('torch_threads', '?')} torch threads, GPU: {env.get('gpu') or 'none'}",
              f"- Run directory: `{a['run_dir']}`", ""]
    return "\n".join(lines)


def _verdict_line(v: dict[str, Any]) -> str:
    if v["choice"] is None:
        return "No recommendation."
    tied = [c for c in v["candidates"] if c != v["choice"]]
    return f"Recommended: {v['choice']}" + (f" (statistically tied with {', '.join(tied)})" if tied else "")


DETAIL_SKIP = {"shot_ids", "cache_dir", "skipped_files", "retrieval_by_source", "retrieval_by_answer"}


def _details(a: dict[str, Any]) -> list[str]:
    """Per-strategy facts beyond the matrix: retrieval quality and index cost, training record."""
    out = []
    for name, m in a["strategies"].items():
        if m.get("status") != "ok":
            continue
        lines = []
        if m.get("retrieval_k"):
            k = m["retrieval_k"]
            src, ans = m.get("retrieval_by_source") or {}, m.get("retrieval_by_answer") or {}
            if src.get("n"):
                lines.append(f"- Retrieval, right source document in the top {k}: hit@{k} {src['hit_at_k']:.3f}, "
                             f"MRR {src['mrr']:.3f} (n={src['n']})")
            if ans.get("n"):
                lines.append(f"- Retrieval, reference answer verbatim in a top-{k} chunk: hit@{k} "
                             f"{ans['hit_at_k']:.3f}, MRR {ans['mrr']:.3f} (n={ans['n']})")
            if not src.get("n") and not ans.get("n"):
                lines.append("- Retrieval quality: no test item names its source or has its answer verbatim in a "
                             "chunk, so hit@k is not measured")
            lines.append(f"- Latency split per answer: retrieval p50 {m['retrieval_p50_s'] * 1000:.1f} ms / p95 "
                         f"{m['retrieval_p95_s'] * 1000:.1f} ms; generation batch p50 {m['generation_p50_s']:.2f} s / "
                         f"p95 {m['generation_p95_s']:.2f} s; {m.get('passages_in_prompt_mean', 0):.1f} passages "
                         "in the prompt on average" + (
                             f"; {m['cached_query_vectors']} query embeddings from the cache (their embedding time "
                             "as first measured)" if m.get("cached_query_vectors") else ""))
        if name == "finetune" and (m.get("fit") or {}).get("details", {}).get("engine"):
            from harness.training.summary import markdown_section

            out += markdown_section(m)
            continue
        fit = m.get("fit", {}).get("details", {})
        lines += [f"- {k}: {v}" for k, v in fit.items()
                  if isinstance(v, (int, float, str)) and k not in DETAIL_SKIP]
        if fit.get("skipped_files"):
            lines.append(f"- skipped files: {fit['skipped_files']}")
        if lines:
            out += [f"### {name}", ""] + lines + [""]
    return out


def write_report(run_dir: Path, final_dir: Path | None = None) -> Path:
    """Write report.json, report.md and report.html; return the Markdown path."""
    from harness.report_html import render_html

    a = analyze(run_dir, final_dir)
    (run_dir / "report.json").write_text(json.dumps(a, indent=2, ensure_ascii=False, default=str) + "\n",
                                         encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(a, matrix(a)), encoding="utf-8")
    path = run_dir / "report.md"
    path.write_text(render_markdown(a), encoding="utf-8")
    return path


def terminal_summary(run_dir: Path) -> str:
    a = _read(run_dir / "report.json") or analyze(run_dir)
    v = a["verdict"]
    return "\n".join([matrix(a).to_markdown(index=False), "", _verdict_line(v)] + [f"  - {r}" for r in v["reasons"]])
