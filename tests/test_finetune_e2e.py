"""`finetune` end to end on the real embedded model, real PEFT and TRL, a few CPU steps.

One training (16 short examples, 3 epochs of 4 steps, engine `auto` = unsloth's CPU fallback) serves
most tests of the module: it is killed with SIGKILL after epoch 1, resumed by the next `fit`, then
reused from the cache, also by `rag_finetune` and by a toy strategy registered only here, in one
compare of four arms. One test trains the `peft` engine with documents as plain text.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.errors import NotRun
from tests.conftest import ASSETS, ROOT, private_cache

pytestmark = pytest.mark.slow

FINETUNE_YAML = """
finetune:
  max_train_examples: 16
  epochs: 3
  batch_size: 4
  warmup_steps: 0
  learning_rate: 0.001
  early_stopping_patience: 3
  merge: true
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    yield from private_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    import shutil

    from harness.task import load_task

    folder = Path(shutil.copytree(ASSETS / "tasks" / "tiny", tmp_path_factory.mktemp("task") / "tiny"))
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + FINETUNE_YAML)
    return load_task(str(folder))


def fit(task, out: Path):
    from functools import cache

    from harness.backends.hf import TransformersBackend
    from harness.models import resolve_model
    from strategies import StrategyContext
    from strategies.finetune import FinetuneStrategy

    out.mkdir(parents=True)
    shared = cache(lambda: TransformersBackend(resolve_model(task.config.model.name), use_cache=False))
    ctx = StrategyContext(task.config, task.folder, out, shared)
    strategy = FinetuneStrategy()
    return strategy, ctx, strategy.fit(task.data.train, task.data.dev, ctx)


