"""Bench section: the harness's MMLU wall time against the bare `lm_eval` command on the same slice.

Both run in a fresh process on the default MMLU slice (`BenchmarksConfig()`: 100 questions,
stratified by subject), the embedded model, the same include path and batch size, with nothing
cached: the ratio is what the harness adds around lm-eval (slicing, cache keys, per-item records),
less what it saves (it indexes only its own tasks). The rerun line is the cached harness call.

    python -m harness.speed lm_eval_overhead
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS = """
import json, sys
from harness.benchmarks import run_general_benchmarks
from harness.config import BenchmarksConfig
settings = BenchmarksConfig(humaneval=False, batch_size={batch})
result = run_general_benchmarks({model!r}, None, settings, lambda _: None, use_cache={cache})["mmlu"]
print("RESULT " + json.dumps({{k: result[k] for k in ("score", "n", "seconds", "model_load_s", "cached")}}))
"""


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, done.stdout


def _harness(model: str, batch: int, cache: bool, env: dict[str, str]) -> tuple[float, dict]:
    seconds, out = _timed([sys.executable, "-c", HARNESS.format(model=model, batch=batch, cache=cache)], env)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return seconds, json.loads(line.removeprefix("RESULT "))


def run(machine: dict) -> dict:
    from harness.benchmarks import data
    from harness.benchmarks.runner import TASKS_DIR
    from harness.config import BenchmarksConfig
    from harness.models import resolve_model

    settings = BenchmarksConfig()
    model = resolve_model("embedded:smollm2-135m-instruct")
    rows = data.mmlu_slice(None, settings.mmlu_per_subject, settings.mmlu_limit, settings.seed)
    path, _ = data.materialize("mmlu", rows)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    device = "cuda" if machine.get("device") == "cuda" else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"

    harness_s, ours = _harness(model, settings.batch_size, False, env)
    with tempfile.TemporaryDirectory() as out_dir:
        lm_eval = str(Path(sys.executable).with_name("lm_eval"))
        cli_s, _ = _timed([lm_eval, "run", "--model", "hf", "--model_args",
                           f"pretrained={model},dtype={dtype}", "--device", device, "--tasks", "ftrag_mmlu",
                           "--include_path", str(TASKS_DIR), "--metadata", json.dumps({"mmlu_file": str(path)}),
                           "--batch_size", str(settings.batch_size), "--output_path", out_dir], env)
        result_file = next(Path(out_dir).rglob("results_*.json"))
        cli = json.loads(result_file.read_text())["results"]["ftrag_mmlu"]
    rerun_s, again = _harness(model, settings.batch_size, True, env)

    figures = {
        "mmlu_items": len(rows), "batch_size": settings.batch_size, "device": device,
        "harness_wall_s": round(harness_s, 1), "harness_eval_s": ours["seconds"],
        "harness_model_load_s": ours["model_load_s"], "lm_eval_cli_wall_s": round(cli_s, 1),
        "harness_over_cli_ratio": round(harness_s / cli_s, 3),
        "cached_rerun_wall_s": round(rerun_s, 1), "cached_rerun_hit": again["cached"],
        "harness_acc": ours["score"], "lm_eval_cli_acc": cli["acc,none"],
        "same_accuracy": abs(ours["score"] - cli["acc,none"]) < 1e-9,
    }
    figures["markdown"] = "\n".join([
        "## lm-eval overhead (MMLU)", "",
        (f"{len(rows)} MMLU questions (default slice), embedded SmolLM2-135M-Instruct, {device}, batch size "
         f"{settings.batch_size}; each a fresh process, wall time including imports and model load."), "",
        "| run | wall (s) | acc |", "| --- | --- | --- |",
        f"| harness `run_general_benchmarks` | {harness_s:.1f} | {ours['score']:.3f} |",
        f"| bare `lm_eval run` | {cli_s:.1f} | {cli['acc,none']:.3f} |",
        f"| harness, cached rerun | {rerun_s:.1f} | {again['score']:.3f} |", "",
        f"Ratio harness / lm_eval: **{harness_s / cli_s:.2f}**; same accuracy: {figures['same_accuracy']}.",
    ])
    return figures
