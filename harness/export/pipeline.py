"""`export`: one trained arm of a finished run, out of the harness in the formats people deploy, re-scored.

    results/<task>/<run>/export/<strategy>/
        merged/                 the base model with the adapter folded in (safetensors, tokenizer, chat template)
        model-f16.gguf          llama.cpp's convert_hf_to_gguf.py (its log beside it)
        model-<quant>.gguf      llama.cpp's quantizer (Q4_K_M unless --quant says otherwise)
        Modelfile               Ollama: FROM the quantized file, TEMPLATE checked against the tokenizer's
                                chat template, SYSTEM the task's system prompt, PARAMETER stop per end token
        served-<variant>.jsonl  each exported file's answers to the run's held-out items, beside the arm's
        served.json             the served rows the report shows (harness/report_served.py)
        manifest.json           every file with its size and sha256, quant types, tool versions: written last

The folder is built under export/.<strategy>-<id>.tmp and renamed when complete: an export that fails leaves
nothing, and an existing export is never overwritten (remove it to export again). The run's report is rebuilt
afterwards with the served rows.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

from harness.errors import HarnessError
from harness.export import artifacts, served
from harness.rundir import remove_if_empty, write_json

DEFAULT_QUANT = "Q4_K_M"


def choose_strategy(run_dir: Path, metrics: dict[str, Any], strategy: str | None) -> str:
    """The arm to export: the one named, else the verdict's choice; either must answer with trained weights."""
    trained = [n for n, m in metrics.items() if m.ok and m.record.weights.trained]
    hint = (f"trained arms in this run: {', '.join(trained)}" if trained
            else "no arm of this run answers with trained weights")
    if strategy is None:
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        strategy = (report.get("verdict") or {}).get("choice")
        if strategy is None:
            raise HarnessError(f"{run_dir}: the verdict made no recommendation, so there is no winner to export; "
                               f"name an arm with --strategy ({hint})")
        print(f"[export] the verdict's choice: {strategy}", file=sys.stderr)
    if strategy not in metrics:
        raise HarnessError(f"--strategy {strategy}: not a strategy of {run_dir} ({', '.join(metrics)})")
    m = metrics[strategy]
    if not m.ok:
        raise HarnessError(f"{strategy} did not run in {run_dir} ({m.status}): nothing to export")
    if not m.record.weights.trained:
        raise HarnessError(f"{strategy} answers with the base model: it has no trained weights to export "
                           f"(the base model is {m.serving.get('file') or 'the task model'}); {hint}")
    return strategy


