"""The transformers backend on the real embedded model (SmolLM2-135M-Instruct from its GGUF)."""

import pytest

from harness.config import PromptConfig
from harness.data import Query
from harness.prompting import build_messages

QUESTIONS = ["What is the capital of France?", "Name a primary colour.",
             "Write the number seven as a digit, then explain what a prime number is in detail."]


def conversations():
    prompt = PromptConfig(system="You are a helpful assistant.")
    return [build_messages(Query(str(i), q), prompt) for i, q in enumerate(QUESTIONS)]


def test_batched_left_padded_generation_equals_one_at_a_time(backend):
    batched = backend.generate(conversations(), max_new_tokens=12, stop=[], batch_size=3)
    single = [backend.generate([c], max_new_tokens=12, stop=[], batch_size=1)[0] for c in conversations()]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in single]
    assert all(g.batch_size == 3 and g.latency_s > 0 for g in batched)
    assert "Paris" in batched[0].text


def test_usage_counts_and_stop_strings(backend):
    (long,) = backend.generate(conversations()[2:], max_new_tokens=40, stop=[], batch_size=1)
    (cut,) = backend.generate(conversations()[2:], max_new_tokens=40, stop=["prime"], batch_size=1)
    assert long.completion_tokens == 40  # the detailed explanation does not fit in 40 tokens
    assert "prime" in long.text and "prime" not in cut.text
    assert long.text.startswith(cut.text)
    assert cut.prompt_tokens == backend.count_tokens(backend.render(conversations()[2]))


def test_preloaded_weights_never_share_the_base_models_generation_cache(backend):
    from harness.backends.hf import TransformersBackend

    # base + adapter passed as a preloaded model must not be served the base model's cached answers
    unnamed = TransformersBackend(backend.model_path, model=backend.model, tokenizer=backend.tokenizer)
    assert unnamed.cache is None
    named = TransformersBackend(backend.model_path, model=backend.model, tokenizer=backend.tokenizer,
                                cache_id="base+adapter:abc")
    assert named.cache is not None
    assert named.cache.path != TransformersBackend(backend.model_path).cache.path


def test_the_converted_tokenizer_ends_turns_with_the_models_end_token(backend):
    from transformers import GenerationConfig

    # The GGUF loader said eos '<|im_start|>' (id 1); TRL appended it to every training example.
    tokenizer = backend.tokenizer
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.eos_token_id == GenerationConfig.from_pretrained(backend.model_path).eos_token_id == 2
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).rstrip().endswith(
        tokenizer.eos_token)


def test_lm_eval_scores_the_loaded_weights_as_lm_eval_loading_them_does(backend, tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from harness.benchmarks import run_general_benchmarks
    from harness.config import BenchmarksConfig

    monkeypatch.setenv("FTRAG_CACHE", str(tmp_path))  # results and samples written here, not in the user's cache
    settings = BenchmarksConfig(mmlu_limit=2, humaneval=False)
    with backend.lm_eval_model(None, None) as target:
        assert target.lm_type == "hf" and target.identity == f"transformers:{backend.dtype}:{backend.device}"
        shared = run_general_benchmarks(backend.model_path, None, settings, lambda _: None, target=target,
                                        use_cache=False)["mmlu"]
    loaded = run_general_benchmarks(backend.model_path, None, settings, lambda _: None, use_cache=False)["mmlu"]
    assert shared["backend"].startswith("transformers (float32") and loaded["backend"] == "lm-eval hf"
    assert shared["cache_key"] != loaded["cache_key"]  # the key names who scored

    def logliks(result: dict) -> list[float]:
        return [ll for line in Path(result["samples_file"]).read_text().splitlines()
                for ll, _ in json.loads(line)["response"]]

    assert shared["items"] == loaded["items"] and shared["n"] == 2
    assert logliks(shared) == pytest.approx(logliks(loaded), abs=1e-4)
