import json
import random
import time
from pathlib import Path

import pytest

from harness.config import TaskConfig, config_reference, load_task_config
from harness.data import Query
from harness.errors import ConfigError
from harness.prompting import render_user_turn
from tests.conftest import ROOT, write_task

DATA = '{"instruction": "Say hi", "output": "hi"}\n'


def load(tmp_path: Path, yaml_text: str) -> TaskConfig:
    folder = write_task(tmp_path / "t", yaml_text, {"train.jsonl": DATA, "test.jsonl": DATA, "all.jsonl": DATA})
    return load_task_config(folder / "task.yaml")


def test_defaults_fill_every_key_not_given(tmp_path):
    cfg = load(tmp_path, "data:\n  file: all.jsonl\n")
    assert cfg.name == "t"  # folder name
    assert cfg.finetune.lora_r == 16 and cfg.finetune.lora_alpha == 32 and cfg.finetune.epochs == 3
    assert cfg.finetune.learning_rate == pytest.approx(2e-4) and cfg.finetune.batch_size == 4
    assert cfg.strategies == ["prompt", "rag", "finetune", "rag_finetune"]
    assert cfg.data.test_fraction == 0.2


@pytest.mark.parametrize("yaml_text, line, fragment", [
    ("data:\n  file: all.jsonl\nmodle: x\n", 3, "field 'modle': unknown key"),
    ("data:\n  file: all.jsonl\nprompt:\n  k_shots: 2\n", 4, "field 'prompt.k_shots': unknown key"),
    ("data:\n  file: all.jsonl\nprompt:\n  k_shot: two\n", 4, "field 'prompt.k_shot': expected int"),
    ("data:\n  file: all.jsonl\nfinetune:\n  lora_dropout: 1.5\n", 4, "field 'finetune.lora_dropout': 1.5 is above"),
    ("data:\n  file: all.jsonl\nscorer: bleu\n", 3, "field 'scorer': 'bleu' is not one of"),
    ("data:\n  file: all.jsonl\nstrategies: [prompt, lora]\n", 3, "field 'strategies': 'lora' is not one of"),
    ("data:\n  file: all.jsonl\ndata_x: 1\n", 3, "unknown key"),
    ("data:\n  file: missing.jsonl\n", 2, "field 'data.file': file not found"),
    ("data:\n  file: all.jsonl\n  train: train.jsonl\n", 2, "field 'data.file': give either"),
    ("data:\n  train: train.jsonl\n", 1, "field 'data': needs `file`"),
    ("data:\n  file: all.jsonl\ngeneration:\n  stop: \"\\n\"\n", 4, "field 'generation.stop': expected a list"),
    ("data: [1, 2\n", 2, "invalid YAML"),
])
def test_bad_config_names_file_line_and_field(tmp_path, yaml_text, line, fragment):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, yaml_text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 't' / 'task.yaml'}:{line}: ")
    assert fragment in message
    assert "\n" not in message


def test_every_shipped_task_config_loads():
    configs = sorted((ROOT / "tasks").glob("*/task.yaml"))
    assert len(configs) >= 2
    for path in configs:
        cfg = load_task_config(path)
        assert cfg.name == path.parent.name


def test_readme_documents_every_key():
    readme = (ROOT / "README.md").read_text()
    missing = [key for key, _, _ in config_reference() if f"`{key}`" not in readme]
    assert not missing, f"README lacks {missing}; paste the output of `python -m harness keys`"


def config_error(folder: Path, text: str | bytes) -> str:
    """The ConfigError message for task.yaml `text` in `folder` (which holds all.jsonl), checked to be one line."""
    path = folder / "task.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(ConfigError) as err:
        load_task_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    return message


OK = "data:\n  file: all.jsonl\n"
BOMB = OK + "x0: &x0 [" + ", ".join(["lol"] * 10) + "]\n" + "".join(
    f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]\n" for i in range(1, 10))
MAPPING_BOMB = OK + "m0: &m0 {a: 1}\n" + "".join(
    f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(10)) + "}\n" for i in range(1, 10))


