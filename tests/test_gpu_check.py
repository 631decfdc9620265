"""harness.gpu_check: the context bisection, the planner's predictions and calibration, the CLI's errors, and
(slow) the --tiny CPU run end to end under an emulated cap; scripts/device/val_loss_epochs.py's CPU side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import gpu_check
from harness.training import planner
from tests.conftest import ROOT


def threshold_probe(limit: int, calls: list[int]):
    """A probe of a setup where exactly the lengths up to `limit` fit (what monotonic memory means)."""
    def probe(n: int) -> dict:
        calls.append(n)
        return {"seq_len": n, "fits": n <= limit, "peak_gib": n / 1000}
    return probe


@pytest.mark.parametrize("limit", [700, 2048, 2049, 5000, 8191])
def test_bisection_finds_the_limit_to_the_resolution_in_few_probes(limit):
    calls: list[int] = []
    found = gpu_check.longest_fitting(threshold_probe(limit, calls), 512, 8192, 128)
    assert found["longest_fits"] <= limit < found["shortest_fails"]
    assert found["shortest_fails"] - found["longest_fits"] <= 128
    assert len(calls) == len(set(calls)) <= 2 + 6  # the two ends, then log2(7680 / 128) halvings
    assert [p["seq_len"] for p in found["probes"]] == sorted(calls)


def test_bisection_uses_known_results_and_reports_the_ends():
    calls: list[int] = []
    known = {2048: {"seq_len": 2048, "fits": True}}
    found = gpu_check.longest_fitting(threshold_probe(3000, calls), 512, 8192, 128, known=known)
    assert 512 not in calls and 2048 not in calls and found["longest_fits"] <= 3000 < found["shortest_fails"]
    nothing = gpu_check.longest_fitting(threshold_probe(100, calls := []), 512, 8192, 128)
    assert (nothing["longest_fits"], nothing["shortest_fails"], calls) == (None, 512, [512])
    everything = gpu_check.longest_fitting(threshold_probe(10**6, calls := []), 512, 8192, 128)
    assert (everything["longest_fits"], everything["shortest_fails"]) == (8192, None)


def test_bisection_stops_at_a_probe_that_failed_for_another_reason():
    def probe(n: int) -> dict:
        return {"seq_len": n, "error": "exit code 1"} if n > 4000 else {"seq_len": n, "fits": True}

    found = gpu_check.longest_fitting(probe, 512, 8192, 128)
    assert found["error"] == "the probe at 8192 tokens failed: exit code 1"
    assert found["longest_fits"] == 512 and found["shortest_fails"] is None


def test_planner_max_context_is_the_longest_estimate_under_the_cap():
    cap = 7.6 * gpu_check.GIB
    n = gpu_check.planner_max_context(planner.LLAMA_31_8B, cap, 8192, "cuda", "unsloth")
    size = lambda k: sum(gpu_check.planner_bytes(planner.LLAMA_31_8B, k, "cuda", "unsloth").values())  # noqa: E731
    assert size(n) <= cap < size(n + 1)
    # Unsloth publishes 2,972 tokens at r=32; the planner over-estimates, so it predicts fewer at r=16.
    assert 2048 < n < 2972
    assert gpu_check.planner_max_context(planner.LLAMA_31_8B, 1 * gpu_check.GIB, 8192, "cuda", "peft") is None


def test_calibration_table_matches_the_shapes_and_stays_conservative_on_8b(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(**gpu_check.LLAMA_31_8B).save_pretrained(str(tmp_path))
    assert planner.model_shape(str(tmp_path), 16) == planner.LLAMA_31_8B
    rows = {r["name"]: r for r in planner.calibration_errors()}
    assert len(rows) == len(planner.CALIBRATION) >= 6
    for point in planner.CALIBRATION:
        row = rows[point.name]
        assert row["error"] == pytest.approx(row["estimate_gb"] / row["measured_gb"] - 1, abs=2e-3)
        if point.shape == planner.LLAMA_31_8B:  # never pass an 8 GB fit that a card refuses
            assert row["error"] > 0, point.name
    assert rows["8B QLoRA, unsloth"]["estimate_gb"] == pytest.approx(7.91, abs=0.005)  # what the H200 run printed
    assert rows["135M demo, unsloth QLoRA"]["estimate_gb"] == pytest.approx(1.78, abs=0.005)


@pytest.mark.parametrize("args, fragment", [
    (["--cap-gib", "-1"], "argument --cap-gib: must be above 0, got -1"),
    (["--cap-gib", "eight"], "argument --cap-gib: expected a float, got 'eight'"),
    (["--max-context"], "argument --max-context: needs --cap-gib"),
    (["--engines", "peft,jax"], "argument --engines: expected names from unsloth, peft, got 'peft,jax'"),
])
def test_bad_arguments_are_one_line_naming_the_option(args, fragment):
    proc = subprocess.run([sys.executable, "-m", "harness.gpu_check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr


@pytest.mark.slow
def test_tiny_cpu_run_bisects_under_an_emulated_cap(tmp_path):
    """The whole pipeline on CPU: model build, the main run and each probe in its own process, results on disk.
    A 0.1 GiB cap puts the tiny model's limit between 256 and 2048 tokens (peak RSS growth ~0.04 GiB at 256,
    ~0.12 GiB at 2048)."""
    cmd = [sys.executable, "-m", "harness.gpu_check", "--tiny", "--cap-gib", "0.1", "--max-context", "--engines",
           "peft", "--steps", "3", "--context-ceiling", "2048", "--context-resolution", "512", "--out-dir",
           str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (day,) = tmp_path.iterdir()
    results = json.loads((day / "gpu_check.json").read_text())
    main_run = results["engines"]["peft"]
    assert main_run["seq_len"] == 256 and main_run["memory_measured_as"] == "peak RSS growth (CPU emulation)"
    assert main_run["peak_reserved_gib"] is None and len(main_run["losses"]) == 3
    search = results["max_context"]["peft"]
    assert "error" not in search and search["floor"] == 128 and search["ceiling"] == 2048
    for p in search["probes"]:  # each verdict is the measured growth against the cap
        assert p["fits"] == (p["peak_gib"] <= 0.1), p
    assert search["longest_fits"] is not None and search["shortest_fails"] is not None
    assert 0 < search["shortest_fails"] - search["longest_fits"] <= 512
    assert search["planner_longest"] is not None
    text = (day / "gpu_check.md").read_text()
    assert "emulated on CPU by each process's peak RSS growth" in text and "not a CUDA measurement" in text
    assert "| peft | float32 LoRA | 256 |" in text and "peak RSS growth (GiB)" in text
    assert f"| peft | {search['longest_fits']} | {search['shortest_fails']} |" in text
    assert "## Planner calibration" in text and "| 8B QLoRA, unsloth (" in text and "+17% |" in text


def test_val_loss_script_parses_its_arguments_and_needs_cuda_or_dry_run():
    script = ROOT / "scripts" / "device" / "val_loss_epochs.py"
    helped = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert helped.returncode == 0 and "--dry-run" in helped.stdout and "0.02283" in helped.stdout
    bad = subprocess.run([sys.executable, str(script), "--engines", "jax"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode == 2 and "argument --engines: expected names from unsloth, peft" in bad.stderr
    import torch

    if torch.cuda.is_available():
        return  # there, the plain run trains: a device check, not a test
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert plain.returncode == 0 and "no CUDA device here; nothing was trained" in plain.stdout


def test_a_failed_allocation_counts_as_out_of_memory_and_other_errors_do_not():
    import torch

    with pytest.raises(RuntimeError) as err:
        torch.empty(1 << 60, dtype=torch.uint8)  # 1 EiB: refused by the allocator, nothing is touched
    assert gpu_check.is_out_of_memory(err.value)
    assert not gpu_check.is_out_of_memory(ValueError("shapes do not match"))


def test_cuda_results_render_allocated_and_reserved_and_the_cap_method():
    """The CUDA branch of the report, from a results dict shaped as main() writes it (no CUDA here)."""
    main_run = {"engine": "unsloth", "precision": "4-bit nf4 + bfloat16 LoRA (QLoRA)", "seq_len": 2048,
                "peak_gib": 5.31, "peak_reserved_gib": 5.87, "estimate_gib": 7.366, "planner_error": 0.387,
                "fits": True, "tokens_per_s": 5033.0, "seconds_per_step": 0.407, "trainable_params": 41_943_040,
                "total_params": 8_072_204_288}
    oom = {"engine": "peft", "precision": "4-bit nf4 + bfloat16 LoRA (QLoRA)", "seq_len": 2048, "peak_gib": 7.59,
           "peak_reserved_gib": 7.6, "estimate_gib": 7.366, "planner_error": -0.03, "fits": False, "oom": True,
           "why": "OutOfMemoryError: CUDA out of memory"}
    search = {"floor": 512, "ceiling": 8192, "resolution": 128, "longest_fits": 2944, "shortest_fails": 3072,
              "planner_longest": 2390, "probes": [{"seq_len": 2944, "fits": True}, {"seq_len": 3072, "fits": False}]}
    results = {"started": "2026-11-30T00:00:00+00:00", "device_kind": "cuda", "device": "NVIDIA H200",
               "model": "Llama-3.1-8B architecture, random weights", "cap_gib": 7.6, "card_gib": 139.8,
               "cap_fraction": 7.6 / 139.8, "engines": {"unsloth": main_run, "peft": oom},
               "max_context": {"unsloth": search, "peft": {"not_run": "bitsandbytes not installed"}},
               "planner_calibration": planner.calibration_errors()}
    text = gpu_check.render(results)
    assert "set_per_process_memory_fraction (0.0544 of the card's 139.8 GiB)" in text
    assert "| peak allocated (GiB) | peak reserved (GiB) |" in text and "emulated on CPU" not in text
    assert "| unsloth | 4-bit nf4 + bfloat16 LoRA (QLoRA) | 2048 | 5.31 | 5.87 | 7.366 | +39% | yes | 5033.0 |" in text
    assert "| no: OutOfMemoryError: CUDA out of memory |" in text
    assert "| unsloth | 2944 | 3072 | 2390 | 2944 fits, 3072 no |" in text
    assert "| peft | not run: bitsandbytes not installed |" in text
