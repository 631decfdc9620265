"""The report's "Served (exported) models": export/<strategy>/served.json (issue 16) becomes a table per exported
strategy in report.md and report.html, a significant drop becomes a warning, a damaged file a warning naming it,
and a run without one reports byte for byte as before."""

import json

import pytest

from harness.report import terminal_summary, write_report
from tests.run_fixture import make_run
from tests.test_report import NEW_LATENCY, SCORES, h2_texts, md_headings

OLLAMA_DOWN = "not run: no Ollama server answers at http://127.0.0.1:11434 (OLLAMA_HOST)"
DROP = "finetune served as q4_k_m (model-q4_k_m.gguf, Q4_K_M, llamacpp) scores significantly lower than in the harness"


def served_row(variant: str, **values) -> dict:
    return {"variant": variant, "file": f"model-{variant}.gguf", "quantization": variant.upper(),
            "backend": "llamacpp", "status": "ok", "test": "McNemar exact", "n": 100, **values}


SERVED = {
    "schema_version": 1, "strategy": "finetune", "scorer": "exact_match", "binary": True, "test_items": 100,
    "arm": {"score": 0.52, "ci_low": 0.42, "ci_high": 0.62, "backend": "llamacpp",
            "quantization": "Q4_1 base + LoRA adapter (f32)", "latency_p50": 0.41},
    "rows": [
        served_row("f16", size_bytes=271_000_000, score=0.52, ci_low=0.42, ci_high=0.62, agreeing_items=97,
                   agreement=0.97, delta=0.0, delta_ci_low=-0.03, delta_ci_high=0.03, p_value=1.0,
                   significant_drop=False, latency_p50=0.38, latency_p95=0.52),
        served_row("q4_k_m", size_bytes=105_000_000, score=0.40, ci_low=0.31, ci_high=0.5, agreeing_items=80,
                   agreement=0.8, delta=-0.12, delta_ci_low=-0.2, delta_ci_high=-0.04, p_value=0.003,
                   significant_drop=True, latency_p50=0.21, latency_p95=0.3),
        {"variant": "ollama", "backend": "ollama", "status": OLLAMA_DOWN}],
    "warnings": ["q4_k_m scores 0.12 lower than finetune (p = 0.003): quantization or template damage"],
    "units": {"size_bytes": "bytes", "latency_p50": "s", "latency_p95": "s", "score": "fraction 0-1"},
}


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path, SCORES, extra_metrics={n: NEW_LATENCY for n in SCORES})


def export(run, strategy: str, content) -> None:
    folder = run / "export" / strategy
    folder.mkdir(parents=True)
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    (folder / "served.json").write_text(text)


