"""The report's fine-tune section body, from `finetune/metrics.json` alone (so old runs re-report).

The report adds the heading and the loss-curve plot; this module says what the training was and cost.
"""

from __future__ import annotations

from typing import Any

from harness.report_format import duration


def _provenance(d: dict[str, Any]) -> str:
    if d.get("cache_hit"):
        return (f"adapter reused from the cache ({d.get('cache_key', '?')}); the figures are from the run that "
                "trained it")
    if d.get("resumed_from_epoch"):
        return f"resumed from the epoch {d['resumed_from_epoch']} checkpoint of an interrupted run"
    return "trained in this run"


def _memory(d: dict[str, Any]) -> str:
    estimate, peak = d.get("memory_estimate_gb"), d.get("memory_peak_gb")
    text = "- Memory: estimated " + (f"{estimate:.2f} GB" if estimate is not None else "?")
    text += ", measured " + (f"{peak:.2f} GB ({d.get('memory_measured_as', 'peak')})" if peak is not None
                             else "not measured")
    reason = (d.get("memory_plan") or {}).get("reason")
    return text + (f"; plan: {reason}" if reason else "")


def _loss_table(d: dict[str, Any]) -> list[str]:
    lines = ["| epoch | train loss (nats/token) | validation loss (nats/token) |", "| --- | --- | --- |"]
    for e in d.get("epochs") or []:
        train = "" if e.get("train_loss") is None else f"{e['train_loss']:.4f}"
        valid = "" if e.get("eval_loss") is None else f"{e['eval_loss']:.4f}"
        best = " (best)" if e["epoch"] == d.get("best_epoch") else ""
        lines.append(f"| {e['epoch']}{best} | {train} | {valid} |")
    return lines if len(lines) > 2 else []


def body_lines(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines: engine, training time, memory estimate vs measured, epochs, adapter, loss table.

    Empty when fine-tuning did not run (the decision matrix already says why).
    """
    if metrics.get("status") != "ok":
        return []
    d = metrics["fit"]["details"]
    stop = ", stopped early" if d.get("stopped_early") else ""
    merged = f"; merged model: `{d['merged_dir']}`" if d.get("merged_dir") else ""
    logs = f"; TensorBoard logs: `{d['logs_dir']}`" if d.get("logs_dir") else ""
    docs = f" + {d['doc_records']} document chunks" if d.get("doc_records") else ""
    lines = [
        f"- Engine: {d['engine']}, {d.get('precision', '?')} on {d.get('device', '?')} ({d.get('engine_why', '')})"
        + (f"; precision {d['precision_why']}" if d.get("precision_why") else ""),
        f"- Trainable parameters: {d['trainable_params']:,} of {d['total_params']:,} ({d['trainable_percent']:.2f}%)"
        if d.get("trainable_params") else "- Trainable parameters: not recorded",
        (f"- Data: {d.get('train_examples', '?')} training examples{docs}, {d.get('dev_examples', '?')} validation "
         f"examples, longest sequence {d.get('longest_sequence_tokens', '?')} tokens"),
        (f"- Training: {duration(d.get('train_seconds'))}, {d.get('steps', '?')} optimizer steps "
         f"({d.get('seconds_per_step', 0):.2f} s/step), {d.get('tokens_per_s', 0):.0f} tokens/s; micro-batch "
         f"{d.get('micro_batch', '?')} x {d.get('grad_accum', '?')} accumulation, gradient checkpointing "
         f"{'on' if d.get('gradient_checkpointing') else 'off'}, "
         f"{'padding-free batches' if d.get('padding_free') else 'padded batches'}; {_provenance(d)}"),
        _memory(d),
        (f"- Epochs: {d.get('epochs_run', '?')} of {d.get('epochs_max', '?')}{stop}; best epoch "
         f"{d.get('best_epoch', '?')} (its adapter is used)"),
        f"- Adapter: `{d.get('adapter_dir', '?')}`{merged}{logs}",
    ]
    if d.get("train_with_context"):
        trimmed = d.get("context_trimmed_examples")
        lines.insert(3, (
            f"- Context (RAFT-style): {d.get('context_k', '?')} retrieved passages per example; "
            f"{d.get('distractor_examples', '?')} of {d.get('train_examples', '?')} training examples with "
            f"distractors only (share {d.get('distractor_share', 0):.0%})"
            + (f"; {trimmed} examples given fewer passages to fit max_seq_length" if trimmed else "")))
    table = _loss_table(d)
    return lines + ([""] + table if table else [])