def export_run(run_dir: Path, strategy: str | None = None, quant: str = DEFAULT_QUANT, rescore: bool = True,
               ollama_create: str | None = None) -> Path:
    """Export one trained arm of `run_dir` (see the module docstring); returns the export folder."""
    from harness.models import resolve_model
    from harness.report import load_run, write_report
    from harness.rundir import require_complete

    require_complete(run_dir)
    quant = artifacts.check_quant(quant)
    if ollama_create and not rescore:
        raise HarnessError("--ollama-create scores the created model: it cannot go with --no-rescore")
    run = load_run(run_dir)
    name = choose_strategy(run_dir, run.metrics, strategy)
    m = run.metrics[name]
    weights = m.record.weights
    adapter = run_dir / str(weights.adapter_dir)
    if not (adapter / "adapter_config.json").is_file():
        raise HarnessError(f"{adapter}: {name}'s adapter is not in the run directory (no adapter_config.json)")
    final = run_dir / "export" / name
    if final.exists():
        raise HarnessError(f"{final} exists: an export is never overwritten; remove that folder to export again")
    task, test = served.run_task(run_dir) if rescore else (None, [])
    if rescore:
        _check_training_cache(name, weights.content_id)
    base = resolve_model(run.config["model"]["name"])

    staging = final.parent / f".{name}-{token_hex(3)}.tmp"
    staging.mkdir(parents=True)
    began = time.perf_counter()
    try:
        merged = artifacts.merge(base, adapter, staging / "merged")
        f16 = artifacts.to_gguf(merged, staging / "model-f16.gguf")
        artifacts.check_vocab(f16, merged, _vocab_probes(task, run.items[name]))
        threads = run.config["model"]["threads"]
        quantized = artifacts.quantize(f16, staging / f"model-{quant.lower()}.gguf", quant, threads)
        family = _write_modelfile(staging, merged, quantized, task or _task_for_template(run_dir), run.config)
        record: dict[str, Any] = {"strategy": name, "scorer": run.config["scorer"], "binary": bool(m.binary),
                                  "test_items": len(test), "arm": _arm_row(m), "rows": [], "warnings": [],
                                  "units": served.UNITS, "schema_version": 1}
        if rescore:
            for variant, path in (("f16", f16), (quant.lower(), quantized)):
                record["rows"].append(_gguf_row(staging, name, weights.content_id, variant, path, task, test,
                                                run.items[name], record))
            if ollama_create:
                record["rows"].append(_ollama_row(ollama_create, staging, final, name, weights.content_id, task,
                                                  test, run.items[name], record))
            write_json(staging / "served.json", record)
        from harness.gguf import describe

        artifacts.write_manifest(staging, {
            "run": str(run_dir), "strategy": name, "adapter_content_id": weights.content_id, "base_model": base,
            "quantizations": {p.name: describe(p)["quantization"] for p in (f16, quantized)},
            "template_family": family, "rescored": rescore, "tools": artifacts.tool_versions(),
            "seconds": round(time.perf_counter() - began, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds")})
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        remove_if_empty(final.parent)
        raise
    write_report(run_dir)
    return final


def _vocab_probes(task: Any, items: list[dict[str, Any]]) -> list[str]:
    """Texts the GGUF must tokenize as transformers does: the arm's answers and references, the task's system
    prompt, and the characters byte-level vocabularies fall back on."""
    texts = [t for item in items[:20] for t in (item.get("prediction", ""), item.get("reference", "")) if t]
    if task is not None and task.config.prompt.system:
        texts.append(task.config.prompt.system)
    return texts + ["naïve café — 東京 🙂 \t tabs\n\nand  double  spaces", "<|im_start|>user\nhi<|im_end|>"]


def _check_training_cache(strategy: str, content_id: str | None) -> None:
    """The re-score rebuilds the arm's prompts through its fit; with the training cache gone that fit would train
    again (minutes to hours) only to throw the adapter away: refuse instead."""
    from harness.models import cache_root
    from harness.training import ADAPTER_CACHE_DIR
    from harness.training.resume import is_finished

    work = cache_root() / ADAPTER_CACHE_DIR / str(content_id)
    if not is_finished(work):
        raise HarnessError(f"{strategy}'s training cache {work} is gone (pruned, or another machine): the re-score "
                           "re-creates the arm's prompts through its fit, which would train again; run compare "
                           "again, or export with --no-rescore")


def _arm_row(m: Any) -> dict[str, Any]:
    serving = m.serving or {}
    quantization = serving.get("quantization") or serving.get("dtype") or "?"
    return {"score": m.score, "ci_low": m.ci_low, "ci_high": m.ci_high, "backend": serving.get("backend", "?"),
            "quantization": f"{quantization} base + LoRA adapter", "latency_p50": m.latency_p50,
            "latency_p95": m.latency_p95}


def _served_row(staging: Path, name: str, content_id: str | None, header: dict[str, Any], backend: Any, task: Any,
                test: list, arm_items: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """One served row: the strategy answering the test items through `backend` (the exported weights)."""
    cfg = task.config
    variant = header["variant"]
    row = dict(header)
    predictions = served.answer_with(backend, name, str(content_id), task, test, staging / f".rescore-{variant}",
                                     f"re-scoring {variant}")
    # A scorer that needs a model (a judge defaulting to the task's model) gets the run's base model, as the arm's
    # answers were scored by: never the exported model grading its own answers.
    from harness.runner import _model_loader

    figures, items = served.compare_with_arm(predictions, test, arm_items, cfg, task.folder,
                                             _model_loader(cfg, lambda *_: None, True))
    row.update(figures)
    with (staging / f"served-{variant}.jsonl").open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"[export] {variant}: {cfg.scorer} {row['score']:.3f} (in the harness {record['arm']['score']:.3f}); "
          f"{row['agreeing_items']}/{row['n']} answers identical; latency p50 {row['latency_p50']:.2f} s",
          file=sys.stderr, flush=True)
    if warning := served.drop_warning(name, variant, row):
        # The report words a significant drop from the row itself (significant_drop); `warnings` is for the rest.
        print(f"warning: {warning}", file=sys.stderr)
    return row


def _gguf_row(staging: Path, name: str, content_id: str | None, variant: str, gguf: Path, task: Any, test: list,
              arm_items: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    from harness.gguf import describe

    header = {"variant": variant, "file": gguf.name, "size_bytes": gguf.stat().st_size,
              "quantization": describe(gguf)["quantization"], "backend": "llamacpp"}
    return _served_row(staging, name, content_id, header, served.llamacpp(gguf, task), task, test, arm_items, record)


def _ollama_row(model_name: str, staging: Path, final: Path, name: str, content_id: str | None, task: Any,
                test: list, arm_items: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """`ollama create` and a served row through the ollama backend, when an Ollama server answers; else the row
    says why not and the log gives the command to run where one does."""
    from harness.backends.ollama import OllamaBackend
    from harness.export import modelfile, ollama_create

    host = ollama_create.host()
    header = {"variant": "ollama", "file": model_name, "backend": "ollama"}
    if problem := ollama_create.server_problem(host):
        print(f"[export] {problem}; where Ollama runs: {ollama_create.command(model_name, final)}", file=sys.stderr)
        return {**header, "status": f"not run: {problem}"}
    parsed = modelfile.parse_modelfile((staging / "Modelfile").read_text(encoding="utf-8"))
    ollama_create.create(model_name, staging, parsed, host)
    backend = OllamaBackend(model_name, use_cache=False, base_url=host,
                            context_length=task.config.model.context_length)
    return _served_row(staging, name, content_id, header, backend, task, test, arm_items, record)


def _task_for_template(run_dir: Path) -> Any:
    """--no-rescore still checks the template against the task's own system prompt: the task as the run saw it."""
    task, _ = served.run_task(run_dir)
    return task


def _write_modelfile(folder: Path, merged: Path, quantized: Path, task: Any, config: dict[str, Any]) -> str:
    """The Modelfile, after the template check (a mismatch stops the export with both renderings)."""
    from harness.export import modelfile
    from harness.prompting import build_messages

    cfg = task.config
    render_hf = modelfile.hf_renderer(merged)
    # The probes, the task's system prompt with a task input, and one prompt exactly as the arm builds it; Ollama
    # adds the Modelfile's SYSTEM only to a request without a system message, and the check renders it so.
    example = build_messages(task.data.train[0].query(), cfg.prompt, []) if task.data.train else None
    conversations = modelfile.probe_conversations(cfg.prompt.system, example[-1]["content"] if example else None)
    if example is not None:
        conversations.append(example)
    family, template = modelfile.choose_template(render_hf, conversations, modelfile_system=cfg.prompt.system or "")
    stops = _end_tokens(merged) + list(cfg.generation.stop)
    from harness.backends.llamacpp import DEFAULT_CONTEXT

    # The window the served re-score ran with (the llamacpp backend's), so Ollama answers in the same one.
    parameters = {"num_ctx": cfg.model.context_length or DEFAULT_CONTEXT, "num_predict": cfg.generation.max_new_tokens,
                  "seed": 0}
    text = modelfile.modelfile_text(quantized.name, template, cfg.prompt.system or "", stops, parameters)
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    print(f"[export] Modelfile: template family {family}, checked byte-identical to the tokenizer's chat template "
          f"on {len(conversations)} conversations; stops {stops}", file=sys.stderr, flush=True)
    return family


def _end_tokens(model_dir: Path) -> list[str]:
    """Every token that ends a turn: the generation config's eos ids and the tokenizer's eos."""
    from transformers import AutoTokenizer, GenerationConfig

    from harness.training.formatting import stop_tokens

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    try:
        eos = GenerationConfig.from_pretrained(str(model_dir)).eos_token_id
    except OSError:
        eos = tokenizer.eos_token_id
    return stop_tokens(tokenizer, eos if isinstance(eos, list) else [eos] if eos is not None else [])