@pytest.mark.parametrize("text, line, fragment", [
    (OK.encode() + b"description: caf\xe9\n", 3, "field 'description': not valid UTF-8"),
    (OK.encode() + b"prompt:\n  system: >-\n    one\n    caf\xe9\n", 6, "field 'prompt.system': not valid UTF-8"),
    (OK + "description: !!python/object:os.system x\n", 3, "field 'description': YAML tag"),
    (OK + "description: !!python/object/apply:os.system [ls]\n", 3, "YAML tag"),
    ("data: !foo\n  file: all.jsonl\n", 1, "field 'data': YAML tag '!foo' is not allowed"),
    (OK + "prompt:\n  shot_seed: 2024-13-45\n", 4, "field 'prompt.shot_seed': unreadable value"),
    (OK + "description: a\x01b\n", 3, "invalid YAML: character U+0001"),
    (OK + "scorer: rouge_l\nscorer: exact_match\n", 4, "field 'scorer': duplicate key (first at line 3)"),
    ("data:\n  file: all.jsonl\n  file: all.jsonl\n", 3, "field 'data.file': duplicate key (first at line 2)"),
    (OK + "generation:\n  stop: [{a: 1, a: 2}]\n", 4, "field 'generation.stop[0].a': duplicate key"),
    (BOMB, 3, "YAML expands to over 5,000 values"),
    (MAPPING_BOMB, 3, "YAML expands to over 5,000 values"),
    (OK + "benchmarks:\n  mmlu_subjects: &s [*s]\n", 4, "levels (aliases of aliases?)"),
    ("data: " + "[" * 5000, 1, "invalid YAML: nested deeper than 16 levels"),
    ("data:\n" + "- " * 5000, 2, "invalid YAML: nested deeper than 16 levels"),
    (OK + "x: [" + "1, " * 6000 + "]\n", 3, "invalid YAML: more than 5,000 values"),
    (OK + "? [a, b]\n: 1\n", 3, "a key must be a plain name"),
    (OK + "base: &b {k_shot: 1}\nprompt:\n  <<: *b\n", 5, "merge keys (<<) are not supported"),
    (OK + "finetune:\n  lora_dropout: .nan\n", 4, "field 'finetune.lora_dropout': expected a finite number, got nan"),
    (OK + "cost:\n  gpu_usd_per_hour: .inf\n", 4, "field 'cost.gpu_usd_per_hour': expected a finite number"),
    (OK + "cost:\n  cpu_usd_per_hour: 1.0e+999\n", 4, "expected a finite number, got inf"),
    (OK + "rag:\n  k: -.inf\n", 4, "field 'rag.k': expected int"),
    (OK + "prompt:\n  shot_seed: " + "9" * 5000 + "\n", 4, "an integer of 5,000 digits is out of range"),
    (OK + "prompt:\n  shot_seed: " + "9" * 30 + "\n", 4, "is out of range (at most 9,223,372,036,854,775,807)"),
    (OK + "generation:\n  stop: [\"" + "9" * 5000 + "\"]\n", 1, ""),  # a long string is fine: loads
    (OK + 'description: "bad \\ud800"\n', 3, "field 'description': not valid Unicode"),
    (OK + "generation:\n  stop: [\"\"]\n", 4, "field 'generation.stop': item 1 is an empty string"),
    (OK + "generation:\n  stop: [\"\\n\",\n    \"\"]\n", 5, "field 'generation.stop': item 2 is an empty string"),
    (OK + "generation:\n  stop: [\"\\n\", 3]\n", 4, "field 'generation.stop': expected a list of strings"),
    (OK + "strategies: [prompt, prompt]\n", 3, "'prompt' is listed twice"),
])
def test_yaml_the_loader_would_take_silently_is_refused_in_one_line(tmp_path, text, line, fragment):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    if not fragment:
        (folder / "task.yaml").write_text(text)
        load_task_config(folder / "task.yaml")
        return
    message = config_error(folder, text)
    assert message.startswith(f"{folder / 'task.yaml'}:{line}: ")
    assert fragment in message


