"""The run's wall-time record (harness/timings.py): phases timed in order, the report's table, damaged files."""

import time

import pytest

from harness.errors import HarnessError
from harness.timings import UNTIMED, Phase, Stopwatch, parse, rows, terminal_line, wall_time_body


def test_phases_are_kept_in_order_and_a_failing_phase_is_recorded_too():
    clock = Stopwatch()
    with clock.phase("model load"):
        time.sleep(0.02)
    with pytest.raises(RuntimeError), clock.phase("fit", "rag"):
        raise RuntimeError("index build failed")
    record = clock.record()
    assert [(p["strategy"], p["phase"]) for p in record["phases"]] == [("", "model load"), ("rag", "fit")]
    assert record["phases"][0]["seconds"] >= 0.02 and record["unit"] == "s"
    assert record["total_s"] >= sum(p["seconds"] for p in record["phases"])


def test_rows_merge_repeated_phases_put_the_longest_first_and_show_the_untimed_rest():
    phases = [Phase("model load", 2.0), Phase("fit", 30.0, "finetune"), Phase("answer", 10.0, "rag"),
              Phase("answer", 5.0, "rag"), Phase("fit", 0.0, "prompt")]
    table = rows(60.0, phases)
    assert table[0] == ("finetune: fit", 30.0)
    assert dict(table)["rag: answer"] == 15.0  # the same phase of one strategy adds up
    assert dict(table)[UNTIMED] == pytest.approx(13.0)
    assert [s for _, s in table] == sorted((s for _, s in table), reverse=True)
    assert UNTIMED not in dict(rows(47.2, phases))  # under half a second untimed: no row


def test_the_section_and_the_terminal_line_name_the_longest_phase_with_units():
    record = {"unit": "s", "total_s": 600.0,
              "phases": [{"phase": "fit", "seconds": 420.0, "strategy": "finetune"},
                         {"phase": "answer", "seconds": 150.0, "strategy": "rag"}]}
    body = wall_time_body(record, cached_answers=12)
    assert "10 min of wall time" in body and "**finetune: fit**, 7 min (70%)" in body
    assert "12 answers came from the generation cache" in body
    assert "| phase" in body and "wall time (s)" in body and "share (%)" in body and "| 420.0" in body
    shares = [float(line.split("|")[3]) for line in body.splitlines() if line.startswith("| ") and "(%)" not in line]
    assert sum(shares) == pytest.approx(100.0, abs=0.2)
    line = terminal_line(record)
    assert line.startswith("wall time 10 min until the report: finetune: fit 7 min (70%), rag: answer 2 min (25%)")
    assert wall_time_body(None) is None and wall_time_body({}) is None  # a run from before timings.json


@pytest.mark.parametrize(("raw", "where"), [
    ([], "expected an object with a 'phases' list"),
    ({"total_s": 5, "phases": [{"phase": "fit"}]}, "phases[1]: damaged run file: needs 'phase' and 'seconds'"),
    ({"total_s": 5, "phases": [{"phase": "fit", "seconds": "soon"}]}, "phases[1]"),
    ({"total_s": "5", "phases": []}, "total_s: damaged run file"),
])
def test_a_damaged_timings_file_is_named_in_one_line(raw, where):
    with pytest.raises(HarnessError) as err:
        parse(raw, "run/timings.json")
    message = str(err.value)
    assert message.startswith("run/timings.json: ") and where in message and "\n" not in message
