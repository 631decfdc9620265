"""The hash-keyed training folder under `<cache>/finetune/<key>/`, and where a killed run resumes.

    spec.json         what is trained (written by the parent)
    train.jsonl       prompt/completion records; dev.jsonl the validation records
    checkpoints/      transformers' `checkpoint-<step>` folders, one per epoch (deleted once fit.json is written)
    sessions.jsonl    one line per worker run: resumed from which epoch, seconds, tokens, peak memory
    adapter/          the best epoch's LoRA adapter (safetensors)
    fit.json          written last: its presence means the adapter is complete and reusable

A checkpoint counts only when its `trainer_state.json` (which transformers writes last) parses, so a
`kill -9` in the middle of saving falls back to the previous epoch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_state(path: Path) -> dict[str, Any] | None:
    """A checkpoint's trainer state, or None when the checkpoint is incomplete."""
    try:
        return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def complete_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if checkpoint_state(p) is not None]


def resume_point(folder: Path) -> Path | None:
    """The last complete checkpoint; incomplete ones (a save cut short) are deleted."""
    complete = set(complete_checkpoints(folder))
    if folder.is_dir():
        for path in folder.iterdir():
            if CHECKPOINT.match(path.name) and path not in complete:
                shutil.rmtree(path, ignore_errors=True)
    return max(complete, key=lambda p: int(p.name.split("-")[1]), default=None)


def is_finished(work_dir: Path) -> bool:
    return (work_dir / "fit.json").is_file() and (work_dir / "adapter" / "adapter_config.json").is_file()


def read_sessions(work_dir: Path) -> list[dict[str, Any]]:
    path = work_dir / "sessions.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_session(work_dir: Path, session: dict[str, Any]) -> None:
    with (work_dir / "sessions.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(session) + "\n")


@contextlib.contextmanager
def locked(work_dir: Path) -> Iterator[None]:
    """One trainer per folder: a second `compare` of the same task waits, then reuses the adapter."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
