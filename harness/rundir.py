"""Run directories are atomic: a run is written where no reader looks, and appears under its final
name only when complete.

    results/<task>/.partial/<run-id>/   while the run is being written (a killed run stays here)
    results/<task>/<run-id>/            after `manifest.json` is written, by one rename
    results/<task>/.failed/<run-id>/    a run that crashed: its files so far and `failed.json`

A run that stops on the user's error (a `HarnessError`) leaves nothing behind. Readers (`report`,
`bless`, `regress`) call `require_complete`, which refuses a folder without `manifest.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

from harness.errors import HarnessError

MANIFEST = "manifest.json"
PARTIAL, FAILED = ".partial", ".failed"


def check_results_root(root: Path) -> Path:
    """`--results` is a directory we can write to, or can be made in one; checked before any work, and
    without creating anything (bad input leaves no trace)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail later
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "exists and is not a directory" if existing == root else f"{existing} is not a directory"
        raise HarnessError(f"--results {root}: {what}")
    try:
        # os.access answers "yes" to root on a read-only mount; only a real write tells.
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".ftrag-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HarnessError(f"--results {root}: not writable ({exc.strerror or exc} in {existing})") from None
    return root


def _run_id() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{token_hex(3)}"


@contextmanager
def staged_run(root: Path, task_name: str) -> Iterator[tuple[Path, Path]]:
    """Yield (work directory, final directory). Leaving the block normally renames the work
    directory to the final one, which the caller must have completed with `write_manifest`."""
    task_root = root / task_name
    while True:
        run_id = _run_id()
        work, final = task_root / PARTIAL / run_id, task_root / run_id
        if final.exists():
            continue
        try:
            work.mkdir(parents=True, exist_ok=False)
            break
        except FileExistsError:
            continue
    try:
        yield work, final
    except HarnessError:
        shutil.rmtree(work, ignore_errors=True)
        remove_if_empty(work.parent)
        raise
    except BaseException as exc:
        _keep_failed(work, task_root / FAILED / run_id, exc)
        raise
    if not (work / MANIFEST).is_file():
        _keep_failed(work, task_root / FAILED / run_id, RuntimeError("the run ended without a manifest"))
        raise RuntimeError(f"{work}: the run ended without writing {MANIFEST}")
    work.rename(final)
    remove_if_empty(work.parent)


def _keep_failed(work: Path, failed: Path, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    try:
        write_json(work / "failed.json", {"reason": reason,
                                          "failed": datetime.now(UTC).isoformat(timespec="seconds")})
        failed.parent.mkdir(parents=True, exist_ok=True)
        work.rename(failed)
        remove_if_empty(work.parent)
    except OSError:
        pass  # the original error matters more than where its leftovers are


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_manifest(work: Path, record: dict[str, Any]) -> None:
    """Written last: its presence means the run is complete. Lists every file of the run."""
    files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    write_json(work / MANIFEST, {**record, "files": files})


def require_complete(run_dir: Path, what: str = "run") -> Path:
    """The run directory, or a one-line HarnessError saying why it is not a complete run."""
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: no such run directory")
    if (run_dir / MANIFEST).is_file():
        return run_dir
    failed = run_dir / "failed.json"
    if failed.is_file():
        try:
            reason = json.loads(failed.read_text(encoding="utf-8")).get("reason", "unknown")
        except (OSError, ValueError, AttributeError):
            reason = "unknown"
        raise HarnessError(f"{run_dir}: {what} failed ({reason}); it cannot be used")
    if PARTIAL in run_dir.parts:
        raise HarnessError(f"{run_dir}: {what} is unfinished (still running, or killed); it cannot be used")
    if not (run_dir / "config.json").is_file():
        raise HarnessError(f"{run_dir}: not a run directory (no config.json)")
    raise HarnessError(f"{run_dir}: incomplete {what} (no {MANIFEST}): it was interrupted; it cannot be used")
