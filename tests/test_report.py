"""The report builds from a run directory alone; report.md and report.html carry the same sections;
plots have honest axes; numbers carry units; the HTML renders in headless Chromium."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from harness.report import analyze, matrix, write_report
from harness.report_format import duration, usd
from harness.report_plots import figures
from harness.report_render import render_html, render_markdown
from harness.report_sections import build_report
from harness.run_schema import RetrievalMetrics
from tests.conftest import ROOT
from tests.run_fixture import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCORES = {"prompt": [1.0] * 50 + [0.0] * 50, "rag": [1.0] * 80 + [0.0] * 20, "finetune": [1.0] * 52 + [0.0] * 48}
NEW_LATENCY = {"latency_kind": "single request", "throughput": 12.5, "batch_size": 8}
RAG_METRICS = {"retrieval": RetrievalMetrics(k=3, by_source={"n": 40, "hit_at_k": 0.875, "mrr": 0.712},
                                             by_answer={"n": 0}, p50=0.021, p95=0.034, generation_p50=0.48,
                                             generation_p95=0.7, passages_in_prompt_mean=3.0)}
FINETUNE_DETAILS = {
    "engine": "peft", "precision": "float32 LoRA", "device": "cpu", "engine_why": "auto: no GPU",
    "trainable_params": 4884480, "total_params": 139399488, "trainable_percent": 3.5, "train_examples": 900,
    "dev_examples": 100, "longest_sequence_tokens": 94, "train_seconds": 600.0, "steps": 12, "seconds_per_step": 50.0,
    "tokens_per_s": 56.0, "micro_batch": 4, "grad_accum": 1, "gradient_checkpointing": False,
    "memory_estimate_gb": 2.66, "memory_peak_gb": 2.52, "memory_measured_as": "peak RSS",
    "memory_plan": {"reason": "estimate 2.66 GB fits the 23.72 GB budget"}, "epochs_run": 3, "epochs_max": 3,
    "best_epoch": 2, "adapter_dir": "finetune/adapter",
    "epochs": [{"epoch": 0, "train_loss": None, "eval_loss": 2.1}, {"epoch": 1, "train_loss": 1.3, "eval_loss": 0.3},
               {"epoch": 2, "train_loss": 0.2, "eval_loss": 0.1}, {"epoch": 3, "train_loss": 0.1, "eval_loss": 0.12}]}


class HeadingParser(HTMLParser):
    """Text of every <h2> in an HTML document."""

    def __init__(self):
        super().__init__()
        self.headings, self._inside = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._inside = True
            self.headings.append("")

    def handle_endtag(self, tag):
        self._inside = self._inside and tag != "h2"

    def handle_data(self, data):
        if self._inside:
            self.headings[-1] += data


def h2_texts(html: str) -> list[str]:
    parser = HeadingParser()
    parser.feed(html)
    return [h.strip() for h in parser.headings]


def md_headings(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.MULTILINE)


@pytest.fixture
def run_dir(tmp_path):
    """An old-style run: metrics without latency_kind or throughput, no fit details."""
    return make_run(tmp_path, SCORES, fit_seconds={"rag": 12.0, "finetune": 600.0})


@pytest.fixture
def full_run(tmp_path):
    """A current run: single-request latency, retrieval quality, a trained adapter, cached answers."""
    extra = {"prompt": {**NEW_LATENCY, "cached_answers": 7}, "rag": {**NEW_LATENCY, **RAG_METRICS},
             "finetune": NEW_LATENCY}
    details = {"rag": {"chunks": 11, "index_build_s": 0.0001, "index_bytes": 16941, "build_s": 12.0},
               "finetune": FINETUNE_DETAILS, "prompt": {"k_shot": 2, "shot_ids": ["a", "b"]}}
    return make_run(tmp_path, SCORES, name="full", extra_metrics=extra, fit_details=details)


def test_report_files_rebuild_from_run_dir(run_dir):
    md = write_report(run_dir).read_text()
    data = json.loads((run_dir / "report.json").read_text())
    assert data["verdict"]["choice"] == "rag"
    for key in ("schema_version", "strategies", "pairs", "verdict", "criteria", "break_even_answers", "warnings"):
        assert key in data
    assert "Recommended: rag" in md and "only a fixture" in md
    assert "| prompt" in md and "0.800 [" in md  # rag's score with its CI
    assert "cost per 1,000 answers (USD)" in md and "latency p50 / p95 (s)" in md
    for plot in ("plot_score.png", "plot_score_vs_cost.png", "plot_latency.png"):
        assert (run_dir / plot).read_bytes()[:4] == b"\x89PNG" and f"]({plot})" in md
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "report.md").read_text() == md


def test_html_carries_every_markdown_section_and_detail(full_run):
    md = write_report(full_run).read_text()
    page = (full_run / "report.html").read_text()
    headings = md_headings(md)
    assert headings == ["Warnings", "Verdict", "Decision matrix", "Plots", "Paired comparisons", "Criteria",
                        "Retrieval", "Fine-tune", "Strategy details", "Setup"]
    assert h2_texts(page) == headings
    for text in ("single-request latency", "$0.10/h (CPU)", "reused from the generation cache", "prompt 7",
                 "hit@3 0.875, MRR 0.712", "Engine: peft", "estimated 2.66 GB, measured 2.52 GB",
                 "Run directory:", "12.5 at batch size 8", "index build: 0.0001 s", "index: 16.9 kB",
                 "k shot: 2"):
        assert text in md and text in page, text
    assert page.count("data:image/png;base64,") == 4  # score, score vs cost, latency, loss curve
    assert "](plot_loss_finetune.png)" in md and (full_run / "plot_loss_finetune.png").is_file()


def test_no_recommendation_renders_reasons_and_caveats(run_dir):
    a = analyze(run_dir)
    verdict = {**a.verdict, "choice": None, "candidates": [],
               "reasons": ["Only one strategy ran: nothing to compare it with."],
               "caveats": ["The test set has 100 items: differences under 10 points are noise."]}
    report = build_report(dataclasses.replace(a, verdict=verdict,
                                              warnings=["<script>alert(1)</script> in a file name"]))
    md, page = render_markdown(report), render_html(report, {name: b"png" for name in report.plots})
    for out in (md, page):
        assert "No recommendation." in out and "Recommended: None" not in out
        assert "Only one strategy ran: nothing to compare it with." in out
        assert "differences under 10 points are noise." in out
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert h2_texts(page) == md_headings(md)


def test_not_run_strategy_has_a_dash_and_n_stays_an_integer(tmp_path):
    run = make_run(tmp_path, {"prompt": [1.0] * 30 + [0.0] * 90}, not_run={"finetune": "crashed"})
    cells = matrix(analyze(run)).set_index("strategy")
    assert cells.loc["prompt", "n"] == "120" and cells.loc["finetune", "n"] == "—"
    assert cells.loc["finetune", "held-out score [95% CI]"] == "not run: crashed"
    assert cells.loc["prompt", "one-time cost (USD)"] == "$0 (nothing to build)"
    md = write_report(run).read_text()
    assert "120.0" not in md and "| —" in md


def test_old_run_labels_latency_as_batch_wall_time(run_dir):
    a = analyze(run_dir)
    header = [c for c in matrix(a).columns if c.startswith("latency")]
    assert header == ["latency p50 / p95 (s), batch wall time per answer (old run)"]
    assert "throughput (answers/s)" not in matrix(a).columns
    latency = figures(a)["plot_latency.png"].figure.axes[0]
    assert latency.get_ylabel() == "batch wall time per answer (old run) (s)" and latency.get_ylim()[0] == 0


def test_plot_axes_are_bounded_and_say_their_units(full_run):
    plots = figures(analyze(full_run))
    score = plots["plot_score.png"].figure.axes[0]
    assert score.get_ylim() == (0, 1)
    cost = plots["plot_score_vs_cost.png"].figure.axes[0]
    assert cost.get_xlim()[0] == 0 and cost.get_ylim() == (0, 1) and "(USD)" in cost.get_xlabel()
    assert plots["plot_latency.png"].figure.axes[0].get_ylabel() == "single-request latency (s)"
    loss = plots["plot_loss_finetune.png"].figure.axes[0]
    assert all(float(t).is_integer() for t in loss.get_xticks())
    for plot in plots.values():
        ax = plot.figure.axes[0]
        assert ax.get_xlabel() and re.search(r"\(.+\)", ax.get_ylabel()), plot.file


@pytest.mark.parametrize("value, text", [
    (0, "$0"), (0.0, "$0"), (8e-6, "< $0.01"), (0.0099, "< $0.01"), (0.01, "$0.010"), (0.0346, "$0.035"),
    (0.1, "$0.10"), (0.654, "$0.65"), (6.463, "$6.46"), (12.35, "$12"), (123.4, "$123"), (6463.0, "$6,460"),
    (-0.5, "-$0.50"), (None, "—")])
def test_usd_has_sensible_precision(value, text):
    assert usd(value) == text


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (0.026, "26 ms"), (0.294, "0.29 s"), (66.4, "66 s"),
                                           (600, "10 min"), (9000, "2.5 h")])
def test_duration_has_a_unit(seconds, text):
    assert duration(seconds) == text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_html_report_renders_in_headless_chromium(full_run, tmp_path):
    import matplotlib.image

    md = write_report(full_run).read_text()
    url = (full_run / "report.html").resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Recommended: rag" in dom
    assert h2_texts(dom) == md_headings(md) and len(md_headings(md)) >= 8
    assert dom.count("<tr>") >= 4 and 'id="decision-matrix"' in dom
    assert dom.count("data:image/png;base64,") == 4
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, *profile, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05  # not a blank page


def test_report_modules_do_not_import_harness_report():
    """harness.report uses the report_* modules; none of them reaches back (no import cycle)."""
    import ast

    for path in sorted((ROOT / "harness").glob("report_*.py")) + [ROOT / "harness/training/summary.py"]:
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "harness.report" not in imported, path


def test_sections_follow_the_facts_of_each_strategy_not_its_name(tmp_path):
    """Retrieval for the two strategies with retrieval metrics, one Fine-tune section for the adapter two
    strategies share (one loss plot), whatever they are called."""
    from tests.test_verdict import four_arms

    names = ("plain", "lookup", "tuned", "tuned_lookup")
    fits = four_arms(names, index_s=12.0, train_s=600.0, details=FINETUNE_DETAILS)
    extra = {n: {**NEW_LATENCY, **(RAG_METRICS if n in ("lookup", "tuned_lookup") else {})} for n in names}
    scores = dict(zip(names, SCORES.values())) | {"tuned_lookup": [1.0] * 81 + [0.0] * 19}
    run = make_run(tmp_path, scores, name="named", extra_metrics=extra, fits=fits)
    md = write_report(run).read_text()
    assert md_headings(md) == ["Warnings", "Verdict", "Decision matrix", "Plots", "Paired comparisons", "Criteria",
                               "Retrieval", "Fine-tune: tuned and tuned_lookup", "Setup"]
    assert "### lookup" in md and "### tuned_lookup" in md
    assert "The same adapter answers for tuned and tuned_lookup" in md
    assert (run / "plot_loss_tuned.png").is_file() and not (run / "plot_loss_tuned_lookup.png").exists()
    assert md.startswith("# fixture: plain vs lookup vs tuned vs tuned_lookup\n")


def test_an_old_run_gets_weights_builds_and_complexity_inferred(full_run):
    """A fit record without typed weights, builds or complexity (fit_details), and benchmarks.json with one
    flat forgetting."""
    bench = {"by_strategy": {"prompt": "base", "rag": "base", "finetune": "finetune"},
             "weights": {"base": {"mmlu": {"status": "ok", "score": 0.3, "stderr": 0.02, "n": 100}},
                         "finetune": {"mmlu": {"status": "ok", "score": 0.29, "stderr": 0.02, "n": 100}}},
             "forgetting": {"mmlu": {"status": "ok", "delta": -0.01, "p_value": 0.5, "significant_drop": False}}}
    (full_run / "benchmarks.json").write_text(json.dumps(bench))
    write_report(full_run)
    a = json.loads((full_run / "report.json").read_text())
    fit = {n: a["strategies"][n]["fit"] for n in SCORES}
    assert fit["finetune"]["weights"] == {"kind": "adapter", "adapter_dir": "finetune/adapter",
                                          "content_id": "finetune/adapter"}
    assert fit["rag"]["weights"]["kind"] == fit["prompt"]["weights"]["kind"] == "base"
    assert [b["what"] for b in fit["finetune"]["one_time"]] == ["adapter"]
    assert fit["rag"]["one_time"][0]["what"] == "index" and fit["rag"]["one_time"][0]["seconds"] == 12
    assert [fit[n]["complexity"] for n in ("prompt", "rag", "finetune")] == [0, 1, 2]
    assert a["strategies"]["finetune"]["cost"]["one_time_compute"] == 600.0  # train_seconds, as before
    assert a["units"]["strategies.*.cost.one_time_compute"] == "s"
    assert a["forgetting"] == {"finetune": bench["forgetting"]}
    assert "Δ -0.010" in matrix(analyze(full_run)).set_index("strategy").loc["finetune", "MMLU (Δ vs base)"]
