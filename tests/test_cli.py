"""The command line: `--set` overrides checked by the schema, `--version`, current help, Make targets."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from harness import __version__
from harness.cli import COMMANDS, _parser, main
from harness.task import load_task
from tests.conftest import ROOT


def test_set_overrides_task_yaml_and_names_its_origin(tiny_task):
    sets = ["rag.k=2", 'generation.stop=["###", "\\n"]', "finetune.learning_rate=1e-5", "prompt.k_shot=0"]
    task = load_task(str(tiny_task), overrides=sets)
    cfg = task.config
    assert (cfg.rag.k, cfg.generation.stop, cfg.finetune.learning_rate) == (2, ["###", "\n"], 1e-5)  # YAML "\\n"
    assert cfg.prompt.k_shot == 0
    assert cfg.generation.max_new_tokens == 16  # untouched keys keep task.yaml's values
    assert task.where("rag.k") == "--set rag.k=2"
    assert task.where("prompt.system").endswith("task.yaml:8: field 'prompt.system'")


@pytest.mark.parametrize("pair, fragment", [
    ("rag.k=two", "--set rag.k=two: field 'rag.k': expected int"),
    ("rag.k=0", "--set rag.k=0: field 'rag.k': 0 is below the minimum 1"),
    ("rag.kk=2", "--set rag.kk=2: field 'rag.kk': unknown key"),
    ("rag.k", "--set rag.k: expected KEY=VALUE"),
    ("rag=3", "--set rag=3: field 'rag': expected a mapping"),
    ("rag.k.deeper=1", "--set rag.k.deeper=1: field 'rag.k': expected int"),
    ("generation.max_new_tokens.x=1", "--set generation.max_new_tokens.x=1: field 'generation.max_new_tokens' is "
                                      "not a section"),
    ("generation.stop=['']", "field 'generation.stop': item 1 is an empty string"),
    ("prompt.template='{question}'", "field 'prompt.template': unknown placeholder"),
    ("docs=../../etc", "--set docs=../../etc: field 'docs'"),
    ("name=../escaped", "--set name=../escaped: field 'name'"),
    ("finetune.learning_rate=.nan", "field 'finetune.learning_rate'"),
    ("strategies=[prompt, prompt]", "field 'strategies'"),
])
def test_bad_set_is_one_line_naming_the_option(tiny_task, capsys, pair, fragment):
    code = main(["validate", str(tiny_task), "--set", pair])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert fragment in errors[0], errors[0]


def test_version_and_help_name_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"python -m harness {__version__}"
    helptext = _parser().format_help()
    listed = re.search(r"\{([a-z,]+)\}", helptext).group(1).split(",")
    assert sorted(listed) == sorted(COMMANDS)
    first_line = helptext.split("Command line:", 1)[1].splitlines()[0]
    assert all(name in first_line for name in COMMANDS), first_line
    for name in COMMANDS:
        sub = subprocess.run([sys.executable, "-m", "harness", name, "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert sub.returncode == 0, sub.stderr


def test_regress_takes_the_compare_options(tmp_path, capsys):
    """`make regress TASK=... ARGS="--limit 5 --set rag.k=2"` reaches argparse as compare's options."""
    args = _parser().parse_args(["regress", "tiny", "--limit", "5", "--set", "rag.k=2", "--strategies", "prompt",
                                 "--no-benchmarks", "--results", str(tmp_path)])
    assert (args.limit, args.overrides, args.strategies, args.no_benchmarks) == (5, ["rag.k=2"], "prompt", True)


@pytest.mark.parametrize("target", ["validate", "report", "bless", "regress", "compare", "cache", "test", "bench"])
def test_every_make_target_passes_args(target):
    """Each harness target's recipe ends with $(ARGS) (make -n prints the commands it would run)."""
    out = subprocess.run(["make", "-n", target, "ARGS=--probe-args", "RUN=results/x/y", "TASK=tiny",
                          "STAMP=/dev/null", "BENCH_STAMP=/dev/null"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    commands = [line for line in out.stdout.splitlines() if "-m harness" in line or "-m pytest" in line]
    assert commands and all(line.rstrip().endswith("--probe-args") for line in commands), out.stdout + out.stderr


def test_server_options_set_model_keys_and_name_their_origin(tiny_task, tmp_path, capsys):
    from harness.cli import load_run_task

    args = _parser().parse_args(["compare", str(tiny_task), "--backend", "openai", "--base-url",
                                 "http://127.0.0.1:8000/v1", "--model", "123", "--set", "model.concurrency=2"])
    task = load_run_task(args)
    model = task.config.model
    assert (model.backend, model.base_url, model.name, model.concurrency) == (
        "openai", "http://127.0.0.1:8000/v1", "123", 2)  # "123" stays a string, as a model id
    assert [task.where(k) for k in ("model.backend", "model.base_url", "model.name")] == [
        "--backend", "--base-url", "--model"]
    code = main(["compare", str(tiny_task), "--backend", "vllm-ish", "--results", str(tmp_path)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: --backend vllm-ish: field 'model.backend'")
