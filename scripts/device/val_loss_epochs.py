"""Per-epoch validation loss of a 2-epoch fine-tune on stdlib_signatures, per engine, through the harness's worker.

    python scripts/device/val_loss_epochs.py              # CUDA: unsloth and peft, 200 training examples, ~5 min
    python scripts/device/val_loss_epochs.py --dry-run    # CPU: peft on 10 examples of the embedded model

Why: on the H200 (2026-11-30) unsloth QLoRA logged the same validation loss at epochs 1 and 2 (0.02283)
while the training loss fell 0.45 -> 0.009. This builds the records as the finetune strategy does
(the task's prompt, a seeded subset of train, 10% of it carved out as dev), then trains each engine that is
installed, 2 epochs in a fresh work folder, with the harness's worker (`python -m harness.training.worker`,
the process `harness.training.launch` starts) under a timeout. It prints, per epoch, the training and
validation losses from fit.json (rounded to 5 decimals by harness.training.curves) beside the raw `eval/loss`
scalars the trainer logged to TensorBoard, and whether epochs 1 and 2 differ. Everything also goes to
--out as JSON. Not yet run on a GPU: the --dry-run on CPU checks the script end to end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the harness is imported from this checkout

ENGINES = ("unsloth", "peft")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="val_loss_epochs.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", type=Path, default=ROOT / "tasks" / "stdlib_signatures", help="task folder")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, from unsloth, peft")
    parser.add_argument("--train-examples", type=int, default=200, help="seeded subset of train (10%% become dev)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--padding-free", choices=("auto", "yes", "no"), default="auto",
                        help="finetune.padding_free (auto: unsloth's own rule, padded for peft)")
    parser.add_argument("--timeout-s", type=int, default=900, help="per engine's training")
    parser.add_argument("--dry-run", action="store_true", help="CPU, peft, 10 examples: checks the script, no GPU")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or set(args.engines) - set(ENGINES):
        parser.error(f"argument --engines: expected names from {', '.join(ENGINES)}, got {','.join(args.engines)!r}")
    if args.train_examples < 10 or args.epochs < 2:
        parser.error("argument --train-examples/--epochs: at least 10 examples and 2 epochs (there is nothing to "
                     "compare otherwise)")
    if args.dry_run:
        args.engines, args.train_examples = ["peft"], 10
    return args


def build_records(task: Path, limit: int) -> tuple[Any, str, list[dict[str, str]], list[dict[str, str]], list[str]]:
    """(task config, model path, train records, dev records, stop tokens), formatted as strategies/finetune.py
    does."""
    from transformers import AutoTokenizer, GenerationConfig

    from harness.config import load_task_config
    from harness.data import load_examples
    from harness.models import resolve_model
    from harness.training import formatting

    cfg = load_task_config(task / "task.yaml")
    assert cfg.data.train, f"{task / 'task.yaml'}: data.train is needed (the script reads no other split)"
    examples, _ = load_examples(task / cfg.data.train)
    model_path = resolve_model(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    stops = formatting.stop_tokens(tokenizer, eos if isinstance(eos, list) else [eos])
    seed = cfg.finetune.seed
    chosen, dev = formatting.split_dev(formatting.select_examples(examples, limit, seed), [], seed)
    return (cfg, model_path, formatting.build_records(chosen, cfg.prompt, tokenizer, stops),
            formatting.build_records(dev, cfg.prompt, tokenizer, stops), stops)


def tensorboard_eval_losses(logs: Path) -> list[dict[str, float]]:
    """Every `eval/loss` scalar the trainer logged, unrounded, with its step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for events in sorted(logs.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if "eval/loss" in acc.Tags().get("scalars", []):
            points += [{"step": e.step, "eval_loss": e.value} for e in acc.Scalars("eval/loss")]
    return points


def train_engine(engine: str, args: argparse.Namespace, device: str, setup: tuple[Any, str, list, list, list],
                 work: Path) -> dict[str, Any]:
    from harness.training.engines import choose_padding_free, choose_precision
    from harness.training.formatting import end_token
    from harness.training.launch import write_records
    from harness.training.spec import TrainSpec

    cfg, model_path, train, dev, stops = setup
    eos_token = end_token(train, stops)
    ft = cfg.finetune
    quantize, dtype, precision_why = choose_precision(ft.precision, ft.load_in_4bit, cfg.model.dtype, device, engine)
    spec = TrainSpec(model_path=model_path, device=device, engine=engine, engine_why="val_loss_epochs",
                     load_in_4bit=quantize, dtype=dtype, lora_r=ft.lora_r, lora_alpha=ft.lora_alpha,
                     lora_dropout=ft.lora_dropout, learning_rate=ft.learning_rate, epochs=args.epochs,
                     batch_size=ft.batch_size, warmup_steps=ft.warmup_steps, max_seq_length=ft.max_seq_length,
                     early_stopping_patience=args.epochs,  # every epoch runs, whatever its loss
                     seed=ft.seed, eos_token=eos_token, micro_batch=ft.batch_size, grad_accum=1,
                     gradient_checkpointing=False, work_dir=str(work), memory_plan={"estimate_bytes": None},
                     padding_free=choose_padding_free(args.padding_free, engine, True), report_to="tensorboard",
                     precision_why=precision_why)
    work.mkdir(parents=True)
    write_records(work / "train.jsonl", train)
    write_records(work / "dev.jsonl", dev)
    spec.save(work / "spec.json")
    began = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.training.worker", str(work / "spec.json")],
                              cwd=ROOT, stdout=sys.stderr, timeout=args.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"training took over {args.timeout_s} s"}
    if proc.returncode != 0:
        return {"engine": engine, "error": f"the worker exited with {proc.returncode}, see the output above"}
    fit = json.loads((work / "fit.json").read_text())
    raw = tensorboard_eval_losses(work / "logs")
    evals = {row["epoch"]: row["eval_loss"] for row in fit["epochs"]}
    both = evals.get(1) is not None and evals.get(2) is not None
    return {"engine": fit["engine"], "precision": fit["precision"], "padding_free": fit["padding_free"],
            "seconds": round(time.perf_counter() - began, 1), "train_examples": len(train), "dev_examples": len(dev),
            "epochs": fit["epochs"], "tensorboard_eval_loss": raw,
            "epochs_1_2_differ": evals[1] != evals[2] if both else None}


