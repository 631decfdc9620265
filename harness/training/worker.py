"""The training process: `python -m harness.training.worker <work_dir>/spec.json`.

Loads the engine's model, trains with TRL's SFTTrainer (evaluation, a checkpoint and a log line every
epoch, early stopping on validation loss keeping the best epoch), resumes from the last complete
checkpoint when one exists, then saves the best adapter and writes `fit.json` last. Run by
`harness.training.launch` in a child process; it can also be run by hand to resume a training.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness.rundir import write_json
from harness.training import resume
from harness.training.spec import LOGS_DIR, TrainSpec


def training_args(spec: TrainSpec, **overrides: Any) -> Any:
    """TRL's SFTConfig for the spec: evaluation, checkpoint and log line every epoch, best epoch kept."""
    from trl import SFTConfig

    settings: dict[str, Any] = {
        "output_dir": str(Path(spec.work_dir) / "checkpoints"),
        "per_device_train_batch_size": spec.micro_batch, "per_device_eval_batch_size": spec.micro_batch,
        "gradient_accumulation_steps": spec.grad_accum, "num_train_epochs": spec.epochs,
        "learning_rate": spec.learning_rate, "warmup_steps": spec.warmup_steps, "lr_scheduler_type": "linear",
        "eval_strategy": "epoch", "save_strategy": "epoch", "logging_strategy": "epoch",
        "load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False,
        "save_total_limit": 2,  # the best and the last epoch; the best is never rotated out
        "gradient_checkpointing": spec.gradient_checkpointing,  # TRL's default is on; the memory plan decides
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "bf16": spec.dtype == "bfloat16" and spec.device == "cuda", "fp16": False, "use_cpu": spec.device == "cpu",
        "max_length": spec.max_seq_length, "eos_token": spec.eos_token, "completion_only_loss": True,
        "include_num_input_tokens_seen": "non_padding", "seed": spec.seed, "data_seed": spec.seed,
        "report_to": [] if spec.report_to == "none" else [spec.report_to], "run_name": Path(spec.work_dir).name,
        "dataloader_num_workers": 0, "save_only_model": False}
    if spec.padding_free is not None:  # None: left unset, so unsloth applies its own rule
        settings["padding_free"] = spec.padding_free
    if spec.padding_free is not False:
        # TRL does not truncate padding-free rows: the records were checked to fit max_seq_length.
        settings["max_length"] = None
    return SFTConfig(**{**settings, **overrides})


def count_real_tokens(trainer: Any) -> bool:
    """Make `num_input_tokens_seen` count real tokens whichever batching the trainer settled on; True when
    it is padding-free. A padding-free row has no pad token and no attention mask, and "non_padding" would
    then count input ids unequal to the pad id, missing every real '<|im_end|>' when pad and end are one token."""
    padding_free = bool(getattr(trainer, "padding_free", False))
    if padding_free and trainer.args.include_num_input_tokens_seen == "non_padding":
        trainer.args.include_num_input_tokens_seen = "all"
    return padding_free


