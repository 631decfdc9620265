"""Regression checks on fixture runs that differ in known items."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.errors import HarnessError
from harness.regress import INCOMPARABLE, OK, REGRESSED, bless, blessed_run, compare_runs, write_outputs
from tests.conftest import ROOT
from tests.run_fixture import make_run

N = 100
GOOD = [1.0] * 80 + [0.0] * 20


def test_identical_runs_pass(tmp_path):
    base = make_run(tmp_path, {"prompt": GOOD}, name="a")
    new = make_run(tmp_path, {"prompt": GOOD}, name="b")
    result = compare_runs(base, new)
    assert result["status"] == OK
    assert result["strategies"]["prompt"]["newly_wrong"] == [] == result["strategies"]["prompt"]["newly_right"]


def test_diff_lists_exactly_the_flipped_items_and_a_big_drop_regresses(tmp_path):
    worse = list(GOOD)
    for i in range(0, 30):  # items 0..29 become wrong
        worse[i] = 0.0
    worse[95] = 1.0  # item 95 becomes right
    base = make_run(tmp_path, {"prompt": GOOD}, name="a")
    new = make_run(tmp_path, {"prompt": worse}, name="b")
    result = compare_runs(base, new)
    s = result["strategies"]["prompt"]
    assert [f["id"] for f in s["newly_wrong"]] == [f"item{i}" for i in range(30)]
    assert [f["id"] for f in s["newly_right"]] == ["item95"]
    assert result["status"] == REGRESSED
    assert any(p.startswith("prompt.score:") for p in result["problems"])
    write_outputs(result, new)
    suite = ET.parse(new / "regress.junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert "item29" in (new / "regress.md").read_text()


def test_small_drop_within_noise_does_not_regress(tmp_path):
    slightly = list(GOOD)
    slightly[0] = 0.0  # one item: -0.01, inside the 0.02 margin and not significant
    result = compare_runs(make_run(tmp_path, {"prompt": GOOD}, name="a"),
                          make_run(tmp_path, {"prompt": slightly}, name="b"))
    assert result["status"] == OK
    assert [f["id"] for f in result["strategies"]["prompt"]["newly_wrong"]] == ["item0"]


def test_latency_growth_beyond_margin_regresses(tmp_path):
    result = compare_runs(make_run(tmp_path, {"prompt": GOOD}, name="a", latency_s=0.5),
                          make_run(tmp_path, {"prompt": GOOD}, name="b", latency_s=1.0))
    assert result["status"] == REGRESSED and result["problems"][0].startswith("prompt.latency")


def test_changed_test_set_cannot_be_compared(tmp_path):
    base = make_run(tmp_path, {"prompt": GOOD}, name="a")
    new = make_run(tmp_path, {"prompt": GOOD}, name="b", ids=[f"other{i}" for i in range(N)])
    result = compare_runs(base, new)
    assert result["status"] == INCOMPARABLE
    assert "100 blessed test items missing" in result["problems"][0] and "item0" in result["problems"][0]
    assert result["strategies"] == {}


def test_bless_and_cli_exit_codes(tmp_path):
    base = make_run(tmp_path / "fixture", {"prompt": GOOD}, name="a")
    worse = make_run(tmp_path / "fixture", {"prompt": [0.0] * N}, name="b")
    other = make_run(tmp_path / "fixture", {"prompt": GOOD}, name="c", ids=[f"x{i}" for i in range(N)])
    with pytest.raises(HarnessError, match="no blessed run"):
        blessed_run(tmp_path / "fixture")
    bless(base)
    assert blessed_run(tmp_path / "fixture") == base
    assert json.loads((tmp_path / "fixture" / "BLESSED.json").read_text())["run"] == "a"

    def regress(new):
        return subprocess.run([sys.executable, "-m", "harness", "regress", "--base", str(base), "--new", str(new)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120).returncode

    assert regress(base) == 0
    assert regress(worse) == 1
    assert regress(other) == 3