def report(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['engine']}: failed: {result['error']}"
    lines = [f"{result['engine']} ({result['precision']}, padding-free {result['padding_free']}, "
             f"{result['train_examples']} train / {result['dev_examples']} dev examples, {result['seconds']} s):",
             "  epoch | train loss | validation loss (fit.json)"]
    lines += [f"  {r['epoch']:>5} | {r['train_loss'] if r['train_loss'] is not None else '':>10} | {r['eval_loss']}"
              for r in result["epochs"]]
    lines.append("  TensorBoard eval/loss by step: " + ", ".join(f"{p['step']}: {p['eval_loss']:.7f}"
                                                             for p in result["tensorboard_eval_loss"]))
    differ = result["epochs_1_2_differ"]
    lines.append("  validation loss at epochs 1 and 2: " + {True: "differs", False: "IDENTICAL",
                                                             None: "not both logged"}[differ])
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    if device == "cpu" and not args.dry_run:
        print("val_loss_epochs: no CUDA device here; nothing was trained. Use --dry-run for a CPU check of the script.")
        return 0
    setup = build_records(args.task, args.train_examples)
    results = []
    with tempfile.TemporaryDirectory(prefix="val-loss-epochs-") as tmp:
        for engine in args.engines:
            if importlib.util.find_spec(engine) is None:
                results.append({"engine": engine, "not_run": f"{engine} is not installed"})
                print(f"{engine}: not run: {engine} is not installed")
                continue
            results.append(train_engine(engine, args, device, setup, Path(tmp) / engine))
            print(report(results[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
