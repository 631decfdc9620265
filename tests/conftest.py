"""Shared fixtures: a writable copy of a task folder, and the embedded model loaded once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private FTRAG_CACHE (generations, converted adapters, benchmark results) that shares the embedded model
    already converted in the user's cache; for a module-scoped fixture to `yield from`."""
    from harness.models import cache_root, resolve_model

    resolve_model("embedded:smollm2-135m-instruct")
    root = tmp_path_factory.mktemp("cache")
    (root / "models").symlink_to(cache_root() / "models")
    patch = pytest.MonkeyPatch()
    patch.setenv("FTRAG_CACHE", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="session")
def backend():
    from harness.backends import load_backend
    from harness.models import resolve_model

    # No generation cache: these tests are about generating.
    return load_backend("transformers", resolve_model("embedded:smollm2-135m-instruct"), use_cache=False)


SLOW_MODULES = {"test_compare_e2e", "test_finetune_e2e", "test_raft_e2e", "test_backend_llamacpp",
                "test_backend_openai"}
"""Modules that run the real model end to end (training, a server, whole compares): every test in them is
`slow`. Single tests elsewhere carry `@pytest.mark.slow` themselves. `make test-fast` leaves them out."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
