"""The report builds from a run directory alone; its HTML renders in headless Chromium."""

import json
import shutil
import subprocess
import sys

import pytest

from harness.report import write_report
from tests.conftest import ROOT
from tests.run_fixture import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path, {"prompt": [1.0] * 50 + [0.0] * 50, "rag": [1.0] * 80 + [0.0] * 20,
                               "finetune": [1.0] * 52 + [0.0] * 48}, fit_seconds={"rag": 12.0, "finetune": 600.0})


def test_report_files_rebuild_from_run_dir(run_dir):
    md = write_report(run_dir).read_text()
    data = json.loads((run_dir / "report.json").read_text())
    assert data["verdict"]["choice"] == "rag"
    for key in ("schema_version", "strategies", "pairs", "verdict", "criteria", "break_even_answers", "warnings"):
        assert key in data
    assert "Recommended: rag" in md and "only a fixture" in md
    assert "| prompt" in md and "0.800 [" in md  # rag's score with its CI
    assert "cost per 1,000 answers (USD)" in md and "latency p50 / p95 (s)" in md
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "report.md").read_text() == md


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_html_report_renders_in_headless_chromium(run_dir, tmp_path):
    import matplotlib.image

    write_report(run_dir)
    url = (run_dir / "report.html").resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Recommended: rag" in dom
    assert dom.count("<tr>") >= 4 and 'id="matrix"' in dom
    assert dom.count("data:image/png;base64,") >= 3  # score, score vs cost, latency
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, *profile, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05  # not a blank page
