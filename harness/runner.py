"""`compare`: run every strategy of a task on the same frozen split, score it, write the run directory.

Layout of `results/<task>/<run-id>/` (a run never overwrites another; `manifest.json` is written
last, so its presence means the run completed):

    config.json        the resolved task configuration
    run.json           what was asked: strategies, test limit, start time
    environment.json   versions, device, threads, machine
    split.json         ids of train/dev/test, data formats, contamination and warnings
    <strategy>/predictions.jsonl   one line per test item: answer, reference, score, tokens, latency
    <strategy>/metrics.json        summary, written after its predictions; `fit` is its FitRecord
    benchmarks.json    MMLU/HumanEval per distinct weights, the strategies using each, forgetting vs base
    timings.json       wall time of each phase (model load; per strategy fit, answer, score, ...; benchmarks)
    report.md
    manifest.json
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from harness import environment, registry
from harness.backends import Backend, choose_backend, load_backend
from harness.config import generation_batch_size
from harness.data import Example
from harness.errors import HarnessError, NotRun
from harness.latency import single_request_latency, throughput
from harness.metrics import summarize
from harness.models import resolve_model
from harness.records import FitRecord, Weights
from harness.run_schema import StrategyMetrics
from harness.rundir import check_results_root, staged_run, write_json, write_manifest
from harness.scoring import score_items
from harness.task import Task
from harness.timings import FILE as TIMINGS
from harness.timings import Stopwatch, terminal_line

RESULTS_DIR = Path("results")


def compare(task: Task, results_root: Path = RESULTS_DIR, strategies: list[str] | None = None,
            limit: int | None = None, log=print, use_cache: bool = True, run_benchmarks: bool = True) -> Path:
    """Run the task's strategies; return the run directory.

    Everything that can be checked before the run is (results folder, model, strategies' own
    preconditions): bad input stops here, before a run directory exists. The run is then written
    in a staging folder and renamed into place complete (harness/rundir.py).
    """
    from harness.report import write_report
    from strategies import create

    cfg = task.config
    check_results_root(results_root)
    test = task.data.test
    limit = limit or cfg.data.limit_test
    if limit:
        test = test[:limit]
    names = strategies or cfg.strategies
    for warning in task.data.warnings:
        log(f"warning: {warning}")

    clock = Stopwatch()
    backend = _model_loader(cfg, log, use_cache, task.where("model.name"))
    with clock.phase("model load"):
        backend()  # the model resolves and its tokenizer loads now, or the run does not start
    batch = generation_batch_size(cfg.generation.batch_size, getattr(backend(), "device", "cpu"))
    task.config = cfg = dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, batch_size=batch))
    created = {name: create(name) for name in names}  # config and --strategies check the names
    for strategy in created.values():
        if hasattr(strategy, "preflight"):
            strategy.preflight(task)

    with staged_run(results_root, cfg.name) as (run_dir, final_dir):
        log(f"run directory: {final_dir} (written in {run_dir.parent} until complete)")
        write_json(run_dir / "config.json", dataclasses.asdict(cfg))
        started = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(run_dir / "run.json", {"task": cfg.name, "task_dir": str(task.folder), "strategies": names,
                                          "limit_test": limit, "generation_cache": use_cache, "started": started,
                                          "overrides": task.overrides})
        write_json(run_dir / "split.json", _split_record(task, test))
        summaries: dict[str, dict[str, Any]] = {}
        for name in names:
            out_dir = run_dir / name
            out_dir.mkdir()
            summaries[name] = run_strategy(name, created[name], task, test, out_dir, backend, log, use_cache,
                                           clock)

        if run_benchmarks:
            write_json(run_dir / "benchmarks.json", general_benchmarks(cfg, summaries, log, backend, run_dir, clock))
        write_json(run_dir / "environment.json", environment.capture(backend()))
        timings = clock.record()
        write_json(run_dir / TIMINGS, timings)
        write_report(run_dir, final_dir)
        log(f"[time] {terminal_line(timings)}")
        write_manifest(run_dir, {"task": cfg.name, "strategies": names, "test_items": len(test),
                                 "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    return final_dir


def _model_loader(cfg, log, use_cache: bool, field: str = "model.name") -> Callable[[], Backend]:
    """The run's shared backend, loaded once; any failure to load is the user's model, in one line.

    A backend of local weights gets resolve_model's folder (`auto` picks llamacpp or transformers for it);
    a server backend gets `model.name` as written."""
    @cache
    def backend() -> Backend:
        chosen = choose_backend(cfg.model.backend, cfg.model.device, cfg.model.name)
        local = getattr(registry.backend_class(chosen), "local_weights", True)
        path = resolve_model(cfg.model.name, field) if local else cfg.model.name
        try:
            loaded = load_backend(cfg.model.backend, path, settings=cfg.model, use_cache=use_cache)
            loaded.render([{"role": "user", "content": "ping"}])
            log(f"[model] {cfg.model.name} ({path}) on {loaded.name}: "
                + ", ".join(f"{k} {v}" for k, v in loaded.serving.items() if k != "backend"))
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a model that does not load is bad input, said in one line
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
            raise HarnessError(f"{field}: {cfg.model.name} ({path}) does not load as a chat model: "
                               f"{reason[:300]}") from None
        return loaded

    return backend


def run_strategy(name: str, strategy, task: Task, test: list[Example], out_dir: Path, backend, log,
                 use_cache: bool = True, clock: Stopwatch | None = None) -> dict:
    from strategies import StrategyContext

    cfg = task.config
    clock = clock or Stopwatch()
    ctx = StrategyContext(cfg, task.folder, out_dir, backend, use_cache)
    log(f"[{name}] fit on {len(task.data.train)} train / {len(task.data.dev)} dev examples")
    try:
        with clock.phase("fit", name):
            fit = strategy.fit(task.data.train, task.data.dev, ctx)
    except NotRun as reason:
        not_run = StrategyMetrics(name, f"not run: {reason}").to_json()
        write_json(out_dir / "metrics.json", not_run)
        log(f"[{name}] not run: {reason}")
        return not_run
    with clock.phase("answer", name):
        predictions = strategy.answer([ex.query() for ex in test], ctx)
    answer_seconds = clock.phases[-1].seconds
    assert [p.id for p in predictions] == [ex.id for ex in test], f"{name} must answer every query in order"

    with clock.phase("score", name):
        scored = score_items(cfg, task.folder, [p.text for p in predictions], test, backend)
    scores = scored.scores
    details = scored.details or [{} for _ in predictions]
    seeds = None
    if fit.weights.trained and cfg.finetune.seeds > 1:
        with clock.phase("extra seeds", name):
            seeds = other_seeds(name, fit, task, test, out_dir, backend, log, use_cache)
    _write_predictions(out_dir / "predictions.jsonl", predictions, test, scores, details,
                       [[s, *other] for s, other in zip(scores, seeds.item_scores)] if seeds else None)
    summary = {"strategy": name, "status": "ok", "scorer": cfg.scorer,
               **summarize(scores, predictions, cfg.scorer, seed=cfg.data.split_seed),
               "answer_time": round(answer_seconds, 2), "fit": dataclasses.asdict(fit),
               "serving": {**ctx.backend().serving, "weights": fit.weights.key,  # the engine; fit says the weights
                           "batch_size": cfg.generation.batch_size},  # generation.batch_size as resolved for the device
               "scoring": scored.summary or None}
    if seeds:
        summary.update(seeds.summary(cfg.finetune.seed, scores, fit, cfg.data.split_seed))
    # Latency as one user sees it (a sample answered one request at a time), throughput from this pass.
    summary.update(throughput(summary, cfg.generation.batch_size))
    with clock.phase("latency sample", name):
        summary.update(single_request_latency(strategy, [ex.query() for ex in test], ctx,
                                              cfg.generation.latency_sample, out_dir))
    if hasattr(strategy, "label_metrics"):
        # Computed by the runner after answering, with the test labels the strategy never saw.
        summary.update(strategy.label_metrics(predictions, test))
    # Parsed into the typed record (label_metrics' older key names are mapped there), written with its units.
    metrics = StrategyMetrics.from_dict(summary, str(out_dir / "metrics.json"))
    write_json(out_dir / "metrics.json", metrics.to_json())
    cached = f", {metrics.cached_answers} answers from the generation cache" if metrics.cached_answers else ""
    rate = metrics.throughput
    log(f"[{name}] {cfg.scorer} = {metrics.score:.3f} on {len(test)} items{cached}; latency p50 "
        f"{metrics.latency_p50:.2f} s ({metrics.latency_kind}), throughput "
        + (f"{rate:.2f} answers/s" + (f" at batch {cfg.generation.batch_size}" if metrics.serving.get("backend")
                                       in ("transformers", "unsloth") else "") if rate else "not measured"))
    return metrics.to_json()


def _write_predictions(path: Path, predictions, test: list[Example], scores: list[float], details: list[dict],
                       seed_scores: list[list[float]] | None = None) -> None:
    """One line per test item; `seed_scores` (the first seed's score first) when several seeds answered."""
    with path.open("w", encoding="utf-8") as f:
        for i, (p, ex, s, d) in enumerate(zip(predictions, test, scores, details)):
            record = {"id": p.id, "prediction": p.text, "reference": ex.output, "score": s,
                      **({"seed_scores": seed_scores[i]} if seed_scores else {}),
                      "prompt_tokens": p.prompt_tokens, "completion_tokens": p.completion_tokens,
                      "latency_s": round(p.latency_s, 4), "compute_s": round(p.compute_s, 4), **p.extra, **d}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


@dataclasses.dataclass
class OtherSeeds:
    """The arm fitted again with `finetune.seed + 1 ...` and answering the same test items."""

    seeds: list[int]
    scores: list[list[float]]
    """Per seed, per test item."""
    fits: list[FitRecord]

    @property
    def item_scores(self) -> list[list[float]]:
        """Per test item, its score under each of these seeds."""
        return [list(column) for column in zip(*self.scores)]

    def summary(self, first: int, first_scores: list[float], fit: FitRecord, seed: int) -> dict[str, Any]:
        """metrics.json's `seeds` record, and the arm's score and interval over all seeds (two-level bootstrap)."""
        import numpy as np

        from harness.stats import TWO_LEVEL, two_level_bootstrap

        matrix = np.array([first_scores, *self.scores], dtype=float).T  # items x seeds
        per_seed = matrix.mean(axis=0)
        low, high, _ = two_level_bootstrap(matrix, seed=seed)
        fits = [fit, *self.fits]
        return {"score": float(per_seed.mean()), "ci_low": low, "ci_high": high, "ci_method": TWO_LEVEL,
                "ci_degenerate": bool(high - low <= 0),
                "seeds": {"seeds": [first, *self.seeds], "scores": [float(x) for x in per_seed],
                          "mean": float(per_seed.mean()), "sd": float(per_seed.std(ddof=1)),
                          "min": float(per_seed.min()), "max": float(per_seed.max()),
                          "first_seed_score": float(per_seed[0]),
                          "best_epochs": [f.details.get("best_epoch") for f in fits],
                          "train_seconds": [sum(b.seconds for b in f.one_time if b.what == "adapter") for f in fits],
                          "reused": [all(b.reused for b in f.one_time if b.what == "adapter") for f in fits],
                          "adapters": [f.weights.adapter_dir for f in fits],
                          "ci_method": TWO_LEVEL}}


def other_seeds(name: str, fit: FitRecord, task: Task, test: list[Example], out_dir: Path, backend, log,
                use_cache: bool) -> OtherSeeds | None:
    """With `finetune.seeds` N > 1, the strategy (trained weights) fitted and answering N - 1 more times, with
    `finetune.seed` + 1 ... + N - 1, each in a folder of the run, `<strategy>.seed-<s>/` (predictions.jsonl, and
    a metrics.json holding its fit record only, where a later strategy of the run finds an adapter it can share):
    a fresh instance from the registry and the run's config with only the seed changed (no merged copy), so any
    strategy that trains gets its seeds. The report reads them through the arm's `seeds` record."""
    from strategies import StrategyContext, create

    cfg = task.config
    n = cfg.finetune.seeds
    if n < 2:
        return None
    seeds, scores, fits = [], [], []
    for i, seed in enumerate(range(cfg.finetune.seed + 1, cfg.finetune.seed + n), start=2):
        log(f"[{name}] seed {i} of {n} (finetune.seed = {seed}): fit and answer the {len(test)} test items")
        config = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, seed=seed, merge=False))
        folder = out_dir.parent / f"{name}.seed-{seed}"
        folder.mkdir()
        ctx = StrategyContext(config, task.folder, folder, backend, use_cache)
        strategy = create(name)
        try:
            other_fit = strategy.fit(task.data.train, task.data.dev, ctx)
        except NotRun as reason:
            raise HarnessError(f"{name}: seed {seed} of finetune.seeds did not train ({reason}); the first seed "
                               "did, so the seeds are not comparable") from None
        predictions = strategy.answer([ex.query() for ex in test], ctx)
        scored = score_items(config, task.folder, [p.text for p in predictions], test, backend)
        _write_predictions(folder / "predictions.jsonl", predictions, test, scored.scores,
                           scored.details or [{} for _ in predictions])
        score = sum(scored.scores) / len(test)
        write_json(folder / "metrics.json", {"strategy": folder.name, "seed_of": name, "seed": seed, "n": len(test),
                                             "score": score, "fit": dataclasses.asdict(other_fit)})
        log(f"[{name}] seed {seed}: {cfg.scorer} = {score:.3f} on {len(test)} items")
        seeds.append(seed)
        scores.append(scored.scores)
        fits.append(other_fit)
    return OtherSeeds(seeds, scores, fits)


