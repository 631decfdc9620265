"""`make gpu-check`: Unsloth QLoRA vs PEFT + bitsandbytes QLoRA on a Llama-3.1-8B-shaped model, on CUDA.

    python -m harness.gpu_check                                      # on a CUDA machine, about 5 minutes
    python -m harness.gpu_check --cap-gib 7.6 --max-context          # as on an 8 GB card, and its longest context
    python -m harness.gpu_check --tiny --cap-gib 0.1 --max-context   # the same pipeline on CPU (a dry run)

The model is randomly initialized from the Llama-3.1-8B architecture (weights can't be downloaded
there; speed and memory don't depend on their values) and saved once as bf16 safetensors. Each engine
then loads it 4-bit, adds LoRA (r=16 on the seven projections) through `harness.training.engines`, and
trains with TRL's SFTTrainer as the worker configures it, in its own process (unsloth patches libraries
on import), at micro-batch 1, sequence length 2048, gradient checkpointing on. Reported per engine: peak
allocated (`torch.cuda.max_memory_allocated`, the tensors) and peak reserved (`max_memory_reserved`, what the
caching allocator holds from the card) beside the memory planner's estimate and its error, and tokens/s
over the steps after the first two. Results go to results/gpu_check/<date>/gpu_check.{json,md}, with the
planner's error on its calibration points (`harness.training.planner.CALIBRATION`).

`--cap-gib N` caps each measuring process's CUDA allocator at N GiB (`set_per_process_memory_fraction`,
N GiB over the card's total), so an allocation past it fails as it would on a smaller card; 7.6 GiB is an
8 GB card less its CUDA context, which the cap does not count. `--max-context` then finds, per engine, the
longest sequence that trains under the cap: a bisection over sequence length, each probe a few steps in its
own process; an out-of-memory error in a probe means "does not fit". It assumes that a length fits when a
longer one does. Unsloth publishes 2,972 tokens for Llama-3.1-8B QLoRA at r=32 in 8 GB; this check uses r=16.

`--tiny`: a 2-layer model of the same architecture (hidden 128, vocabulary 1,024), float32 LoRA on CPU:
it checks the pipeline, not speed or VRAM. There is no CUDA allocator there; the cap is emulated by
CPU_CAP_METHOD below, and the output says so. The cap applies as given: the tiny model fits 7.6 GiB at every
length searched (128 to 4,096 tokens), so a bisection that finds a limit needs a small cap: its growth was
0.04 GiB at 256 tokens, 0.08 at 1,024, 0.12 at 2,048 and 0.20 at 4,096, so 0.1 GiB puts it between 1,024 and 2,048.
Without CUDA (and without --tiny) it says so and exits 0. An engine whose libraries are missing shows
"not run: <reason>".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
GIB = 2**30
PROBE_STEPS = 3
"""Steps per --max-context probe: the peak comes by the second step (AdamW's states exist from the first)."""
CONTEXT_SEARCH = {"cuda": (512, 8192, 128), "cpu": (128, 4096, 128)}
"""Default (floor, ceiling, resolution) of the --max-context bisection, in tokens."""
CPU_CAP_METHOD = ("each process's peak RSS growth (getrusage ru_maxrss minus the resident size just before the model "
                  "loads), compared with the cap after the run: nothing is capped while it runs, and a probe whose "
                  "growth exceeds the cap counts as 'does not fit'. This is not a CUDA measurement")
TIMEOUT_S = {"cuda": 420, "cpu": 240}


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


def planner_bytes(shape: Any, seq_len: int, device: str, engine: str) -> dict[str, int]:
    """The planner's estimate for this check's setup, by component. On CPU without `framework`: the
    measured RSS growth starts after Python, torch and the libraries are loaded."""
    from harness.training import planner

    quantize = device == "cuda"
    parts = planner.estimate(shape, micro_batch=1, seq_len=seq_len, checkpointing=True,
                             weight_bytes=0.516 if quantize else 4, act_bytes=2 if quantize else 4, device=device,
                             fused_head=device == "cuda" or engine == "unsloth")  # as strategies/finetune.py plans
    return {k: v for k, v in parts.items() if k != "framework" or device == "cuda"}


def planner_max_context(shape: Any, cap_bytes: float, ceiling: int, device: str, engine: str) -> int | None:
    """The longest sequence (up to `ceiling`) whose planner estimate fits `cap_bytes`; None when not even 1 token."""
    lo, hi = 0, ceiling + 1  # the estimate grows with the length: fits at lo, not at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if sum(planner_bytes(shape, mid, device, engine).values()) <= cap_bytes else (lo, mid)
    return lo or None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def measure(engine: str, model_dir: Path, seq_len: int, steps: int, device: str,
            cap_gib: float | None) -> dict[str, Any]:
    """Train `steps` steps with one engine through the harness's own loading and trainer setup, under the cap."""
    from harness.training.engines import import_unsloth_first

    import_unsloth_first(engine)
    import psutil
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from harness.training import planner
    from harness.training.engines import load_for_training, trainer_class
    from harness.training.spec import TrainSpec
    from harness.training.worker import training_args

    if device == "cuda" and cap_gib is not None:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(cap_gib * GIB / total, 0)
    if device == "cpu":
        torch.set_num_threads(1)  # a 2-layer model gains nothing from more, and loses much on a shared machine
    quantize = device == "cuda"
    shape = planner.model_shape(str(model_dir), 16)
    estimate = planner_bytes(shape, seq_len, device, engine)
    work = Path(tempfile.mkdtemp(prefix=f"gpu-check-{engine}-"))
    spec = TrainSpec(model_path=str(model_dir), device=device, engine=engine, engine_why="gpu-check",
                     load_in_4bit=quantize, dtype="bfloat16" if quantize else "float32", lora_r=16, lora_alpha=32,
                     lora_dropout=0.0, learning_rate=2e-4, epochs=1, batch_size=1, warmup_steps=0,
                     max_seq_length=seq_len, early_stopping_patience=1, seed=0, eos_token="<|end_of_text|>",
                     micro_batch=1, grad_accum=1, gradient_checkpointing=True, work_dir=str(work), memory_plan={},
                     allow_fallback=False)  # a failing unsloth is reported, never replaced by peft
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, shape.vocab - 8, (steps, seq_len), generator=generator).tolist()
    stamps: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    baseline_rss = psutil.Process().memory_info().rss
    record: dict[str, Any] = {"engine": engine, "seq_len": seq_len, "micro_batch": 1, "gradient_checkpointing": True,
                              "steps": steps, "precision": spec.precision,
                              "estimate_gib": round(sum(estimate.values()) / GIB, 3),
                              "estimate_breakdown_gib": {k: round(v / GIB, 3) for k, v in estimate.items()}}
    try:
        model, tokenizer, ran, why = load_for_training(spec)
        trainable, total_params = model.get_nb_trainable_parameters()
        args = training_args(spec, max_steps=steps, eval_strategy="no", save_strategy="no",
                             load_best_model_at_end=False, logging_strategy="steps", logging_steps=1,
                             include_num_input_tokens_seen="no")
        trainer = trainer_class(ran)(model=model, args=args, processing_class=tokenizer,
                                     train_dataset=Dataset.from_dict({"input_ids": ids}), callbacks=[StepTimer()])
        began = time.perf_counter()
        trainer.train()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        return {**record, **peak_memory(device, baseline_rss, cap_gib), "fits": False, "oom": True,
                "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    memory = peak_memory(device, baseline_rss, cap_gib)
    timed = stamps[WARMUP_STEPS:] if len(stamps) > WARMUP_STEPS + 1 else stamps
    seconds = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
    peak = memory["peak_gib"]
    return {**record, **memory, "engine": ran, "engine_why": why, "trainable_params": trainable,
            "total_params": total_params, "seconds_per_step": round(seconds, 3),
            "tokens_per_s": round(seq_len / seconds, 1),
            "first_steps_s": [round(b - a, 2) for a, b in zip([began] + stamps, stamps)][:WARMUP_STEPS],
            "planner_error": round(record["estimate_gib"] / peak - 1, 3) if peak else None,
            "losses": [round(h["loss"], 3) for h in trainer.state.log_history if "loss" in h]}


def peak_memory(device: str, baseline_rss: int, cap_gib: float | None) -> dict[str, Any]:
    """The peak this process reached, in GiB, and whether it is within the cap."""
    import resource

    import torch

    if device == "cuda":  # past the cap the allocator raised: getting here under it means it fit
        return {"memory_measured_as": "torch.cuda.max_memory_allocated / max_memory_reserved",
                "peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3), "fits": True, "oom": False}
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline_rss  # Linux: KiB
    fits = cap_gib is None or growth <= cap_gib * GIB
    return {"memory_measured_as": "peak RSS growth (CPU emulation)", "peak_gib": round(growth / GIB, 3),
            "peak_reserved_gib": None, "fits": fits, "oom": False,
            **({} if fits else {"why": f"peak RSS growth {growth / GIB:.3f} GiB is over the {cap_gib} GiB cap"})}


def run_measure(engine: str, model_dir: Path, seq_len: int, steps: int, tiny: bool, cap_gib: float | None,
                timeout_s: int) -> dict[str, Any]:
    """`measure` in a process of its own: the RESULT it prints, or what went wrong."""
    cmd = [sys.executable, "-m", "harness.gpu_check", "--measure", engine, "--model-dir", str(model_dir),
           "--steps", str(steps), "--seq-len", str(seq_len)] + (["--tiny"] if tiny else []) \
        + (["--cap-gib", str(cap_gib)] if cap_gib is not None else [])
    # Offline: the model is local, and nothing outside the machine may be reachable.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"[gpu-check] {engine} at {seq_len} tokens ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "seq_len": seq_len, "error": f"took over {timeout_s} s"}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line:
        return json.loads(line[7:])
    if proc.returncode == -signal.SIGKILL:  # the kernel's OOM killer: the CPU's "does not fit"
        return {"engine": engine, "seq_len": seq_len, "fits": False, "oom": True, "why": "killed by SIGKILL"}
    return {"engine": engine, "seq_len": seq_len, "error": f"exit code {proc.returncode}, see the output above"}


def longest_fitting(probe: Callable[[int], dict[str, Any]], floor: int, ceiling: int, resolution: int,
                    known: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Bisect sequence lengths for the longest one whose probe fits, to within `resolution` tokens.

    `known` results (e.g. the main measurement) narrow the range before any probe runs. Returns
    `longest_fits` (None when not even `floor` fits) and `shortest_fails` (None when `ceiling` fits),
    with every probe's result; `error` when a probe failed for another reason than memory.
    """
    probes = {n: r for n, r in (known or {}).items() if floor <= n <= ceiling and "error" not in r}
    fitting = [n for n, r in probes.items() if r["fits"]]
    failing = [n for n, r in probes.items() if not r["fits"]]
    lo, hi = max(fitting, default=None), min(failing, default=None)
    result: dict[str, Any] = {"floor": floor, "ceiling": ceiling, "resolution": resolution}

    def fits(n: int) -> bool | None:
        probes[n] = probe(n)
        if "error" in probes[n]:
            result["error"] = f"the probe at {n} tokens failed: {probes[n]['error']}"
            return None
        return bool(probes[n]["fits"])

    if lo is None and (hi is None or hi > floor):
        ok = fits(floor)
        lo, hi = (floor, hi) if ok else (None, floor if ok is False else hi)
    if lo is not None and hi is None and "error" not in result:
        ok = fits(ceiling)
        lo, hi = (ceiling, None) if ok else (lo, ceiling if ok is False else None)
    while lo is not None and hi is not None and hi - lo > resolution and "error" not in result:
        mid = max((lo + hi) // 2 // resolution * resolution, lo + resolution)
        if mid >= hi:
            break
        ok = fits(mid)
        if ok is not None:
            lo, hi = (mid, hi) if ok else (lo, mid)
    keep = ("seq_len", "fits", "oom", "peak_gib", "peak_reserved_gib", "why", "error")
    return {**result, "longest_fits": lo, "shortest_fails": hi,
            "probes": [{k: probes[n][k] for k in keep if k in probes[n]} | {"seq_len": n} for n in sorted(probes)]}


def engine_missing(engine: str, device: str) -> str | None:
    """Why an engine cannot run here, or None."""
    need = ["unsloth"] if engine == "unsloth" else ["peft"]
    if device == "cuda":
        need.append("bitsandbytes")  # 4-bit loading
    missing = [name for name in need if importlib.util.find_spec(name) is None]
    return f"{', '.join(missing)} not installed" if missing else None


def cap_line(results: dict[str, Any]) -> str:
    cap = results["cap_gib"]
    if cap is None:
        return "Memory cap: none (the card's whole memory)."
    if results["device_kind"] == "cuda":
        return (f"Memory cap: {cap} GiB, set in each measuring process with torch.cuda.set_per_process_memory_fraction "
                f"({results['cap_fraction']:.4f} of the card's {results['card_gib']:.1f} GiB): the caching allocator "
                "fails past it as on a smaller card; the CUDA context is outside it.")
    return (f"Memory cap: {cap} GiB, emulated on CPU by {CPU_CAP_METHOD}. The planner's estimate here leaves out its "
            "`framework` term (Python and the libraries, loaded before the growth is counted).")


def percent(error: float | None) -> str:
    return "" if error is None else f"{100 * error:+.0f}%"


def render(results: dict[str, Any]) -> str:
    cuda = results["device_kind"] == "cuda"
    peak = "peak allocated (GiB) | peak reserved (GiB)" if cuda else "peak RSS growth (GiB) | peak reserved (GiB)"
    lines = [f"# gpu-check {results['started']}", "", f"Device: {results['device']}; model: {results['model']}.",
             cap_line(results), "Memory figures are in GiB (2^30 bytes) unless a column says GB (10^9 bytes). "
             "Planner error: its estimate over the measured peak, minus 1 (positive: over-estimate).", "",
             f"| engine | precision | seq len (tokens) | {peak} | planner estimate (GiB) | planner error "
             "| fits the cap | tokens/s | s/step | trainable params |", "| --- " * 11 + "|"]
    for name, r in results["engines"].items():
        if "not_run" in r or "error" in r:
            lines.append(f"| {name} | {'not run: ' + r['not_run'] if 'not_run' in r else 'failed: ' + r['error']} |"
                         + " |" * 9)
            continue
        trained = "trainable_params" in r
        lines.append(f"| {r['engine']} | {r['precision']} | {r['seq_len']} | {r['peak_gib']} | "
                     f"{r['peak_reserved_gib'] if cuda else 'n/a (CPU)'} | {r['estimate_gib']} | "
                     f"{percent(r.get('planner_error'))} | {'yes' if r['fits'] else 'no: ' + r['why']} | "
                     + (f"{r['tokens_per_s']} | {r['seconds_per_step']} | {r['trainable_params']:,} "
                        f"({100 * r['trainable_params'] / r['total_params']:.2f}%) |" if trained else " | | |"))
    if results["max_context"]:
        lines += context_lines(results)
    lines += ["", "## Planner calibration", "",
              "The memory planner (`harness.training.planner`) against the peaks measured so far, recomputed with "
              "its current formula:", "", "| point | measured as | measured (GB) | planner (GB) | error |",
              "| --- | --- | --- | --- | --- |"]
    for p in results["planner_calibration"]:
        lines.append(f"| {p['name']} ({p['source']}) | {p['measured_as']} | {p['measured_gb']:.2f} | "
                     f"{p['estimate_gb']:.2f} | {percent(p['error'])} |")
    return "\n".join(lines) + "\n"


def context_lines(results: dict[str, Any]) -> list[str]:
    first = next((s for s in results["max_context"].values() if "floor" in s), None)
    lines = ["", f"## Longest context that trains under the {results['cap_gib']} GiB cap", ""]
    if first:
        lines.append(f"Bisection over sequence length from {first['floor']} to {first['ceiling']} tokens, to "
                     f"{first['resolution']} tokens; micro-batch 1, gradient checkpointing, {PROBE_STEPS} steps per "
                     "probe, each probe in its own process; an out-of-memory error or a peak over the cap = does not "
                     "fit. Planner: the longest length its estimate puts under the cap.")
    lines += ["", "| engine | longest that trained (tokens) | shortest that did not (tokens) | planner's longest "
              "(tokens) | probes |", "| --- | --- | --- | --- | --- |"]
    for name, s in results["max_context"].items():
        if "not_run" in s:
            lines.append(f"| {name} | not run: {s['not_run']} | | | |")
            continue
        longest = s["longest_fits"] if s["longest_fits"] is not None else f"none (not even {s['floor']})"
        fails = s["shortest_fails"] if s["shortest_fails"] is not None else f"none up to {s['ceiling']} (the ceiling)"
        note = f" (stopped: {s['error']})" if "error" in s else ""
        planned = s["planner_longest"]
        planned = f"{planned} or more (the ceiling)" if planned == s["ceiling"] else planned or "none"
        lines.append(f"| {name} | {longest}{note} | {fails} | {planned} | "
                     + ", ".join(f"{p['seq_len']} {'fits' if p.get('fits') else 'no'}" for p in s["probes"]) + " |")
    return lines


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line naming the option, not the usage text
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m harness.gpu_check", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on CPU: checks the pipeline, not speed")
    parser.add_argument("--steps", type=positive(int), default=10)
    parser.add_argument("--seq-len", type=positive(int), default=2048, help="tokens per sequence (--tiny: at most 256)")
    parser.add_argument("--cap-gib", type=positive(float), help="emulate a card with this many GiB (see above)")
    parser.add_argument("--max-context", action="store_true", help="bisect for the longest sequence under --cap-gib")
    parser.add_argument("--context-floor", type=positive(int), help="shortest length searched, tokens (cuda 512, "
                        "cpu 128)")
    parser.add_argument("--context-ceiling", type=positive(int), help="longest length searched, tokens (cuda "
                        "8192, cpu 4096)")
    parser.add_argument("--context-resolution", type=positive(int), help="search step, tokens (128)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, from unsloth, peft")
    parser.add_argument("--out-dir", type=Path, default=Path("results/gpu_check"), help="dated subfolders here")
    parser.add_argument("--measure", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or set(args.engines) - set(ENGINES):
        parser.error(f"argument --engines: expected names from {', '.join(ENGINES)}, got {','.join(args.engines)!r}")
    if args.max_context and args.cap_gib is None:
        parser.error("argument --max-context: needs --cap-gib (the memory the context must fit)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.measure:
        result = measure(args.measure, args.model_dir, args.seq_len, args.steps, device, args.cap_gib)
        print("RESULT " + json.dumps(result))
        return 0
    if device != "cuda" and not args.tiny:
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}); nothing was measured. "
              "Run it on a CUDA machine, or `--tiny` for a CPU dry run of the pipeline.")
        return 0
    search = CONTEXT_SEARCH[device]
    floor, ceiling, resolution = (given or default for given, default in
                                  zip((args.context_floor, args.context_ceiling, args.context_resolution), search))
    if floor >= ceiling:
        print(f"error: argument --context-floor: {floor} is not below the ceiling {ceiling}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"), "device_kind": device,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "model": "tiny 2-layer Llama (--tiny)" if args.tiny else "Llama-3.1-8B architecture, random weights",
        "cap_gib": args.cap_gib, "cap_method": None, "engines": {}, "max_context": {}}
    if args.cap_gib is not None and device == "cuda":
        card = torch.cuda.get_device_properties(0).total_memory
        if args.cap_gib * GIB > card:
            print(f"error: argument --cap-gib: {args.cap_gib} is above the card's {card / GIB:.1f} GiB",
                  file=sys.stderr)
            return 2
        results.update(card_gib=card / GIB, cap_fraction=args.cap_gib * GIB / card,
                       cap_method="torch.cuda.set_per_process_memory_fraction")
    elif args.cap_gib is not None:
        results["cap_method"] = CPU_CAP_METHOD
    run_engines(args, device, floor, ceiling, resolution, results)
    from harness.training import planner

    results["planner_calibration"] = planner.calibration_errors()
    out_dir = args.out_dir / started.strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "gpu_check.md").write_text(render(results))
    print(render(results))
    print(f"wrote {out_dir / 'gpu_check.md'}", file=sys.stderr)
    return 1 if any("error" in r for part in ("engines", "max_context") for r in results[part].values()) else 0


def run_engines(args: argparse.Namespace, device: str, floor: int, ceiling: int, resolution: int,
                results: dict[str, Any]) -> None:
    """The main measurement per engine, then (--max-context) its bisection, into `results`."""
    from harness.training import planner

    seq_len = min(args.seq_len, 256) if args.tiny else args.seq_len
    timeout_s = TIMEOUT_S[device]
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        began = time.perf_counter()
        model_dir = build_model_dir(Path(tmp), TINY if args.tiny else LLAMA_31_8B, device)
        results["model_build_s"] = round(time.perf_counter() - began, 1)
        print(f"[gpu-check] random model saved in {results['model_build_s']} s", file=sys.stderr, flush=True)
        shape = planner.model_shape(str(model_dir), 16)
        for engine in args.engines:
            if reason := engine_missing(engine, device):
                results["engines"][engine] = {"not_run": reason}
                if args.max_context:
                    results["max_context"][engine] = {"not_run": reason}
                continue
            main_run = run_measure(engine, model_dir, seq_len, args.steps, args.tiny, args.cap_gib, timeout_s)
            results["engines"][engine] = main_run
            if not args.max_context:
                continue

            def probe(n: int, engine: str = engine) -> dict[str, Any]:
                return run_measure(engine, model_dir, n, PROBE_STEPS, args.tiny, args.cap_gib, timeout_s)

            found = longest_fitting(probe, floor, ceiling, resolution, known={seq_len: main_run})
            found["planner_longest"] = planner_max_context(shape, args.cap_gib * GIB, ceiling, device, engine)
            results["max_context"][engine] = found


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
