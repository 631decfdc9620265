"""The `ollama` backend. No Ollama server runs on the machine that wrote these: the tests that need one run
when $OLLAMA_HOST (default http://127.0.0.1:11434) answers, with $OLLAMA_TEST_MODEL pulled (default
smollm2:135m), and skip with that reason otherwise. The connection-refused line needs no server."""

from __future__ import annotations

import os
import time

import pytest

from harness.backends.ollama import OllamaBackend, ollama_host
from harness.errors import HarnessError
from tests.llama_server import free_port

MODEL = os.environ.get("OLLAMA_TEST_MODEL", "smollm2:135m")


def ollama_answers(host: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{host}/api/version", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


HOST = ollama_host(None)
needs_ollama = pytest.mark.skipif(not ollama_answers(HOST), reason=f"no Ollama server answers at {HOST} "
                                  "(set OLLAMA_HOST to one with OLLAMA_TEST_MODEL pulled to run these)")


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_host_from_base_url_or_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert ollama_host(None) == "http://gpu-box:11434"
    assert ollama_host("http://127.0.0.1:9999/v1") == "http://127.0.0.1:9999"


def test_nothing_listening_is_one_line_after_the_retries():
    host = f"http://127.0.0.1:{free_port()}"
    began = time.perf_counter()
    with pytest.raises(HarnessError) as failed:
        OllamaBackend(MODEL, base_url=host, retries=1, backoff_s=0.1, use_cache=False)
    assert str(failed.value) == f"model.base_url: {host}: connection refused (after 1 retry)"
    assert time.perf_counter() - began >= 0.1


@needs_ollama
def test_greedy_answers_with_stop_and_counts():
    backend = OllamaBackend(MODEL, use_cache=False, context_length=2048)
    prompt = [ask("List the numbers from 1 to 10, separated by commas.")]
    free, stopped = (backend.generate(prompt, 24, stop, batch_size=1)[0] for stop in ([], [","]))
    assert "," in free.text and "," not in stopped.text
    assert free.prompt_tokens > 5 and 0 < free.completion_tokens <= 24


@needs_ollama
def test_order_under_concurrency_and_streaming():
    questions = ["What is the capital of France?", "Name a primary color.", "What is 2 + 2?", "Say hi in Spanish."]
    one_by_one = OllamaBackend(MODEL, use_cache=False).generate([ask(q) for q in questions], 12, [], 1)
    concurrent = OllamaBackend(MODEL, use_cache=False, concurrency=4).generate([ask(q) for q in questions], 12, [], 8)
    assert [g.text for g in concurrent] == [g.text for g in one_by_one]
    streamed = OllamaBackend(MODEL, use_cache=False, stream=True).generate([ask(questions[0])], 12, [], 1)[0]
    assert streamed.text == one_by_one[0].text and streamed.first_token_s is not None


@needs_ollama
def test_a_model_not_pulled_is_one_line():
    with pytest.raises(HarnessError, match=r"^model.name: no-such-model:1b is not pulled in Ollama"):
        OllamaBackend("no-such-model:1b", use_cache=False)
