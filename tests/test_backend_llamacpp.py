"""The llamacpp backend on the real embedded GGUF (SmolLM2-135M-Instruct Q4_1) with real llama.cpp:
greedy answers and stop strings, the chat template against transformers', a converted LoRA adapter,
the `auto` choice, the generation cache, and lm-eval's MMLU by log-likelihood through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import PromptConfig
from harness.data import Query
from harness.prompting import build_messages
from tests.conftest import private_cache

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (`make setup` builds it)")

MODEL = "embedded:smollm2-135m-instruct"
QUESTIONS = ["What is the capital of France?", "Name a primary colour.",
             "Write the number seven as a digit, then explain what a prime number is in detail."]


def conversations():
    prompt = PromptConfig(system="You are a helpful assistant.")
    return [build_messages(Query(str(i), q), prompt) for i, q in enumerate(QUESTIONS)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    yield from private_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def llama(cache):
    from harness.backends.llamacpp import LlamaCppBackend
    from harness.models import resolve_model

    return LlamaCppBackend(resolve_model(MODEL), use_cache=False)


@pytest.fixture(scope="module")
def adapter_dir(cache, tmp_path_factory) -> str:
    """A real PEFT LoRA adapter with random (not zero) B matrices, so it changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("adapter") / "adapter"
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(resolve_model(MODEL)), lora).save_pretrained(folder)
    return str(folder)


def test_runs_the_packaged_q4_1_gguf_and_says_so(llama):
    assert llama.gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert llama.serving == {"backend": "llamacpp", "quantization": "Q4_1", "file": str(llama.gguf)}
    assert llama.context_length == 8192  # the GGUF's 8192, within DEFAULT_CONTEXT


def test_greedy_answers_with_stop_strings(llama):
    first = llama.generate(conversations(), max_new_tokens=40, stop=[], batch_size=3)
    again = llama.generate(conversations(), max_new_tokens=40, stop=[], batch_size=1)
    assert [g.text for g in first] == [g.text for g in again]  # greedy: the same answers every time
    assert "Paris" in first[0].text
    long = first[2]
    (cut,) = llama.generate(conversations()[2:], max_new_tokens=40, stop=["prime"], batch_size=1)
    assert long.completion_tokens == 40  # the detailed explanation does not fit in 40 tokens
    assert "prime" in long.text and "prime" not in cut.text
    assert long.text.startswith(cut.text) and cut.completion_tokens < 40
    assert cut.prompt_tokens == llama.count_tokens(llama.render(conversations()[2]))
    # the model's end-of-turn token ends a short answer before the budget
    (short,) = llama.generate(conversations()[:1], max_new_tokens=200, stop=[], batch_size=1)
    assert short.completion_tokens < 200 and "<|im_end|>" not in short.text


def test_chat_template_renders_as_transformers_does(llama):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama.model_path)
    for messages in [conversations()[0], [{"role": "user", "content": "Ünïcode, \"quotes\" and {braces}?"}]]:
        expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert llama.render(messages) == expected
        assert llama.tokenize(expected) == tokenizer(expected, add_special_tokens=False)["input_ids"]


def test_a_converted_lora_adapter_changes_the_answers(llama, adapter_dir, cache):
    base = [g.text for g in llama.generate(conversations()[:2], max_new_tokens=16, stop=[], batch_size=1)]
    with llama.adapter(adapter_dir, "base+adapter:random") as tuned:
        changed = [g.text for g in tuned.generate(conversations()[:2], max_new_tokens=16, stop=[], batch_size=1)]
        assert tuned.serving["adapter"] == adapter_dir
        assert tuned.lora is not None and tuned.lora.parent == cache / "gguf"  # converted once, by content
    assert changed != base
    after = [g.text for g in llama.generate(conversations()[:2], max_new_tokens=16, stop=[], batch_size=1)]
    assert after == base  # the base instance never had the adapter


def test_generation_cache_hits_on_a_second_call(cache):
    from harness.backends.llamacpp import LlamaCppBackend
    from harness.models import resolve_model

    backend = LlamaCppBackend(resolve_model(MODEL))
    assert backend.cache is not None and backend.cache.model_id.startswith(f"llamacpp:{backend.file_id}:Q4_1")
    first = backend.generate(conversations()[:2], max_new_tokens=8, stop=[], batch_size=2)
    second = LlamaCppBackend(resolve_model(MODEL)).generate(conversations()[:2], max_new_tokens=8, stop=[],
                                                           batch_size=2)
    assert not any(g.cached for g in first) and all(g.cached for g in second)
    assert [g.text for g in first] == [g.text for g in second]
    # llama.cpp answers one prompt at a time whatever the batch, so the latency sample's batch of 1 is a hit too:
    # the answer and its wall time as the scoring pass measured them.
    (probe,) = backend.generate(conversations()[1:2], max_new_tokens=8, stop=[], batch_size=1)
    assert probe.cached and (probe.text, probe.latency_s) == (first[1].text, first[1].latency_s)
    assert not backend.generate(conversations()[1:2], max_new_tokens=9, stop=[], batch_size=1)[0].cached


