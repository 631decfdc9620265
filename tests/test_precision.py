"""Training precision (`finetune.precision`): the choice from the CPU's flags, forced settings, a bad value, the
adapter cache key, the memory plan, and one real bfloat16 training step on the CPU that leaves a loadable adapter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.config import ConfigError, load_task_config
from harness.training.engines import choose_precision, cpu_bf16_flags
from harness.training.spec import HASHED_SETTINGS, TrainSpec, cache_key
from tests.conftest import private_cache

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
vmx flags\t: vnmi preemption_timer
bugs\t\t: spectre_v1
"""
ZEN1 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma sha_ni\n"
ZEN4 = "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"


def test_cpu_flags_are_read_from_the_flags_line_only():
    assert cpu_bf16_flags(SAPPHIRE_RAPIDS) == ["avx512_bf16", "amx_bf16"]
    assert cpu_bf16_flags(ZEN4) == ["avx512_bf16"]
    assert cpu_bf16_flags(ZEN1) == []
    assert cpu_bf16_flags("") == []  # no /proc/cpuinfo (macOS, Windows)
    assert cpu_bf16_flags("vmx flags\t: avx512_bf16\nflags\t: avx2\n") == []  # only the `flags` line counts


def test_auto_trains_bfloat16_where_the_cpu_has_it_and_float32_elsewhere():
    quantize, dtype, why = choose_precision("auto", "auto", "auto", "cpu", "peft", cpuinfo=SAPPHIRE_RAPIDS)
    assert (quantize, dtype) == (False, "bfloat16") and "avx512_bf16 and amx_bf16" in why
    _, dtype, why = choose_precision("auto", "auto", "auto", "cpu", "peft", cpuinfo=ZEN1)
    assert dtype == "float32" and "neither avx512_bf16 nor amx_bf16" in why
    # unsloth's CPU fallback and a 4-bit base keep float32, and say why
    _, dtype, why = choose_precision("auto", "auto", "auto", "cpu", "unsloth", cpuinfo=ZEN4)
    assert dtype == "float32" and "unsloth" in why and "avx512_bf16" in why
    assert choose_precision("auto", "yes", "auto", "cpu", "peft", cpuinfo=ZEN4)[:2] == (True, "float32")
    assert choose_precision("auto", "auto", "auto", "cuda", "peft")[:2] == (True, "bfloat16")


def test_a_set_precision_or_model_dtype_wins_over_the_flags():
    assert choose_precision("bfloat16", "auto", "auto", "cpu", "peft", cpuinfo=ZEN1) == \
        (False, "bfloat16", "set by finetune.precision")
    assert choose_precision("float32", "auto", "auto", "cpu", "peft", cpuinfo=ZEN4)[1] == "float32"
    assert choose_precision("float32", "auto", "bfloat16", "cuda", "unsloth")[1:] == \
        ("float32", "set by finetune.precision")
    assert choose_precision("auto", "auto", "float32", "cpu", "peft", cpuinfo=ZEN4) == \
        (False, "float32", "auto: model.dtype is float32")
    with pytest.raises(ValueError, match="finetune.precision: 'fp8' is not one of auto, float32, bfloat16"):
        choose_precision("fp8", "auto", "auto", "cpu", "peft")


def test_a_bad_precision_in_task_yaml_is_one_line_naming_the_field(tiny_task: Path):
    (tiny_task / "task.yaml").write_text((tiny_task / "task.yaml").read_text() + "finetune:\n  precision: float16\n")
    with pytest.raises(ConfigError) as err:
        load_task_config(tiny_task / "task.yaml")
    message = str(err.value)
    assert "\n" not in message and "finetune.precision" in message and "float16" in message
    assert "bfloat16" in message  # the allowed values


