"""`compare` end to end on the real embedded model, over a small slice of a demo task."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_compare_prompt_strategy_writes_a_complete_run(tiny_task, tmp_path):
    results = tmp_path / "results"
    proc = run_cli("compare", str(tiny_task), "--results", str(results), "--limit", "6", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (results / "tiny").iterdir()
    assert (run_dir / "manifest.json").is_file()
    for name in ("config.json", "run.json", "environment.json", "split.json", "report.md",
                 "prompt/predictions.jsonl", "prompt/metrics.json"):
        assert (run_dir / name).is_file(), name

    predictions = [json.loads(line) for line in (run_dir / "prompt/predictions.jsonl").read_text().splitlines()]
    split = json.loads((run_dir / "split.json").read_text())
    assert [p["id"] for p in predictions] == split["test_ids"] and len(predictions) == 6
    metrics = json.loads((run_dir / "prompt/metrics.json").read_text())
    fit = metrics["fit"]["details"]  # the prompt searched on dev: k=0, k=2 random or k=2 knn
    assert fit["search"]["dev_items"] == 4 and fit["search"]["chosen"] and len(fit["search"]["candidates"]) == 3
    assert all(p["prompt_tokens"] > (50 if fit["k_shot"] else 10) and p["latency_s"] > 0 for p in predictions)
    assert all(p["score"] in (0.0, 1.0) for p in predictions)  # exact_match
    assert metrics["n"] == 6 and metrics["ci_low"] <= metrics["score"] <= metrics["ci_high"]
    # On llama.cpp (the CPU default) the latency sample's answers are the scoring pass's single-request answers.
    assert metrics["serving"]["backend"] == "llamacpp" and metrics["latency_cached"] == metrics["latency_sample"] > 0
    assert metrics["score"] == sum(p["score"] for p in predictions) / 6
    assert len(fit.get("shot_ids", [])) == (fit["k_shot"] if fit["shot_selection"] == "random" else 0)
    assert not set(fit.get("shot_ids", [])) & set(split["test_ids"])

    report = (run_dir / "report.md").read_text()
    assert "## Dev tuning" in report and f"Chose **{fit['search']['chosen']}**" in report
    assert "| prompt" in report and "latency p50 / p95 (s)" in report and f"{metrics['score']:.3f}" in report
    assert (run_dir / "report.html").is_file() and (run_dir / "report.json").is_file()
    assert "No recommendation." in report and "Only prompt ran" in report  # nothing was compared
    assert "(n=6)" in report  # MMLU column: 6 items scored through lm-eval on the base weights
    assert "skipped: benchmarks.humaneval is false" in report
    assert "only 40 training examples" in report  # the small-data warning reaches the report
    assert "| prompt" in proc.stdout  # the summary table ends the terminal output
    timings = json.loads((run_dir / "timings.json").read_text())  # each phase's wall time, in run order
    phases = [(p["strategy"], p["phase"]) for p in timings["phases"]]
    assert phases == [("", "model load"), ("prompt", "fit"), ("prompt", "answer"), ("prompt", "score"),
                      ("prompt", "latency sample"), ("", "benchmarks (base weights)")]
    assert all(p["seconds"] >= 0 for p in timings["phases"])
    assert sum(p["seconds"] for p in timings["phases"]) <= timings["total_s"]
    assert "## Wall time" in report and "| prompt: answer" in report
    assert "[time] wall time" in proc.stderr  # with the progress lines

    # A second run never overwrites the first, and the report rebuilds from the directory alone.
    assert run_cli("compare", str(tiny_task), "--results", str(results), "--limit", "2", cwd=ROOT).returncode == 0
    runs = sorted((results / "tiny").iterdir())
    assert len(runs) == 2
    second = json.loads((runs[1] / "prompt/metrics.json").read_text())
    assert second["cached_answers"] == 2  # same prompts and settings: nothing generated again
    again = [json.loads(line) for line in (runs[1] / "prompt/predictions.jsonl").read_text().splitlines()]
    assert [(p["prediction"], p["latency_s"]) for p in again] == [(p["prediction"], p["latency_s"])
                                                                   for p in predictions[:2]]
    (run_dir / "report.md").unlink()
    assert run_cli("report", str(run_dir), cwd=ROOT).returncode == 0
    assert (run_dir / "report.md").read_text() == report


def test_malformed_task_gives_one_line_error_and_writes_nothing(tiny_task, tmp_path):
    lines = (tiny_task / "train.jsonl").read_text().splitlines()
    lines[6] = lines[6].replace('"role": "assistant"', '"role": "robot"')
    (tiny_task / "train.jsonl").write_text("\n".join(lines) + "\n")
    results = tmp_path / "results"
    proc = run_cli("compare", str(tiny_task), "--results", str(results), cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: {tiny_task / 'train.jsonl'}:7: field 'messages[1].role': 'robot'")
    assert not results.exists()

    (tiny_task / "task.yaml").write_text((tiny_task / "task.yaml").read_text().replace("k_shot: 2", "k_shot: -1"))
    proc = run_cli("compare", str(tiny_task), "--results", str(results), cwd=ROOT)
    assert proc.returncode == 2 and f"{tiny_task / 'task.yaml'}:" in proc.stderr and "prompt.k_shot" in proc.stderr
    assert not results.exists()
