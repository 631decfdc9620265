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


def _with_seeds(run, strategy: str, per_seed: list[list[float]]) -> None:
    """Give each prediction of `strategy` its scores under several training seeds (the first is its score)."""
    path = run / strategy / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row, scores in zip(rows, zip(*per_seed)):
        assert row["score"] == scores[0]
        row["seed_scores"] = list(scores)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_multi_seed_arm_is_compared_on_the_mean_of_its_seeds_not_its_first(tmp_path):
    # Blessed: three seeds at 0.80. New: seed 0 is unlucky (0.60, a significant drop on its own) while seeds 1 and
    # 2 score 0.90 and 0.88, so the mean over seeds (0.793) is within the 0.02 margin of the blessed 0.80.
    unlucky = [1.0] * 60 + [0.0] * 40
    base = make_run(tmp_path, {"finetune": GOOD}, name="a")
    new = make_run(tmp_path, {"finetune": unlucky}, name="b")
    _with_seeds(base, "finetune", [GOOD, GOOD, GOOD])
    _with_seeds(new, "finetune", [unlucky, [1.0] * 90 + [0.0] * 10, [1.0] * 88 + [0.0] * 12])
    result = compare_runs(base, new)
    s = result["strategies"]["finetune"]
    assert result["status"] == OK, result["problems"]
    assert s["seeds"] == {"blessed": 3, "new": 3}
    assert "0.800 -> 0.793" in s["checks"][0]["detail"] and "two-level bootstrap" in s["checks"][0]["detail"]
    # Judged on seed 0 alone, the same runs regress.
    alone = compare_runs(make_run(tmp_path, {"finetune": GOOD}, name="c"),
                         make_run(tmp_path, {"finetune": unlucky}, name="d"))
    assert alone["status"] == REGRESSED


def test_every_seed_dropping_regresses_across_seeds(tmp_path):
    worse = [[1.0] * 60 + [0.0] * 40, [1.0] * 62 + [0.0] * 38, [1.0] * 58 + [0.0] * 42]
    base = make_run(tmp_path, {"finetune": GOOD}, name="a")  # one seed blessed
    new = make_run(tmp_path, {"finetune": worse[0]}, name="b")
    _with_seeds(new, "finetune", worse)
    result = compare_runs(base, new)
    assert result["status"] == REGRESSED and result["problems"][0].startswith("finetune.score:")
    assert result["strategies"]["finetune"]["seeds"] == {"blessed": 1, "new": 3}
