"""harness.training without training: config errors, memory plan, formatting, cache key, resume point."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from harness.config import PromptConfig, load_task_config
from harness.data import Example
from harness.errors import ConfigError
from harness.training import formatting, planner, resume
from harness.training.engines import choose_engine, choose_padding_free, choose_precision, keep_4bit_trainable
from harness.training.spec import TrainSpec, cache_key
from tests.conftest import ROOT, write_task

DATA = '{"instruction": "Say hi", "output": "hi"}\n'
SMOLLM2 = planner.ModelShape(layers=30, hidden=576, intermediate=1536, heads=9, vocab=49152,
                             total_params=134_515_008, linear_params=106_168_320, lora_params=4_884_480)


@pytest.mark.parametrize("line, fragment", [
    ("lora_r: 0", "field 'finetune.lora_r': 0 is below the minimum 1"),
    ("learning_rate: 0.5", "field 'finetune.learning_rate': 0.5 is above the maximum"),
    ("epochs: 0", "field 'finetune.epochs': 0 is below the minimum 1"),
    ("batch_size: four", "field 'finetune.batch_size': expected int"),
    ("lora_dropout: -0.1", "field 'finetune.lora_dropout': -0.1 is below the minimum"),
    ("engine: tensorflow", "field 'finetune.engine': 'tensorflow' is not one of auto, unsloth, peft"),
    ("gradient_checkpointing: sometimes", "field 'finetune.gradient_checkpointing': 'sometimes' is not one of"),
    ("memory_budget_gb: 0", "field 'finetune.memory_budget_gb': 0.0 is below the minimum"),
    ("max_train_examples: 0", "field 'finetune.max_train_examples': 0 is below the minimum 1"),
    ("lora_rank: 8", "field 'finetune.lora_rank': unknown key (allowed: engine, lora_r,"),
])
def test_bad_hyperparameters_are_one_line_errors(tmp_path, line, fragment):
    folder = write_task(tmp_path / "t", f"data:\n  file: all.jsonl\nfinetune:\n  {line}\n", {"all.jsonl": DATA})
    with pytest.raises(ConfigError) as err:
        load_task_config(folder / "task.yaml")
    assert str(err.value).startswith(f"{folder / 'task.yaml'}:4: field 'finetune.")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_hyperparameter_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    yaml_text = "data:\n  file: all.jsonl\nfinetune:\n  warmup_steps: -5\n"
    folder = write_task(tmp_path / "t", yaml_text, {"all.jsonl": DATA})
    proc = subprocess.run([sys.executable, "-m", "harness", "validate", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    expected = f"error: {folder / 'task.yaml'}:4: field 'finetune.warmup_steps': -5 is below the minimum 0"
    assert proc.stderr.strip() == expected


def test_model_shape_counts_lora_parameters_like_peft():
    from harness.models import resolve_model

    shape = planner.model_shape(resolve_model("embedded:smollm2-135m-instruct"), 16)
    # PEFT reports 4,884,480 trainable parameters for r=16 on the seven projections of SmolLM2-135M.
    assert shape == SMOLLM2


def plan(budget_gb: float, checkpointing: str = "auto", seq_len: int = 512) -> planner.MemoryPlan:
    return planner.plan(SMOLLM2, batch_size=8, seq_len=seq_len, checkpointing=checkpointing,
                        budget_bytes=int(budget_gb * 1e9), weight_bytes=4, act_bytes=4, device="cpu",
                        fused_head=False)


def test_plan_keeps_the_batch_when_it_fits_and_lowers_it_when_it_does_not():
    roomy = plan(100)
    assert (roomy.micro_batch, roomy.grad_accum, roomy.checkpointing) == (8, 1, False)
    assert roomy.estimate_bytes == sum(roomy.breakdown.values()) <= roomy.budget_bytes
    tight = plan(roomy.estimate_bytes / 1e9 * 0.6)
    assert tight.micro_batch < 8 and tight.micro_batch * tight.grad_accum == 8 and not tight.checkpointing
    assert tight.estimate_bytes <= tight.budget_bytes and "accumulation" in tight.reason
    one = planner.estimate(SMOLLM2, micro_batch=1, seq_len=512, checkpointing=False, weight_bytes=4, act_bytes=4,
                           device="cpu", fused_head=False)
    tighter = plan(sum(one.values()) / 1e9 * 0.95)  # micro-batch 1 alone no longer fits: checkpointing
    assert tighter.checkpointing and "gradient checkpointing" in tighter.reason


def test_checkpointing_lowers_the_estimate_and_can_be_forced_or_refused():
    with_ckpt = planner.estimate(SMOLLM2, micro_batch=4, seq_len=2048, checkpointing=True, weight_bytes=4,
                                 act_bytes=4, device="cpu", fused_head=False)
    without = planner.estimate(SMOLLM2, micro_batch=4, seq_len=2048, checkpointing=False, weight_bytes=4,
                               act_bytes=4, device="cpu", fused_head=False)
    assert with_ckpt["activations"] < without["activations"] / 5
    assert plan(100, checkpointing="yes").checkpointing
    with pytest.raises(planner.MemoryPlanError):
        plan(1.0, checkpointing="no")


def test_over_budget_refusal_names_the_numbers_in_one_line():
    with pytest.raises(planner.MemoryPlanError) as err:
        plan(0.5)
    message = str(err.value)
    assert "even at micro-batch 1 with gradient checkpointing" in message and "over the 0.50 GB budget" in message
    assert "weights 0.54" in message and "sequence length 512" in message and "\n" not in message


def test_quantized_weights_count_half_a_byte_per_linear_parameter():
    parts = planner.estimate(SMOLLM2, micro_batch=1, seq_len=128, checkpointing=True, weight_bytes=0.5,
                             act_bytes=2, device="cuda", fused_head=True)
    assert parts["weights"] == SMOLLM2.linear_params // 2 + (SMOLLM2.total_params - SMOLLM2.linear_params) * 2
    assert parts["framework"] == 0 and parts["lm_head"] == 128 * planner.FUSED_HEAD_CHUNK * 4


def test_engine_and_precision_choices_say_why():
    engine, why = choose_engine("auto", "cpu", "llama")
    assert engine == "unsloth" and "supports model type 'llama'" in why and "CPU fallback" in why
    assert choose_engine("auto", "cuda", "bloom") == ("peft", "auto: unsloth does not support model type 'bloom'")
    assert choose_engine("unsloth", "cpu", "llama") == ("unsloth", "set by finetune.engine")
    assert choose_precision("auto", "auto", "auto", "cuda", "peft")[:2] == (True, "bfloat16")
    assert choose_precision("auto", "auto", "auto", "cpu", "peft", cpuinfo="flags : avx2")[:2] == (False, "float32")
    assert choose_precision("auto", "yes", "float32", "cpu", "peft")[:2] == (True, "float32")
    # padding-free: unsloth's own rule under auto, padded for peft, never when a record must be truncated
    assert [choose_padding_free("auto", e, True) for e in ("unsloth", "peft")] == [None, False]
    assert choose_padding_free("yes", "peft", True) is True and choose_padding_free("yes", "unsloth", False) is False
    assert choose_padding_free("no", "unsloth", True) is False


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from harness.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"))


def test_records_use_the_inference_prompt_and_end_the_answer_with_the_stop_token(tokenizer):
    from harness.backends.hf import TransformersBackend
    from harness.prompting import build_messages

    ex = Example("a", "List the names.\n\nf(a, b=1)", output="a, b")
    prompt = PromptConfig(system="Reply with names.")
    stops = formatting.stop_tokens(tokenizer, [2])
    (record,) = formatting.build_records([ex], prompt, tokenizer, stops)
    # The prompt strategy's zero-shot prompt, rendered by the backend's own code.
    assert record["prompt"] == TransformersBackend.render(SimpleNamespace(tokenizer=tokenizer),
                                                          build_messages(ex, prompt, []))
    assert record["completion"] == "a, b<|im_end|>" and formatting.end_token([record], stops) == "<|im_end|>"
    ids = tokenizer(record["prompt"] + record["completion"], add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
    assert ids[:len(prompt_ids)] == prompt_ids  # TRL's completion mask starts exactly at the answer
    assert tokenizer.decode(ids[len(prompt_ids):]) == "a, b<|im_end|>"


def test_documents_become_plain_text_chunks_within_the_limit(tmp_path, tokenizer):
    (tmp_path / "a.md").write_text("# Title\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(20)))
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    records = formatting.doc_records(tmp_path, tokenizer, 100)
    assert len(records) > 5 and all(r["prompt"] == "" for r in records)
    assert all(len(tokenizer(r["completion"])["input_ids"]) <= 100 for r in records)
    assert "Paragraph 19" in records[-1]["completion"]


def test_example_selection_and_dev_carving_are_deterministic():
    train = [Example(f"id{i}", f"q{i}", output=f"a{i}") for i in range(50)]
    chosen = formatting.select_examples(train, 20, seed=0)
    assert len(chosen) == 20 and chosen == formatting.select_examples(list(reversed(train)), 20, 0)[::-1]
    grown = formatting.select_examples(train + [Example("new", "q", output="a")], 20, 0)
    assert len({e.id for e in chosen} - {e.id for e in grown}) <= 1  # adding data moves at most one item
    rest, dev = formatting.split_dev(chosen, [], seed=0)
    assert len(dev) == 2 and not {e.id for e in dev} & {e.id for e in rest}
    assert formatting.split_dev(chosen, train[:3], 0) == (chosen, train[:3])


def spec(**changes) -> TrainSpec:
    base = TrainSpec(model_path="hub/model", device="cpu", engine="peft", engine_why="", load_in_4bit=False,
                     dtype="float32", lora_r=16, lora_alpha=32, lora_dropout=0.05, learning_rate=2e-4, epochs=3,
                     batch_size=4, warmup_steps=10, max_seq_length=2048, early_stopping_patience=1, seed=0,
                     eos_token="<|im_end|>", micro_batch=4, grad_accum=1, gradient_checkpointing=False, work_dir="",
                     memory_plan={})
    return dataclasses.replace(base, **changes)


def test_cache_key_follows_what_changes_the_adapter_only():
    train, dev = [{"prompt": "p", "completion": "c"}], [{"prompt": "d", "completion": "e"}]
    key = cache_key(spec(), train, dev)
    assert key == cache_key(spec(micro_batch=1, grad_accum=4, gradient_checkpointing=True, threads=1), train, dev)
    assert key != cache_key(spec(learning_rate=1e-4), train, dev)
    assert key != cache_key(spec(engine="unsloth"), train, dev)
    assert key != cache_key(spec(), train + [{"prompt": "x", "completion": "y"}], dev)
    assert key != cache_key(spec(), train, [])
    assert key != cache_key(spec(padding_free=True), train, dev)  # other dropout masks, another adapter
    assert key == cache_key(spec(report_to="tensorboard"), train, dev)  # logging changes no weight
    context = {"index": "abc/flat", "k": 4, "distractor_share": 0.2, "template": "{passages}"}
    with_context = cache_key(spec(), train, dev, context)  # RAFT-style settings: a second adapter
    assert key == cache_key(spec(), train, dev, None) and with_context not in (key, cache_key(spec(), train, dev, {
        **context, "distractor_share": 0.5})) and with_context != cache_key(spec(), train, dev, {**context, "k": 2})
    assert with_context != cache_key(spec(), train, dev, {**context, "index": "def/flat"})


def test_report_to_reaches_the_trainer_and_none_logs_nowhere(tmp_path):
    from harness.training.worker import training_args

    args = training_args(spec(report_to="tensorboard", work_dir=str(tmp_path / "0123abcd")))
    assert args.report_to == ["tensorboard"] and args.run_name == "0123abcd"
    assert training_args(spec(work_dir=str(tmp_path))).report_to == []


def test_padding_free_batches_give_the_models_padded_logits(tokenizer):
    """TRL's padding-free collator flattens a batch into one row, told apart by position ids only; TRL
    warns that attention other than flash-attention may mix the examples. transformers masks the packed
    row per sequence when no KV cache is in use (as in training: the engines load with use_cache off):
    the logits of every real token equal the padded batch's."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from harness.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"),
                                                 dtype=torch.float32).eval()
    texts = ["def f(a, b=1): pass", "List the names of the parameters of this function, in order, please.", "x"]
    examples = [{"input_ids": tokenizer(t)["input_ids"]} for t in texts]
    padded = DataCollatorForLanguageModeling(pad_token_id=2)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=2, padding_free=True)(examples)
    assert flat["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples)) and "attention_mask" not in flat
    with torch.no_grad():
        by_padding = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        by_position = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"], use_cache=False).logits[0]
    start = 0
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        assert torch.allclose(by_padding[row, :n], by_position[start:start + n], atol=1e-4), f"example {row}"
        start += n


def test_resume_point_is_the_last_complete_checkpoint(tmp_path):
    for step, state in ((4, {"epoch": 1.0, "global_step": 4}), (8, {"epoch": 2.0, "global_step": 8}), (12, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state:
            (folder / "trainer_state.json").write_text(json.dumps(state))
    (tmp_path / "checkpoint-16").mkdir()
    (tmp_path / "checkpoint-16" / "trainer_state.json").write_text('{"epoch": 4')  # cut short by a kill
    assert resume.resume_point(tmp_path) == tmp_path / "checkpoint-8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert resume.resume_point(tmp_path / "missing") is None


def test_loss_on_labeled_positions_only_equals_the_models_own_loss_and_gradients(tokenizer):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve_model
    from harness.training.engines import labeled_positions_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"), dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"], init_lora_weights=False))
    ids = tokenizer(["List the names: f(a, b)", "Q: x? A: y z w"], padding=True, return_tensors="pt")
    labels = ids["input_ids"].clone()
    labels[:, :5] = -100  # the prompt
    labels[ids["attention_mask"] == 0] = -100
    inputs = {**ids, "labels": labels}
    lora = [p for n, p in model.named_parameters() if "lora_A" in n][0]

    def loss_and_grad(loss_fn):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss.detach(), lora.grad.clone()

    for items in (None, torch.tensor(7)):
        ours, our_grad = loss_and_grad(lambda n=items: labeled_positions_loss(model, inputs, n))
        theirs, their_grad = loss_and_grad(lambda n=items: model(**inputs, num_items_in_batch=n).loss)
        assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(our_grad, their_grad, atol=1e-5)


