"""Parent side of training: reuse a finished adapter, else run the worker in a child process.

The child's output goes to this process's stderr (the terminal). A child that dies, even by
`kill -9`, leaves its epoch checkpoints in the work folder, and the next call resumes from them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import touch_used
from harness.training import resume
from harness.training.spec import TrainSpec


class TrainingFailed(HarnessError):
    """The training process exited with an error or was killed."""


def write_records(path: Path, records: list[dict[str, str]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def train_or_reuse(spec: TrainSpec, train: list[dict[str, str]], dev: list[dict[str, str]]) -> dict[str, Any]:
    """The fit record (worker's fit.json) plus `cache_hit`; trains first when the adapter is not there yet."""
    work = Path(spec.work_dir)
    with resume.locked(work):
        if resume.is_finished(work):
            touch_used(work / "fit.json")
            fit = json.loads((work / "fit.json").read_text(encoding="utf-8"))
            return {**fit, "cache_hit": True}
        write_records(work / "train.jsonl", train)
        write_records(work / "dev.jsonl", dev)
        spec.save(work / "spec.json")
        run_worker(work / "spec.json")
        fit = json.loads((work / "fit.json").read_text(encoding="utf-8"))
        return {**fit, "cache_hit": False}


def run_worker(spec_path: Path) -> None:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness.training.worker", str(spec_path)],
                          stdout=sys.stderr, env=env, check=False)
    if proc.returncode == 0:
        return
    done = resume.complete_checkpoints(spec_path.parent / "checkpoints")
    kept = (f"epoch {round(resume.checkpoint_state(done[-1])['epoch'])} is checkpointed; the next run resumes there"
            if done else "no epoch finished")
    if proc.returncode < 0:
        raise TrainingFailed(f"training was killed by {signal.Signals(-proc.returncode).name} ({kept})")
    raise TrainingFailed(f"training failed with exit code {proc.returncode}, see the output above ({kept})")
