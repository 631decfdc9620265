"""The `label` scorer: answers mapped to labels, scikit-learn's per-class figures, bad label sets refused, and a
compare of a real classification fixture (tests/assets/tasks/tiny_labels) on the embedded model."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from harness.config import TaskConfig, load_task_config
from harness.data import Example
from harness.errors import ConfigError, DataError
from harness.scorers.label import INVALID, LabelScorer, labels_problem, map_label, normalize_label, vocabulary
from tests.conftest import ASSETS, write_task

MODULES = ["math", "os.path", "shutil", "statistics", "utils"]


@pytest.mark.parametrize("answer, label, rule", [
    ("Utils.", "utils", "exact"),
    ("  MATH  ", "math", "exact"),
    ("**os.path**", "os.path", "exact"),
    ("os.path.join", "os.path", "first line"),           # a dotted name under a label
    ("shutil\nbecause it copies files", "shutil", "first line"),
    ("math module, I think", "math", "first line"),
    ("The answer is statistics.", "statistics", "one label named"),
    ("It is in shutil; shutil copies files.", "shutil", "one label named"),  # repeated, not ambiguous
    ("unknown", INVALID, "no label"),
    ("", INVALID, "no label"),
    ("either math or statistics", INVALID, "several labels"),
    ("uses os.getcwd and mathematics", INVALID, "no label"),  # `os`, `math` only inside other words
])
def test_answers_map_to_one_label_or_invalid(answer, label, rule):
    assert map_label(answer, vocabulary(MODULES)) == (label, rule)


def test_a_label_inside_a_longer_one_is_the_longer_one():
    vocab = vocabulary(["spam", "not spam"])
    assert map_label("I would say it is not spam.", vocab) == ("not spam", "one label named")
    assert map_label("Not spam at all", vocab) == ("not spam", "first line")
    assert map_label("This is spam", vocab) == ("spam", "one label named")
    # A number is no dotted name: "1.5" names neither 1 nor 5.
    assert map_label("1.5", vocabulary(["1", "5"]))[0] == INVALID


def test_normalization_keeps_names_whole():
    assert normalize_label(" Utils. ") == "utils"
    assert normalize_label("os.path") == "os.path" and normalize_label("x-ray!") == "x-ray"
    assert normalize_label("snake_case, 'quoted'") == "snake_case quoted"


@pytest.mark.parametrize("labels, problem", [
    (["only"], "at least 2"),
    (["Yes", "yes."], "same label once normalized"),
    (["yes", "Invalid"], "reserved"),
    (["yes", "?!"], "only punctuation"),
])
def test_label_sets_that_cannot_classify_are_refused(labels, problem):
    assert problem in labels_problem(labels)


def _examples(references: list[str]) -> list[Example]:
    return [Example(f"q{i}", f"question {i}", output=r, origin=f"test.jsonl:{i + 1}") for i, r in enumerate(references)]


def _scorer(labels: list[str]) -> LabelScorer:
    return LabelScorer(dataclasses.replace(TaskConfig(), scorer="label", labels=labels), ASSETS)


def test_figures_are_scikit_learns_and_a_hand_count():
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    refs = ["a", "a", "b", "b", "c", "c", "c", "a"]
    answers = ["A", "b.", "B", "I don't know", "c", "The label is c", "a", "maybe a or b"]
    scored = _scorer(["a", "b", "c", "d"]).score_all(answers, _examples(refs))
    predicted = [d["label"] for d in scored.details]
    assert predicted == ["a", "b", "b", INVALID, "c", "c", "a", INVALID]
    assert scored.scores == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    f = scored.summary
    # By hand: a P 1/2 R 1/3 F1 2/5; b P 1/2 R 1/2 F1 1/2; c P 1 R 2/3 F1 4/5; d has no test items.
    assert f["macro_f1"] == pytest.approx((2 / 5 + 1 / 2 + 4 / 5) / 3)
    assert f["macro_f1"] == pytest.approx(f1_score(refs, predicted, labels=["a", "b", "c"], average="macro"))
    precision, recall, _, support = precision_recall_fscore_support(refs, predicted, labels=["a", "b", "c"])
    for label, p, r, s in zip("abc", precision, recall, support):
        assert (f["per_class"][label]["precision"], f["per_class"][label]["recall"]) == pytest.approx((p, r))
        assert f["per_class"][label]["support"] == s
    assert f["per_class"]["d"] == {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0}
    assert f["accuracy"] == 0.5 and f["invalid"] == 2 and f["invalid_rate"] == 0.25
    assert f["confusion"]["columns"] == ["a", "b", "c", "d", INVALID]
    assert f["confusion"]["matrix"] == [[1, 1, 0, 0, 1], [0, 1, 0, 0, 1], [1, 0, 2, 0, 0], [0, 0, 0, 0, 0]]


def test_a_reference_outside_the_listed_labels_is_bad_data():
    with pytest.raises(DataError, match=r"^test.jsonl:2: field 'output': 'maybe' is not one of the labels"):
        _scorer(["yes", "no"]).score_all(["yes", "no"], _examples(["yes", "maybe"]))


def test_one_listed_label_is_a_config_error_naming_the_line(tmp_path):
    folder = write_task(tmp_path / "t", "data:\n  file: d.jsonl\nscorer: label\nlabels: [positive]\n", {"d.jsonl": ""})
    with pytest.raises(ConfigError, match=r"task.yaml:4: field 'labels': lists 1 label\(s\)"):
        load_task_config(folder / "task.yaml")


def _labelled_task(tmp_path, train: list[str], test: list[str]):
    from harness.task import load_task

    def rows(outputs: list[str], tag: str) -> str:  # distinct prompts: no contamination between the splits
        return "".join(json.dumps({"id": f"{tag}{i}", "instruction": f"{tag} item {i}", "output": o}) + "\n"
                       for i, o in enumerate(outputs))

    folder = write_task(tmp_path / "t", "data:\n  train: train.jsonl\n  test: test.jsonl\n  dev_fraction: 0\n"
                        "scorer: label\n", {"train.jsonl": rows(train, "tr"), "test.jsonl": rows(test, "te")})
    return load_task(str(folder))


def test_labels_read_from_train_warn_about_unseen_test_labels(tmp_path):
    task = _labelled_task(tmp_path, ["yes", "no", "Yes."], ["yes", "maybe"])
    assert any("1 test item(s) have a label no train or dev example has ('maybe'" in w for w in task.data.warnings)
    scored = LabelScorer(task.config, task.folder).score_all(["yes", "maybe"], task.data.test)
    assert scored.summary["labels_from"] == "train and dev outputs"
    assert scored.summary["confusion"]["labels"] == ["no", "yes", "maybe"]  # the unseen label keeps its row
    assert scored.scores == [1.0, 0.0] and scored.details[1]["label"] == INVALID


def test_one_label_in_the_training_data_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"task.yaml:5: field 'labels': empty, so the labels are the train and dev "
                                          r"outputs, and lists 1 label"):
        _labelled_task(tmp_path, ["yes", "YES"], ["yes"])


def test_the_report_shows_per_class_figures_and_a_confusion_plot():
    from harness.report_label import confusion_plot, label_body
    from harness.run_schema import StrategyMetrics

    f = _scorer(["a", "b", "c", "d"]).score_all(["a", "b", "x"], _examples(["a", "b", "b"])).summary
    numbers = dict.fromkeys(("n", "score", "ci_low", "ci_high", "latency_p50", "latency_p95", "compute_per_answer",
                             "prompt_tokens_mean", "completion_tokens_mean"), 1.0)
    record = {"strategy": "arm", "status": "ok", **numbers, "scoring": f}
    metrics = {"arm": StrategyMetrics.from_dict(record, "metrics.json")}
    plot = confusion_plot("arm", f)
    body, plots = label_body(metrics, {plot.file: plot})
    assert plots == ("plot_confusion_arm.png",)
    assert "macro-F1 0.833" in body and "invalid answers 33.3% (1 of 3 items" in body
    assert "| `b`     | 1.000" in body and "| `d`     | —" in body  # b: precision 1, recall 1/2; d: never answered
    ax = plot.figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d", INVALID]
    assert ax.get_ylabel() == "reference label" and plot.figure.axes[1].get_ylabel() == "items"


@pytest.mark.slow
def test_compare_on_a_classification_task_reports_macro_f1_and_a_confusion_plot(tmp_path):
    from harness.runner import compare
    from harness.task import load_task

    folder = shutil.copytree(ASSETS / "tasks" / "tiny_labels", tmp_path / "tiny_labels")
    fields = {f.name for f in dataclasses.fields(TaskConfig().prompt)}
    # The prompt search (when present) is not what this test is about; it costs a dev pass per candidate.
    task = load_task(str(folder), overrides=["prompt.search=false"] if "search" in fields else [])
    run_dir = compare(task, tmp_path / "results", strategies=["prompt"], log=lambda _: None)

    metrics = json.loads((run_dir / "prompt" / "metrics.json").read_text())
    figures = metrics["scoring"]
    assert figures["kind"] == "label" and figures["n"] == 12 and 0.0 <= figures["macro_f1"] <= 1.0
    assert metrics["score"] == pytest.approx(figures["accuracy"])
    assert set(figures["per_class"]) == {"math", "os.path", "shutil", "statistics"}
    assert sum(map(sum, figures["confusion"]["matrix"])) == 12
    records = [json.loads(line) for line in (run_dir / "prompt" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["label"] in {*figures["per_class"], INVALID} for r in records)
    assert all(r["score"] == float(r["label"] == r["reference_label"]) for r in records)
    assert sum(r["label"] == INVALID for r in records) == figures["invalid"]

    report = (run_dir / "report.md").read_text()
    assert "## Classification" in report and f"macro-F1 {figures['macro_f1']:.3f}" in report
    assert "| label        | precision (0-1)" in report and "| `os.path`" in report
    assert (run_dir / "plot_confusion_prompt.png").stat().st_size > 1000
    assert "![prompt: confusion matrix" in report and "plot_confusion_prompt.png" in report
    assert "confusion matrix" in (run_dir / "report.html").read_text()
