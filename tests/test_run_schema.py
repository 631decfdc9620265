"""Typed run records: metrics.json and report.json carry schema_version 2 and their units; runs written before
(schema 1, and runs with no schema_version at all), frozen in tests/assets/runs/, still load and render the
same report."""

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report import analyze, load_run, terminal_summary, write_report
from harness.run_schema import SCHEMA_VERSION, StrategyMetrics, units_of
from tests.run_fixture import make_run

ASSETS = Path(__file__).parent / "assets" / "runs"
WRITTEN_AT = "results/fixture/"
"""Where the old runs were when their report was written: the report's Setup names the run directory."""


def old_run(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(ASSETS / name, tmp_path / name))


@pytest.mark.parametrize("name", ["schema1", "unversioned"])
def test_an_old_run_renders_the_same_report(tmp_path, name):
    """report.md rebuilt from an old run's files is the report written when it was made, figure for figure."""
    run = old_run(tmp_path, name)
    before = (run / "report.md").read_text().replace(WRITTEN_AT, f"{tmp_path}/")
    old_json = json.loads((run / "report.json").read_text())
    assert "schema_version" not in json.loads((run / "prompt" / "metrics.json").read_text())
    assert write_report(run).read_text() == before
    page = (run / "report.html").read_text()
    assert "Recommended: rag" in page and page.count("data:image/png;base64,") >= 3
    new = json.loads((run / "report.json").read_text())
    assert old_json["schema_version"] == 1 and new["schema_version"] == SCHEMA_VERSION
    for strategy, old in old_json["strategies"].items():
        m = new["strategies"][strategy]
        assert m["status"] == old["status"]
        if old["status"] != "ok":
            continue
        for key in ("n", "score", "ci_low", "ci_high", "prompt_tokens_mean"):
            assert m[key] == old[key], key
        assert (m["latency_p50"], m["latency_p95"]) == (old["latency_p50_s"], old["latency_p95_s"])
        assert m["compute_per_answer"] == old["compute_per_answer_s"]
        assert m["throughput"] == old.get("throughput_answers_per_s")
        cost = m["cost"]
        assert (cost["one_time"], cost["one_time_compute"], cost["per_1k_answers"], cost["total_at_volume"]) == (
            old["cost"]["one_time_usd"], old["cost"]["one_time_s"], old["cost"]["per_1k_answers_usd"],
            old["cost"]["total_at_volume_usd"])
        assert m["fit"] == old["fit"] and m["benchmarks"] == old["benchmarks"]
    for key in ("verdict", "pairs", "criteria", "what_would_change", "break_even_answers", "forgetting"):
        assert new[key] == old_json[key], key
    assert new["latencies"] == old_json["latencies_s"]


def test_old_names_map_to_the_typed_fields(tmp_path):
    run = load_run(old_run(tmp_path, "schema1"))
    rag, prompt = run.metrics["rag"], run.metrics["prompt"]
    assert rag.retrieval is not None and rag.retrieval.k == 3 and rag.retrieval.hit_at_k == 0.875
    assert (rag.retrieval.p50, rag.retrieval.p95) == (0.021, 0.034) and rag.retrieves
    assert prompt.answer_time == 4.2 and prompt.latency_sample == 20 and prompt.batch_latency_p95 == 0.75
    assert prompt.throughput == 12.5 and prompt.completion_token_rate == 80.0 and prompt.cached_answers == 7
    assert run.metrics["finetune"].record.weights.trained and run.metrics["finetune"].record.complexity == 2
    assert not run.metrics["broken"].ok and run.metrics["broken"].fit is None
    assert prompt.extra == {}  # every schema-1 key has a typed field


def test_metrics_json_carries_schema_version_and_units_and_reads_back(tmp_path):
    run = make_run(tmp_path, {"prompt": [1.0] * 40, "rag": [0.0] * 40}, fit_seconds={"rag": 3.0})
    raw = json.loads((run / "rag" / "metrics.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 2
    assert raw["units"]["latency_p50"] == "s" and raw["units"]["score"] == "fraction"
    assert raw["units"]["fit.one_time.seconds"] == "s" and raw["units"]["retrieval.hit_at_k"] == "fraction"
    assert not [k for k in raw if k.endswith(("_s", "_seconds", "_usd", "_bytes", "_gb", "_per_s"))]
    parsed = StrategyMetrics.from_dict(raw)
    assert json.loads(json.dumps(parsed.to_json())) == raw  # JSON has lists where the record has tuples
    assert load_run(run).metrics["rag"] == parsed


def test_report_json_has_units_for_every_figure_and_reads_back(tmp_path):
    run = make_run(tmp_path, {"prompt": [1.0] * 40, "rag": [0.0] * 40})
    write_report(run)
    raw = json.loads((run / "report.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["units"]["strategies.*.cost.per_1k_answers"] == "USD" and raw["units"]["latencies"] == "s"
    for field, unit in units_of(StrategyMetrics).items():
        assert raw["units"][f"strategies.*.{field}"] == unit
    assert not [k for s in raw["strategies"].values() for k in s["cost"] if k.endswith(("_s", "_usd"))]
    assert "Recommended: prompt" in terminal_summary(run)  # read from report.json, schema 2


def test_terminal_summary_rebuilds_an_old_report_json(tmp_path):
    run = old_run(tmp_path, "schema1")
    assert json.loads((run / "report.json").read_text())["schema_version"] == 1
    summary = terminal_summary(run)
    assert "Recommended: rag" in summary and "0.800 [0.700, 0.900]" in summary


@pytest.mark.parametrize("raw, field", [({"strategy": "x", "status": "ok", "n": 3}, "score"),
                                        ({"strategy": "x", "status": 7}, "status"),
                                        ({"strategy": "x", "status": "ok", "n": 1, "score": "high"}, "score")])
def test_a_damaged_metrics_json_is_named_in_one_line(raw, field):
    with pytest.raises(HarnessError, match=rf"^run/x/metrics.json: damaged run file: field '{field}'"):
        StrategyMetrics.from_dict(raw, "run/x/metrics.json")


def test_analysis_reads_the_typed_records(tmp_path):
    a = analyze(old_run(tmp_path, "unversioned"))
    assert a.strategies["rag"].latency_kind is None and a.costs["finetune"].one_time_compute == 600.0
    assert a.verdict["choice"] == "rag"
