"""`finetune.train_with_context` end to end: real embedded model, MiniLM, FAISS, TRL, lm-eval.

One compare of `finetune` and `rag_finetune` with the option on trains two adapters (8 short examples,
one epoch of two steps each): rag_finetune's on prompts with retrieved passages, named by its own
content id and scored on MMLU as weights of its own. A second compare with the option off reuses the
plain adapter and points at finetune's folder instead of copying it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ASSETS

pytestmark = pytest.mark.slow

YAML = """
rag: {k: 3, chunk_tokens: 32, chunk_overlap: 8}
finetune:
  max_train_examples: 8
  epochs: 1
  batch_size: 4
  warmup_steps: 0
  learning_rate: 0.001
  train_with_context: true
  context_k: 2
  distractor_share: 0.5
"""
DOC = """# Signatures

abc.ABCMeta.register(cls, subclass) registers a virtual subclass of an abstract base class.

abc.abstractmethod(funcobj) marks a method abstract; abc.abstractproperty(fget, fset, fdel, doc) is deprecated.

argparse.ArgumentParser.parse_args(self, args, namespace) turns command-line strings into a namespace.

base64.b64encode(s, altchars) encodes bytes; base64.b16decode(s, casefold) decodes hexadecimal.

bisect.bisect_left(a, x, lo, hi, key) finds the leftmost insertion point in a sorted list.
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both compares, in a private cache that shares the converted models with the real one."""
    from harness.models import cache_root, resolve_model
    from harness.runner import compare
    from harness.task import load_task

    resolve_model("embedded:smollm2-135m-instruct")
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").symlink_to(cache_root() / "models")
    folder = Path(shutil.copytree(ASSETS / "tasks" / "tiny", tmp_path_factory.mktemp("task") / "tiny"))
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + YAML)
    (folder / "docs").mkdir()
    (folder / "docs" / "signatures.md").write_text(DOC)
    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FTRAG_CACHE", str(cache))
        task = load_task(str(folder))
        on = compare(task, results / "on", strategies=["finetune", "rag_finetune"], limit=2, log=lambda *a: None)
        ft = dataclasses.replace(task.config.finetune, train_with_context=False)
        plain = dataclasses.replace(task, config=dataclasses.replace(task.config, finetune=ft))
        off = compare(plain, results / "off", strategies=["finetune", "rag_finetune"], limit=2, log=lambda *a: None,
                      run_benchmarks=False)

    def metrics(run_dir: Path, name: str) -> dict:
        return json.loads((run_dir / name / "metrics.json").read_text())

    return {"cache": cache, "task": task, "on": on, "off": off,
            "ft": metrics(on, "finetune"), "rf": metrics(on, "rag_finetune"),
            "ft_off": metrics(off, "finetune"), "rf_off": metrics(off, "rag_finetune"),
            "bench": json.loads((on / "benchmarks.json").read_text())}


def predictions(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rag_finetune" / "predictions.jsonl").read_text().splitlines()]


def records(cache: Path, key: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (cache / "finetune" / key / f"{split}.jsonl").read_text().splitlines()]


def test_the_context_adapter_is_its_own_training_with_its_facts(runs):
    ft, rf = runs["ft"]["fit"], runs["rf"]["fit"]
    assert runs["ft"]["status"] == runs["rf"]["status"] == "ok"
    key, plain = rf["weights"]["content_id"], ft["weights"]["content_id"]
    assert key != plain and rf["weights"]["adapter_dir"] == "rag_finetune/adapter"
    assert (runs["on"] / "rag_finetune" / "adapter" / "adapter_model.safetensors").is_file()
    d = rf["details"]
    assert (d["train_with_context"], d["context_k"], d["distractor_share"]) == (True, 2, 0.5)
    assert d["distractor_examples"] == round(0.5 * d["train_examples"]) >= 1 and not d["cache_hit"]
    assert d["context_index"] == next(b["content_id"] for b in rf["one_time"] if b["what"] == "index")
    assert "train_with_context" not in ft["details"]  # the plain arm is unchanged
    # One-time cost: the index and this training, nothing of the plain adapter's.
    builds = {b["what"]: b for b in rf["one_time"]}
    assert set(builds) == {"index", "adapter"} and builds["adapter"]["content_id"] == key
    assert builds["adapter"]["seconds"] == d["train_seconds"] > 0 and not builds["adapter"]["reused"]
    # It answers with as many passages as it was trained with.
    assert [len(p["retrieved"]) for p in predictions(runs["on"])] == [2, 2]


def test_the_context_adapter_trained_on_prompts_with_passages(runs):
    cache, rf = runs["cache"], runs["rf"]["fit"]
    train, dev = (records(cache, rf["weights"]["content_id"], s) for s in ("train", "dev"))
    plain = records(cache, runs["ft"]["fit"]["weights"]["content_id"], "train")
    assert len(train) == len(plain) == rf["details"]["train_examples"] and len(dev) == rf["details"]["dev_examples"]
    assert all("[1] docs/signatures.md" in r["prompt"] and "Question:" in r["prompt"] for r in train + dev)
    assert not any("docs/signatures.md" in r["prompt"] for r in plain)
    # The same answers, the same questions; the prompts differ by the passages only.
    assert [r["completion"] for r in train] == [r["completion"] for r in plain]
    test_questions = [e.instruction.splitlines()[-1] for e in runs["task"].data.test]
    assert not any(q in r["prompt"] for q in test_questions for r in train + dev)  # never the test split


def test_benchmarks_score_the_context_adapter_as_weights_of_its_own(runs):
    bench, ft, rf = runs["bench"], runs["ft"]["fit"], runs["rf"]["fit"]
    plain, own = f"adapter:{ft['weights']['content_id']}", f"adapter:{rf['weights']['content_id']}"
    assert bench["by_strategy"] == {"finetune": plain, "rag_finetune": own}
    assert list(bench["weights"]) == ["base", plain, own] and list(bench["forgetting"]) == [plain, own]
    assert all(bench["weights"][w]["mmlu"]["status"] == "ok" and bench["weights"][w]["mmlu"]["n"] == 6
               for w in bench["weights"])


def test_without_the_option_rag_finetune_points_at_finetunes_adapter(runs):
    ft, rf = runs["ft_off"]["fit"], runs["rf_off"]["fit"]
    assert rf["weights"] == ft["weights"] == runs["ft"]["fit"]["weights"]  # the plain adapter, from the cache
    assert rf["weights"]["adapter_dir"] == rf["details"]["adapter_dir"] == "finetune/adapter"
    assert not (runs["off"] / "rag_finetune" / "adapter").exists()  # a reference, not a second copy
    assert rf["details"]["cache_hit"] and "train_with_context" not in rf["details"]
    assert runs["rf_off"]["status"] == "ok" and [len(p["retrieved"]) for p in predictions(runs["off"])] == [3, 3]