def kill_worker_after_epoch_1(cache: Path, stop: threading.Event) -> None:
    """SIGKILL the training process as soon as epoch 1's checkpoint is complete."""
    import psutil

    from harness.training.resume import checkpoint_state

    while not stop.is_set():
        for state in cache.glob("finetune/*/checkpoints/checkpoint-*/trainer_state.json"):
            if checkpoint_state(state.parent) is None:
                continue  # still being written
            workers = [p for p in psutil.Process().children(recursive=True)
                       if "harness.training.worker" in " ".join(p.cmdline())]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def trained(cache, task, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    stop = threading.Event()
    killer = threading.Thread(target=kill_worker_after_epoch_1, args=(cache, stop))
    killer.start()
    try:
        with pytest.raises(NotRun) as killed:
            fit(task, runs / "killed")
    finally:
        stop.set()
        killer.join()
    (work,) = (cache / "finetune").iterdir()
    checkpoints = sorted((work / "checkpoints").glob("checkpoint-*"))
    states = [json.loads((c / "trainer_state.json").read_text()) for c in checkpoints]
    strategy, ctx, record = fit(task, runs / "resumed")
    return {"killed": str(killed.value), "states": states, "work": work, "strategy": strategy, "ctx": ctx,
            "record": record, "runs": runs}


def test_a_killed_training_resumes_at_epoch_2(trained):
    assert trained["killed"] == "training was killed by SIGKILL (epoch 1 is checkpointed; the next run resumes there)"
    assert [(s["epoch"], s["global_step"]) for s in trained["states"]] == [(1.0, 4)]  # nothing past epoch 1 kept
    details = trained["record"].details
    assert details["resumed_from_epoch"] == 1 and details["sessions"][-1]["resumed_from_step"] == 4
    assert details["sessions"][-1]["steps"] == 8 and details["steps"] == 12 and details["epochs_run"] == 3
    assert [e["epoch"] for e in details["epochs"]] == [0, 1, 2, 3]  # epoch 0: validation loss before training


def test_loss_falls_and_the_fit_record_has_the_facts(trained):
    details = trained["record"].details
    epochs = {e["epoch"]: e for e in details["epochs"]}
    assert epochs[3]["train_loss"] < epochs[1]["train_loss"] / 2
    assert epochs[details["best_epoch"]]["eval_loss"] < epochs[0]["eval_loss"] / 2
    assert details["best_eval_loss"] == pytest.approx(min(e["eval_loss"] for e in details["epochs"]), abs=1e-4)
    assert details["engine"] == "unsloth" and details["precision"] == "float32 LoRA"  # auto: unsloth's CPU fallback
    assert "CPU fallback" in details["engine_why"]
    assert details["trainable_params"] == 4_884_480 and details["trainable_percent"] == pytest.approx(3.504, abs=1e-3)
    assert details["memory_estimate_bytes"] > 5e8 and details["memory_peak_bytes"] > 5e8
    assert details["tokens_per_s"] > 0 and details["train_seconds"] > 0 and not details["cache_hit"]
    out = trained["ctx"].out_dir
    assert out.parent / details["adapter_dir"] == out / "adapter"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    curve = json.loads((out / "loss_curve.json").read_text())
    assert curve["epochs"] == details["epochs"] and (out / "loss_curve.png").stat().st_size > 5000


def test_adapter_and_merged_model_give_the_same_greedy_answers(trained, task):
    from harness.backends.hf import TransformersBackend
    from harness.models import resolve_model
    from harness.prompting import build_messages
    from harness.training.formatting import select_examples, split_dev

    path = resolve_model(task.config.model.name)
    base = TransformersBackend(path, use_cache=False)
    run_dir = trained["ctx"].out_dir.parent  # fit records paths relative to the run directory
    merged = TransformersBackend(str(run_dir / trained["record"].details["merged_dir"]), use_cache=False)
    trained_on, _ = split_dev(select_examples(task.data.train, 16, 0), task.data.dev, 0)
    examples = trained_on[:1] + task.data.test[:3]
    conversations = [build_messages(e, task.config.prompt, []) for e in examples]
    before = [g.text for g in base.generate(conversations, 24, ["\n"], 4)]
    weights = base.model
    with base.adapter(str(run_dir / trained["record"].details["adapter_dir"]), "test+adapter") as tuned:
        first = [g.text for g in tuned.generate(conversations, 24, ["\n"], 4)]
        assert tuned.model.base_model.model is weights  # the adapter sits on the base backend's model
    assert first == [g.text for g in merged.generate(conversations, 24, ["\n"], 4)]
    assert first[0] == examples[0].output and before[0] != first[0]  # memorized by the adapter only
    # Detached again: the same model object, no LoRA layer left, the base model's answers.
    assert base.model is weights and not any("lora" in name for name, _ in weights.named_modules())
    assert [g.text for g in base.generate(conversations, 24, ["\n"], 4)] == before


def test_a_rerun_reuses_the_adapter_and_answers_every_query(trained, task):
    strategy, ctx, record = fit(task, trained["runs"] / "again")
    assert record.details["cache_hit"] and record.details["resumed_from_epoch"] is None
    assert len(record.details["sessions"]) == 1  # no new training session: the killed one never finished
    assert record.details["epochs"] == trained["record"].details["epochs"]
    assert (ctx.out_dir / "adapter" / "adapter_model.safetensors").is_file()
    queries = [e.query() for e in task.data.test[:4]]
    predictions = strategy.answer(queries, ctx)
    assert [p.id for p in predictions] == [q.id for q in queries] and all(p.completion_tokens > 0 for p in predictions)


def test_compare_shows_finetune_with_its_fit_record(trained, task, tmp_path):
    import subprocess
    import sys

    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(task.folder), "--strategies", "finetune",
                           "--limit", "4", "--results", str(results)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (results / "tiny").iterdir()
    metrics = json.loads((run_dir / "finetune" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["n"] == 4 and metrics["fit"]["details"]["cache_hit"]
    assert (run_dir / "finetune" / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "finetune" / "loss_curve.png").is_file()


def test_peft_engine_trains_with_documents_as_plain_text(cache, tmp_path):
    import math
    import shutil

    from harness.task import load_task

    folder = Path(shutil.copytree(ASSETS / "tasks" / "tiny", tmp_path / "tiny"))
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + "\nfinetune:\n  engine: peft\n"
                                      "  max_train_examples: 8\n  epochs: 1\n  warmup_steps: 0\n"
                                      "  train_on_docs: true\n")
    (folder / "docs").mkdir()
    (folder / "docs" / "signatures.md").write_text("# Signatures\n\nA signature lists parameter names in order.\n\n"
                                                   "Defaults follow an equals sign; stars mark variadic parameters.\n")
    _, ctx, record = fit(load_task(str(folder)), tmp_path / "out")
    details = record.details
    assert (details["engine"], details["engine_why"], details["precision"]) == (
        "peft", "set by finetune.engine", "float32 LoRA")
    assert details["doc_records"] == 1 and details["train_examples"] == 8
    assert details["trainable_params"] == 4_884_480 and details["steps"] == 3  # (8 examples + 1 document) / 4
    assert all(math.isfinite(e["eval_loss"]) for e in details["epochs"])
    assert (ctx.out_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_one_compare_loads_the_base_model_once(trained, task, tmp_path, monkeypatch):
    """prompt, finetune (adapter attached to the same weights) and MMLU on base and on base + adapter:
    one from_pretrained in the run's process; the scores are the same as with separate loads.
    (`finetune.merge` loads the base once more, on purpose: merging changes the weights.)"""
    import dataclasses

    from transformers import AutoModelForCausalLM

    ft = dataclasses.replace(task.config.finetune, merge=False)
    model = dataclasses.replace(task.config.model, backend="transformers")  # the one-copy-of-weights backend
    task = dataclasses.replace(task, config=dataclasses.replace(task.config, finetune=ft, model=model))

    from harness.runner import compare

    loads: list[str] = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def counted(cls, *args, **kwargs):
        loads.append(str(args[0]) if args else "")
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counted))
    run_dir = compare(task, tmp_path / "results", strategies=["prompt", "finetune"], limit=4, log=lambda *a: None,
                      use_cache=False)
    assert len(loads) == 1, loads
    bench = json.loads((run_dir / "benchmarks.json").read_text())
    base, tuned = bench["weights"]["base"]["mmlu"], bench["weights"][bench["by_strategy"]["finetune"]]["mmlu"]
    assert base["status"] == tuned["status"] == "ok" and base["n"] == tuned["n"] == 6
    # The adapter was on during the finetune pass and off for the base pass: its answer log-likelihoods
    # differ from the base's and equal those of lm-eval loading base + adapter itself (peft=).
    from harness.benchmarks import run_general_benchmarks
    from harness.models import resolve_model

    def logliks(result: dict) -> list[float]:
        lines = Path(result["samples_file"]).read_text().splitlines()
        return [ll for line in lines for ll, _ in json.loads(line)["response"]]

    shared_tuned, shared_base = logliks(tuned), logliks(base)
    assert shared_tuned != pytest.approx(shared_base, abs=1e-3)
    details = json.loads((run_dir / "finetune" / "metrics.json").read_text())["fit"]["details"]
    adapter = str(run_dir / details["adapter_dir"])  # recorded relative to the run directory
    reference = run_general_benchmarks(resolve_model(task.config.model.name), adapter, task.config.benchmarks,
                                       lambda *a: None, use_cache=False)["mmlu"]  # rewrites the same cache entry
    assert reference["items"] == tuned["items"] and logliks(reference) == pytest.approx(shared_tuned, abs=1e-3)
    assert json.loads((run_dir / "finetune" / "metrics.json").read_text())["status"] == "ok"


class CopiedAdapterStrategy:
    """A toy strategy, registered only in this module: the finetune adapter (finetune's folder, which the run
    already holds) named by another content id, so the runner must treat it as weights of their own."""

    name = "toy"
    complexity = 2

    def __init__(self) -> None:
        from strategies.finetune import FinetuneStrategy

        self.inner = FinetuneStrategy(merge=False)

    def fit(self, train, dev, ctx):
        import dataclasses

        record = self.inner.fit(train, dev, ctx)
        weights = dataclasses.replace(record.weights, content_id=f"toy-{record.weights.content_id}")
        self.inner.key = weights.content_id  # its answers are cached under its own id too
        builds = tuple(dataclasses.replace(b, content_id=weights.content_id) for b in record.one_time)
        return dataclasses.replace(record, weights=weights, one_time=builds, complexity=self.complexity)

    def answer(self, queries, ctx):
        return self.inner.answer(queries, ctx)


@pytest.fixture(scope="module")
def four_arms(trained, task, cache, tmp_path_factory):
    """prompt, finetune, rag_finetune and the toy strategy in one compare, on the tiny task plus a document."""
    import shutil

    from harness import registry
    from harness.runner import compare
    from harness.task import load_task

    folder = Path(shutil.copytree(task.folder, tmp_path_factory.mktemp("arms") / "tiny"))
    (folder / "docs").mkdir()
    (folder / "docs" / "signatures.md").write_text(
        "# Signatures\n\nA signature lists parameter names in order, separated by commas.\n\n"
        "Defaults follow an equals sign; one star marks *args and two stars mark **kwargs.\n")
    logs: list[str] = []
    adapters = sorted((cache / "finetune").iterdir())
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.STRATEGIES, "toy", f"{__name__}:CopiedAdapterStrategy")
        run_dir = compare(load_task(str(folder)), tmp_path_factory.mktemp("results"), limit=4, log=logs.append,
                          strategies=["prompt", "finetune", "rag_finetune", "toy"])
    metrics = {n: json.loads((run_dir / n / "metrics.json").read_text()) for n in ("finetune", "rag_finetune", "toy")}
    return {"run_dir": run_dir, "logs": logs, "metrics": metrics, "new_adapters": sorted(
                (cache / "finetune").iterdir()) != adapters,
            "bench": json.loads((run_dir / "benchmarks.json").read_text()),
            "report": json.loads((run_dir / "report.json").read_text())}


