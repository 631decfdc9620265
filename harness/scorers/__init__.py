"""Batch scorers: classes configured by the task that score all of a strategy's answers at once.

Each is named in harness/registry.py's SCORERS with `batch=True` and built as `Class(config, task_dir,
backend)`; `score_all(predictions, examples)` returns a `harness.scoring.Scored` (per-item scores and
details, and figures for the whole set). See harness/scoring.py for the contract.
"""
