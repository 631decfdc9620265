"""The decision-matrix report, rebuilt from a run directory alone:
`python -m harness report results/<task>/<run-id>` writes report.json, report.md and report.html.

`load_run` parses the run's files once into typed records (harness/run_schema.py, report_record.py);
`analyze` turns them into a `RunReport` (report.json, schema_version 2). `report_sections` builds
the report's sections from it once; `report_render` writes them as report.md and report.html, and
`report_plots` draws the plots both show (PNG files beside report.md, embedded in the HTML).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from harness import cost as cost_model
from harness import verdict as verdict_rule
from harness.benchmarks.forgetting import by_weights
from harness.caveats import caveats
from harness.config import TaskConfig
from harness.errors import HarnessError
from harness.report_format import md_table
from harness.report_matrix import matrix, verdict_line
from harness.report_record import LoadedRun, RunReport
from harness.report_served import load_served, served_warnings
from harness.run_schema import SCHEMA_VERSION, StrategyMetrics
from harness.rundir import write_json
from harness.stats import compare_strategies
from harness.timings import FILE as TIMINGS
from harness.timings import parse as timing_parse

__all__ = ["analyze", "load_run", "matrix", "terminal_summary", "write_report"]


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


def load_run(run_dir: Path) -> LoadedRun:
    """A run's files, each parsed once into the types; runs of any schema (harness/run_schema.py): old metric
    names are mapped, old fit records inferred (FitRecord.from_dict), old benchmarks.json given its layout."""
    config = _read(run_dir / "config.json")
    if not isinstance(config, dict):
        raise HarnessError(f"{run_dir}/config.json: not a run directory (missing or not a JSON object)")
    config = _with_defaults(config, dataclasses.asdict(TaskConfig()))
    run = _read(run_dir / "run.json") or {}
    metrics, items = {}, {}
    for name in run.get("strategies", config["strategies"]):
        path = run_dir / name / "metrics.json"
        raw = _read(path) or {"status": "not run: no metrics.json (interrupted?)"}
        metrics[name] = StrategyMetrics.from_dict({"strategy": name, **raw} if isinstance(raw, dict) else raw,
                                                  str(path))
        pred_path = run_dir / name / "predictions.jsonl"
        if metrics[name].ok and pred_path.is_file():
            items[name] = _read_jsonl(pred_path)
    served, served_problems = load_served(run_dir)
    timings = _read(run_dir / TIMINGS)
    if timings is not None:
        timing_parse(timings, str(run_dir / TIMINGS))  # a damaged file is named now, in one line
    return LoadedRun(config, run, _read(run_dir / "split.json") or {}, _read(run_dir / "environment.json") or {},
                     metrics, items, by_weights(_read(run_dir / "benchmarks.json") or {}), served, served_problems,
                     timings or {})


def analyze(run_dir: Path, final_dir: Path | None = None) -> RunReport:
    """Everything the report shows; `final_dir` is where the run will live when it is still staged."""
    run = load_run(run_dir)
    cfg, metrics, env, ok = run.config, run.metrics, run.environment, run.ran
    # An arm answered by several training seeds: its items' scores per seed, and their mean as its item score.
    seeds = {n: {p["id"]: p["seed_scores"] for p in run.items[n] if p.get("seed_scores")} for n in ok if n in run.items}
    scores = {n: {p["id"]: sum(p.get("seed_scores") or [p["score"]]) / len(p.get("seed_scores") or [p["score"]])
                  for p in run.items[n]} for n in ok if n in run.items}
    binary = any(m.binary for m in ok.values())
    pairs = [p.as_dict() for p in compare_strategies(scores, binary, seed=cfg["data"]["split_seed"], seeds=seeds)]
    serve_device = env.get("model", {}).get("device", "cpu")
    costs = {n: cost_model.strategy_cost(m, cfg["cost"], serve_device) for n, m in ok.items()}
    fits = {n: m.record for n, m in ok.items()}
    for name, shared in cost_model.shared_builds(fits).items():
        costs[name] = dataclasses.replace(costs[name], shared=shared)
    break_even = cost_model.break_even(costs, [n for n, f in fits.items() if f.weights.trained])
    bench = run.benchmarks
    # Forgetting of the weights each strategy answers with (the same result for strategies sharing them).
    forgetting = {n: bench["forgetting"][w] for n, w in (bench.get("by_strategy") or {}).items()
                  if w in (bench.get("forgetting") or {})}
    volume = cfg["cost"]["expected_answers"]
    sizes = run.split.get("sizes", {})
    n_labeled = cfg["facts"].get("labeled_examples") or sizes.get("train", 0) + sizes.get("dev", 0)
    decision = verdict_rule.decide(metrics, pairs, costs, forgetting, volume)
    decision["caveats"] = caveats(metrics, bench, sizes, cfg["benchmarks"]["forgetting_alpha"], cfg)
    where = final_dir or run_dir
    return RunReport(
        task=cfg["name"], description=cfg.get("description", ""), run_dir=str(where), run_id=where.name,
        scorer=cfg["scorer"],
        warnings=run.split.get("warnings", []) + bench.get("warnings", []) + _fit_warnings(metrics)
        + run.served_problems + served_warnings(run.served),
        split=sizes, strategies=metrics, costs=costs, benchmarks={n: _bench_for(bench, n) for n in metrics},
        pairs=pairs, break_even=break_even, forgetting=forgetting, verdict=decision,
        what_would_change=verdict_rule.what_would_change(decision, metrics, cfg["facts"], n_labeled, break_even,
                                                         volume),
        criteria=verdict_rule.criteria(metrics, pairs, costs, cfg["facts"], n_labeled, break_even, volume),
        config=cfg, environment=env, contamination=run.split.get("contamination", {}),
        latencies={n: [p["latency_s"] for p in run.items[n]] for n in run.items}, served=run.served,
        timings=run.timings)


def _fit_warnings(metrics: dict[str, StrategyMetrics]) -> list[str]:
    out = []
    for name, m in metrics.items():
        details = m.fit.details if m.fit is not None else {}
        # A strategy that retrieves beside other work keeps its index's record under retrieval_index.
        skipped = details.get("skipped_files") or (details.get("retrieval_index") or {}).get("skipped_files")
        if skipped:
            out.append(f"{name}: {len(skipped)} document(s) could not be read and were skipped: "
                       + ", ".join(str(s) for s in skipped[:10]))
    return out


def _bench_for(bench: dict[str, Any], strategy: str) -> dict[str, Any] | None:
    """The general-benchmark results of the weights this strategy uses (base or base+adapter)."""
    weights = bench.get("by_strategy", {}).get(strategy)
    return bench.get("weights", {}).get(weights) if weights else None


def write_report(run_dir: Path, final_dir: Path | None = None) -> Path:
    """Write report.json, report.md, report.html and the plot PNGs beside them; return the Markdown path."""
    from harness.report_plots import png_bytes
    from harness.report_render import render_html, render_markdown
    from harness.report_sections import build_report

    a = analyze(run_dir, final_dir)
    write_json(run_dir / "report.json", a.to_json())
    report = build_report(a)
    pngs = {name: png_bytes(plot.figure) for name, plot in report.plots.items()}
    for name, data in pngs.items():
        (run_dir / name).write_bytes(data)
    (run_dir / "report.html").write_text(render_html(report, pngs), encoding="utf-8")
    path = run_dir / "report.md"
    path.write_text(render_markdown(report), encoding="utf-8")
    return path


def terminal_summary(run_dir: Path) -> str:
    """The matrix and verdict, from report.json; an older schema's is rebuilt from the run's files."""
    saved = _read(run_dir / "report.json")
    fresh = isinstance(saved, dict) and saved.get("schema_version") == SCHEMA_VERSION
    a = RunReport.from_dict(saved, str(run_dir / "report.json")) if fresh else analyze(run_dir)
    v = a.verdict
    lines = [md_table(matrix(a)), "", verdict_line(v)] + [f"  - {r}" for r in v.get("reasons", [])]
    return "\n".join(lines + [f"  - caveat: {c}" for c in v.get("caveats", [])])