def test_4bit_layers_keep_their_gradient_after_an_evaluation_forward():
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as F

    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(256, 128, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    weights = bnb.nn.Params4bit(torch.randn(128, 256) * 0.05, requires_grad=False, quant_type="nf4")
    layer.weight = weights._quantize("cpu")
    weight = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    assert keep_4bit_trainable(layer) == 1
    layer.eval()
    with torch.no_grad():  # what every epoch's validation does
        layer(torch.randn(2, 5, 256, dtype=torch.bfloat16))
    layer.train()
    x = torch.randn(2, 5, 256, dtype=torch.bfloat16, requires_grad=True)
    layer(x).float().pow(2).sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    (ref @ weight.to(torch.bfloat16).t()).float().pow(2).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad.float(), ref.grad.float(), atol=1e-2, rtol=1e-2)


def test_gpu_check_without_cuda_says_so_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "harness.gpu_check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and "no CUDA device here" in proc.stdout and "nothing was measured" in proc.stdout
    assert "|" not in proc.stdout  # no table of made-up numbers


def test_report_section_shows_engine_cost_memory_and_losses():
    from harness.training.summary import body_lines

    details = {"engine": "peft", "engine_why": "auto: no CUDA", "precision": "float32 LoRA", "device": "cpu",
               "trainable_params": 4_884_480, "total_params": 139_399_488, "trainable_percent": 3.5039,
               "train_examples": 400, "dev_examples": 120, "doc_records": 0, "longest_sequence_tokens": 234,
               "train_seconds": 1234.5, "steps": 200, "seconds_per_step": 6.1, "tokens_per_s": 85.2, "micro_batch": 4,
               "grad_accum": 1, "gradient_checkpointing": False, "memory_estimate_gb": 4.05, "memory_peak_gb": 3.98,
               "memory_measured_as": "peak RSS", "memory_plan": {"reason": "estimate 4.05 GB fits"},
               "epochs_run": 2, "epochs_max": 2, "stopped_early": False, "best_epoch": 2, "adapter_dir": "a",
               "cache_hit": True, "cache_key": "abc", "resumed_from_epoch": None, "logs_dir": "finetune/logs",
               "epochs": [{"epoch": 0, "train_loss": None, "eval_loss": 2.5}, {"epoch": 1, "train_loss": 0.34,
                                                                            "eval_loss": 0.021},
                          {"epoch": 2, "train_loss": 0.01, "eval_loss": 0.019}]}
    text = "\n".join(body_lines({"status": "ok", "fit": {"details": details}}))
    assert "- Engine: peft, float32 LoRA on cpu (auto: no CUDA)" in text
    assert "4,884,480 of 139,399,488 (3.50%)" in text
    assert "21 min, 200 optimizer steps (6.10 s/step), 85 tokens/s" in text
    assert "estimated 4.05 GB, measured 3.98 GB (peak RSS)" in text and "reused from the cache (abc)" in text
    assert "| 0 |  | 2.5000 |" in text and "| 2 (best) | 0.0100 | 0.0190 |" in text
    assert "- Adapter: `a`; TensorBoard logs: `finetune/logs`" in text
    assert "Context (RAFT-style)" not in text
    context = {**details, "train_with_context": True, "context_k": 3, "distractor_share": 0.2,
               "distractor_examples": 80, "context_trimmed_examples": 2}
    assert ("- Context (RAFT-style): 3 retrieved passages per example; 80 of 400 training examples with "
            "distractors only (share 20%); 2 examples given fewer passages to fit max_seq_length"
            ) in "\n".join(body_lines({"status": "ok", "fit": {"details": context}}))
    assert body_lines({"status": "not run: no GPU"}) == []
