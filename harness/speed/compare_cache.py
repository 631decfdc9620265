"""`compare` cold (empty caches: model conversion, index, adapter, generations, benchmarks) vs warm
(every cache hit), on a reduced copy of the knowledge demo. Goal: warm <= 5% of cold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

TASK = Path("tasks/stdlib_qa")
OVERRIDES = {
    "data": {"limit_test": 12},
    "strategies": ["prompt", "rag", "finetune"],
    "finetune": {"epochs": 1, "max_train_examples": 48},
    "benchmarks": {"mmlu_limit": 12, "humaneval": False},
}


def _task_copy(root: Path) -> Path:
    """The demo task with OVERRIDES merged into its task.yaml (keys this version lacks are dropped)."""
    from harness.config import TaskConfig

    folder = Path(shutil.copytree(TASK, root / "task"))
    cfg = yaml.safe_load((folder / "task.yaml").read_text())
    defaults = TaskConfig()
    for section, values in OVERRIDES.items():
        if isinstance(values, dict):
            known = type(getattr(defaults, section)).__dataclass_fields__
            cfg[section] = {**cfg.get(section, {}), **{k: v for k, v in values.items() if k in known}}
        else:
            cfg[section] = values
    (folder / "task.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def _compare(task: Path, env: dict[str, str], results: Path) -> float:
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(task), "--results", str(results)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compare failed: {proc.stderr[-1500:]}")
    return time.perf_counter() - began


def run(machine: dict) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ftrag-bench-") as tmp:
        root = Path(tmp)
        task = _task_copy(root)
        env = {**os.environ, "FTRAG_CACHE": str(root / "cache")}
        cold = _compare(task, env, root / "results")
        warm = _compare(task, env, root / "results")
    ratio = warm / cold
    md = "\n".join([
        "## compare: cold vs warm caches", "",
        f"stdlib_qa reduced to {OVERRIDES['data']['limit_test']} test items, prompt + rag + finetune "
        f"(1 epoch on {OVERRIDES['finetune']['max_train_examples']} examples), "
        f"MMLU {OVERRIDES['benchmarks']['mmlu_limit']} "
        "items; cold = empty cache directory (model conversion, index, adapter, generations, benchmarks).", "",
        "| run | wall time (s) |", "| --- | --- |", f"| cold | {cold:.1f} |", f"| warm | {warm:.1f} |", "",
        f"warm / cold: **{ratio:.1%}** (goal <= 5%)"])
    return {"cold_s": cold, "warm_s": warm, "warm_over_cold_ratio": ratio, "markdown": md}