def general_benchmarks(cfg, summaries: dict[str, dict], log, backend: Callable[[], Backend] | None = None,
                       run_dir: Path | None = None, clock: Stopwatch | None = None) -> dict[str, Any]:
    """MMLU/HumanEval once per distinct set of weights the strategies answer with (their fit records say
    which: base, or base + an adapter named by content id), each pass cached by lm-eval inputs; the
    result and the forgetting test (vs base) are attributed to every strategy using those weights.

    Returns {weights: {key: results}, by_strategy: {strategy: key}, forgetting: {key: per benchmark},
    warnings}. With `backend` (the run's shared backend), lm-eval scores through it (its `lm_eval_model`:
    transformers' weights already in memory, llama.cpp's GGUF, a server), each adapter attached for its pass.
    `clock` times each pass as a "benchmarks" phase, named by the first strategy using those weights."""
    from harness.benchmarks import forgetting

    clock = clock or Stopwatch()

    ok = {n: s for n, s in summaries.items() if s.get("status") == "ok"}
    result: dict[str, Any] = {"weights": {}, "by_strategy": {}, "forgetting": {}, "warnings": []}
    if not ok or not (cfg.benchmarks.mmlu or cfg.benchmarks.humaneval):
        return result
    used = {n: FitRecord.from_dict(s.get("fit")).weights for n, s in ok.items()}
    shared = backend() if backend is not None else None
    base_path = shared.model_path if shared is not None else resolve_model(cfg.model.name)
    options: dict[str, Any] = {"threads": cfg.model.threads}
    if cfg.model.dtype != "auto" and shared is None:
        options["model_args"] = {"dtype": cfg.model.dtype}
    scored = result["weights"]
    with clock.phase("benchmarks (base weights)"):
        scored["base"] = _score_weights(cfg, base_path, Weights(), None, shared, log, options)
    for name, weights in used.items():
        if weights.trained and not weights.adapter_dir:
            result["warnings"].append(f"{name} answers with trained weights but recorded no adapter_dir: "
                                      "its benchmarks were not run")
            continue
        result["by_strategy"][name] = weights.key
        if weights.key in scored and weights.trained:
            log(f"[benchmarks] {name}: answers with {weights.key}, already scored in this run")
        elif weights.key not in scored:
            with clock.phase("benchmarks", name):
                scored[weights.key] = _score_weights(cfg, base_path, weights, run_dir, shared, log, options)
            result["forgetting"][weights.key] = forgetting(scored["base"], scored[weights.key],
                                                           cfg.benchmarks.forgetting_alpha)
    for name, bench in scored["base"].items():
        if bench.get("status") == "skipped":
            result["warnings"].append(f"{name} skipped: {bench['skipped']}")
    return result


