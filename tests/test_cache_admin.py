"""`python -m harness cache`: sizes by kind, and pruning entries by their last use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cache_admin
from harness.gencache import GenerationCache
from harness.records import Generation
from tests.conftest import ROOT

OLD = time.time() - 40 * cache_admin.DAY_S


def folder_entry(root: Path, relative: str, marker: str, age: float | None = None) -> Path:
    entry = root / relative
    entry.mkdir(parents=True)
    (entry / "payload.bin").write_bytes(b"x" * 1000)
    (entry / marker).write_text("{}")
    if age is not None:
        os.utime(entry / marker, (age, age))
    return entry


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("FTRAG_CACHE", str(root))
    stale = folder_entry(root, "models/stale-v1", "source.json")
    os.utime(stale, (OLD, OLD))  # a model conversion's last use is its folder's mtime
    folder_entry(root, "models/current-v2", "source.json")
    folder_entry(root, "finetune/old-adapter", "fit.json", OLD)
    folder_entry(root, "rag/index", "manifest.json")
    (root / "rag" / "index" / "manifest.json").write_text("{}")
    (root / "models" / "half-written").mkdir()  # no marker: counts from the folder's mtime (now)
    GenerationCache(root, "some-model").put_many([("k", Generation("an answer", 5, 2, 0.1, 1))])
    return root


def test_prune_removes_what_no_run_used_for_n_days_and_a_use_renews_an_entry(cache: Path):
    generations = next((cache / "generations").iterdir())
    os.utime(generations, (OLD, OLD))
    GenerationCache(cache, "some-model")  # a run loads it: a use
    assert generations.stat().st_mtime > OLD + cache_admin.DAY_S

    listed = cache_admin.prune(30, dry_run=True)
    assert sorted(e.path.name for e in listed) == ["old-adapter", "stale-v1"]
    assert (cache / "models" / "stale-v1").is_dir()  # a dry run removes nothing

    removed = cache_admin.prune(30)
    assert sorted(e.path.name for e in removed) == ["old-adapter", "stale-v1"]
    assert all(e.bytes >= 1000 for e in removed)
    left = {(e.kind, e.path.name) for e in cache_admin.entries()}
    assert left == {("models", "current-v2"), ("models", "half-written"), ("indexes", "index"),
                    ("generations", generations.name)}


def test_cache_command_shows_sizes_and_prunes(cache: Path):
    env = {**os.environ, "FTRAG_CACHE": str(cache)}
    run = subprocess.run([sys.executable, "-m", "harness", "cache", "--prune-unused-days", "30"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "removed 2 entries" in run.stdout and f"removed models {cache / 'models' / 'stale-v1'}" in run.stdout
    assert "| models | 2 |" in run.stdout and "| adapters | 0 |" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "harness", "cache", "--prune-unused-days", "-1"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == ("error: python -m harness cache: argument "
                                                          "--prune-unused-days: must be a finite number >= 0, got -1 "
                                                          "(see --help)")


def test_a_benchmark_cache_hit_counts_as_a_use(cache: Path):
    from harness.benchmarks import runner

    folder = runner._cache_dir("k" * 64)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"cache_key": "k" * 64, "score": 0.5}))
    os.utime(folder / "result.json", (OLD, OLD))
    assert runner._read_cache("k" * 64)["score"] == 0.5
    assert "benchmarks" not in {e.kind for e in cache_admin.prune(30)}


def test_using_the_model_renews_its_folder_and_leaves_the_fingerprinted_files_alone():
    from harness.gencache import fingerprint_dir
    from harness.models import resolve_model

    folder = Path(resolve_model("embedded:smollm2-135m-instruct"))
    os.utime(folder, (OLD, OLD))
    files = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    fingerprint = fingerprint_dir(str(folder))
    resolve_model("embedded:smollm2-135m-instruct")  # what every run does first
    assert folder.stat().st_mtime > OLD + cache_admin.DAY_S
    # The generation cache names the model by its files' mtimes: a use must not change them.
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == files
    assert fingerprint_dir(str(folder)) == fingerprint