def section(md: str, heading: str) -> str:
    start = md.index(f"## {heading}\n")
    end = md.find("\n## ", start + 1)
    return md[start:] if end < 0 else md[start:end]


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """A section's pipe-table rows by their first cell, each as {header: cell}."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {cells[0]: dict(zip(header, cells)) for cells in rows}


def test_served_models_get_a_table_units_and_drop_warnings(run):
    export(run, "finetune", SERVED)
    md = write_report(run).read_text()
    page = (run / "report.html").read_text()
    headings = md_headings(md)
    assert headings[headings.index("Paired comparisons") + 1] == "Served (exported) models"
    assert h2_texts(page) == headings

    served = section(md, "Served (exported) models")
    rows = table_rows(served)
    assert list(rows) == ["finetune, in the harness", "f16 (model-f16.gguf)", "q4_k_m (model-q4_k_m.gguf)", "ollama"]
    arm, f16, q4, ollama = rows.values()
    assert arm["held-out score [95% CI]"] == "0.520 [0.420, 0.620]"
    assert arm["quantization"] == "Q4_1 base + LoRA adapter (f32)"
    assert arm["latency p50 / p95 (s)"] == "0.41 / —"  # the arm's median is not the metrics' 0.50: no p95 to pair
    assert f16["file size (MiB)"] == "258.4" and q4["file size (MiB)"] == "100.1"  # 271e6 and 105e6 bytes
    assert f16["same answer as in harness (items, %)"] == "97 of 100 (97.0%)"
    assert f16["change vs in harness [95% CI]"] == "+0.000 [-0.030, +0.030]"
    assert f16["p (test)"] == "1 (McNemar exact)" and q4["p (test)"] == "0.003 (McNemar exact)"
    assert f16["latency p50 / p95 (s)"] == "0.38 / 0.52" and q4["held-out score [95% CI]"] == "0.400 [0.310, 0.500]"
    assert ollama["held-out score [95% CI]"] == OLLAMA_DOWN and ollama["file size (MiB)"] == "—"
    assert "Served: the exported GGUF file answering the same 100 held-out items through llama.cpp" in served
    assert "greedy, with the same prompts" in served and "latency in seconds" in served

    warnings = section(md, "Warnings")
    for where in (warnings, served):
        assert DROP in where and "p = 0.003 (McNemar exact)" in where
        assert "q4_k_m scores 0.12 lower than finetune" in where
    assert "served as f16" not in md  # no significant drop, no warning
    assert DROP in page and "Served: the exported GGUF file" in page

    report = json.loads((run / "report.json").read_text())
    assert any(w.startswith(DROP) for w in report["warnings"])
    assert [r["variant"] for r in report["served"]["finetune"]["rows"]] == ["f16", "q4_k_m", "ollama"]
    assert report["units"]["served.*.rows.*.size_bytes"] == "bytes"
    assert report["units"]["served.*.rows.*.latency_p95"] == "s"
    assert "Recommended:" in terminal_summary(run) or "No recommendation." in terminal_summary(run)


def test_missing_keys_fall_back_to_the_metrics_or_a_dash(run):
    """No `arm`, a row with a score only, a row without a status: the arm comes from metrics.json, gaps show —."""
    export(run, "finetune", {"rows": [{"variant": "q8_0", "status": "ok", "score": 0.5}, {"variant": "odd"}]})
    rows = table_rows(section(write_report(run).read_text(), "Served (exported) models"))
    arm = rows["finetune, in the harness"]
    assert arm["held-out score [95% CI]"] == "0.520 [0.420, 0.620]" and arm["n"] == "100"
    assert arm["latency p50 / p95 (s)"] == "0.50 / 0.75"  # single-request latency in the fixture's metrics
    assert rows["q8_0"]["held-out score [95% CI]"] == "0.500" and rows["q8_0"]["p (test)"] == "—"
    assert rows["odd"]["held-out score [95% CI]"] == "not run: no status recorded"


@pytest.mark.parametrize("content, message", [
    ('{"rows": [\n  {"variant": "f16",\n}', "export/finetune/served.json:3: damaged served file"),
    ({"rows": [{"variant": "f16"}, {"variant": "q4", "size_bytes": "big"}]},
     "export/finetune/served.json: damaged served file: field 'rows[1].size_bytes' should be a number, got 'big'"),
    ([1, 2], "export/finetune/served.json: damaged served file: not a JSON object"),
    ({"rows": [{"variant": "f16", "significant_drop": "yes"}]}, "field 'rows[0].significant_drop' should be true"),
])
def test_a_damaged_served_json_is_one_warning_naming_it(run, content, message):
    export(run, "finetune", content)
    export(run, "rag", SERVED)  # another exported strategy still shows
    md = write_report(run).read_text()
    lines = [line for line in section(md, "Warnings").splitlines() if "export/finetune/served.json" in line]
    assert len(lines) == 1 and message in lines[0], lines
    assert "its served models are not shown" in lines[0]
    served = section(md, "Served (exported) models")
    assert "### rag" in served and "### finetune" not in served


def test_without_a_served_json_the_report_is_unchanged(run):
    """Byte for byte: report.md, report.html, report.json; a staging folder (even holding a served.json) and a
    folder without one are not exports."""
    outputs = ("report.md", "report.html", "report.json", "plot_score.png")
    write_report(run)
    before = {name: (run / name).read_bytes() for name in outputs}
    export(run, ".finetune.tmp", SERVED)
    (run / "export" / "rag").mkdir()
    write_report(run)
    assert {name: (run / name).read_bytes() for name in outputs} == before
    assert "served" not in json.loads(before["report.json"])