def _score_weights(cfg, base_path: str, weights: Weights, run_dir: Path | None, shared: Backend | None, log,
                   options: dict[str, Any]) -> dict[str, dict]:
    """One lm-eval pass on `weights`: through the run's shared backend when there is one (its lm-eval target,
    the adapter attached for the pass and keyed by its content id, as when the strategy answered), else
    lm-eval's hf model loading `base_path`."""
    from harness.benchmarks import run_general_benchmarks
    from harness.gencache import adapter_cache_id

    adapter = None
    if weights.trained:
        assert weights.adapter_dir is not None, "trained weights without a folder are not scored"
        # Recorded relative to the run directory, which is renamed when done.
        adapter = str(run_dir / weights.adapter_dir) if run_dir is not None else weights.adapter_dir
    if shared is None:
        return run_general_benchmarks(base_path, adapter, cfg.benchmarks, log, **options)
    cache_id = adapter_cache_id(base_path, weights.content_id or adapter) if adapter is not None else None
    with shared.lm_eval_model(adapter, cache_id) as target:
        return run_general_benchmarks(base_path, adapter, cfg.benchmarks, log, **options, target=target)


def _split_record(task: Task, test: list[Example]) -> dict[str, Any]:
    data = task.data
    return {
        "formats": data.formats,
        "sizes": {"train": len(data.train), "dev": len(data.dev), "test": len(data.test), "scored": len(test)},
        "train_ids": [e.id for e in data.train],
        "dev_ids": [e.id for e in data.dev],
        "test_ids": [e.id for e in test],
        "warnings": data.warnings,
        "contamination": data.contamination,
    }

