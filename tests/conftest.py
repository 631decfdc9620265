"""Shared fixtures: a writable copy of a task folder, and the embedded model loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
ROOT = Path(__file__).parent.parent


def write_task(folder: Path, yaml_text: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(yaml_text)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ASSETS / "tasks" / "tiny", tmp_path / "tiny"))


@pytest.fixture(scope="session")
def backend():
    from harness.backends import load_backend
    from harness.models import resolve_model

    # No generation cache: these tests are about generating.
    return load_backend("transformers", resolve_model("embedded:smollm2-135m-instruct"), use_cache=False)
