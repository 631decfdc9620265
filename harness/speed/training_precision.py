"""Fine-tune precision: float32 against bfloat16 training on the CPU, through the harness's `peft` path, side by
side in one run: tokens/s, and the validation loss after the same steps.

Same model, examples, LoRA and timed steps as the fine-tune speed section (harness/speed/training.py); after
the timed steps, the validation loss on the last DEV_EXAMPLES examples of the training file (never trained on),
with the weights as trained. Runs alternate float32, bfloat16, float32, bfloat16, each in its own process, so
load from other processes falls on both sides. Nothing is trained on a CPU without avx512_bf16 or amx_bf16:
torch emulates bfloat16 matmuls there, and a matmul of the model's MLP shape, timed in both dtypes on every
CPU, shows by how much. Run it with `python -m harness.speed training_precision`: 30 s on the 2-core AVX2 CPU
(matmul only); four training runs on a CPU with the instructions, estimated at 3 min on 2 cores (not measured).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.speed import training as speed

DEV_EXAMPLES = 16
ROUNDS = 2
VAL_LOSS_TOLERANCE_NATS = 0.02
"""Largest |bfloat16 - float32| gap in validation loss (nats per answer token) that counts as the same training:
equal to two decimals."""
DTYPES = ("float32", "bfloat16")
MATMUL_RUNS = 3


# --- parent side ---------------------------------------------------------------------------------

def run(machine: dict) -> dict[str, Any]:
    from harness.training.engines import choose_precision, cpu_bf16_flags

    threads = int(machine["torch_threads"])
    flags = cpu_bf16_flags()
    _, auto_dtype, auto_why = choose_precision("auto", "auto", "auto", "cpu", "peft")
    load_before = os.getloadavg()[0]
    # Without the flags there is nothing to compare: bfloat16 would be emulated (the matmul shows how slowly).
    order = [dtype for _ in range(ROUNDS) for dtype in DTYPES] if flags else []
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        work = Path(tmp)
        inputs = speed._write_inputs(work, threads, dev_examples=DEV_EXAMPLES)
        runs = [{"dtype": dtype, **speed._child(dtype, work, __name__)} for dtype in order]
        matmul = speed._child("matmul", work, __name__)
    result: dict[str, Any] = {
        "examples": speed.EXAMPLES, "dev_examples": DEV_EXAMPLES, "batch_size": speed.BATCH,
        "warmup_steps": speed.WARMUP_STEPS, "timed_steps": speed.TIMED_STEPS, "torch_threads": threads,
        "mean_record_tokens": round(inputs["mean_record_tokens"], 1), "cpu_bf16_flags": flags,
        "auto_dtype": auto_dtype, "auto_why": auto_why, "runs": runs, "matmul": matmul,
        "val_loss_tolerance_nats": VAL_LOSS_TOLERANCE_NATS,
        "load_average_1min_before_procs": load_before, "load_average_1min_after_procs": os.getloadavg()[0]}
    result.update(_compare(runs))
    result["markdown"] = _markdown(result)
    return result


def _compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean tokens/s per dtype, bfloat16 over float32 (overall and per round), validation losses and their gap."""
    done = {dtype: [r for r in runs if r["dtype"] == dtype and "tokens_per_s" in r] for dtype in DTYPES}
    out: dict[str, Any] = {}
    for dtype, measured in done.items():
        if measured:
            out[f"{dtype}_tokens_per_s"] = sum(r["tokens_per_s"] for r in measured) / len(measured)
            out[f"{dtype}_val_loss_nats"] = measured[0]["val_loss_nats"]
    if done["float32"] and done["bfloat16"]:
        out["bfloat16_over_float32_ratio"] = out["bfloat16_tokens_per_s"] / out["float32_tokens_per_s"]
        out["round_ratios"] = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(*done.values(), strict=False)]
        gap = out["bfloat16_val_loss_nats"] - out["float32_val_loss_nats"]
        out["val_loss_gap_nats"] = gap
        out["val_loss_within_tolerance"] = abs(gap) <= VAL_LOSS_TOLERANCE_NATS
    return out


