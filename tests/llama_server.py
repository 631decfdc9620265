"""A real OpenAI-compatible server on loopback for the server-backend tests: llama-cpp-python's
`python -m llama_cpp.server` with the embedded SmolLM2 GGUF, on a free 127.0.0.1 port.

It serves the one GGUF under two ids: `embedded:smollm2-135m-instruct` (the harness's own name, so the
tokenizer and weights are also here: log-likelihood MMLU, training) and `smollm2` (a name known only to
the server). Tests that import the `llama_server` fixture skip, saying why, when llama_cpp is missing.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCAL_ID = "embedded:smollm2-135m-instruct"
SERVER_ID = "smollm2"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_gguf() -> Path:
    from harness.models import EMBEDDED_GGUF, package_dir

    package, filename = EMBEDDED_GGUF["smollm2-135m-instruct"]
    return package_dir(package) / filename


def server_missing() -> str | None:
    """Why the server cannot start here (None: it can)."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (llama-cpp-python[server] is needed for the server tests)"
    return None


def wait_for_models(url: str, process: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"llama_cpp.server did not answer /v1/models within {START_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's /v1 base URL, for the whole session; stopped after."""
    if reason := server_missing():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("llama-server")
    port = free_port()
    models = [{"model": str(embedded_gguf()), "model_alias": alias, "n_ctx": 2048, "n_threads": 2, "verbose": False}
              for alias in (LOCAL_ID, SERVER_ID)]
    config = folder / "config.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": models}))
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_models(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
