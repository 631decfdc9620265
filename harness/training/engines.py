"""Training engines: which one runs (unsloth or peft), in which precision and why, and model loading.

- `unsloth`: FastLanguageModel (4-bit base on CUDA = QLoRA) + get_peft_model + TRL's SFTTrainer as
  unsloth patches it. Imported only here, inside the worker process, because it patches transformers
  and TRL on import.
- `peft`: PEFT LoRA + TRL's SFTTrainer; a 4-bit NF4 base through bitsandbytes when asked.

`auto` picks unsloth when it is installed and supports the architecture, else peft. Without CUDA,
unsloth trains through its CPU fallback (stock transformers + PEFT + TRL with a chunked cross-entropy).
Measured on 2 cores, SmolLM2-135M, 4 examples of ~134 tokens per step, float32, no checkpointing:
unsloth 2.35 s/step (peak RSS 3.66 GB), peft 2.73 s/step (3.92 GB); peft with gradient checkpointing
4.15 s/step (2.41 GB). Unsloth's own CPU default on this AVX512-BF16 machine, bfloat16, was 1.7x
slower than float32 back to back, so the dtype is always passed explicitly.

`finetune.precision: auto` trains peft in bfloat16 weights (LoRA weights, gradients and AdamW stay float32,
as PEFT keeps adapters) on a CPU whose /proc/cpuinfo reports avx512_bf16 or amx_bf16, and in float32 on any
other CPU: without them torch emulates bfloat16 matmuls (one of SmolLM2's MLP shape took 19-52x as long as
in float32 on an AVX2-only EPYC, 2 threads, as other load varied; `make bench` times it). unsloth keeps
float32 on CPU for the measurement above; CUDA trains bfloat16; an explicit `model.dtype` is followed.
bfloat16 learns less from the first steps: the base layer's output is rounded to bfloat16 before the LoRA
delta is added, and a delta under half a bfloat16 step is lost (float32 with only that rounding emulated
reproduced the gap; rounding after the addition did not).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from harness.devices import resolve_dtype
from harness.training.planner import lora_target_modules
from harness.training.spec import TrainSpec

UNSLOTH_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "granite", "cohere")


def choose_engine(requested: str, device: str, model_type: str) -> tuple[str, str]:
    """(engine, why) for `finetune.engine`."""
    if requested != "auto":
        return requested, "set by finetune.engine"
    if importlib.util.find_spec("unsloth") is None:
        return "peft", "auto: unsloth is not installed"
    if model_type not in UNSLOTH_MODEL_TYPES:
        return "peft", f"auto: unsloth does not support model type {model_type!r}"
    where = "its CUDA kernels" if device == "cuda" else "its CPU fallback (stock PEFT + TRL, chunked loss)"
    return "unsloth", f"auto: unsloth is installed and supports model type {model_type!r}; trains through {where}"


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 flags in /proc/cpuinfo for bfloat16 arithmetic in hardware (oneDNN's bf16 kernels need one of them)."""
PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The BF16_CPU_FLAGS that `cpuinfo` (default: /proc/cpuinfo, empty where there is none) reports."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    line = next((line for line in cpuinfo.splitlines() if line.split(":", 1)[0].strip() == "flags"), "flags:")
    flags = set(line.split(":", 1)[1].split())
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def choose_precision(setting: str, load_in_4bit: str, model_dtype: str, device: str, engine: str,
                     cpuinfo: str | None = None) -> tuple[bool, str, str]:
    """(4-bit base?, dtype, why) for `finetune.precision` (auto, float32, bfloat16); 4-bit on CUDA by default.

    `cpuinfo`: /proc/cpuinfo's text, read when None.
    """
    if setting not in PRECISIONS:
        raise ValueError(f"finetune.precision: {setting!r} is not one of {', '.join(PRECISIONS)}")
    quantize = load_in_4bit == "yes" or (load_in_4bit == "auto" and device == "cuda")
    if setting != "auto":
        return quantize, setting, "set by finetune.precision"
    if model_dtype != "auto":
        return quantize, model_dtype, f"auto: model.dtype is {model_dtype}"
    if device != "cpu":
        return quantize, resolve_dtype("auto", device), f"auto: {resolve_dtype('auto', device)} on {device}"
    flags = cpu_bf16_flags(cpuinfo)
    if not flags:
        return quantize, "float32", ("auto: this CPU reports neither avx512_bf16 nor amx_bf16, so torch would "
                                     "emulate bfloat16 matmuls, many times slower")
    if engine == "unsloth" or quantize:
        what = "unsloth's CPU fallback trained 1.7x slower in bfloat16" if engine == "unsloth" \
            else "a 4-bit base is not measured in bfloat16 on CPU"
        return quantize, "float32", f"auto: this CPU reports {' and '.join(flags)}, but {what}"
    return quantize, "bfloat16", (f"auto: this CPU reports {' and '.join(flags)}, so bfloat16 matmuls run in "
                                  "hardware (`make bench` times bfloat16 against float32 training)")


