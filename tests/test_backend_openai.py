"""The `openai` backend against a real llama.cpp server on loopback (tests/llama_server.py): greedy answers
with stop strings and usage, order under concurrency, retries, the key variable, preflight lines, a compare
through `--backend openai`, and lm-eval MMLU through the server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.backends.openai import OpenAIBackend
from harness.cli import main
from harness.errors import HarnessError
from tests.llama_server import LOCAL_ID, SERVER_ID, free_port

pytest_plugins = ("tests.llama_server",)  # the llama_server fixture

QUESTIONS = ["What is the capital of France?", "Name a primary color.", "What is 2 + 2?",
             "Say hello in Spanish.", "What animal says moo?", "What is the opposite of hot?"]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def make(url: str, model: str = LOCAL_ID, **options) -> OpenAIBackend:
    return OpenAIBackend(model, base_url=url, use_cache=False, **options)


def test_greedy_answers_stop_strings_and_usage(llama_server):
    backend = make(llama_server, concurrency=2)
    prompt = [ask("List the numbers from 1 to 10, separated by commas.")]
    free = backend.generate(prompt, 24, [], batch_size=1)[0]
    stopped = backend.generate(prompt, 24, [","], batch_size=1)[0]
    again = backend.generate(prompt, 24, [","], batch_size=1)[0]
    assert "," in free.text and "," not in stopped.text and free.text.startswith(stopped.text), (free, stopped)
    assert stopped.text == again.text  # temperature 0 and a seed: the same answer
    assert free.prompt_tokens > 5 and 0 < free.completion_tokens <= 24
    assert stopped.completion_tokens < free.completion_tokens
    assert free.latency_s > 0 and free.first_token_s is None
    assert backend.context_length == 2048 and backend.count_tokens("hello world") in (2, 3)  # the server counts


def test_answers_keep_input_order_under_concurrency(llama_server):
    conversations = [ask(q) for q in QUESTIONS]
    one_by_one = make(llama_server).generate(conversations, 8, [], batch_size=1)
    concurrent = make(llama_server, concurrency=4).generate(conversations, 8, [], batch_size=8)
    assert [g.text for g in concurrent] == [g.text for g in one_by_one]
    assert len({g.text for g in one_by_one}) >= 4, "the answers must differ for order to show"
    assert {g.batch_size for g in concurrent} == {4} and {g.batch_size for g in one_by_one} == {1}


def test_streaming_measures_time_to_first_token(llama_server):
    backend = make(llama_server, stream=True)
    streamed = backend.generate([ask(QUESTIONS[0])], 16, [], batch_size=1)[0]
    plain = make(llama_server).generate([ask(QUESTIONS[0])], 16, [], batch_size=1)[0]
    assert streamed.text == plain.text
    assert streamed.first_token_s is not None and 0 < streamed.first_token_s <= streamed.latency_s


def test_generation_cache_serves_a_rerun(llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FTRAG_CACHE", str(tmp_path))
    first = OpenAIBackend(LOCAL_ID, base_url=llama_server).generate([ask(QUESTIONS[2])], 8, [], 1)[0]
    second = OpenAIBackend(LOCAL_ID, base_url=llama_server).generate([ask(QUESTIONS[2])], 8, [], 1)[0]
    assert not first.cached and second.cached and second.text == first.text


def test_nothing_listening_is_one_line_after_the_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    began = time.perf_counter()
    with pytest.raises(HarnessError) as failed:
        make(url, retries=2, backoff_s=0.1)
    waited = time.perf_counter() - began
    assert str(failed.value) == f"model.base_url: {url}/models: connection refused (after 2 retries)"
    assert 0.3 <= waited < 5  # backoff 0.1 s, then 0.2 s


def test_preflight_names_what_the_server_serves(llama_server):
    with pytest.raises(HarnessError, match=rf"^model.name: nope is not served there \(served: {LOCAL_ID}, "
                                           rf"{SERVER_ID}\)$"):
        make(llama_server, model="nope")


def test_missing_key_variable_is_one_line_before_the_run(llama_server, tiny_task, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FTRAG_TEST_KEY", raising=False)
    code = main(["compare", str(tiny_task), "--backend", "openai", "--base-url", llama_server, "--model", LOCAL_ID,
                 "--set", "model.api_key_env=FTRAG_TEST_KEY", "--results", str(tmp_path / "results"),
                 "--no-benchmarks"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors == ["error: model.api_key_env: the environment variable FTRAG_TEST_KEY is not set "
                                    "(it should hold the server's API key)"]
    assert not any((tmp_path / "results").rglob("*.json"))
    monkeypatch.setenv("FTRAG_TEST_KEY", "secret")  # sent as a bearer token; this server takes any
    assert OpenAIBackend(LOCAL_ID, base_url=llama_server, api_key_env="FTRAG_TEST_KEY", use_cache=False).entry


def test_compare_through_the_server(llama_server, tiny_task, tmp_path, capsys):
    """The prompt arm answers through the server; the fine-tuned arms are not run, with the reason."""
    results = tmp_path / "results"
    code = main(["compare", str(tiny_task), "--backend", "openai", "--base-url", llama_server, "--model", LOCAL_ID,
                 "--strategies", "prompt,finetune,rag_finetune", "--no-benchmarks", "--results", str(results)])
    assert code == 0, capsys.readouterr().err
    run = next(p.parent for p in results.rglob("manifest.json"))
    metrics = {name: json.loads((run / name / "metrics.json").read_text())
               for name in ("prompt", "finetune", "rag_finetune")}
    assert metrics["prompt"]["status"] == "ok"
    assert metrics["finetune"]["status"].startswith("not run: the llama.cpp server (llama-cpp-python) cannot load"), \
        metrics["finetune"]["status"]
    assert metrics["rag_finetune"]["status"].startswith("not run: ")  # the tiny task has no docs: that comes first
    config, overrides = json.loads((run / "config.json").read_text()), json.loads((run / "run.json").read_text())
    assert (config["model"]["backend"], config["model"]["base_url"]) == ("openai", llama_server)
    assert overrides["overrides"]["model.backend"] == "--backend"
    predictions = [json.loads(line) for line in (run / "prompt" / "predictions.jsonl").read_text().splitlines()]
    assert predictions and all(p["prompt_tokens"] > 0 for p in predictions)


def test_adapters_are_refused_with_the_reason(llama_server):
    from harness.errors import NotRun

    backend = make(llama_server)
    assert "cannot load a LoRA adapter" in backend.adapter_support()
    with pytest.raises(NotRun), backend.adapter(str(Path("adapter")), "id"):
        pass


def test_mmlu_generative_through_the_llama_cpp_server(llama_server):
    """The llama-cpp-python server echoes prompt logprobs, but without the generated token and one position
    late: the probe turns them down (log-likelihood would score every MMLU letter 0), so MMLU is generative."""
    from harness.backends.server_lm_eval import local_tokenizer
    from harness.benchmarks import run_general_benchmarks
    from harness.config import BenchmarksConfig

    assert local_tokenizer(LOCAL_ID) and local_tokenizer(SERVER_ID) is None
    settings = BenchmarksConfig(mmlu_limit=2, humaneval_limit=1, allow_code_execution=True, batch_size=1)
    with make(llama_server).lm_eval_model(None, None) as target:
        assert (target.lm_type, target.has_loglikelihood) == ("local-chat-completions", False)
        assert "echoed logprobs do not cover the generated token" in target.description
        results = run_general_benchmarks(LOCAL_ID, None, settings, target=target, use_cache=False)
    result, humaneval = results["mmlu"], results["humaneval"]
    assert (result["status"], result["method"], result["n"]) == ("ok", "generate", 2)
    # A chat-only endpoint cannot complete HumanEval's bare code prompts: skipped with the reason, not a crash.
    assert humaneval["status"] == "skipped" and "chat only" in humaneval["skipped"]
    assert result["backend"] == target.description and result["chat_template"]
