"""What the cache holds and pruning what has not been used: `python -m harness cache [--prune-unused-days N]`.

Every stage caches by content hash under `cache_root()`, and a changed input makes a new entry, so
old entries pile up (a model conversion is 0.5 GB). Each entry has a marker file that
`harness.models.touch_used` touches whenever the entry serves a run, so its mtime is the entry's
last use; pruning removes entries whose last use is older than N days. A run that starts while a
prune runs may rebuild what was removed; nothing else depends on an entry.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.models import cache_root
from harness.retrieval import INDEX_CACHE_DIR
from harness.training import ADAPTER_CACHE_DIR

DAY_S = 86_400
# kind: (folder under cache_root(), marker inside a folder entry, "" for the folder's own mtime,
# or None when entries are files)
KINDS: dict[str, tuple[str, str | None]] = {
    "models": ("models", ""),
    "indexes": (INDEX_CACHE_DIR, "manifest.json"),
    "query-vectors": ("query_vectors", None),
    "adapters": (ADAPTER_CACHE_DIR, "fit.json"),
    "generations": ("generations", None),
    "benchmarks": ("benchmarks", "result.json"),
    "gguf": ("gguf", None),  # converted models and LoRA adapters (harness/gguf.py), with their conversion logs
}


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    last_used: float
    """Seconds since the epoch; an incomplete entry (no marker yet) counts from its folder's mtime."""


def entries(root: Path | None = None) -> list[Entry]:
    root = root or cache_root()
    found = []
    for kind, (folder, marker) in KINDS.items():
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if marker is None and path.is_file():
                found.append(Entry(kind, path, path.stat().st_size, path.stat().st_mtime))
            elif marker is not None and path.is_dir():
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
                stamp = path / marker if marker else path
                found.append(Entry(kind, path, size, (stamp if stamp.exists() else path).stat().st_mtime))
    return found


def prune(unused_days: float, dry_run: bool = False, root: Path | None = None,
          now: float | None = None) -> list[Entry]:
    """Remove the entries not used for `unused_days` days; return them."""
    cutoff = (now or time.time()) - unused_days * DAY_S
    old = [e for e in entries(root) if e.last_used < cutoff]
    if not dry_run:
        for entry in old:
            if entry.path.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                entry.path.unlink(missing_ok=True)
    return old


def summary(found: list[Entry], now: float | None = None) -> str:
    """A Markdown table: entries, size in MB and the oldest last use per kind."""
    now = now or time.time()
    lines = [f"cache: {cache_root()}", "", "| kind | entries | size (MB) | least recently used (days ago) |",
             "| --- | ---: | ---: | ---: |"]
    for kind in KINDS:
        mine = [e for e in found if e.kind == kind]
        oldest = f"{(now - min(e.last_used for e in mine)) / DAY_S:.1f}" if mine else "-"
        lines.append(f"| {kind} | {len(mine)} | {sum(e.bytes for e in mine) / 1e6:.1f} | {oldest} |")
    lines.append(f"| total | {len(found)} | {sum(e.bytes for e in found) / 1e6:.1f} | |")
    return "\n".join(lines)