def _markdown(result: dict[str, Any]) -> str:
    lines = ["## Fine-tune precision (CPU)", "",
             f"The fine-tune speed section's setup through the harness's `peft` engine (SmolLM2-135M-Instruct, "
             f"LoRA r={speed.LORA['r']}, the first {result['examples']} stdlib_signatures training examples, mean "
             f"{result['mean_record_tokens']} tokens, batch {result['batch_size']}): {result['timed_steps']} "
             f"optimizer steps timed after {result['warmup_steps']} warm-up steps, then the validation loss on the "
             f"last {result['dev_examples']} examples of the training file (never trained on), with the weights as "
             f"trained. bfloat16 = bfloat16 base weights, LoRA weights and AdamW in float32. Each run in its own "
             f"process, in the order listed, {result['torch_threads']} torch threads.", "",
             f"`finetune.precision: auto` on this machine: **{result['auto_dtype']}** ({result['auto_why']}).", ""]
    rows = [_row(i, r) for i, r in enumerate(result["runs"], 1)]
    if rows:
        lines += ["| run | dtype | s/step | tokens/s | validation loss (nats/token) | loss step 1 (nats/token) | "
                  "peak RSS GB |", "| --- | --- | --- | --- | --- | --- | --- |", *rows, ""]
    if "bfloat16_over_float32_ratio" in result:
        rounds = ", ".join(f"{x:.2f}x" for x in result["round_ratios"])
        verdict = "within" if result["val_loss_within_tolerance"] else "outside"
        lines.append(f"bfloat16 over float32: **{result['bfloat16_over_float32_ratio']:.2f}x** tokens/s (mean of each "
                     f"dtype's runs; per round {rounds}). Validation loss {result['bfloat16_val_loss_nats']:.4f} vs "
                     f"{result['float32_val_loss_nats']:.4f} nats/token, a gap of {result['val_loss_gap_nats']:+.4f}: "
                     f"{verdict} the {VAL_LOSS_TOLERANCE_NATS} nats/token tolerance.")
    elif not result["cpu_bf16_flags"]:
        lines.append("Not trained: this CPU reports neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo, so bfloat16 "
                     "would be emulated; `finetune.precision: bfloat16` still forces it.")
    m = result["matmul"]
    if "float32_s" in m:
        lines.append(f"A matmul of the MLP's shape ([{m['rows']} x {m['hidden']}] x [{m['hidden']} x "
                     f"{m['intermediate']}], best of {MATMUL_RUNS}): float32 {m['float32_s'] * 1e3:.1f} ms, bfloat16 "
                     f"{m['bfloat16_s'] * 1e3:.1f} ms, **{m['bfloat16_over_float32_time_ratio']:.1f}x** the time.")
    else:
        lines.append(f"Matmul not measured: {m.get('skipped')}")
    lines += ["", f"1-minute load average {result['load_average_1min_before_procs']:.1f} before, "
                  f"{result['load_average_1min_after_procs']:.1f} after, on {result['torch_threads']} threads"
                  + ("; the alternating order spreads other processes' load over both dtypes." if rows else ".")]
    return "\n".join(lines)


def _row(i: int, r: dict[str, Any]) -> str:
    if "tokens_per_s" not in r:
        return f"| {i} | {r['dtype']} | not run: {r.get('skipped')} | | | | |"
    return (f"| {i} | {r['dtype']} | {r['seconds_per_step_s']:.2f} | {r['tokens_per_s']:.1f} | "
            f"{r['val_loss_nats']:.4f} | {r['first_step_loss_nats']:.4f} | {r['peak_rss_bytes'] / 1e9:.2f} |")


# --- child side ----------------------------------------------------------------------------------

def _train_and_validate(dtype: str, work: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from harness.training.engines import load_for_training, trainer_class
    from harness.training.spec import TrainSpec
    from harness.training.worker import training_args

    torch.set_num_threads(inputs["threads"])
    spec = TrainSpec(
        model_path=inputs["model_path"], device="cpu", engine="peft", engine_why="bench", load_in_4bit=False,
        dtype=dtype, lora_r=speed.LORA["r"], lora_alpha=speed.LORA["alpha"], lora_dropout=speed.LORA["dropout"],
        learning_rate=speed.LEARNING_RATE, epochs=1, batch_size=speed.BATCH, warmup_steps=0,
        max_seq_length=inputs["max_seq_length"], early_stopping_patience=1, seed=speed.SEED,
        eos_token=inputs["eos_token"], micro_batch=speed.BATCH, grad_accum=1, gradient_checkpointing=False,
        work_dir=str(work / dtype), memory_plan={}, threads=inputs["threads"], padding_free=False)
    model, tokenizer, _, _ = load_for_training(spec)
    records = {name: [json.loads(line) for line in (work / f"{name}.jsonl").read_text().splitlines()]
               for name in ("train", "dev")}
    clock = speed._step_clock()
    trainer = trainer_class("peft")(model=model, args=training_args(spec, **speed._timing_overrides()),
                                    processing_class=tokenizer, train_dataset=Dataset.from_list(records["train"]),
                                    eval_dataset=Dataset.from_list(records["dev"]), callbacks=[clock])
    measured = speed._measure(trainer, model, clock, "peft")
    lora_dtypes = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad})
    return {**measured, "val_loss_nats": trainer.evaluate()["eval_loss"], "lora_param_dtypes": lora_dtypes}


def _matmul(inputs: dict[str, Any]) -> dict[str, Any]:
    """float32 vs bfloat16 time of one MLP up-projection over a batch's tokens (best of MATMUL_RUNS)."""
    import torch
    from transformers import AutoConfig

    torch.set_num_threads(inputs["threads"])
    config = AutoConfig.from_pretrained(inputs["model_path"])
    rows = speed.BATCH * round(inputs["mean_record_tokens"])
    best: dict[str, float] = {}
    for dtype in DTYPES:
        x = torch.randn(rows, config.hidden_size, dtype=getattr(torch, dtype))
        w = torch.randn(config.hidden_size, config.intermediate_size, dtype=getattr(torch, dtype))
        torch.matmul(x, w)  # warm-up
        times = []
        for _ in range(MATMUL_RUNS):
            began = time.perf_counter()
            torch.matmul(x, w)
            times.append(time.perf_counter() - began)
        best[dtype] = min(times)
    return {"rows": rows, "hidden": config.hidden_size, "intermediate": config.intermediate_size,
            "float32_s": best["float32"], "bfloat16_s": best["bfloat16"],
            "bfloat16_over_float32_time_ratio": best["bfloat16"] / best["float32"]}


def main(argv: list[str]) -> int:
    mode, work = argv[0], Path(argv[1])
    inputs = json.loads((work / "inputs.json").read_text())
    result = _matmul(inputs) if mode == "matmul" else _train_and_validate(mode, work, inputs)
    (work / f"{mode}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