def test_rag_finetune_reuses_the_finetune_adapter_and_the_index(four_arms, trained):
    rf, ft = four_arms["metrics"]["rag_finetune"], four_arms["metrics"]["finetune"]
    assert rf["status"] == "ok" and rf["n"] == 4
    assert rf["fit"]["details"]["cache_hit"] and rf["fit"]["details"]["sessions"] == trained["record"].details[
        "sessions"]  # no training session of its own
    assert not four_arms["new_adapters"]  # the compare trained nothing: every adapter came from the cache
    assert rf["fit"]["weights"]["content_id"] == ft["fit"]["weights"]["content_id"] == trained["strategy"].key
    builds = {b["what"]: b for b in rf["fit"]["one_time"]}
    assert set(builds) == {"index", "adapter"} and builds["adapter"]["reused"]
    # Its one-time cost is the training's as first done, the same build as finetune's, not this fit's time.
    assert builds["adapter"]["seconds"] == trained["record"].details["train_seconds"]
    assert builds["adapter"] == ft["fit"]["one_time"][0]
    # The same adapter in the same run: a reference to finetune's folder, not a second copy.
    assert rf["fit"]["weights"]["adapter_dir"] == "finetune/adapter"
    assert not (four_arms["run_dir"] / "rag_finetune" / "adapter").exists()
    predictions = [json.loads(line) for line in
                   (four_arms["run_dir"] / "rag_finetune" / "predictions.jsonl").read_text().splitlines()]
    assert all(p["retrieved"] and p["passages_in_prompt"] >= 1 for p in predictions)


