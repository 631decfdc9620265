"""Real lm-eval on the embedded model over a handful of MMLU and HumanEval items, fully offline.

The run happens in a child process with HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set and, where the OS
allows it, in a network namespace with no network at all: nothing may come from the hub. It scores
the base weights (MMLU by log-likelihood, HumanEval executed in the sandbox), reruns from the cache,
scores base + a small random LoRA adapter through lm-eval's `peft=`, and runs generative MMLU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.benchmarks.sandbox import _unshare_prefix

SETTINGS = {"mmlu_limit": 4, "humaneval_limit": 2, "humaneval_max_new_tokens": 24,
            "allow_code_execution": True, "batch_size": 4}


def run_child(model_path: str, work: Path) -> dict:
    """What the test checks, computed in this file's __main__ (below) in an offline child process."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.benchmarks import forgetting, run_general_benchmarks
    from harness.config import BenchmarksConfig

    def quiet(_: str) -> None:
        pass

    settings = BenchmarksConfig(**SETTINGS)
    base = run_general_benchmarks(model_path, None, settings, quiet, threads=1)
    again = run_general_benchmarks(model_path, None, settings, quiet, threads=1)
    # A real LoRA adapter with random (not zero) B matrices, so it changes the model's outputs.
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_path), lora).save_pretrained(work / "adapter")
    only_mmlu = dataclasses.replace(settings, humaneval=False)
    tuned = run_general_benchmarks(model_path, str(work / "adapter"), only_mmlu, quiet, threads=1)
    shutil.copytree(work / "adapter", work / "next_run" / "adapter")  # each run keeps a copy of its adapter
    moved = run_general_benchmarks(model_path, str(work / "next_run" / "adapter"), only_mmlu, quiet, threads=1)
    generative = run_general_benchmarks(model_path, None, dataclasses.replace(only_mmlu, mmlu_method="generate",
                                                                              mmlu_limit=2), quiet, threads=1)
    return {"base": base, "again": again, "tuned": tuned, "moved": moved, "generative": generative,
            "forgetting": forgetting(base, tuned)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    from harness.models import resolve_model

    model_path = resolve_model("embedded:smollm2-135m-instruct")
    work = tmp_path_factory.mktemp("benchmarks")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "FTRAG_CACHE": str(work / "cache")}
    argv = [*_unshare_prefix(), sys.executable, __file__, model_path, str(work)]
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "result.json").read_text())


@pytest.mark.slow
def test_mmlu_by_loglikelihood_through_lm_eval(runs):
    mmlu = runs["base"]["mmlu"]
    assert (mmlu["status"], mmlu["metric"], mmlu["method"], mmlu["n"]) == ("ok", "acc", "loglikelihood", 4)
    assert set(mmlu["items"].values()) <= {0, 1}
    assert mmlu["score"] == pytest.approx(sum(mmlu["items"].values()) / 4)
    assert mmlu["stderr"] >= 0 and sum(mmlu["subjects"].values()) == 4 and mmlu["cached"] is False
    lines = [json.loads(line) for line in Path(mmlu["samples_file"]).read_text().splitlines()]
    assert len(lines) == 4 and all(len(line["response"]) == 4 for line in lines)  # 4 answer log-likelihoods


@pytest.mark.slow
def test_humaneval_generates_and_executes_in_the_sandbox(runs):
    humaneval = runs["base"]["humaneval"]
    assert (humaneval["status"], humaneval["metric"], humaneval["n"]) == ("ok", "pass@1", 2)
    assert humaneval["score"] == pytest.approx(sum(humaneval["items"].values()) / 2)
    assert set(humaneval["items"]) == {"HumanEval/94", "HumanEval/156"}  # the seed-0 sample of two
    assert "network" in humaneval["sandbox"] and "filesystem" in humaneval["sandbox"]


@pytest.mark.slow
def test_rerun_comes_from_the_cache(runs):
    for name in ("mmlu", "humaneval"):
        first, again = runs["base"][name], runs["again"][name]
        assert again["cached"] is True and again["cache_key"] == first["cache_key"]
        assert again["items"] == first["items"] and again["score"] == first["score"]
    # The same adapter in another run's folder is the same weights: keyed by content, not by path.
    moved, tuned = runs["moved"]["mmlu"], runs["tuned"]["mmlu"]
    assert moved["cached"] is True and moved["cache_key"] == tuned["cache_key"]


@pytest.mark.slow
def test_adapter_is_applied_through_peft(runs):
    base, tuned = runs["base"]["mmlu"], runs["tuned"]["mmlu"]
    assert tuned["adapter"].endswith("adapter") and tuned["cached"] is False
    assert tuned["cache_key"] != base["cache_key"] and set(tuned["items"]) == set(base["items"])
    def logliks(result: dict) -> list:
        return [json.loads(line)["response"] for line in Path(result["samples_file"]).read_text().splitlines()]
    assert logliks(tuned) != logliks(base)  # the LoRA weights changed the model's log-likelihoods
    change = runs["forgetting"]["mmlu"]
    assert change["n_paired"] == 4 and change["delta"] == pytest.approx(tuned["score"] - base["score"])
    assert runs["forgetting"]["humaneval"]["status"] == "skipped"


@pytest.mark.slow
def test_generative_mmlu_extracts_the_answer_letter(runs):
    mmlu = runs["generative"]["mmlu"]
    assert (mmlu["status"], mmlu["metric"], mmlu["method"], mmlu["n"]) == ("ok", "exact_match", "generate", 2)
    lines = [json.loads(line) for line in Path(mmlu["samples_file"]).read_text().splitlines()]
    assert all(line["response"][0] in {"A", "B", "C", "D", "[invalid]"} for line in lines)


if __name__ == "__main__":
    out = Path(sys.argv[2])
    (out / "result.json").write_text(json.dumps(run_child(sys.argv[1], out)))