def test_auto_picks_llamacpp_on_cpu_and_transformers_elsewhere(monkeypatch, capsys, tmp_path):
    import harness.backends as backends
    from harness.models import resolve_model

    folder = resolve_model(MODEL)
    assert backends.choose_backend("auto", "cpu", MODEL) == "llamacpp"
    assert backends.choose_backend("auto", "cpu", folder) == "llamacpp"  # its source.json names the GGUF
    assert backends.choose_backend("auto", "cuda", MODEL) == "transformers"
    assert backends.choose_backend("transformers", "cpu", MODEL) == "transformers"
    assert backends.choose_backend("auto", "cpu", str(tmp_path)) == "transformers"  # neither GGUF nor model
    # Without llama-cpp-python (a failure this machine cannot cause for real): one warning line, no error.
    monkeypatch.setattr(backends, "llama_cpp_available", lambda: False)
    monkeypatch.setattr(backends, "_warned", set())
    assert backends.choose_backend("auto", "cpu", MODEL) == "transformers"
    assert backends.choose_backend("auto", "cpu", MODEL) == "transformers"
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "llama-cpp-python is not installed" in warnings[0]


def test_loglikelihood_matches_the_dequantized_weights_and_reuses_the_prefix(llama):
    import torch
    from transformers import AutoModelForCausalLM

    from harness.backends.llamacpp_lm import LlamaCppLM

    lm = LlamaCppLM(llama)
    context = "Question: What is the capital of France?\nA. Berlin\nB. Paris\nC. Rome\nD. Madrid\nAnswer:"
    choices = [" A", " B", " C", " D", " Paris is the capital"]
    pairs = [lm._encode_pair(context, c) for c in choices]
    shared = [lm._score(ctx, cont) for ctx, cont in pairs]  # each reuses the previous one's KV cache
    fresh = []
    for ctx, cont in pairs:
        lm.llm.reset()
        fresh.append(lm._score(ctx, cont))
    assert [round(s, 4) for s, _ in shared] == [round(s, 4) for s, _ in fresh]
    model = AutoModelForCausalLM.from_pretrained(llama.model_path, dtype=torch.float32).eval()
    for (ctx, cont), (score, _) in zip(pairs, shared):
        with torch.inference_mode():
            logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
        reference = sum(float(logits[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
        # Q4_1 weights with 8-bit activations vs the same weights dequantized to float32: close, not equal
        assert abs(score - reference) < 0.1 * len(cont) + 0.1, (cont, score, reference)


def test_mmlu_by_loglikelihood_through_lm_eval_and_its_cache(llama, adapter_dir):
    from harness.benchmarks import run_general_benchmarks
    from harness.config import BenchmarksConfig

    settings = BenchmarksConfig(mmlu_limit=4, humaneval=False)
    with llama.lm_eval_model(None, None) as target:
        base = run_general_benchmarks(llama.model_path, None, settings, lambda _: None, target=target)["mmlu"]
    assert base["status"] == "ok" and base["method"] == "loglikelihood" and base["n"] == 4
    assert base["backend"].startswith("llama.cpp in process (Q4_1") and base["serving"]["backend"] == "llamacpp"
    assert set(base["items"].values()) <= {0, 1} and base["cached"] is False
    with llama.lm_eval_model(None, None) as target:
        again = run_general_benchmarks(llama.model_path, None, settings, lambda _: None, target=target)["mmlu"]
    assert again["cached"] is True and again["items"] == base["items"]
    with llama.lm_eval_model(adapter_dir, "base+adapter:random") as target:
        tuned = run_general_benchmarks(llama.model_path, adapter_dir, settings, lambda _: None, target=target)["mmlu"]
    assert tuned["cached"] is False and tuned["cache_key"] != base["cache_key"]
    assert "LoRA" in tuned["backend"] and tuned["serving"]["adapter"] == adapter_dir
    # the adapter is applied: the choices' log-likelihoods differ from the base model's
    responses = [[json.loads(line)["response"] for line in Path(r["samples_file"]).read_text().splitlines()]
                 for r in (base, tuned)]
    assert len(responses[1]) == 4 and responses[0] != responses[1]


def test_registering_the_llamacpp_type_keeps_lm_evals_own_model_types():
    """lm-eval registers its own types only into an empty registry: ours must not hide them (a process that scored
    on llama.cpp and then on transformers or a server failed with "Unknown model 'hf'")."""
    import subprocess
    import sys

    code = ("import harness.backends.llamacpp_lm as ours; from lm_eval.api.registry import get_model; "
            "print(get_model('hf').__name__, get_model('local-chat-completions').__name__, "
            "get_model(ours.LM_TYPE).__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.split() == ["HFLM", "LocalChatCompletion", "LlamaCppLM"]