def peak_memory_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def progress_callback(prior_seconds: float) -> Any:
    """Writes progress.json (training seconds so far) into each epoch checkpoint, so a resumed run
    counts the time spent before the kill."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        began = time.perf_counter()

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                seconds = prior_seconds + time.perf_counter() - self.began
                (folder / "progress.json").write_text(json.dumps({"train_seconds": round(seconds, 2)}))

    return Progress()


def train(spec: TrainSpec) -> dict[str, Any]:
    from harness.training.engines import import_unsloth_first

    import_unsloth_first(spec.engine)  # before transformers; a failure surfaces (or falls back) in loading
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    from harness.models import use_distinct_pad
    from harness.training.engines import load_for_training, trainer_class

    work = Path(spec.work_dir)
    # transformers' TensorBoard callback reads its folder from here only (default: under the checkpoints, which
    # are deleted at the end); with the adapter, a resumed training adds to the same logs.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(work / LOGS_DIR)
    if spec.device == "cpu":
        torch.set_num_threads(spec.threads or os.cpu_count() or 1)
    began = time.perf_counter()
    model, tokenizer, engine, why = load_for_training(spec)
    use_distinct_pad(tokenizer)  # a pad equal to the end token passes for padding; TRL copies it to the model
    trainable, total = model.get_nb_trainable_parameters()
    records = {name: [json.loads(line) for line in (work / f"{name}.jsonl").read_text().splitlines()]
               for name in ("train", "dev")}
    checkpoint = resume.resume_point(work / "checkpoints")
    state = resume.checkpoint_state(checkpoint) if checkpoint else None
    prior = json.loads((checkpoint / "progress.json").read_text())["train_seconds"] \
        if checkpoint and (checkpoint / "progress.json").is_file() else 0.0
    trainer = trainer_class(engine)(
        model=model, args=training_args(spec), processing_class=tokenizer,
        train_dataset=Dataset.from_list(records["train"]), eval_dataset=Dataset.from_list(records["dev"]),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=spec.early_stopping_patience),
                   progress_callback(prior)])

    padding_free = count_real_tokens(trainer)
    session: dict[str, Any] = {"engine": engine, "engine_why": why, "resumed_from_epoch": None,
                               "resumed_from_step": None, "micro_batch": spec.micro_batch,
                               "grad_accum": spec.grad_accum, "gradient_checkpointing": spec.gradient_checkpointing,
                               "padding_free": padding_free}
    if state:
        session.update(resumed_from_epoch=round(state["epoch"]), resumed_from_step=state["global_step"])
        print(f"[finetune] resuming from {checkpoint.name} (epoch {round(state['epoch'])} of {spec.epochs})",
              file=sys.stderr, flush=True)
    elif not (work / "eval_before.json").is_file():
        before = trainer.evaluate()["eval_loss"]  # the loss curve's epoch 0
        (work / "eval_before.json").write_text(json.dumps({"eval_loss": before}))
    tokens_before = (state or {}).get("num_input_tokens_seen", 0)
    step_before = (state or {}).get("global_step", 0)

    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    session.update(
        load_seconds=round(started - began, 2), train_seconds=round(seconds, 2),
        steps=trainer.state.global_step - step_before, tokens=trainer.state.num_input_tokens_seen - tokens_before,
        peak_memory_bytes=peak_memory_bytes(spec.device), train_seconds_total=round(prior + seconds, 2))

    # load_best_model_at_end has put the best epoch's weights back; save them as the adapter.
    tmp = work / "adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))  # the base model's tokenizer is the one to use with it
    shutil.rmtree(work / "adapter", ignore_errors=True)
    tmp.rename(work / "adapter")
    resume.append_session(work, session)
    before = json.loads((work / "eval_before.json").read_text())["eval_loss"] \
        if (work / "eval_before.json").is_file() else None
    fit = fit_record(spec, trainer, session, before, trainable, total)
    fit["sessions"] = resume.read_sessions(work)
    write_json(work / "fit.json", fit)  # last: the adapter is complete
    shutil.rmtree(work / "checkpoints", ignore_errors=True)  # only a resume needs them (optimizer states)
    return fit


def fit_record(spec: TrainSpec, trainer: Any, session: dict[str, Any], eval_before: float | None,
               trainable: int, total: int) -> dict[str, Any]:
    """What the report shows: engine, sizes, speed (this session's), memory, per-epoch losses."""
    from harness.training.curves import epoch_losses

    state = trainer.state
    best = state.best_model_checkpoint
    best_step = int(best.rsplit("-", 1)[1]) if best else None
    best_epoch = next((round(h["epoch"]) for h in state.log_history
                       if h.get("step") == best_step and "eval_loss" in h), None)
    seconds, steps = session["train_seconds"], max(session["steps"], 1)
    return {
        "engine": session["engine"], "engine_why": session["engine_why"], "precision": spec.precision,
        "precision_why": spec.precision_why,
        "device": spec.device, "trainable_params": trainable, "total_params": total,
        "trainable_percent": round(100 * trainable / total, 4),
        "train_seconds": session["train_seconds_total"], "steps": state.global_step,
        "seconds_per_step": round(seconds / steps, 3), "train_tokens": state.num_input_tokens_seen,
        "tokens_per_s": round(session["tokens"] / seconds, 1) if seconds else None,
        "epochs_run": round(state.epoch or 0), "epochs_max": spec.epochs,
        "stopped_early": round(state.epoch or 0) < spec.epochs,
        "best_epoch": best_epoch, "best_eval_loss": state.best_metric,
        "epochs": epoch_losses(state.log_history, eval_before),
        "memory_estimate_bytes": spec.memory_plan["estimate_bytes"],
        "memory_peak_bytes": session["peak_memory_bytes"],
        "memory_measured_as": "torch.cuda.max_memory_allocated" if spec.device == "cuda" else "peak RSS",
        "micro_batch": spec.micro_batch, "grad_accum": spec.grad_accum,
        "gradient_checkpointing": spec.gradient_checkpointing, "padding_free": session["padding_free"],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.training.worker <work_dir>/spec.json", file=sys.stderr)
        return 2
    spec = TrainSpec.load(Path(argv[0]))
    fit = train(spec)
    print(f"[finetune] done: {fit['epochs_run']} epochs, best {fit['best_epoch']}, {fit['train_seconds']} s",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