def choose_padding_free(setting: str, engine: str, fits: bool) -> bool | None:
    """TRL's padding_free for `finetune.padding_free`; None leaves the choice to unsloth's own rule.

    Never when a record is longer than max_seq_length (padding-free rows are not truncated). auto is
    off for peft: on the demo data (5-10% padding), flattening cost more in dense attention than it
    saved, 0.93-0.99x tokens/s on CPU (`make bench`), and sdpa on CUDA loses its causal fast path too.
    """
    if not fits or setting == "no":
        return False
    if setting == "yes":
        return True
    return None if engine == "unsloth" else False


def import_unsloth_first(engine: str) -> str | None:
    """Import unsloth before transformers, PEFT and TRL, as it requires for its patches; the error if it fails."""
    if engine != "unsloth":
        return None
    try:
        import unsloth  # noqa: F401
    except Exception as exc:  # ImportError, or a NotImplementedError for an unsupported setup
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return None


def load_for_training(spec: TrainSpec) -> tuple[Any, Any, str, str]:
    """(peft model, tokenizer, engine, why); under `auto`, an unsloth that fails to load falls back to peft."""
    if spec.engine == "unsloth":
        try:
            model, tokenizer = _load_unsloth(spec)
            model.config.use_cache = False  # padding-free batches are masked per sequence only without a KV cache
            return model, tokenizer, "unsloth", spec.engine_why
        except Exception as exc:  # unsloth raises many kinds of errors for unsupported setups
            if not spec.allow_fallback:
                raise
            why = f"auto: unsloth failed to load ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
            model, tokenizer = _load_peft(spec)
            return model, tokenizer, "peft", why
    model, tokenizer = _load_peft(spec)
    return model, tokenizer, "peft", spec.engine_why


def _load_unsloth(spec: TrainSpec) -> tuple[Any, Any]:
    import torch
    from unsloth import FastLanguageModel  # patches transformers and TRL: worker process only

    model, tokenizer = FastLanguageModel.from_pretrained(
        spec.model_path, max_seq_length=spec.max_seq_length, dtype=getattr(torch, spec.dtype),
        load_in_4bit=spec.load_in_4bit, use_gradient_checkpointing="unsloth" if spec.gradient_checkpointing else False)
    model = FastLanguageModel.get_peft_model(
        model, r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
        target_modules=lora_target_modules(model), random_state=spec.seed, max_seq_length=spec.max_seq_length,
        use_gradient_checkpointing="unsloth" if spec.gradient_checkpointing else False)
    keep_4bit_trainable(model)
    return model, tokenizer


def _load_peft(spec: TrainSpec) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, set_seed

    dtype = getattr(torch, spec.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": 0} if spec.device == "cuda" else {"": "cpu"}
    tokenizer = AutoTokenizer.from_pretrained(spec.model_path)
    model = AutoModelForCausalLM.from_pretrained(spec.model_path, **kwargs)
    keep_4bit_trainable(model)
    model.config.use_cache = False  # and padding-free batches are masked per sequence only without a KV cache
    set_seed(spec.seed)  # LoRA's A matrices are initialized randomly
    config = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                        target_modules=lora_target_modules(model), task_type="CAUSAL_LM")
    return get_peft_model(model, config), tokenizer


def keep_4bit_trainable(model: Any) -> int:
    """Stop bitsandbytes (0.50) from repacking 4-bit weights for its CPU inference kernel.

    On a CPU with AVX512-BF16 the first forward in eval mode without grad (every epoch's validation)
    repacks a Linear4bit weight for `gemv_4bit`, which has no autograd kernel: afterwards no gradient
    reaches the layers below, silently (tests/test_training_units.py shows it).
    """
    count = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def labeled_positions_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """The causal-LM loss with the LM head applied only where there is a label (the answer tokens).

    The same value as the model's own loss (transformers' ForCausalLMLoss: labels shifted by one, -100
    ignored, summed over `num_items_in_batch` when given, else averaged), without the
    [batch x length x vocabulary] logits: with loss on the answers only, most rows of those logits
    are never used, and SmolLM2's 49,152-word head is a fifth of the model's FLOPs.
    """
    from transformers.loss.loss_utils import fixed_cross_entropy

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    body = base.get_decoder()
    hidden = body(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return fixed_cross_entropy(logits, targets[keep], num_items_in_batch)  # ForCausalLMLoss's own reduction


def trainer_class(engine: str) -> type:
    """TRL's SFTTrainer; for peft off CUDA, with the loss computed on the labeled positions only.

    TRL 1.15 computes the SFT loss through a fused LM head whose kernel is Triton-only, so it fails
    on CPU ("0 active drivers"); unsloth's CPU backend reroutes it (chunked cross-entropy), and peft
    trains with `labeled_positions_loss` (same labels, same normalization by `num_items_in_batch`);
    evaluation goes through the model's own loss.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    if engine == "unsloth":
        return SFTTrainer

    class PortableSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if self.args.device.type in ("cuda", "xpu"):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training and not return_outputs and "labels" in inputs:
                return labeled_positions_loss(model, inputs, num_items_in_batch)
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return PortableSFTTrainer
