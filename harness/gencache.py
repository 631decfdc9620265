"""A content-addressed cache of generations, so a rerun with unchanged inputs generates nothing.

The key is a hash of (model fingerprint, conversation, decoding settings, batch size); the value
is the `Generation` as measured when it was first produced, latency included. A cached answer is
flagged `cached` in predictions and counted in metrics, so no figure poses as freshly measured.
One append-only JSONL file per model fingerprint under cache_root()/generations/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from harness.models import touch_used
from harness.records import Generation


def fingerprint_dir(path: str) -> str:
    """Identity of a model: its config and weight files (name, size, mtime), or the hub id as given."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".model", ".jinja"}:
            stat = f.stat()
            h.update(f"{f.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return h.hexdigest()[:16]


def adapter_cache_id(model_path: str, adapter_id: str) -> str:
    """Names base + adapter in the generation cache: the base model's files and the adapter's content id."""
    return f"{fingerprint_dir(model_path)}+adapter:{adapter_id}"


def read_cache_log(path: Path) -> list[dict[str, Any]]:
    """The records of an append-only JSONL cache file (none if it is missing), marking it used. A line
    cut by a crash is skipped: its entry is simply computed again."""
    if not path.is_file():
        return []
    touch_used(path)
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class GenerationCache:
    def __init__(self, root: Path, model_id: str) -> None:
        self.path = root / "generations" / f"{hashlib.sha256(model_id.encode()).hexdigest()[:16]}.jsonl"
        self.model_id = model_id
        self.entries: dict[str, dict[str, Any]] = {r["key"]: r["generation"] for r in read_cache_log(self.path)}

    def key(self, conversation: list[dict[str, str]], settings: dict[str, Any]) -> str:
        blob = json.dumps([self.model_id, conversation, settings], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> Generation | None:
        record = self.entries.get(key)
        return Generation(**{**record, "cached": True}) if record else None

    def put_many(self, items: list[tuple[str, Generation]]) -> None:
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for key, gen in items:
                record = {**dataclasses.asdict(gen), "cached": False}
                self.entries[key] = record
                f.write(json.dumps({"key": key, "generation": record}, ensure_ascii=False) + "\n")
