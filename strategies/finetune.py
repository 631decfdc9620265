"""The fine-tune strategy: train a LoRA adapter on the train split, answer with base model + adapter.

`fit` formats the examples in the model's chat format (the `prompt` strategy's zero-shot prompt, loss on
the answer tokens), picks the engine and precision, plans memory, then trains in a child process
(`harness.training`) or reuses the adapter cached under the content hash of model, data and settings.
The adapter, its loss curves and (on request) the merged model are written to this strategy's folder.
`answer` attaches the adapter to the run's shared base model and generates exactly as `prompt` does.
The fit record names the adapter (folder and content id) as the weights it answers with, so the runner
scores them on MMLU/HumanEval and tests them for forgetting. When another strategy of the run already
holds the same adapter (same content id), the record points at that folder instead of a second copy.

With a `TrainingContext` (set by `rag_finetune` under `finetune.train_with_context`), each example's
prompt carries its retrieved passages (harness/training/raft.py): a second adapter, keyed by those settings.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.backends import Backend
from harness.data import Example, Query
from harness.devices import resolve_device, resolve_dtype
from harness.errors import NotRun
from harness.gencache import adapter_cache_id
from harness.models import cache_root, resolve_model
from harness.prompting import build_messages
from harness.records import Build, FitRecord, Prediction, Weights
from harness.training import ADAPTER_CACHE_DIR, formatting, planner, raft
from harness.training.engines import choose_engine, choose_padding_free, choose_precision
from harness.training.launch import TrainingFailed, train_or_reuse
from harness.training.spec import LOGS_DIR, TrainSpec, cache_key
from strategies import StrategyContext
from strategies.prompt import to_predictions

GB = 1e9
DOC_CHUNK_TOKENS = 512


class FinetuneStrategy:
    name = "finetune"
    complexity = 2

    def __init__(self, merge: bool = True) -> None:
        """`merge=False` ignores `finetune.merge` (a strategy reusing this adapter needs no merged copy)."""
        self.merge = merge
        self.adapter_dir: Path | None = None
        self.key = ""
        self.context: raft.TrainingContext | None = None
        """Train on prompts with retrieved passages (RAFT-style); set by `rag_finetune`."""

    def fit(self, train: list[Example], dev: list[Example], ctx: StrategyContext) -> FitRecord:
        began = time.perf_counter()
        cfg, ft = ctx.config, ctx.config.finetune
        # A server backend that cannot load the adapter would never answer with it: say so before training.
        if reason := getattr(ctx.backend(), "adapter_support", lambda: None)():
            raise NotRun(reason)
        model_path = resolve_model(cfg.model.name)
        device = resolve_device(cfg.model.device)
        spec, train_records, dev_records, counts = self._prepare(train, dev, ctx, model_path, device)
        key = self.key = cache_key(spec, train_records, dev_records, self.context.key() if self.context else None)
        spec = dataclasses.replace(spec, work_dir=str(cache_root() / ADAPTER_CACHE_DIR / key))
        try:
            fit = train_or_reuse(spec, train_records, dev_records)
        except TrainingFailed as exc:
            raise NotRun(str(exc)) from None

        out = ctx.out_dir
        self.adapter_dir = adapter_in_run(out.parent, key) or out / "adapter"
        if self.adapter_dir == out / "adapter":
            shutil.copytree(Path(spec.work_dir) / "adapter", self.adapter_dir, dirs_exist_ok=True)
        from harness.training.curves import write_curves

        write_curves(fit["epochs"], fit["best_epoch"], out, title=out.name)
        logs = Path(spec.work_dir) / LOGS_DIR
        if logs.is_dir():  # the logs of the training that made the adapter: on a cache hit, nothing new
            shutil.copytree(logs, out / LOGS_DIR, dirs_exist_ok=True)
        details: dict[str, Any] = {
            **{k: v for k, v in fit.items() if k not in ("memory_plan", "sessions")},
            "precision_why": spec.precision_why,  # from the spec: adapters cached before fit.json had it
            "memory_estimate_gb": round(fit["memory_estimate_bytes"] / GB, 2),
            "memory_peak_gb": round(fit["memory_peak_bytes"] / GB, 2),
            "memory_plan": spec.memory_plan, "sessions": fit["sessions"],
            "resumed_from_epoch": None if fit["cache_hit"] else fit["sessions"][-1]["resumed_from_epoch"],
            # Relative to the run directory: the run is written in a staging folder, then renamed.
            "adapter_dir": self.adapter_dir.relative_to(out.parent).as_posix(),
            "loss_curve_files": ["loss_curve.json", "loss_curve.png"],
            # Columnar, for the report's plot: epoch 0 is the validation loss before training.
            "loss_curve": {key: [e[key] for e in fit["epochs"]] for key in ("epoch", "train_loss", "eval_loss")},
            "cache_key": key, "cache_dir": spec.work_dir, **counts, "report_to": ft.report_to,
            "logs_dir": (out / LOGS_DIR).relative_to(out.parent).as_posix() if logs.is_dir() else None,
        }
        if ft.merge and self.merge:
            # A load of its own (on the CPU): merging rewrites the weights, so not the run's shared model.
            from harness.training.adapters import merge_adapter

            merged = out / "merged"
            if not merged.exists():
                # The dtype the `prompt` strategy's backend uses, so both answer with the same base weights.
                merge_adapter(model_path, self.adapter_dir, merged, resolve_dtype(cfg.model.dtype, device))
            details["merged_dir"] = merged.relative_to(out.parent).as_posix()
        weights = Weights("adapter", details["adapter_dir"], key)
        # What the training cost when it ran, also on a cache hit: what this adapter costs to make.
        training = Build("adapter", float(fit["train_seconds"]), device, key, reused=bool(fit["cache_hit"]))
        return FitRecord(time.perf_counter() - began, device, details, weights, (training,),
                         complexity=self.complexity)

    def _prepare(self, train: list[Example], dev: list[Example], ctx: StrategyContext, model_path: str,
                 device: str) -> tuple[TrainSpec, list[dict[str, str]], list[dict[str, str]], dict[str, int]]:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        cfg, ft = ctx.config, ctx.config.finetune
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        config = AutoConfig.from_pretrained(model_path)
        try:
            eos = GenerationConfig.from_pretrained(model_path).eos_token_id
        except OSError:
            eos = config.eos_token_id
        stops = formatting.stop_tokens(tokenizer, eos if isinstance(eos, list) else [eos] if eos is not None else [])

        context = int(getattr(config.get_text_config(), "max_position_embeddings", ft.max_seq_length))
        max_len = min(ft.max_seq_length, context)
        chosen = formatting.select_examples(train, ft.max_train_examples, ft.seed)
        chosen, dev = formatting.split_dev(chosen, dev, ft.seed)
        counts: dict[str, Any] = {}
        if self.context is None:
            train_records = formatting.build_records(chosen, cfg.prompt, tokenizer, stops)
            dev_records = formatting.build_records(dev, cfg.prompt, tokenizer, stops)
        else:
            # The budget the transformers backend gives a prompt at answer time.
            budget = int(getattr(config, "max_position_embeddings", 2048)) - cfg.generation.max_new_tokens
            with_train, with_dev = (raft.context_records(examples, self.context, cfg.prompt, tokenizer, stops, ft.seed,
                                                         budget, max_len, split)
                                    for examples, split in ((chosen, "train"), (dev, "dev")))
            train_records, dev_records = with_train.records, with_dev.records
            counts = {"train_with_context": True, "context_k": self.context.k,
                      "distractor_share": self.context.distractor_share, "context_index": self.context.index_id,
                      "distractor_examples": len(with_train.distractor_ids),
                      "distractor_dev_examples": len(with_dev.distractor_ids),
                      "context_trimmed_examples": with_train.trimmed + with_dev.trimmed}
        eos_token = formatting.end_token(train_records, stops)
        docs: list[dict[str, str]] = []
        if ft.train_on_docs:
            docs_dir = ctx.task_dir / cfg.docs
            docs = formatting.doc_records(docs_dir, tokenizer, DOC_CHUNK_TOKENS) if docs_dir.is_dir() else []
            if not docs:
                raise NotRun(f"finetune.train_on_docs is set but {docs_dir} has no .md, .txt or .rst documents")
        train_records += docs

        longest = max(len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) + 1
                      for r in train_records + dev_records)
        engine, why = choose_engine(ft.engine, device, config.model_type)
        quantize, dtype, precision_why = choose_precision(ft.precision, ft.load_in_4bit, cfg.model.dtype, device,
                                                          engine)
        # TRL's fused LM head (CUDA) and unsloth's chunked loss never hold the full logits.
        fused_head = device == "cuda" or engine == "unsloth"
        memory = self._plan(model_path, ft, device, quantize, dtype, min(longest, max_len), fused_head)
        spec = TrainSpec(
            model_path=model_path, device=device, engine=engine, engine_why=why, load_in_4bit=quantize, dtype=dtype,
            lora_r=ft.lora_r, lora_alpha=ft.lora_alpha, lora_dropout=ft.lora_dropout, learning_rate=ft.learning_rate,
            epochs=ft.epochs, batch_size=ft.batch_size, warmup_steps=ft.warmup_steps, max_seq_length=max_len,
            early_stopping_patience=ft.early_stopping_patience, seed=ft.seed, eos_token=eos_token,
            micro_batch=memory.micro_batch, grad_accum=memory.grad_accum,
            gradient_checkpointing=memory.checkpointing, work_dir="", memory_plan=memory.to_dict(),
            threads=cfg.model.threads, allow_fallback=ft.engine == "auto",
            padding_free=choose_padding_free(ft.padding_free, engine, longest <= max_len), report_to=ft.report_to,
            precision_why=precision_why)
        counts = {"train_examples": len(chosen), "dev_examples": len(dev), "doc_records": len(docs),
                  "longest_sequence_tokens": longest, **counts}
        return spec, train_records, dev_records, counts

    @staticmethod
    def _plan(model_path: str, ft: Any, device: str, quantize: bool, dtype: str, seq_len: int,
              fused_head: bool) -> planner.MemoryPlan:
        if ft.memory_budget_gb is not None:
            budget = int(ft.memory_budget_gb * GB)
        elif device == "cuda":
            budget = int(8 * GB)
        else:
            import psutil

            budget = int(psutil.virtual_memory().available)
        shape = planner.model_shape(model_path, ft.lora_r)
        try:
            return planner.plan(shape, batch_size=ft.batch_size, seq_len=seq_len,
                                checkpointing=ft.gradient_checkpointing, budget_bytes=budget,
                                weight_bytes=0.516 if quantize else (2 if dtype != "float32" else 4),
                                act_bytes=4 if dtype == "float32" else 2, device=device, fused_head=fused_head)
        except planner.MemoryPlanError as exc:
            raise NotRun(str(exc)) from None

    @contextmanager
    def attached(self, ctx: StrategyContext) -> Iterator[Backend]:
        """The run's shared base model with the adapter attached for the block (no second copy)."""
        assert self.adapter_dir is not None, "fit must run before answer"
        base = ctx.backend()
        with base.adapter(str(self.adapter_dir), adapter_cache_id(base.model_path, self.key)) as tuned:
            yield tuned

    def answer(self, queries: list[Query], ctx: StrategyContext) -> list[Prediction]:
        """Zero-shot prompts, as in training, answered by base + adapter."""
        cfg = ctx.config
        conversations = [build_messages(q, cfg.prompt, []) for q in queries]
        with self.attached(ctx) as tuned:
            generations = tuned.generate(conversations, cfg.generation.max_new_tokens, cfg.generation.stop,
                                         cfg.generation.batch_size, progress=f"{self.name}: answering")
        return to_predictions(queries, generations)


def adapter_in_run(run_dir: Path, key: str) -> Path | None:
    """The folder of an adapter with content id `key` that a strategy of this run already holds, if any:
    the fit records of the strategies that finished (their metrics.json) say which adapter they answer with."""
    for metrics in sorted(run_dir.glob("*/metrics.json")):
        try:
            weights = FitRecord.from_dict(json.loads(metrics.read_text(encoding="utf-8")).get("fit")).weights
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # not a finished strategy's record
        folder = weights.adapter_dir
        if weights.content_id == key and folder and (run_dir / folder / "adapter_config.json").is_file():
            return run_dir / folder
    return None