def spec(**changes) -> TrainSpec:
    base = TrainSpec(
        model_path="HuggingFaceTB/SmolLM2-135M-Instruct", device="cpu", engine="peft", engine_why="x",
        load_in_4bit=False, dtype="float32", lora_r=16, lora_alpha=32, lora_dropout=0.05, learning_rate=2e-4,
        epochs=1, batch_size=4, warmup_steps=0, max_seq_length=256, early_stopping_patience=1, seed=0,
        eos_token="<|im_end|>", micro_batch=4, grad_accum=1, gradient_checkpointing=False, work_dir="w",
        memory_plan={})
    return dataclasses.replace(base, **changes)


RECORDS = [{"prompt": "q", "completion": "a"}]


def test_precision_changes_the_cache_key_and_a_float32_spec_written_before_keeps_its_key(tmp_path: Path):
    float32 = spec()
    key = cache_key(float32, RECORDS, RECORDS)
    assert cache_key(spec(dtype="bfloat16"), RECORDS, RECORDS) != key
    assert cache_key(spec(precision_why="auto: this CPU reports avx512_bf16"), RECORDS, RECORDS) == key
    assert "dtype" in HASHED_SETTINGS and "precision_why" not in HASHED_SETTINGS
    # a spec.json from before `precision_why` existed loads, and names the same cache folder
    old = dataclasses.asdict(float32)
    del old["precision_why"]
    (tmp_path / "spec.json").write_text(json.dumps(old))
    loaded = TrainSpec.load(tmp_path / "spec.json")
    assert loaded.precision_why == "" and cache_key(loaded, RECORDS, RECORDS) == key


def test_the_memory_plan_counts_two_bytes_per_weight_and_activation_in_bfloat16():
    from harness.config import FinetuneConfig
    from harness.models import resolve_model
    from strategies.finetune import FinetuneStrategy

    model = resolve_model("embedded:smollm2-135m-instruct")
    ft = dataclasses.replace(FinetuneConfig(), memory_budget_gb=100.0)
    plans = {dtype: FinetuneStrategy._plan(model, ft, "cpu", False, dtype, 128, False).breakdown
             for dtype in ("float32", "bfloat16")}
    assert plans["bfloat16"]["weights"] * 2 == plans["float32"]["weights"]
    assert plans["bfloat16"]["activations"] * 2 == plans["float32"]["activations"]
    assert plans["bfloat16"]["lora_and_optimizer"] == plans["float32"]["lora_and_optimizer"]  # float32 either way


@pytest.fixture
def cache(tmp_path_factory):
    yield from private_cache(tmp_path_factory)


