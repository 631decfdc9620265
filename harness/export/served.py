"""The parity re-score: an exported model answers the run's held-out items as the arm did, and is compared with it.

The arm's own code makes the prompts: the strategy is created from the registry and fitted again from the
caches its run filled (the adapter's training cache, RAG's index), so a served answer sees exactly the prompt
(shots, retrieved passages, template) the in-harness answer saw. Only the weights differ: the strategy answers
through `MergedWeights`, a backend whose weights already hold the adapter, so attaching that adapter is a no-op,
and attaching any other is an error. Nothing is read from the generation cache: latency is measured.

`compare_with_arm` turns the two sets of answers into a served row: score with its CI, the share of items whose
answer text is identical, the paired change (McNemar for exact-match scorers, sign-flip otherwise) with its
bootstrap CI, latency, and `significant_drop` when the served model scores significantly lower.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, NotRun
from harness.stats import ALPHA

UNITS = {"size_bytes": "bytes", "latency_p50": "s", "latency_p95": "s", "score": "fraction 0-1",
         "ci_low": "fraction 0-1", "ci_high": "fraction 0-1", "delta": "score difference (served - arm)",
         "agreement": "fraction of items whose answer text is identical to the arm's"}


class MergedWeights:
    """A backend whose weights already hold the adapter with content id `content_id` (merged and exported)."""

    def __init__(self, inner: Any, content_id: str) -> None:
        self.inner, self.content_id = inner, content_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def adapter(self, adapter_dir: str, cache_id: str) -> Iterator[Any]:
        if not cache_id.endswith(f"+adapter:{self.content_id}"):
            raise HarnessError(f"the exported model holds adapter {self.content_id}; the strategy asked for "
                               f"{adapter_dir} ({cache_id})")
        yield self.inner


def run_task(run_dir: Path):
    """The run's task as the run saw it: its folder (run.json) with the run's resolved config (config.json)
    applied key by key; the test items checked against the run's split and references."""
    from harness.task import load_task

    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    folder = run.get("task_dir")
    if not folder or not Path(folder).is_dir():
        raise HarnessError(f"{run_dir}/run.json: the run's task folder {folder!r} is gone; the re-score needs its "
                           "data (or pass --no-rescore)")
    try:
        task = load_task(folder, allow_contamination=True, overrides=_flatten(config))
    except HarnessError as exc:
        raise HarnessError(f"{run_dir}/config.json no longer loads on {folder}: {exc}") from None
    test = task.data.test
    split = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))
    wanted = split.get("test_ids") or []
    test = test[:len(wanted)]
    if [e.id for e in test] != wanted:
        raise HarnessError(f"{folder}: the task's test split is not the run's ({run_dir}/split.json): the data "
                           "changed since the run, so its items cannot be re-scored")
    return task, test


def _flatten(config: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def llamacpp(gguf: Path, task) -> Any:
    """The exported GGUF on the llamacpp backend, with the task's model settings and no generation cache."""
    from harness.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(str(gguf), settings=task.config.model, use_cache=False)


def answer_with(served: Any, strategy_name: str, content_id: str, task, test: list, scratch: Path,
                progress: str) -> list[Any]:
    """The strategy fitted from its caches, answering the test items through `served` (merged weights)."""
    from strategies import StrategyContext, create

    cfg = task.config
    # The merged copy is the export's; the fit must not make another.
    cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, merge=False))
    backend = MergedWeights(served, content_id)
    scratch.mkdir(parents=True)
    try:
        ctx = StrategyContext(cfg, task.folder, scratch / strategy_name, lambda: backend, use_cache=True)
        ctx.out_dir.mkdir()
        strategy = create(strategy_name)
        print(f"[export] {progress}: preparing {strategy_name}'s prompts (its fit, from the caches)",
              file=sys.stderr, flush=True)
        try:
            strategy.fit(task.data.train, task.data.dev, ctx)
        except NotRun as reason:
            raise HarnessError(f"{strategy_name} did not fit again for the re-score: {reason}") from None
        predictions = strategy.answer([ex.query() for ex in test], ctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return predictions


def compare_with_arm(predictions: list[Any], test: list, arm_items: list[dict[str, Any]], config: Any,
                     task_dir: Path, backend: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(row figures, per-item records) of served answers against the arm's recorded ones, paired by id, scored
    by the task's scorer (`backend`: a callable giving a model, for scorers that need one, e.g. a judge)."""
    from harness.metrics import BINARY, summarize
    from harness.scoring import score_items
    from harness.stats import mcnemar_p, paired_bootstrap_ci, sign_flip_p

    scores = score_items(config, task_dir, [p.text for p in predictions], test, backend).scores
    arm = {r["id"]: r for r in arm_items}
    missing = [ex.id for ex in test if ex.id not in arm]
    if missing:
        raise HarnessError(f"the arm's predictions.jsonl lacks {len(missing)} test item(s), e.g. {missing[0]}")
    served_scores = np.array(scores)
    arm_scores = np.array([float(arm[ex.id]["score"]) for ex in test])
    same = sum(p.text == arm[ex.id]["prediction"] for p, ex in zip(predictions, test))
    scorer_name, seed = config.scorer, config.data.split_seed
    binary = scorer_name in BINARY
    summary = summarize(scores, predictions, scorer_name, seed=seed)
    low, high = paired_bootstrap_ci(served_scores, arm_scores, seed)
    p_value = mcnemar_p(served_scores, arm_scores) if binary else sign_flip_p(served_scores, arm_scores, seed)
    delta = float(served_scores.mean() - arm_scores.mean())
    row = {"status": "ok", "score": summary["score"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
           "n": len(test), "agreeing_items": int(same), "agreement": same / len(test) if test else 0.0,
           "delta": delta, "delta_ci_low": low, "delta_ci_high": high, "p_value": p_value,
           "test": "McNemar" if binary else "sign-flip permutation",
           "significant_drop": bool(delta < 0 and p_value < ALPHA),
           "latency_p50": summary["latency_p50"], "latency_p95": summary["latency_p95"]}
    items = [{"id": ex.id, "prediction": p.text, "reference": ex.output, "score": s,
              "arm_prediction": arm[ex.id]["prediction"], "arm_score": arm[ex.id]["score"],
              "same_text": p.text == arm[ex.id]["prediction"], "latency_s": round(p.latency_s, 4),
              "prompt_tokens": p.prompt_tokens, "completion_tokens": p.completion_tokens}
             for p, ex, s in zip(predictions, test, scores)]
    return row, items


def drop_warning(strategy: str, variant: str, row: dict[str, Any]) -> str | None:
    """A sentence when the served model scores significantly below the arm it was exported from."""
    if not row.get("significant_drop"):
        return None
    return (f"{variant} scores {-row['delta']:.3f} lower than {strategy} in the harness (p = {row['p_value']:.3g}, "
            f"{row['test']}; {row['agreeing_items']}/{row['n']} answers identical): the exported model does not "
            "behave as the one the report measured (quantization or chat-template damage)")