def test_alias_bomb_fails_fast_and_small_aliases_still_work(tmp_path):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    began = time.perf_counter()
    config_error(folder, BOMB.replace("\n", "\nbenchmarks:\n  mmlu_subjects: *x9\n", 1))
    assert time.perf_counter() - began < 1.0  # a full expansion is 10**10 values
    (folder / "task.yaml").write_text(OK + 'description: &d "Be brief."\nprompt:\n  system: *d\n'
                                      "generation:\n  stop: &s [\"\\n\"]\nbenchmarks:\n  mmlu_subjects: *s\n")
    cfg = load_task_config(folder / "task.yaml")
    assert cfg.prompt.system == "Be brief." and cfg.generation.stop == ["\n"]


def test_task_yaml_size_is_capped(tmp_path):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    message = config_error(folder, OK + "# " + "x" * (1 << 20) + "\n")
    assert ":1: field '<root>': file is over 1,048,576 bytes" in message


def test_utf8_bom_is_accepted(tmp_path):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    (folder / "task.yaml").write_bytes(b"\xef\xbb\xbf" + OK.encode())
    assert load_task_config(folder / "task.yaml").data.file == "all.jsonl"


def test_paths_must_stay_inside_the_task_folder(tmp_path):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    (tmp_path / "outside.jsonl").write_text(DATA)
    (tmp_path / "outside_docs").mkdir()
    (folder / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    (folder / "inner.jsonl").symlink_to(folder / "all.jsonl")
    (folder / "linked_docs").symlink_to(tmp_path / "outside_docs")
    (folder / "sub").mkdir()
    (folder / "sub" / "docs").mkdir()
    cases = [
        ("data:\n  file: /etc/hostname\n", 2, "field 'data.file': '/etc/hostname': give a path relative"),
        ("data:\n  file: ../outside.jsonl\n", 2, "field 'data.file': '../outside.jsonl' resolves outside the task"),
        ("data:\n  file: link.jsonl\n", 2, "field 'data.file': 'link.jsonl' resolves outside the task folder"),
        ("data:\n  train: all.jsonl\n  test: sub/../../outside.jsonl\n", 3, "field 'data.test': "),
        ("data:\n  file: sub\n", 2, "field 'data.file': 'sub' is a folder, not a file"),
        ("data:\n  file: all.jsonl\n  dev: missing.jsonl\n", 3, "field 'data.dev': file not found"),
        (OK + "docs: ../outside_docs\n", 3, "field 'docs': '../outside_docs' resolves outside the task folder"),
        (OK + "docs: linked_docs\n", 3, "field 'docs': 'linked_docs' resolves outside the task folder"),
        (OK + "docs: /tmp\n", 3, "field 'docs': '/tmp': give a path relative"),
        (OK + "docs: .\n", 3, "field 'docs': the docs folder holds data.file (all.jsonl)"),
        (OK + "docs: ''\n", 3, "field 'docs': the docs folder holds data.file"),
    ]
    for text, line, fragment in cases:
        message = config_error(folder, text)
        assert message.startswith(f"{folder / 'task.yaml'}:{line}: ") and fragment in message, (text, message)
    (folder / "task.yaml").write_text("data:\n  file: inner.jsonl\ndocs: no_such_folder\n")
    cfg = load_task_config(folder / "task.yaml")  # a missing docs folder: RAG reports that it did not run
    assert (cfg.data.file, cfg.docs) == ("inner.jsonl", "no_such_folder")
    (folder / "task.yaml").write_text("data:\n  file: all.jsonl\ndocs: sub/docs\n")
    assert load_task_config(folder / "task.yaml").docs == "sub/docs"


@pytest.mark.parametrize("name, fragment", [
    ("a/b", "path separator"), ("'..'", "must not start with a dot"), (".hidden", "must not start with a dot"),
    ("a\\\\b", "path separator"), ("' x'", "start or end with a blank"), ('"a\\tb"', "control"),
    ('"a\\u200bb"', "invisible"), ("x" * 101, "longer than 100"),
])
def test_name_must_be_a_safe_folder_name(tmp_path, name, fragment):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    message = config_error(folder, OK + f"name: {name}\n")
    assert ":3: field 'name': " in message and fragment in message


def test_default_name_from_the_folder_is_checked_too(tmp_path):
    folder = write_task(tmp_path / ".hidden", "", {"all.jsonl": DATA})
    message = config_error(folder, OK)
    assert ":1: field 'name': '.hidden' must not start with a dot" in message and "set `name:`" in message


@pytest.mark.parametrize("key, template, fragment", [
    ("prompt.template", "{instruction} {question}", "unknown placeholder '{question}'"),
    ("prompt.template", "{0} {instruction}", "unknown placeholder '{0}'"),
    ("prompt.template", "{} {instruction}", "unknown placeholder '{}'"),
    ("prompt.template", "{instruction.upper}", "unknown placeholder '{instruction.upper}'"),
    ("prompt.template", "JSON like {\"a\": 1} {instruction}", "unknown placeholder"),
    ("prompt.template", "{instruction} {", "a lone '{' or '}'"),
    ("prompt.template", "{instruction} }", "a lone '{' or '}'"),
    ("prompt.template", "{input!r} {instruction}", "takes no format spec or conversion"),
    ("prompt.template", "{input:{instruction}}", "takes no format spec or conversion"),
    ("rag.context_template", "Passages: {passages} {input}", "unknown placeholder '{input}'"),
    ("rag.context_template", "No placeholder here", "must contain {passages}"),
    ("rag.context_template", "{passages} {", "a lone '{' or '}'"),
    ("prompt.template", "Answer this: {input}", "must contain {instruction}"),
])
def test_templates_are_checked_at_load_time(tmp_path, key, template, fragment):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    section, name = key.split(".")
    message = config_error(folder, OK + f"{section}:\n  {name}: {json.dumps(template)}\n")
    assert f":4: field '{key}': " in message and fragment in message
    assert "{{" in message or "must contain" in message or "format spec" in message


def test_literal_braces_and_braces_in_values_render_as_text(tmp_path):
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    template = 'Reply as {{"a": ...}}. {instruction}\n\n{input}'
    (folder / "task.yaml").write_text(OK + f"prompt:\n  template: {json.dumps(template)}\n"
                                      "rag:\n  context_template: \"{{passages}} are: {passages}\"\n")
    cfg = load_task_config(folder / "task.yaml")
    query = Query("q", "Fill {input} and {0}", input="x = {y}")
    assert render_user_turn(query, cfg.prompt.template) == 'Reply as {"a": ...}. Fill {input} and {0}\n\nx = {y}'
    assert render_user_turn(Query("q", "Use {}"), cfg.prompt.template) == 'Reply as {"a": ...}. Use {}'
    assert render_user_turn(Query("q", "Q?"), "{{input}} {instruction}\n\n{input}") == "{input} Q?"
    from harness.retrieval.chunking import Chunk
    from harness.retrieval.context import build_context

    chunk = Chunk("docs/a.md#0", "docs/a.md", "set = {1, 2}", "", 0, 0, 12, 6)
    assert build_context(cfg.rag.context_template, [chunk]) == "{passages} are: [1] docs/a.md\nset = {1, 2}"


@pytest.mark.parametrize("text, value", [("1e-5", 1e-5), ("2E-4", 2e-4), ("+3e-3", 3e-3), (".5e-3", 5e-4)])
def test_exponent_floats_without_a_dot_are_numbers(tmp_path, text, value):
    """YAML 1.1 reads `1e-5` as a string; a float field takes it as the number it is."""
    folder = write_task(tmp_path / "t", "", {"all.jsonl": DATA})
    (folder / "task.yaml").write_text(OK + f"finetune:\n  learning_rate: {text}\n")
    assert load_task_config(folder / "task.yaml").finetune.learning_rate == pytest.approx(value)


def test_random_corruption_of_a_real_config_gives_only_config_errors(tiny_task):
    """Mutated bytes of a shipped task.yaml: each load succeeds or raises one ConfigError line, nothing else."""
    original = (tiny_task / "task.yaml").read_bytes()
    rng = random.Random(0)
    alphabet = b"{}[]&*!:\n -\"'\\|>%@`#,?\t\x00\xe9\xff0.e"
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[at] = rng.choice(alphabet)
            elif action < 0.7:
                data.insert(at, rng.choice(alphabet))
            else:
                del data[at]
        (tiny_task / "task.yaml").write_bytes(bytes(data))
        try:
            load_task_config(tiny_task / "task.yaml")
        except ConfigError as err:
            assert "\n" not in str(err) and str(err).startswith(f"{tiny_task / 'task.yaml'}:")
