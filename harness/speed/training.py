"""Fine-tune speed: the harness's training path (each engine that runs here) vs a bare TRL SFTTrainer +
PEFT script, and training MFU against a measured matmul peak, side by side on the same model, records
and settings.

Every measurement runs in its own child process (`python -m harness.speed.training <mode> <work_dir>`),
because unsloth patches transformers and TRL on import and one run's allocator state should not carry
into the next. Run it with `python -m harness.speed training`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "embedded:smollm2-135m-instruct"
TASK_DIR = Path("tasks/stdlib_signatures")
EXAMPLES = 48
BATCH = 4
WARMUP_STEPS = 2
TIMED_STEPS = 8
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
LEARNING_RATE = 2e-4
SEED = 0
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MATMUL_N = 2048
MATMUL_RUNS = 10
CHILD_TIMEOUT_S = 600
MODES = ("harness_peft", "harness_peft_padding_free", "harness_unsloth", "bare_trl")


# --- parent side ---------------------------------------------------------------------------------

def _write_inputs(work: Path, threads: int, dev_examples: int = 0) -> dict[str, Any]:
    """The first EXAMPLES training examples as the harness formats them, and the shared settings; with
    `dev_examples`, the last ones of the training file (never trained on) as dev.jsonl."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from harness.config import load_task_config
    from harness.data import load_examples
    from harness.models import resolve_model
    from harness.training import formatting

    model_path = resolve_model(MODEL)
    cfg = load_task_config(TASK_DIR / "task.yaml")
    examples, _ = load_examples(TASK_DIR / cfg.data.train)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    config = AutoConfig.from_pretrained(model_path)
    eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    stops = formatting.stop_tokens(tokenizer, eos if isinstance(eos, list) else [eos])
    records = formatting.build_records(examples[:EXAMPLES], cfg.prompt, tokenizer, stops)
    lengths = [len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) + 1
               for r in records]
    inputs = {"model_path": model_path, "eos_token": formatting.end_token(records, stops), "threads": threads,
              "max_seq_length": min(cfg.finetune.max_seq_length, int(config.max_position_embeddings)),
              "mean_record_tokens": sum(lengths) / len(lengths)}
    (work / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if dev_examples:
        assert len(examples) >= EXAMPLES + dev_examples, "the validation examples would overlap the trained ones"
        dev = formatting.build_records(examples[-dev_examples:], cfg.prompt, tokenizer, stops)
        (work / "dev.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev))
    (work / "inputs.json").write_text(json.dumps(inputs))
    return inputs


def _child(mode: str, work: Path, module: str = "harness.speed.training") -> dict[str, Any]:
    """Run one measurement (`python -m <module> <mode> <work>`) in a fresh interpreter; its result, or why it
    did not run."""
    out = work / f"{mode}.json"
    out.unlink(missing_ok=True)  # a mode run twice must not read the first run's result
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run([sys.executable, "-m", module, mode, str(work)],
                              stdout=sys.stderr, stderr=subprocess.PIPE, text=True, env=env,
                              timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {CHILD_TIMEOUT_S} s"}
    if proc.returncode != 0 or not out.is_file():
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no output"]
        return {"skipped": f"exit code {proc.returncode}: {tail[0][:200]}"}
    return json.loads(out.read_text())


def run(machine: dict) -> dict[str, Any]:
    threads = int(machine["torch_threads"])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        work = Path(tmp)
        inputs = _write_inputs(work, threads)
        measured = {mode: _child(mode, work) for mode in (*MODES, "matmul_peak")}
    peak = measured.pop("matmul_peak")
    bare = measured["bare_trl"]
    result: dict[str, Any] = {
        "examples": EXAMPLES, "batch_size": BATCH, "warmup_steps": WARMUP_STEPS, "timed_steps": TIMED_STEPS,
        "torch_threads": threads, "mean_record_tokens": round(inputs["mean_record_tokens"], 1),
        "matmul_peak_flops_per_s": peak.get("flops_per_s"), "runs": measured,
        # Other processes on the machine slow every run; the ratios only mean something when this is low.
        "load_average_1min_before_procs": load_before, "load_average_1min_after_procs": os.getloadavg()[0]}
    for mode, m in measured.items():
        if "tokens_per_s" not in m:
            continue
        result[f"{mode}_tokens_per_s"] = m["tokens_per_s"]
        if peak.get("flops_per_s"):
            m["mfu_ratio"] = m["train_flops_per_s"] / peak["flops_per_s"]
            result[f"{mode}_mfu_ratio"] = m["mfu_ratio"]
        if mode != "bare_trl" and "tokens_per_s" in bare:
            result[f"{mode}_vs_bare_trl_ratio"] = m["tokens_per_s"] / bare["tokens_per_s"]
    if "tokens_per_s" in measured["harness_peft"] and "tokens_per_s" in measured["harness_peft_padding_free"]:
        result["padding_free_over_padded_ratio"] = (measured["harness_peft_padding_free"]["tokens_per_s"]
                                                    / measured["harness_peft"]["tokens_per_s"])
    result["markdown"] = _markdown(result, measured, peak)
    return result


def _markdown(result: dict[str, Any], measured: dict[str, dict[str, Any]], peak: dict[str, Any]) -> str:
    labels = {"harness_peft": "harness, `peft` engine", "harness_peft_padding_free": "harness, `peft`, padding-free",
              "harness_unsloth": "harness, `unsloth` engine (CPU fallback)", "bare_trl": "bare TRL + PEFT"}
    lines = ["## Fine-tune speed", "",
             f"SmolLM2-135M-Instruct, float32, LoRA r={LORA['r']} alpha={LORA['alpha']} dropout {LORA['dropout']} "
             f"on {', '.join(TARGETS)}; lr {LEARNING_RATE}, batch {BATCH}, no gradient checkpointing; the first "
             f"{EXAMPLES} stdlib_signatures training examples formatted by `harness.training.formatting` (mean "
             f"{result['mean_record_tokens']} tokens), loss on the completion. {TIMED_STEPS} optimizer steps timed "
             f"after {WARMUP_STEPS} warm-up steps, each run in its own process, {result['torch_threads']} torch "
             "threads. "
             "Tokens are the non-padding tokens of each step's batch (TRL's `num_input_tokens_seen`).", "",
             "| run | batches | s/step | tokens/s | vs bare TRL | train FLOP/s | MFU | loss step 1 | peak RSS GB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, m in measured.items():
        if "tokens_per_s" not in m:
            lines.append(f"| {labels[mode]} | not run: {m.get('skipped')} | | | | | | | |")
            continue
        ratio = result.get(f"{mode}_vs_bare_trl_ratio")
        vs_bare = f"{ratio:.2f}x" if ratio else "-"
        mfu = f"{m['mfu_ratio']:.1%}" if "mfu_ratio" in m else "-"
        batches = "padding-free" if m.get("padding_free") else "padded"
        lines.append(f"| {labels[mode]} | {batches} | {m['seconds_per_step_s']:.2f} | {m['tokens_per_s']:.1f} | "
                     f"{vs_bare} | "
                     f"{m['train_flops_per_s'] / 1e9:.1f} G | {mfu} | {m['first_step_loss_nats']:.3f} | "
                     f"{m['peak_rss_bytes'] / 1e9:.2f} |")
    if "padding_free_over_padded_ratio" in result:
        lines += ["", "Padding-free over padded batches (harness, `peft`): "
                      f"**{result['padding_free_over_padded_ratio']:.2f}x** tokens/s (the same examples and steps; "
                      "each step's padded batch is as long as its longest example). Step 1's loss is the base "
                      "model's (LoRA B starts at zero), so equal losses show the flattened examples did not see "
                      "each other."]
    lines += ["", f"1-minute load average {result['load_average_1min_before_procs']:.1f} before, "
                  f"{result['load_average_1min_after_procs']:.1f} after, on {result['torch_threads']} threads: above "
                  "that, other processes shared the cores and the runs, timed one after another, are not comparable.",
              "",
              "Training FLOP/s = (4 N + 2 T) x tokens / s, N = all parameters (with the LoRA adapters), T = the "
              "trainable ones: 2N per token forward; backward 2N for the activation gradients every layer "
              "passes back, plus 2T for weight gradients, which only the adapters get (the usual 6N assumes "
              "every weight is trained); attention-score FLOPs are left out (short sequences)."]
    if peak.get("flops_per_s"):
        lines.append(f"MFU = that over the measured peak: torch.matmul of two {MATMUL_N}x{MATMUL_N} float32 "
                     f"matrices, 2n^3 FLOP, best of {MATMUL_RUNS}, same thread count: "
                     f"**{peak['flops_per_s'] / 1e9:.1f} GFLOP/s**.")
    else:
        lines.append(f"Matmul peak not measured: {peak.get('skipped')}")
    lines += ["",
              "The harness runs use its own `load_for_training`, `trainer_class` and `training_args` (per-epoch "
              "evaluation, checkpoints and early stopping switched off for the timing) with `finetune.padding_free: "
              "auto` (peft: padded; unsloth: its own rule), and the `peft` engine once more with `padding_free: "
              "yes`: that pair is the padding-free speed-up. The bare script is "
              "`AutoModelForCausalLM` + `get_peft_model` + `SFTTrainer` with TRL's defaults except the settings "
              "above and `eos_token` set to the completions' end token (SmolLM2's tokenizer says `<|im_start|>`, "
              "which TRL would append after every `<|im_end|>`, adding a token per example and a target no answer "
              "has); it needs two departures to run at all the same way on CPU: `bf16=False` (TRL defaults to bf16 "
              "autocast) and the same minimal workaround as the harness's `peft` engine, a `compute_loss` that "
              "uses the model's own cross-entropy, because TRL 1.15's fused-LM-head loss kernel is Triton-only "
              "and fails on CPU."]
    return "\n".join(lines)


# --- child side ----------------------------------------------------------------------------------

def _step_clock() -> Any:
    """A callback noting (time, non-padding tokens seen, loss) at the end of every optimizer step."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        marks: list[tuple[float, int]] = []
        losses: list[float] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepClock()


def _timing_overrides() -> dict[str, Any]:
    return {"max_steps": WARMUP_STEPS + TIMED_STEPS, "eval_strategy": "no", "save_strategy": "no",
            "load_best_model_at_end": False, "logging_strategy": "steps", "logging_steps": 1,
            "include_num_input_tokens_seen": "non_padding", "report_to": [], "seed": SEED, "data_seed": SEED}


def _measure(trainer: Any, model: Any, clock: Any, engine: str) -> dict[str, Any]:
    import resource

    trainer.train()
    assert len(clock.marks) == WARMUP_STEPS + TIMED_STEPS, f"expected {WARMUP_STEPS + TIMED_STEPS} steps"
    (t0, n0), (t1, n1) = clock.marks[WARMUP_STEPS - 1], clock.marks[-1]
    trainable, total = model.get_nb_trainable_parameters()
    tokens_per_s = (n1 - n0) / (t1 - t0)
    return {"engine": engine, "seconds_per_step_s": (t1 - t0) / TIMED_STEPS, "tokens_per_step": (n1 - n0) / TIMED_STEPS,
            "tokens_per_s": tokens_per_s, "train_flops_per_s": (4 * total + 2 * trainable) * tokens_per_s,
            "params_total": total, "params_trainable": trainable,
            "first_step_loss_nats": clock.losses[0] if clock.losses else None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _harness(engine: str, work: Path, inputs: dict[str, Any], padding_free: str) -> dict[str, Any]:
    from harness.training.engines import import_unsloth_first
    from harness.training.spec import TrainSpec

    error = import_unsloth_first(engine)  # before transformers, as unsloth requires
    if error:
        raise RuntimeError(f"unsloth does not import: {error}")
    import torch
    from datasets import Dataset

    from harness.training.engines import choose_padding_free, load_for_training, trainer_class
    from harness.training.worker import count_real_tokens, training_args

    torch.set_num_threads(inputs["threads"])
    spec = TrainSpec(
        model_path=inputs["model_path"], device="cpu", engine=engine, engine_why="bench", load_in_4bit=False,
        dtype="float32", lora_r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        learning_rate=LEARNING_RATE, epochs=1, batch_size=BATCH, warmup_steps=0,
        max_seq_length=inputs["max_seq_length"], early_stopping_patience=1, seed=SEED, eos_token=inputs["eos_token"],
        micro_batch=BATCH, grad_accum=1, gradient_checkpointing=False, work_dir=str(work / engine), memory_plan={},
        threads=inputs["threads"], padding_free=choose_padding_free(padding_free, engine, fits=True))
    model, tokenizer, used, _ = load_for_training(spec)
    assert used == engine, f"asked for {engine}, loaded {used}"
    records = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    clock = _step_clock()
    trainer = trainer_class(engine)(model=model, args=training_args(spec, **_timing_overrides()),
                                    processing_class=tokenizer, train_dataset=Dataset.from_list(records),
                                    callbacks=[clock])
    padding_free_used = count_real_tokens(trainer)
    return {**_measure(trainer, model, clock, engine), "padding_free_setting": padding_free,
            "padding_free": padding_free_used}


def _bare_trl(work: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """What a user would write from the TRL + PEFT docs, with the two CPU departures the markdown names."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, set_seed
    from trl import SFTConfig, SFTTrainer

    class CpuSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    torch.set_num_threads(inputs["threads"])
    tokenizer = AutoTokenizer.from_pretrained(inputs["model_path"])
    model = AutoModelForCausalLM.from_pretrained(inputs["model_path"], dtype=torch.float32)
    set_seed(SEED)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    args = SFTConfig(output_dir=str(work / "bare"), per_device_train_batch_size=BATCH, learning_rate=LEARNING_RATE,
                     gradient_checkpointing=False, bf16=False, use_cpu=True, eos_token=inputs["eos_token"],
                     **_timing_overrides())
    records = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    clock = _step_clock()
    trainer = CpuSFTTrainer(model=model, args=args, processing_class=tokenizer,
                            train_dataset=Dataset.from_list(records), callbacks=[clock])
    return _measure(trainer, model, clock, "bare_trl")


def _matmul_peak(threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(MATMUL_RUNS):
        began = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - began)
    return {"best_s": best, "flops_per_s": 2 * MATMUL_N**3 / best}


def main(argv: list[str]) -> int:
    mode, work = argv[0], Path(argv[1])
    inputs = json.loads((work / "inputs.json").read_text())
    if mode == "matmul_peak":
        result = _matmul_peak(inputs["threads"])
    elif mode == "bare_trl":
        result = _bare_trl(work, inputs)
    else:
        engine = mode.removeprefix("harness_").removesuffix("_padding_free")
        result = _harness(engine, work, inputs, padding_free="yes" if mode.endswith("_padding_free") else "auto")
    (work / f"{mode}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
