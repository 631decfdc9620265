"""`export` end to end: a real run with a tiny trained adapter (embedded model, PEFT, a few CPU steps), exported with
llama.cpp's own converter and quantizer, its Modelfile template checked, the GGUFs re-scored on the held-out items.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from tests.conftest import ASSETS, ROOT, private_cache

pytestmark = pytest.mark.slow

FINETUNE_YAML = """
finetune:
  max_train_examples: 16
  epochs: 2
  batch_size: 4
  warmup_steps: 0
  learning_rate: 0.001
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    yield from private_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def run_dir(cache, tmp_path_factory) -> Path:
    """A finished run of prompt and finetune on the tiny task (no benchmarks: they are not what is tested)."""
    from harness.runner import compare
    from harness.task import load_task

    folder = Path(shutil.copytree(ASSETS / "tasks" / "tiny", tmp_path_factory.mktemp("task") / "tiny"))
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + FINETUNE_YAML)
    task = load_task(str(folder), overrides=["strategies=[prompt, finetune]", "benchmarks.mmlu=false"])
    return compare(task, tmp_path_factory.mktemp("results"), log=lambda *_: None)


@pytest.fixture(scope="module")
def exported(run_dir) -> Path:
    from harness.export.pipeline import export_run

    return export_run(run_dir, "finetune")


def test_files_and_manifest(exported):
    from harness.export.artifacts import sha256

    manifest = json.loads((exported / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    for name in ("model-f16.gguf", "model-q4_k_m.gguf", "Modelfile", "served.json", "merged/model.safetensors",
                 "served-f16.jsonl", "served-q4_k_m.jsonl"):
        assert name in listed, name
        assert listed[name]["size_bytes"] == (exported / name).stat().st_size
    assert listed["Modelfile"]["sha256"] == sha256(exported / "Modelfile")
    assert manifest["quantizations"] == {"model-f16.gguf": "F16", "model-q4_k_m.gguf": "Q4_K_M"}
    assert manifest["tools"]["llama_cpp_python"]
    assert manifest["template_family"] == "chatml"
    # The 4-bit file is the smaller one; staging folders are gone.
    assert (exported / "model-q4_k_m.gguf").stat().st_size < 0.6 * (exported / "model-f16.gguf").stat().st_size
    assert [p.name for p in exported.parent.iterdir()] == ["finetune"]


def test_modelfile_renders_as_the_tokenizer(exported, run_dir):
    from harness.export import modelfile

    parsed = modelfile.parse_modelfile((exported / "Modelfile").read_text())
    assert parsed["FROM"].endswith("model-q4_k_m.gguf")
    config = json.loads((run_dir / "config.json").read_text())
    assert parsed["SYSTEM"] == config["prompt"]["system"]
    stops = [v for k, v in parsed["PARAMETER"] if k == "stop"]
    assert "<|im_end|>" in stops and "\n" in stops  # the end token, and the task's stop string
    assert ("temperature", "0") in parsed["PARAMETER"]
    render_hf = modelfile.hf_renderer(exported / "merged")
    conversations = modelfile.probe_conversations(config["prompt"]["system"], "def f(a, b=1, *c)")
    assert modelfile.check_template(parsed["TEMPLATE"], render_hf, conversations,
                                    modelfile_system=config["prompt"]["system"]) == []


def test_f16_answers_as_transformers_and_4bit_within_tolerance(exported):
    """Greedy answers of the merged model in transformers (float32) and of its f16 GGUF in llama.cpp: f16 rounding
    may flip a near-tie token, so at least 3 of 4 prompts must match. The 4-bit file is held to its served row:
    the same answer as in the harness on at least half the held-out items (stdlib_signatures measured 283 of 300);
    on free prompts far from its training a 4-bit model of 135M parameters drifts more (1 of these 4 matched)."""
    from harness.backends.hf import TransformersBackend
    from harness.backends.llamacpp import LlamaCppBackend

    prompts = [[{"role": "system", "content": "Reply with the parameter names only."},
                {"role": "user", "content": text}]
               for text in ("def copy(src, dst, *, follow_symlinks=True)", "def sleep(secs)",
                            "What is the capital of France?", "def join(a, *p)")]
    reference = [g.text for g in TransformersBackend(str(exported / "merged"), use_cache=False)
                 .generate(prompts, 16, ["\n"], 1)]
    f16 = [g.text for g in LlamaCppBackend(str(exported / "model-f16.gguf"), use_cache=False)
           .generate(prompts, 16, ["\n"], 1)]
    assert sum(a == b for a, b in zip(reference, f16)) >= 3, (reference, f16)
    q4 = json.loads((exported / "served.json").read_text())["rows"][1]
    assert q4["variant"] == "q4_k_m" and q4["agreement"] >= 0.5, q4


def test_served_rows_in_the_report(exported, run_dir):
    served = json.loads((exported / "served.json").read_text())
    arm = json.loads((run_dir / "finetune" / "metrics.json").read_text())
    assert [r["variant"] for r in served["rows"]] == ["f16", "q4_k_m"]
    f16 = served["rows"][0]
    assert f16["status"] == "ok" and f16["n"] == arm["n"]
    # Same prompts, the same weights up to f16 rounding of the merged deltas: the score stays inside the arm's CI.
    assert arm["ci_low"] <= f16["score"] <= arm["ci_high"]
    assert f16["agreeing_items"] >= arm["n"] - 2
    items = [json.loads(line) for line in (exported / "served-f16.jsonl").read_text().splitlines()]
    assert [i["id"] for i in items] == [json.loads(line)["id"] for line in
                                         (run_dir / "finetune" / "predictions.jsonl").read_text().splitlines()]
    report = (run_dir / "report.md").read_text()
    assert "Served (exported) models" in report and "model-q4_k_m.gguf" in report


def test_refusals_leave_nothing(exported, run_dir):
    from harness.export.pipeline import export_run

    with pytest.raises(HarnessError, match="never overwritten"):
        export_run(run_dir, "finetune")
    with pytest.raises(HarnessError, match="base model"):
        export_run(run_dir, "prompt")
    with pytest.raises(HarnessError, match="--quant Q9_X: not a llama.cpp quantization type"):
        export_run(run_dir, "finetune", quant="Q9_X")
    with pytest.raises(HarnessError, match="--strategy rag: not a strategy"):
        export_run(run_dir, "rag")
    assert [p.name for p in (run_dir / "export").iterdir()] == ["finetune"]
    # From the command line: one line, exit 2.
    proc = subprocess.run([sys.executable, "-m", "harness", "export", str(run_dir), "--strategy", "prompt"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "base model" in proc.stderr


def test_template_mismatch_stops_the_export_and_leaves_nothing(run_dir, tmp_path, monkeypatch, capsys):
    """With only a wrong template family to choose from (no newline after the role), the export fails after its
    files were made: one error line, the two renderings side by side above it, and no export folder."""
    from harness import cli
    from harness.export import modelfile

    copy = Path(shutil.copytree(run_dir, tmp_path / run_dir.name, ignore=shutil.ignore_patterns("export")))
    wrong = "{{- range .Messages }}<|im_start|>{{ .Role }}{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    monkeypatch.setattr(modelfile, "FAMILIES", {"chatml-wrong": wrong})
    assert cli.main(["export", str(copy), "--strategy", "finetune", "--no-rescore"]) == 2
    err = capsys.readouterr().err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("error: no Ollama template family (chatml-wrong)") and "shown above" in last
    assert "| tokenizer chat template" in err and "'<|im_start|>system\\n'" in err
    assert not (copy / "export").exists()