@pytest.mark.slow
def test_one_bfloat16_step_on_the_cpu_leaves_an_adapter_the_backends_load(cache: Path, tmp_path: Path):
    """Real PEFT + TRL, one optimizer step in bfloat16 (emulated, slowly, on a CPU without bf16 instructions)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from harness.gguf import adapter_gguf, converters_dir
    from harness.models import resolve_model
    from harness.training.adapters import load_with_adapter
    from harness.training.launch import train_or_reuse

    model = resolve_model("embedded:smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(model)
    records = [{"prompt": tokenizer.apply_chat_template([{"role": "user", "content": f"Say {w}."}], tokenize=False,
                                                        add_generation_prompt=True), "completion": f"{w}<|im_end|>"}
               for w in ("red", "green", "blue", "cyan", "plum", "teal")]
    work = tmp_path / "adapter-work"
    work.mkdir()
    bf16 = dataclasses.replace(spec(model_path=model, work_dir=str(work), threads=2), dtype="bfloat16",
                               precision_why="set by finetune.precision", lora_dropout=0.0, learning_rate=1e-2,
                               memory_plan={"estimate_bytes": 0})
    fit = train_or_reuse(bf16, records[:4], records[4:])

    assert fit["precision"] == "bfloat16 LoRA" and fit["precision_why"] == "set by finetune.precision"
    assert fit["steps"] == 1 and fit["best_eval_loss"] is not None
    with safe_open(str(work / "adapter" / "adapter_model.safetensors"), "pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    # PEFT keeps LoRA weights in float32 over a bfloat16 base: the same files a float32 training writes
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert any(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)  # the step changed B

    tuned, _ = load_with_adapter(model, work / "adapter", "float32")  # the transformers backend's load
    ids = tokenizer(records[0]["prompt"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(tuned(ids).logits).all()
    if converters_dir() is None:
        pytest.skip("llama.cpp's convert_lora_to_gguf.py is not here: the llama.cpp LoRA conversion was not tried")
    assert adapter_gguf(str(work / "adapter"), model).stat().st_size > 0


def bench_run(dtype: str, tokens_per_s: float, val_loss: float) -> dict:
    return {"dtype": dtype, "tokens_per_s": tokens_per_s, "val_loss_nats": val_loss, "seconds_per_step_s": 1.0,
            "first_step_loss_nats": 1.5, "peak_rss_bytes": 2e9}


def test_the_bench_row_compares_alternating_runs_and_checks_the_loss_gap():
    from harness.speed.training_precision import VAL_LOSS_TOLERANCE_NATS, _compare, _markdown

    runs = [bench_run("float32", 200.0, 0.80), bench_run("bfloat16", 300.0, 0.805),
            bench_run("float32", 100.0, 0.80), bench_run("bfloat16", 140.0, 0.805)]
    out = _compare(runs)
    assert out["bfloat16_over_float32_ratio"] == pytest.approx(220 / 150)
    assert out["round_ratios"] == pytest.approx([1.5, 1.4])
    assert out["val_loss_gap_nats"] == pytest.approx(0.005) and out["val_loss_within_tolerance"]
    far = _compare([bench_run("float32", 1, 0.8), bench_run("bfloat16", 1, 0.8 + 2 * VAL_LOSS_TOLERANCE_NATS)])
    assert far["val_loss_within_tolerance"] is False

    matmul = {"rows": 536, "hidden": 576, "intermediate": 1536, "float32_s": 0.015, "bfloat16_s": 0.78,
              "bfloat16_over_float32_time_ratio": 52.0}
    common = {"examples": 48, "dev_examples": 16, "batch_size": 4, "warmup_steps": 2, "timed_steps": 8,
              "torch_threads": 2, "mean_record_tokens": 134.0, "load_average_1min_before_procs": 0.5,
              "load_average_1min_after_procs": 0.7, "matmul": matmul}
    text = _markdown({**common, "cpu_bf16_flags": ["avx512_bf16"], "auto_dtype": "bfloat16", "auto_why": "auto: x",
                      "runs": runs, **out})
    assert "**1.47x** tokens/s" in text and "per round 1.50x, 1.40x" in text and "within the 0.02" in text
    assert "| 2 | bfloat16 | 1.00 | 300.0 | 0.8050 |" in text
    text = _markdown({**common, "cpu_bf16_flags": [], "auto_dtype": "float32", "auto_why": "auto: y", "runs": [],
                      **_compare([])})
    assert "Not trained: this CPU reports neither" in text and "**52.0x** the time" in text
    assert "`finetune.precision: auto` on this machine: **float32** (auto: y)" in text


def test_the_report_says_why_the_precision_was_chosen():
    from harness.training.summary import body_lines

    details = {"engine": "peft", "engine_why": "set by finetune.engine", "precision": "bfloat16 LoRA", "device": "cpu",
               "precision_why": "auto: this CPU reports amx_bf16, so bfloat16 matmuls run in hardware"}
    line = body_lines({"status": "ok", "fit": {"details": details}})[0]
    assert line == ("- Engine: peft, bfloat16 LoRA on cpu (set by finetune.engine); precision auto: this CPU reports "
                    "amx_bf16, so bfloat16 matmuls run in hardware")
    del details["precision_why"]  # a run recorded before the field existed reads as it did
    assert body_lines({"status": "ok", "fit": {"details": details}})[0].endswith("(set by finetune.engine)")