def test_rag_finetune_has_its_row_pairs_and_the_shared_adapter_said(four_arms):
    a = four_arms["report"]
    assert list(a["strategies"]) == ["prompt", "finetune", "rag_finetune", "toy"]
    pairs = {frozenset((p["a"], p["b"])) for p in a["pairs"]}
    assert {frozenset(("rag_finetune", other)) for other in ("prompt", "finetune", "toy")} <= pairs
    assert any(r.startswith("finetune and rag_finetune answer with the same adapter") for r in a["verdict"]["reasons"])
    assert a["strategies"]["rag_finetune"]["cost"]["shared"] == {"adapter": ["finetune"]}
    md = (four_arms["run_dir"] / "report.md").read_text()
    assert "| rag_finetune |" in md and "adapter shared with finetune" in md
    assert "## Fine-tune: finetune and rag_finetune" in md and "## Fine-tune: toy" in md


def test_benchmarks_run_once_per_weights_and_are_attributed_to_each_strategy(four_arms):
    bench, metrics = four_arms["bench"], four_arms["metrics"]
    adapter = f"adapter:{metrics['finetune']['fit']['weights']['content_id']}"
    toy = f"adapter:{metrics['toy']['fit']['weights']['content_id']}"
    assert bench["by_strategy"] == {"prompt": "base", "finetune": adapter, "rag_finetune": adapter, "toy": toy}
    assert list(bench["weights"]) == ["base", adapter, toy] and list(bench["forgetting"]) == [adapter, toy]
    assert all(bench["weights"][w]["mmlu"]["n"] == 6 for w in bench["weights"])
    assert bench["forgetting"][toy]["mmlu"]["status"] == "ok"  # the toy's own forgetting test, vs base
    assert any("rag_finetune: answers with " + adapter + ", already scored" in line for line in four_arms["logs"])
    a = four_arms["report"]
    assert a["forgetting"]["rag_finetune"] == a["forgetting"]["finetune"] == bench["forgetting"][adapter]
    assert a["strategies"]["toy"]["benchmarks"]["mmlu"]["n"] == 6 and "toy" in a["forgetting"]


