"""The report's fine-tune section, from `finetune/metrics.json` alone (so old runs re-report)."""

from __future__ import annotations

from typing import Any


def markdown_section(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines for report.md: engine, training cost, memory estimate vs measured, losses, curve.

    Empty when fine-tuning did not run (the results table already says why).
    """
    if metrics.get("status") != "ok":
        return []
    d = metrics["fit"]["details"]
    if d.get("cache_hit"):
        provenance = f"adapter reused from the cache ({d['cache_key']}); the figures are from the run that trained it"
    elif d.get("resumed_from_epoch"):
        provenance = f"resumed from the epoch {d['resumed_from_epoch']} checkpoint of an interrupted run"
    else:
        provenance = "trained in this run"
    stop = ", stopped early" if d["stopped_early"] else ""
    merged = f"; merged model: `{d['merged_dir']}`" if d.get("merged_dir") else ""
    docs = f" + {d['doc_records']} document chunks" if d.get("doc_records") else ""
    lines = [
        "## Fine-tune", "",
        f"- Engine: {d['engine']}, {d['precision']} on {d['device']} ({d['engine_why']})",
        f"- Trainable parameters: {d['trainable_params']:,} of {d['total_params']:,} ({d['trainable_percent']:.2f}%)",
        (f"- Data: {d['train_examples']} training examples{docs}, {d['dev_examples']} validation examples, "
        f"longest sequence {d['longest_sequence_tokens']} tokens"),
        (f"- Training: {d['train_seconds']:.0f} s, {d['steps']} optimizer steps ({d['seconds_per_step']:.2f} s/step), "
        f"{d['tokens_per_s']:.0f} tokens/s; micro-batch {d['micro_batch']} x {d['grad_accum']} accumulation, "
        f"gradient checkpointing {'on' if d['gradient_checkpointing'] else 'off'}, "
        f"{'padding-free batches' if d.get('padding_free') else 'padded batches'}; {provenance}"),
        (f"- Memory: estimated {d['memory_estimate_gb']:.2f} GB, measured {d['memory_peak_gb']:.2f} GB "
        f"({d['memory_measured_as']}); plan: {d['memory_plan']['reason']}"),
        f"- Epochs: {d['epochs_run']} of {d['epochs_max']}{stop}; best epoch {d['best_epoch']} (its adapter is used)",
        f"- Adapter: `{d['adapter_dir']}`{merged}",
        "",
        "| epoch | train loss | validation loss |",
        "| --- | --- | --- |",
    ]
    for e in d["epochs"]:
        train = "" if e["train_loss"] is None else f"{e['train_loss']:.4f}"
        best = " (best)" if e["epoch"] == d["best_epoch"] else ""
        lines.append(f"| {e['epoch']}{best} | {train} | {e['eval_loss']:.4f} |")
    lines += ["", "![fine-tune loss per epoch](finetune/loss_curve.png)", ""]
    return lines
