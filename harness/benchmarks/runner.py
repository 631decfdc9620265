"""Score one set of model weights on MMLU and HumanEval through lm-eval, with a result cache.

`run_general_benchmarks(model, adapter, settings, log)` materializes the deterministic slices
(data.py), runs the ftrag_* tasks of `lm_eval_tasks/` through `lm_eval.simple_evaluate` (lm-eval
does the scoring, the aggregation and the standard error) and keeps each benchmark's result under
`cache_root()/benchmarks/<hash>/`, keyed by model, adapter, settings, data and task definitions,
so a rerun costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends import LmEvalTarget
from harness.benchmarks import data, sandbox
from harness.config import BenchmarksConfig
from harness.devices import resolve_device, resolve_dtype
from harness.errors import HarnessError
from harness.models import cache_root, touch_used
from harness.rundir import write_json

TASKS_DIR = Path(__file__).with_name("lm_eval_tasks")
BENCHMARKS = ("mmlu", "humaneval")
HF_LMS = ("hf", "hf-auto", "huggingface")
LOGLIKELIHOOD_LMS = {*HF_LMS, "vllm"}  # OpenAI-compatible servers and Ollama only generate
SMALL_FILE_BYTES = 64 * 2**20  # files up to this size are fingerprinted by content, larger ones by size+mtime


def run_general_benchmarks(model_path: str, adapter_path: str | None, settings: BenchmarksConfig,
                           log: Callable[[str], Any] = print, *, lm_type: str = "hf",
                           model_args: dict[str, Any] | None = None, threads: int | None = None,
                           use_cache: bool = True, preloaded: Callable[[], Any] | None = None,
                           target: LmEvalTarget | None = None) -> dict[str, dict]:
    """Score `model_path` (plus the PEFT adapter at `adapter_path`, if any) on MMLU and HumanEval.

    `lm_type`/`model_args` select any lm-eval model (default: lm-eval's `hf` with
    `pretrained=model_path,peft=adapter_path`, float32 on CPU, bfloat16 on CUDA); `threads` sets
    torch's CPU threads; `use_cache=False` recomputes (and overwrites the cache entry). `preloaded`
    returns weights already in memory (the run's model, with the adapter attached if any), which lm-eval
    scores instead of loading `model_path` again; it is called only when something is not cached.
    `target` (a backend's `lm_eval_model`, harness/backends) replaces lm_type/model_args/preloaded: lm-eval
    scores through the run's own backend, and the cache key names that backend (`target.identity`).

    Returns {"mmlu": result, "humaneval": result}; each result has the keys
      benchmark      "mmlu" | "humaneval"
      status         "ok" | "skipped"
      skipped        why it did not run (None when status is "ok")
    and, when status is "ok":
      metric         "acc" (MMLU by log-likelihood), "exact_match" (MMLU generative), "pass@1"
      method         "loglikelihood" | "generate" | "generate+execute"
      score          accuracy or pass@1, 0..1 (lm-eval's figure)
      stderr         its standard error (lm-eval's, sample std / sqrt(n))
      n              items scored
      items          {item id: 1 correct | 0 wrong}, for pairing base and fine-tuned
      subjects       {subject: items} (MMLU only)
      full           True when the whole set ran (every question of the chosen subjects / 164 problems)
      chat_template  whether lm-eval applied the model's chat template (generative MMLU only)
      seconds        wall time of the lm-eval evaluation when it was computed
      model_load_s   wall time to load the weights for that computation
      cached         True when read from the cache instead of computed now
      model, adapter the weights scored
      backend        who scored, in words (the target's description, or "lm-eval <lm_type>")
      serving        the backend's serving record (backend, quantization, file) when a target scored
      samples_file   JSONL of lm-eval's per-item responses, next to the cached result
      lm_eval_task, data_file, data_sha256, cache_key, lm_eval_version
      sandbox        {process, network, filesystem}: the isolation code ran under (HumanEval only)
    """
    from importlib.metadata import version

    if target is not None:
        lm_type, engine = target.lm_type, {"backend": target.identity}
        make_args, has_loglikelihood = target.model_args, target.has_loglikelihood
    else:
        if adapter_path and lm_type not in HF_LMS:
            raise HarnessError(f"an adapter needs lm-eval's hf model (peft=), not {lm_type!r}")
        args = _model_args(model_path, adapter_path, lm_type, model_args)
        engine = {"model_args": {k: v for k, v in args.items() if k not in ("pretrained", "peft")}}
        make_args = _legacy_args(args, lm_type, model_path, log, preloaded)
        has_loglikelihood = lm_type in LOGLIKELIHOOD_LMS
    method = _mmlu_method(settings, has_loglikelihood)
    results: dict[str, dict] = {}
    pending: dict[str, dict[str, Any]] = {}
    for name in BENCHMARKS:
        reason = _skip_reason(name, settings, target)
        if reason:
            results[name] = {"benchmark": name, "status": "skipped", "skipped": reason}
            log(f"[benchmarks] {name}: skipped ({reason})")
            continue
        rows = _slice(name, settings)
        path, digest = data.materialize(name, rows)
        task = {"mmlu": "ftrag_mmlu" if method == "loglikelihood" else "ftrag_mmlu_gen",
                "humaneval": "ftrag_humaneval"}[name]
        knobs = {"method": method, "batch_size": settings.batch_size} if name == "mmlu" else {
            "max_new_tokens": settings.humaneval_max_new_tokens, "timeout_s": settings.sandbox_timeout_s,
            "memory_mb": settings.sandbox_memory_mb, "batch_size": settings.batch_size}
        key = _hash({"benchmark": name, "task": task, "tasks_dir": _tasks_fingerprint(name), "data": digest,
                     "model": _fingerprint(model_path), "adapter": _fingerprint(adapter_path),
                     "lm_type": lm_type, **engine, "settings": knobs, "lm_eval": version("lm_eval")})
        cached = _read_cache(key) if use_cache else None
        if cached is not None:
            results[name] = {**cached, "cached": True}
            log(f"[benchmarks] {name}: cached ({cached['metric']} {cached['score']:.3f}, n={cached['n']})")
            continue
        pending[name] = {"task": task, "path": path, "digest": digest, "key": key, "rows": rows,
                         "subjects": dict(Counter(r["subject"] for r in rows)) if name == "mmlu" else None}
    if pending:
        if threads:
            import torch

            torch.set_num_threads(threads)
        described = {"backend": target.description if target else f"lm-eval {lm_type}",
                     "serving": target.serving if target else None}
        results.update(_evaluate(pending, lm_type, make_args, settings, model_path, adapter_path, log, described))
    return {name: results[name] for name in BENCHMARKS}


def _skip_reason(name: str, settings: BenchmarksConfig, target: LmEvalTarget | None = None) -> str | None:
    if not getattr(settings, name):
        return f"benchmarks.{name} is false"
    if name == "humaneval" and target is not None and not target.completes_text:
        return f"HumanEval completes bare code prompts, which {target.description} does not take (chat only)"
    if name == "humaneval" and not settings.allow_code_execution:
        return ("scoring HumanEval runs model-written code; allow it (sandboxed) with "
                "`benchmarks.allow_code_execution: true`")
    return None


def _mmlu_method(settings: BenchmarksConfig, has_loglikelihood: bool) -> str:
    if settings.mmlu_method != "auto":
        return settings.mmlu_method
    return "loglikelihood" if has_loglikelihood else "generate"


def _slice(name: str, settings: BenchmarksConfig) -> list[dict[str, Any]]:
    if name == "mmlu":
        if settings.full:
            return data.mmlu_slice(settings.mmlu_subjects or None)
        return data.mmlu_slice(settings.mmlu_subjects or None, settings.mmlu_per_subject,
                               settings.mmlu_limit, settings.seed)
    return data.humaneval_slice(None if settings.full else settings.humaneval_limit, settings.seed)


def _model_args(model_path: str, adapter_path: str | None, lm_type: str,
                extra: dict[str, Any] | None) -> dict[str, Any]:
    if lm_type not in HF_LMS:
        return {"model": model_path, **(extra or {})}
    device = resolve_device("auto")
    args: dict[str, Any] = {"pretrained": model_path, "device": device, "dtype": resolve_dtype("auto", device)}
    if adapter_path:
        args["peft"] = adapter_path
    return {**args, **(extra or {})}


def _legacy_args(args: dict[str, Any], lm_type: str, model_path: str, log: Callable[[str], Any],
                 preloaded: Callable[[], Any] | None) -> Callable[[], dict[str, Any]]:
    """lm-eval's arguments without a backend target: `args`, or the preloaded weights in place of the path."""
    def make() -> dict[str, Any]:
        if preloaded is not None and lm_type in HF_LMS:
            log("[benchmarks] scoring the run's loaded model")
            # lm-eval takes a model object as `pretrained` (its own tokenizer from the path); the adapter is on it.
            return {k: v for k, v in args.items() if k != "peft"} | {"pretrained": preloaded(), "tokenizer": model_path}
        return args

    return make


def _evaluate(pending: dict[str, dict[str, Any]], lm_type: str, make_args: Callable[[], dict[str, Any]],
              settings: BenchmarksConfig, model_path: str, adapter_path: str | None,
              log: Callable[[str], Any], described: dict[str, Any]) -> dict[str, dict]:
    """One model load (or none, when the backend already holds the weights), then one simple_evaluate per
    benchmark (so each has its own wall time)."""
    from importlib.metadata import version

    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    weights = model_path + (f" + adapter {adapter_path}" if adapter_path else "")
    began = time.perf_counter()
    log(f"[benchmarks] {weights} through {described['backend']}")
    args = make_args()
    lm = get_model(lm_type).create_from_arg_obj(args, {"batch_size": settings.batch_size})
    load_s = time.perf_counter() - began
    metadata = {f"{name}_file": str(p["path"]) for name, p in pending.items()}
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)
    sandbox.configure(sandbox.SandboxLimits(settings.sandbox_timeout_s, settings.sandbox_memory_mb))
    out: dict[str, dict] = {}
    for name, plan in pending.items():
        log(f"[benchmarks] {name}: {len(plan['rows'])} items ({plan['task']})")
        task = manager.load([plan["task"]])["tasks"][plan["task"]]
        if name == "humaneval":
            task.set_config(key="generation_kwargs", update=True,
                            value={"max_gen_toks": settings.humaneval_max_new_tokens})
        began = time.perf_counter()
        chat = plan["task"] == "ftrag_mmlu_gen" and _chat_model(lm, lm_type)
        raw = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, log_samples=True,
                                      bootstrap_iters=1000, confirm_run_unsafe_code=name == "humaneval",
                                      apply_chat_template=chat)
        seconds = time.perf_counter() - began
        assert raw is not None, "lm-eval returned no results (not rank 0?)"
        result = _summarize(name, plan, raw, seconds, load_s)
        result.update({"model": model_path, "adapter": adapter_path, "lm_eval_version": version("lm_eval"), **described,
                       "chat_template": chat, "full": len(plan["rows"]) == _full_size(name, settings)})
        if name == "humaneval":
            result["sandbox"] = sandbox.isolation()
        _write_cache(plan["key"], result, raw["samples"][plan["task"]])
        out[name] = {**result, "cached": False}
        log(f"[benchmarks] {name}: {result['metric']} {result['score']:.3f} ± {result['stderr']:.3f} "
            f"(n={result['n']}, {seconds:.0f} s)")
    return out


def _full_size(name: str, settings: BenchmarksConfig) -> int:
    """Items of the whole set: all 164 problems, or every question of the chosen MMLU subjects."""
    if name == "humaneval":
        return len(data.humaneval_rows())
    return sum(n for s, n in data.mmlu_subjects().items() if not settings.mmlu_subjects or s in settings.mmlu_subjects)


def _chat_model(lm: Any, lm_type: str) -> bool:
    """Generative MMLU goes through the chat template where there is one (instruct models, chat APIs)."""
    if hasattr(lm, "has_chat_template"):
        return bool(lm.has_chat_template)
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "chat_template"):
        return bool(tokenizer.chat_template)
    return "chat" in lm_type


def _summarize(name: str, plan: dict[str, Any], raw: dict[str, Any], seconds: float, load_s: float) -> dict:
    task = plan["task"]
    metric, filt = {"ftrag_mmlu": ("acc", "none"), "ftrag_mmlu_gen": ("exact_match", "letter"),
                    "ftrag_humaneval": ("pass@1", "none")}[task]
    figures = raw["results"][task]
    samples = [s for s in raw["samples"][task] if s.get("filter", filt) == filt]
    items = {s["doc"]["id"]: round(float(s[metric])) for s in samples}
    assert len(items) == len(plan["rows"]), f"{task}: {len(items)} scored items for {len(plan['rows'])} rows"
    return {
        "benchmark": name, "status": "ok", "skipped": None, "metric": metric,
        "method": {"ftrag_mmlu": "loglikelihood", "ftrag_mmlu_gen": "generate"}.get(task, "generate+execute"),
        "score": float(figures[f"{metric},{filt}"]), "stderr": float(figures[f"{metric}_stderr,{filt}"]),
        "n": len(items), "items": items, "subjects": plan["subjects"],
        "seconds": round(seconds, 2), "model_load_s": round(load_s, 2),
        "lm_eval_task": task, "data_file": str(plan["path"]), "data_sha256": plan["digest"],
        "cache_key": plan["key"], "samples_file": str(_cache_dir(plan["key"]) / "samples.jsonl"),
    }


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(path: str | None) -> Any:
    """Content hash of small files and size+mtime of large ones; a hub id stands for itself.

    The folder's path counts only when a large file is known by size+mtime: an adapter (small files)
    copied into each run's directory is the same adapter wherever it lies."""
    if path is None or not Path(path).is_dir():
        return path
    parts, by_content = [], True
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        stat = f.stat()
        small = stat.st_size <= SMALL_FILE_BYTES
        by_content &= small
        parts.append([str(f.relative_to(path)), stat.st_size,
                      hashlib.sha256(f.read_bytes()).hexdigest() if small else stat.st_mtime_ns])
    return _hash(parts) if by_content else [str(Path(path).resolve()), _hash(parts)]


def _tasks_fingerprint(name: str) -> str:
    """The task definitions (and, for HumanEval, the sandbox) the result depends on."""
    files = [p for p in sorted(TASKS_DIR.iterdir()) if p.is_file() and p.suffix in (".yaml", ".py", "")]
    if name == "humaneval":
        files += [Path(sandbox.__file__), sandbox.CHILD, Path(sandbox.__file__).with_name("seccomp.py")]
    return _hash([[f.name, f.read_text()] for f in files])


def _cache_dir(key: str) -> Path:
    return cache_root() / "benchmarks" / key[:24]


def _read_cache(key: str) -> dict | None:
    path = _cache_dir(key) / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("cache_key") != key:
        return None
    touch_used(path)
    return result


def _write_cache(key: str, result: dict, samples: list[dict]) -> None:
    folder = _cache_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"id": s["doc"]["id"], "filter": s.get("filter"),
                                "response": s.get("filtered_resps"), "target": s.get("target"),
                                **{k: s[k] for k in ("acc", "exact_match", "pass@1") if k in s}},
                               ensure_ascii=False, default=str) + "\n")
    write_json(folder / "result.json", result)  # written last: its presence means the entry is complete