def test_two_seeds_train_two_adapters_and_the_report_resamples_both(trained, task, tmp_path):
    """`finetune.seeds: 2`: the first seed's adapter from the cache, a second trained with seed + 1; each answers
    the test items, the arm's score is their mean and its pair with prompt is tested by the two-level bootstrap."""
    import subprocess
    import sys

    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(task.folder), "--strategies",
                           "prompt,finetune", "--limit", "6", "--no-benchmarks", "--results", str(results),
                           "--set", "finetune.seeds=2"], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "seed 2 of 2 (finetune.seed = 1)" in proc.stdout + proc.stderr
    (run_dir,) = (results / "tiny").iterdir()
    metrics = json.loads((run_dir / "finetune" / "metrics.json").read_text())
    seeds = metrics["seeds"]
    assert seeds["seeds"] == [0, 1] and seeds["reused"][1] is False  # seed 1 was never trained before
    assert seeds["adapters"] == ["finetune/adapter", "finetune.seed-1/adapter"]
    assert metrics["score"] == pytest.approx(sum(seeds["scores"]) / 2)
    assert metrics["ci_method"].startswith("two-level")
    other = json.loads((run_dir / "finetune.seed-1" / "metrics.json").read_text())
    assert other["seed"] == 1 and other["fit"]["weights"]["content_id"] != metrics["fit"]["weights"]["content_id"]
    assert (run_dir / "finetune.seed-1" / "adapter" / "adapter_config.json").is_file()
    lines = [json.loads(line) for line in (run_dir / "finetune" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(len(r["seed_scores"]) == 2 and r["seed_scores"][0] == r["score"] for r in lines)
    report = json.loads((run_dir / "report.json").read_text())
    (pair,) = report["pairs"]
    assert pair["test"].startswith("two-level")
    text = (run_dir / "report.md").read_text()
    assert "## Training seeds" in text and "(mean of 2 seeds)" in text
    phases = {(p["strategy"], p["phase"]) for p in json.loads((run_dir / "timings.json").read_text())["phases"]}
    assert ("finetune", "extra seeds") in phases and ("prompt", "extra seeds") not in phases  # the second training
