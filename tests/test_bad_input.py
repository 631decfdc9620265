"""Bad input, tried as a new user and an attacker would: each case gives exit 2, one `error:` line
naming the file/line/field (or the option), no traceback, and no run directory left behind.

The cases run `python -m harness` in this process (`harness.cli.main`), so a traceback would fail
the test as an exception; a few run it as a real subprocess for the exit code and timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import ROOT
from tests.run_fixture import make_run

TASK_YAML = """\
name: probe
data:
  train: train.jsonl
  test: test.jsonl
prompt:
  system: Answer briefly.
generation:
  max_new_tokens: 4
strategies: [prompt]
benchmarks:
  mmlu: false
  humaneval: false
"""


def record(i: int, **extra) -> dict:
    return {"instruction": f"What is item number {i} called in the catalogue?", "output": f"answer {i}", **extra}


def jsonl(records: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def task(tmp_path: Path) -> Path:
    folder = tmp_path / "probe"
    (folder / "docs").mkdir(parents=True)
    (folder / "task.yaml").write_text(TASK_YAML)
    (folder / "train.jsonl").write_text(jsonl([record(i) for i in range(12)]))
    (folder / "test.jsonl").write_text(jsonl([record(i) for i in range(100, 104)]))
    (folder / "docs" / "notes.md").write_text("Item 100 is called answer 100.\n")
    return folder


def yaml_with(task: Path, old: str, new: str) -> None:
    text = (task / "task.yaml").read_text()
    assert old in text, old
    (task / "task.yaml").write_text(text.replace(old, new))


def left_behind(results: Path) -> list[str]:
    """Every folder the run left under results/, hidden ones included."""
    return sorted(str(p.relative_to(results)) for p in results.rglob("*")) if results.exists() else []


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert fragment in errors[0], errors[0]
    return errors[0]


# Each case: (mutate the task folder -> extra CLI arguments, a fragment of the expected error line).
Mutation = Callable[[Path], list[str]]


def _escape_docs(t: Path) -> list[str]:
    yaml_with(t, "name: probe\n", "name: probe\ndocs: ../outside\n")
    (t.parent / "outside").mkdir()
    return []


def _symlinked_train(t: Path) -> list[str]:
    (t / "train.jsonl").unlink()
    (t / "train.jsonl").symlink_to("/etc/passwd")
    return []


def _deep_json(t: Path) -> list[str]:
    (t / "train.jsonl").write_text('{"instruction": "x", "output": "y", "z": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    return []


def _alias_bomb(t: Path) -> list[str]:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    (t / "task.yaml").write_text(TASK_YAML + "\n".join(lines) + "\n")
    return []


def _symlinked_task_yaml(t: Path) -> list[str]:
    (t.parent / "elsewhere.yaml").write_text(TASK_YAML)
    (t / "task.yaml").unlink()
    (t / "task.yaml").symlink_to(t.parent / "elsewhere.yaml")
    return []


def _results_is_a_file(t: Path) -> list[str]:
    (t.parent / "results-file").write_text("not a folder")
    return ["--results", str(t.parent / "results-file")]


def _not_a_model(t: Path) -> list[str]:
    (t.parent / "empty-model").mkdir()
    return ["--model", str(t.parent / "empty-model")]


def _broken_model(t: Path) -> list[str]:
    model = t.parent / "broken-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama", "vocab_size": ')
    return ["--model", str(model)]


CASES: dict[str, tuple[Mutation, str]] = {
    # reading outside the task folder
    "docs-parent": (_escape_docs, "'docs'"),
    "docs-absolute": (lambda t: yaml_with(t, "name: probe\n", "name: probe\ndocs: /etc\n") or [], "'docs'"),
    "train-parent": (lambda t: yaml_with(t, "train: train.jsonl", "train: ../../../../../etc/passwd") or [],
                     "'data.train'"),
    "train-absolute": (lambda t: yaml_with(t, "train: train.jsonl", "train: /etc/passwd") or [], "'data.train'"),
    "train-symlink-out": (_symlinked_train, "'data.train'"),
    "name-escapes": (lambda t: yaml_with(t, "name: probe", "name: ../escaped") or [], "'name'"),
    "name-absolute": (lambda t: yaml_with(t, "name: probe", "name: /tmp/x") or [], "'name'"),
    # tracebacks before
    "deep-json": (_deep_json, "train.jsonl:1"),
    "huge-int": (lambda t: (t / "train.jsonl").write_text('{"id": ' + "9" * 5000 + ', "instruction": "x", '
                                                         '"output": "y"}\n') and [], "train.jsonl:1"),
    "latin1-yaml": (lambda t: (t / "task.yaml").write_bytes(TASK_YAML.replace("briefly", "br\xe8vement")
                                                             .encode("latin-1")) and [], "task.yaml"),
    "yaml-python-tag": (lambda t: yaml_with(t, "system: Answer briefly.",
                                            "system: !!python/object/apply:os.system ['true']") or [], "task.yaml:"),
    "yaml-unknown-tag": (lambda t: yaml_with(t, "system: Answer briefly.", "system: !secret x") or [], "task.yaml:"),
    "yaml-alias-bomb": (_alias_bomb, "task.yaml"),
    "results-is-a-file": (_results_is_a_file, "--results"),
    "results-unwritable": (lambda t: ["--results", "/proc/ftrag-results"], "--results"),
    # accepted but wrong before
    "array-trailing-garbage": (lambda t: (t / "train.jsonl").write_text(
        json.dumps([record(i) for i in range(12)]) + ' {"instruction": "lost"}\n') and [], "train.jsonl:"),
    "array-missing-comma": (lambda t: (t / "train.jsonl").write_text(
        "[" + json.dumps(record(1)) + "\n" + json.dumps(record(2)) + "]\n") and [], "train.jsonl:2"),
    "system-mid-chat": (lambda t: (t / "train.jsonl").write_text(jsonl([{"messages": [
        {"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a"}]}])) and [], "messages[1]"),
    "nan-learning-rate": (lambda t: (t / "task.yaml").write_text(TASK_YAML + "finetune:\n  learning_rate: .nan\n")
                          and [], "'finetune.learning_rate'"),
    "nan-in-data": (lambda t: (t / "train.jsonl").write_text('{"instruction": "x", "output": "y", "w": NaN}\n')
                    and [], "train.jsonl:1"),
    "duplicate-yaml-key": (lambda t: (t / "task.yaml").write_text(TASK_YAML + "strategies: [rag]\n") and [],
                           "'strategies'"),
    "empty-stop": (lambda t: yaml_with(t, "max_new_tokens: 4", 'max_new_tokens: 4\n  stop: [""]') or [],
                   "'generation.stop'"),
    "template-literal-brace": (lambda t: yaml_with(t, "system: Answer briefly.", 'system: Answer briefly.\n'
                                                   '  template: "Return JSON like {\\"a\\": 1}: {instruction}"')
                               or [], "'prompt.template'"),
    "template-unknown-field": (lambda t: yaml_with(t, "system: Answer briefly.", "system: Answer briefly.\n"
                                                   "  template: '{question}'") or [], "'prompt.template'"),
    "lone-surrogate": (lambda t: (t / "test.jsonl").write_text('{"instruction": "x", "output": "bad \\ud800"}\n')
                       and [], "test.jsonl:1: field 'output'"),
    "huge-example": (lambda t: (t / "train.jsonl").write_text(json.dumps(record(1, input="x" * 50_000_000)) + "\n")
                     and [], "train.jsonl:1"),
    "limit-zero": (lambda t: ["--limit", "0"], "--limit"),
    "limit-negative": (lambda t: ["--limit", "-1"], "--limit"),
    "strategies-empty": (lambda t: ["--strategies", ","], "--strategies"),
    "strategies-twice": (lambda t: ["--strategies", "prompt,prompt"], "--strategies"),
    "no-strategies": (lambda t: yaml_with(t, "strategies: [prompt]", "strategies: []") or [], "'strategies': is empty"),
    "no-train-left": (lambda t: (t / "train.jsonl").write_text(jsonl([record(1)])) and [],
                      "'data.train': no training examples left"),
    "data-fifo": (lambda t: (t / "train.jsonl").unlink() or os.mkfifo(t / "train.jsonl") or [],
                  "'data.train': not a regular file"),
    "task-yaml-symlink-out": (_symlinked_task_yaml, "a symlink out of the task folder"),
    # model loading
    "model-missing-path": (lambda t: ["--model", str(t.parent / "no-such-model")], "--model: local model"),
    "model-not-a-model": (_not_a_model, "--model: "),
    "model-unknown-embedded": (lambda t: ["--model", "embedded:no-such-model"], "--model: unknown embedded"),
    "model-broken-config": (_broken_model, "--model: "),
    "model-in-yaml-missing": (lambda t: yaml_with(t, "strategies: [prompt]", "strategies: [prompt]\nmodel:\n"
                                                  "  name: ./no-such-model") or [],
                              "task.yaml:11: field 'model.name': local model directory not found"),
    "embedding-model-missing": (lambda t: yaml_with(t, "strategies: [prompt]", "strategies: [rag]\nrag:\n"
                                                    "  embedding_model: /no/such/encoder") or [],
                                "task.yaml:11: field 'rag.embedding_model'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_and_leaves_no_run(case, task, tmp_path, capsys):
    mutate, fragment = CASES[case]
    results = tmp_path / "results"
    extra = mutate(task)
    argv = ["compare", str(task), "--no-benchmarks"]
    if "--results" not in extra:
        argv += ["--results", str(results)]
    try:
        code, _, err = run(capsys, *argv, *extra)
    except SystemExit as exc:  # argparse rejects an option value, in one line
        code, err = int(exc.code or 0), capsys.readouterr().err
        assert_one_line_error(code, err, fragment)
        assert len(err.strip().splitlines()) == 1, err
        assert left_behind(results) == []
        return
    assert_one_line_error(code, err, fragment)
    assert left_behind(results) == [], "a run directory was left behind"
    assert not (task.parent / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_legal_json_that_splitlines_would_break_still_loads(task, capsys):
    odd = [record(i, input=f"part one\u2028part two\u0085three\x0bfour\x0c{i}") for i in range(12)]
    (task / "train.jsonl").write_text(jsonl(odd).replace("\\u2028", "\u2028").replace("\\u0085", "\u0085"))
    code, out, err = run(capsys, "validate", str(task))
    assert code == 0, err
    assert out.startswith("probe: ") and " / 4 test" in out
    from harness.data import load_examples

    examples, _ = load_examples(task / "train.jsonl")
    assert len(examples) == 12 and examples[0].input == "part one\u2028part two\u0085three\x0bfour\x0c0"


def test_duplicate_training_examples_are_counted_in_a_warning(task, capsys):
    (task / "train.jsonl").write_text(jsonl([record(i) for i in range(12)] + [record(3), record(3), record(5)]))
    code, out, err = run(capsys, "validate", str(task))
    assert code == 0, err
    (warning,) = [line for line in out.splitlines() if "duplicate" in line]
    assert "3 duplicate" in warning and "train.jsonl" in warning


def test_symlinked_document_outside_docs_is_skipped_and_named(task):
    from harness.retrieval.documents import list_files_checked

    secret = task.parent / "secret.txt"
    secret.write_text("private key material")
    (task / "docs" / "leak.md").symlink_to(secret)
    (task / "docs" / "etc").symlink_to("/etc")
    files, skipped = list_files_checked(task / "docs")
    assert [f.name for f in files] == ["notes.md"]
    assert sorted(Path(p).name for p, _ in skipped) == ["etc", "leak.md"]


# ---------------------------------------------------------------- runs that are not complete


@pytest.mark.parametrize("damage", ["no-manifest", "partial", "failed"])
def test_report_bless_and_regress_refuse_an_incomplete_run(tmp_path, capsys, damage):
    good = make_run(tmp_path / "fixture", {"prompt": [1.0, 0.0, 1.0, 1.0]}, name="good")
    bad = make_run(tmp_path / "fixture", {"prompt": [1.0, 0.0, 1.0, 1.0]}, name="bad")
    (bad / "manifest.json").unlink()
    if damage == "partial":
        (tmp_path / "fixture" / ".partial").mkdir()
        bad = bad.rename(tmp_path / "fixture" / ".partial" / "bad")
    elif damage == "failed":
        (bad / "failed.json").write_text(json.dumps({"reason": "RuntimeError: boom"}))
    for argv in (["report", str(bad)], ["bless", str(bad)], ["regress", "--base", str(good), "--new", str(bad)],
                 ["regress", "--base", str(bad), "--new", str(good)]):
        code, _, err = run(capsys, *argv)
        line = assert_one_line_error(code, err, str(bad))
        assert {"no-manifest": "incomplete", "partial": "unfinished", "failed": "boom"}[damage] in line
    assert not (tmp_path / "fixture" / "BLESSED.json").exists() and not (bad / "regress.json").exists()


@pytest.mark.parametrize("file, text, fragment", [
    ("config.json", '{"name": ', "config.json:1: damaged run file"),
    ("prompt/predictions.jsonl", '{"id": "item0", "score": 1.0}\n{"id": "item1", "sco\n',
     "predictions.jsonl:2: damaged run file"),
    ("prompt/metrics.json", "\xff\xfe", "metrics.json"),
])
def test_report_names_a_damaged_run_file(tmp_path, capsys, file, text, fragment):
    run_dir = make_run(tmp_path / "fixture", {"prompt": [1.0, 0.0]}, name="r")
    (run_dir / file).write_bytes(text.encode("latin-1"))
    code, _, err = run(capsys, "report", str(run_dir))
    assert_one_line_error(code, err, fragment)


def test_a_crashed_run_is_kept_aside_and_a_user_error_leaves_nothing(tmp_path):
    from harness.errors import HarnessError
    from harness.rundir import require_complete, staged_run

    with pytest.raises(ZeroDivisionError), staged_run(tmp_path, "t") as (work, final):
        (work / "config.json").write_text("{}")
        1 / 0  # noqa: B018 -- any internal failure mid-run
    assert not final.exists() and [p.name for p in (tmp_path / "t").iterdir()] == [".failed"]
    (kept,) = (tmp_path / "t" / ".failed").iterdir()
    assert json.loads((kept / "failed.json").read_text())["reason"] == "ZeroDivisionError: division by zero"
    with pytest.raises(HarnessError, match="failed"):
        require_complete(kept)
    with pytest.raises(HarnessError, match="bad"), staged_run(tmp_path, "u") as (work, final):
        raise HarnessError("bad input found mid-run")
    assert list((tmp_path / "u").rglob("*")) == []  # nothing, not even an empty .partial folder


def test_internal_error_exit_code_4_names_a_log(tmp_path, capsys, monkeypatch):
    import harness.cli as cli

    monkeypatch.setenv("FTRAG_CACHE", str(tmp_path / "cache"))

    def crash(args):  # a bug cannot be caused for real on purpose; this stands in for one
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "keys", crash)
    code, _, err = run(capsys, "keys")
    assert code == 4 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    log = Path(err.split("traceback in ")[1].split(" ")[0].rstrip(";"))
    assert log.is_file() and "KeyError: 'a bug'" in log.read_text()


def test_offline_hub_id_fails_in_one_line_and_the_process_goes_offline(task, tmp_path):
    """Without the probe, the hub client retries an unreachable hub for about a minute per file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty hub cache
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens, as offline
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(task), "--results",
                           str(tmp_path / "results"), "--model", "some-org/some-model", "--no-benchmarks"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "some-org/some-model" in proc.stderr.splitlines()[-1] and "not reachable" in proc.stderr
    assert left_behind(tmp_path / "results") == []
    probe = ("import harness.models as m, huggingface_hub.constants as c; "
             "print(c.HF_HUB_OFFLINE, m.hub_reachable(), c.HF_HUB_OFFLINE)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert out == ["False", "False", "True"]
