"""report.md from a run directory alone, so any old run can be re-reported:
`python -m harness report results/<task>/<run-id>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def load_run(run_dir: Path) -> dict[str, Any]:
    def read(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    config = read("config.json")
    if config is None:
        raise FileNotFoundError(f"{run_dir}/config.json: not a run directory")
    run = read("run.json") or {}
    metrics = {}
    for name in run.get("strategies", config["strategies"]):
        m = read(f"{name}/metrics.json")
        metrics[name] = m or {"strategy": name, "status": "not run: no metrics.json (interrupted?)"}
    return {"config": config, "run": run, "split": read("split.json") or {}, "environment": read("environment.json") or {},
            "metrics": metrics}


def summary_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, m in metrics.items():
        if m.get("status") != "ok":
            rows.append({"strategy": name, "score [95% CI]": m.get("status", "not run")})
            continue
        rows.append({
            "strategy": name,
            "score [95% CI]": f"{m['score']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]",
            "n": m["n"],
            "latency p50 (s)": f"{m['latency_p50_s']:.2f}",
            "latency p95 (s)": f"{m['latency_p95_s']:.2f}",
            "compute/answer (s)": f"{m['compute_per_answer_s']:.3f}",
            "prompt tokens/answer": f"{m['prompt_tokens_mean']:.0f}",
            "answer tokens/answer": f"{m['completion_tokens_mean']:.1f}",
            "gen. tokens/s": f"{m['completion_tokens_per_s']:.1f}",
            "fit (s)": f"{m['fit']['seconds']:.1f}",
        })
    return pd.DataFrame(rows).fillna("")


def render_markdown(run: dict[str, Any], run_dir: Path) -> str:
    cfg, split, env = run["config"], run["split"], run["environment"]
    sizes = split.get("sizes", {})
    lines = [f"# {cfg['name']}: prompt vs RAG vs fine-tune", ""]
    if cfg.get("description"):
        lines += [cfg["description"], ""]
    warnings = split.get("warnings", [])
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    lines += [
        "## Results", "",
        f"Scorer: `{cfg['scorer']}` (0 to 1, higher is better), on {sizes.get('scored', '?')} held-out test "
        f"items of {sizes.get('test', '?')}; 95% confidence intervals by seeded bootstrap. Latency is the wall "
        f"time of the generation batch (batch size {cfg['generation']['batch_size']}) holding the answer; "
        "compute/answer is its share of that batch.", "",
        summary_table(run["metrics"]).to_markdown(index=False), "",
        "## Setup", "",
        f"- Model: `{cfg['model']['name']}` on {env.get('model', {}).get('device', '?')} "
        f"({env.get('model', {}).get('dtype', '?')}), greedy decoding, at most "
        f"{cfg['generation']['max_new_tokens']} new tokens, stop strings {cfg['generation']['stop']!r}",
        f"- Prompt: system prompt {cfg['prompt']['system']!r}, {cfg['prompt']['k_shot']}-shot",
        f"- Split: {sizes.get('train', '?')} train / {sizes.get('dev', '?')} dev / {sizes.get('test', '?')} test "
        f"examples; data formats {split.get('formats', {})}",
        f"- Contamination: {len(split.get('contamination', {}).get('exact_overlap', []))} exact prompt overlaps, "
        f"{len(split.get('contamination', {}).get('near_duplicates', []))} near-duplicates "
        f"(word {split.get('contamination', {}).get('ngram', '?')}-grams)",
        f"- Machine: {env.get('cpu_count', '?')} CPU cores, {env.get('ram_gib', '?')} GiB RAM, "
        f"{env.get('torch_threads', '?')} torch threads, GPU: {env.get('gpu') or 'none'}; "
        f"torch {env.get('packages', {}).get('torch', '?')}, "
        f"transformers {env.get('packages', {}).get('transformers', '?')}",
        f"- Run directory: `{run_dir}`", "",
    ]
    return "\n".join(lines)


def write_report(run_dir: Path) -> Path:
    run = load_run(run_dir)
    path = run_dir / "report.md"
    path.write_text(render_markdown(run, run_dir), encoding="utf-8")
    return path
