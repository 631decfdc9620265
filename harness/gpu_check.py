"""`make gpu-check`: Unsloth QLoRA vs PEFT + bitsandbytes QLoRA on a Llama-3.1-8B-shaped model, on CUDA.

    python -m harness.gpu_check            # on a CUDA machine, about 5 minutes
    python -m harness.gpu_check --tiny     # the same pipeline on a 2-layer model, on CPU (a dry run)

The model is randomly initialized from the Llama-3.1-8B architecture (weights can't be downloaded
there; speed and memory don't depend on their values) and saved once as bf16 safetensors. Each engine
then loads it 4-bit, adds LoRA (r=16 on the seven projections) through `harness.training.engines`, and
trains with TRL's SFTTrainer as the worker configures it, in its own process (unsloth patches libraries
on import), at micro-batch 1, sequence length 2048, gradient checkpointing on. Reported per engine:
peak VRAM (`torch.cuda.max_memory_allocated`) beside the memory planner's estimate, and tokens/s over
the steps after the first two. Results go to results/gpu_check/<date>/gpu_check.{json,md}.
Without CUDA (and without --tiny) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LLAMA_31_8B = {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
               "rms_norm_eps": 1e-5, "bos_token_id": 128000, "eos_token_id": 128001, "pad_token_id": 128004,
               "tie_word_embeddings": False,
                   "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192}}
TINY = dict(LLAMA_31_8B, vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, bos_token_id=1000, eos_token_id=1001, pad_token_id=1002)
ENGINES = ("unsloth", "peft")
WARMUP_STEPS = 2


def make_tokenizer(shape: dict[str, Any]) -> Any:
    """A word-level tokenizer covering the vocabulary ("t<id>"); the check feeds token ids directly."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = {shape["bos_token_id"]: "<|begin_of_text|>", shape["eos_token_id"]: "<|end_of_text|>",
                shape["pad_token_id"]: "<|finetune_right_pad_id|>"}
    vocab = {specials.get(i, f"t{i}"): i for i in range(shape["vocab_size"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=specials[shape["bos_token_id"]],
                                   eos_token=specials[shape["eos_token_id"]], pad_token=specials[shape["pad_token_id"]],
                                   unk_token="t0")


def build_model_dir(folder: Path, shape: dict[str, Any], device: str) -> Path:
    """Random bf16 weights from the architecture config, initialized on the device, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    make_tokenizer(shape).save_pretrained(str(folder))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def measure(engine: str, model_dir: Path, seq_len: int, steps: int, device: str) -> dict[str, Any]:
    """Train `steps` steps with one engine through the harness's own loading and trainer setup."""
    from harness.training.engines import import_unsloth_first

    import_unsloth_first(engine)
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from harness.training import planner
    from harness.training.engines import load_for_training, trainer_class
    from harness.training.spec import TrainSpec
    from harness.training.worker import training_args

    quantize = device == "cuda"
    dtype = "bfloat16" if device == "cuda" else "float32"
    shape = planner.model_shape(str(model_dir), 16)
    estimate = planner.estimate(shape, micro_batch=1, seq_len=seq_len, checkpointing=True,
                                weight_bytes=0.516 if quantize else 4, act_bytes=2 if quantize else 4,
                                device=device, fused_head=device == "cuda")
    work = Path(tempfile.mkdtemp(prefix=f"gpu-check-{engine}-"))
    spec = TrainSpec(model_path=str(model_dir), device=device, engine=engine, engine_why="gpu-check",
                     load_in_4bit=quantize, dtype=dtype, lora_r=16, lora_alpha=32, lora_dropout=0.0,
                     learning_rate=2e-4, epochs=1, batch_size=1, warmup_steps=0, max_seq_length=seq_len,
                     early_stopping_patience=1, seed=0, eos_token="<|end_of_text|>", micro_batch=1, grad_accum=1,
                     gradient_checkpointing=True, work_dir=str(work), memory_plan={})
    model, tokenizer, ran, why = load_for_training(spec)
    trainable, total = model.get_nb_trainable_parameters()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, shape.vocab - 8, (steps, seq_len), generator=generator).tolist()
    stamps: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    args = training_args(spec, max_steps=steps, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                         logging_strategy="steps", logging_steps=1, include_num_input_tokens_seen="no")
    trainer = trainer_class(ran)(model=model, args=args, processing_class=tokenizer,
                                 train_dataset=Dataset.from_dict({"input_ids": ids}), callbacks=[StepTimer()])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    trainer.train()
    timed = stamps[WARMUP_STEPS:] if len(stamps) > WARMUP_STEPS + 1 else stamps
    seconds = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return {"engine": ran, "why": why, "precision": spec.precision, "seq_len": seq_len, "micro_batch": 1,
            "gradient_checkpointing": True, "steps": steps, "trainable_params": trainable, "total_params": total,
            "seconds_per_step": round(seconds, 3), "tokens_per_s": round(seq_len / seconds, 1),
            "first_steps_s": [round(b - a, 2) for a, b in zip([began] + stamps, stamps)][:WARMUP_STEPS],
            "peak_vram_gb": round(peak / 1e9, 2) if peak is not None else None,
            "estimate_gb": round(sum(estimate.values()) / 1e9, 2),
            "estimate_breakdown_gb": {k: round(v / 1e9, 2) for k, v in estimate.items()},
            "losses": [round(h["loss"], 3) for h in trainer.state.log_history if "loss" in h]}


def render(results: dict[str, Any]) -> str:
    lines = [f"# gpu-check {results['started']}", "", f"Device: {results['device']}; model: {results['model']}.",
             "", "| engine | precision | peak VRAM (GB) | planner estimate (GB) | tokens/s | s/step | trainable |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results["engines"].items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['engine']} | {r['precision']} | {r['peak_vram_gb']} | {r['estimate_gb']} | "
                     f"{r['tokens_per_s']} | {r['seconds_per_step']} | "
                     f"{r['trainable_params']:,} ({100 * r['trainable_params'] / r['total_params']:.2f}%) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on CPU: checks the pipeline, not speed")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--measure", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.measure:
        print("RESULT " + json.dumps(measure(args.measure, args.model_dir, args.seq_len, args.steps, device)))
        return 0
    if device != "cuda" and not args.tiny:
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}); nothing was measured. "
              "Run it on a CUDA machine, or `--tiny` for a CPU dry run of the pipeline.")
        return 0
    shape = TINY if args.tiny else LLAMA_31_8B
    seq_len = min(args.seq_len, 256) if args.tiny else args.seq_len
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "model": "tiny 2-layer Llama" if args.tiny else "Llama-3.1-8B architecture, random weights",
        "engines": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        began = time.perf_counter()
        model_dir = build_model_dir(Path(tmp), shape, device)
        results["model_build_s"] = round(time.perf_counter() - began, 1)
        print(f"[gpu-check] random model saved in {results['model_build_s']} s", file=sys.stderr, flush=True)
        for engine in ENGINES:
            cmd = [sys.executable, "-m", "harness.gpu_check", "--measure", engine, "--model-dir", str(model_dir),
                   "--steps", str(args.steps), "--seq-len", str(seq_len)] + (["--tiny"] if args.tiny else [])
            try:
                # Offline: the model is local, and nothing outside the machine may be reachable.
                env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=240, check=False, env=env)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                results["engines"][engine] = json.loads(line[7:]) if line else {
                    "error": f"exit code {proc.returncode}, see the output above"}
            except subprocess.TimeoutExpired:
                results["engines"][engine] = {"error": "took over 240 s"}
    out_dir = Path("results/gpu_check") / started.strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "gpu_check.md").write_text(render(results))
    print(render(results))
    print(f"wrote {out_dir / 'gpu_check.md'}", file=sys.stderr)
    return 1 if any("error" in r for r in results["engines"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
