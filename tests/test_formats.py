"""Data formats beyond alpaca/chat/prompt-completion JSON: TRL conversational prompt/completion, ShareGPT,
CSV, Parquet and hub datasets. Each loads with the right fields, and a bad record is one line naming
the file, the line (or row) and the field (or column)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import tables
from harness.data import load_examples
from harness.errors import ConfigError, DataError
from harness.task import load_task
from tests.conftest import ROOT


def jsonl(tmp_path: Path, name: str, records: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def data_error(path: Path) -> str:
    with pytest.raises(DataError) as err:
        load_examples(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    return message


def msg(role: str, content: str, keys: tuple[str, str] = ("role", "content")) -> dict:
    return {keys[0]: role, keys[1]: content}


# ---------------------------------------------------------------- TRL conversational prompt/completion

def test_conversational_prompt_completion_maps_system_history_question_and_answer(tmp_path):
    path = jsonl(tmp_path, "c.jsonl", [
        {"prompt": [msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello"), msg("user", "Name?")],
         "completion": [msg("assistant", "Smol")], "id": "a", "source": "doc.md"},
        {"prompt": [msg("user", "2+2?")], "completion": [msg("assistant", "4")]}])
    (first, second), fmt = load_examples(path)
    assert fmt == "conversational_prompt_completion"
    assert (first.id, first.system, first.history) == ("a", "Be brief.", (("user", "Hi"), ("assistant", "Hello")))
    assert (first.instruction, first.output, first.source, first.input) == ("Name?", "Smol", "doc.md", "")
    assert (second.system, second.history, second.instruction, second.output) == (None, (), "2+2?", "4")
    assert first.origin == f"{path}:1" and second.origin == f"{path}:2"


@pytest.mark.parametrize("record, fragment", [
    ({"prompt": [msg("user", "q")], "completion": [msg("assistant", "a"), msg("assistant", "b")]},
     "field 'completion': expected one assistant message, got 2"),
    ({"prompt": [msg("user", "q")], "completion": []}, "field 'completion': expected a non-empty list"),
    ({"prompt": [msg("user", "q")], "completion": [msg("user", "a")]},
     "field 'completion[0].role': 'user': expected assistant"),
    ({"prompt": [msg("user", "q"), msg("assistant", "x")], "completion": [msg("assistant", "a")]},
     "field 'completion[0].role': 'assistant': expected user"),
    ({"prompt": [msg("user", "q")], "completion": [msg("assistant", " ")]},
     "field 'completion[0].content': empty answer"),
    ({"prompt": [msg("user", "q"), msg("system", "s")], "completion": [msg("assistant", "a")]},
     "field 'prompt[1].role': 'system': a system message may only come first"),
    ({"prompt": [msg("user", 3)], "completion": [msg("assistant", "a")]}, "field 'prompt[0].content': expected a"),
    ({"prompt": "q", "completion": [msg("assistant", "a")]}, "field 'prompt': expected a non-empty list"),
])
def test_bad_conversational_record_names_line_and_message_field(tmp_path, record, fragment):
    good = {"prompt": [msg("user", "fine")], "completion": [msg("assistant", "yes")]}
    message = data_error(jsonl(tmp_path, "c.jsonl", [good, record]))
    assert ":2: " + fragment in message


# ---------------------------------------------------------------- ShareGPT

def test_sharegpt_maps_human_and_gpt_turns_and_takes_user_assistant_names(tmp_path):
    keys = ("from", "value")
    path = jsonl(tmp_path, "s.jsonl", [
        {"conversations": [msg("system", "Be brief.", keys), msg("human", "Hi", keys), msg("gpt", "Hello", keys),
                           msg("user", "Name?", keys), msg("assistant", "Smol", keys)]},
        {"conversations": [msg("human", "2+2?", keys), msg("gpt", "4", keys)], "id": 7}])
    (first, second), fmt = load_examples(path)
    assert fmt == "sharegpt"
    assert first.system == "Be brief." and first.history == (("user", "Hi"), ("assistant", "Hello"))
    assert (first.instruction, first.output) == ("Name?", "Smol")
    assert (second.id, second.system, second.instruction, second.output) == ("7", None, "2+2?", "4")


@pytest.mark.parametrize("turns, fragment", [
    ([("human", "q"), ("bot", "a")], "field 'conversations[1].from': 'bot' is not one of system, human, gpt"),
    ([("gpt", "a"), ("human", "q"), ("gpt", "a")], "field 'conversations[0].from': 'gpt': expected user"),
    ([("human", "q"), ("human", "q2"), ("gpt", "a")], "field 'conversations[1].from': 'human': expected assistant"),
    ([("human", "q"), ("gpt", "a"), ("human", "again")], "field 'conversations': must end with a user message then"),
    ([("human", "q"), ("gpt", "")], "field 'conversations[1].value': empty answer"),
    ([("human", "\ud800"), ("gpt", "a")], "field 'conversations[0].value': not valid Unicode"),
])
def test_bad_sharegpt_record_names_line_and_turn_field(tmp_path, turns, fragment):
    records = [{"conversations": [msg(f, v, ("from", "value")) for f, v in t]}
               for t in ([("human", "fine"), ("gpt", "yes")], turns)]
    assert ":2: " + fragment in data_error(jsonl(tmp_path, "s.jsonl", records))


def test_sharegpt_without_turn_keys_is_named(tmp_path):
    path = jsonl(tmp_path, "s.jsonl", [{"conversations": [{"role": "user", "content": "q"}]}])
    assert ":1: field 'conversations[0].from': None is not one of" in data_error(path)


# ---------------------------------------------------------------- CSV

def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_csv_alpaca_keeps_text_as_written_and_origins_on_the_right_lines(tmp_path):
    text = ("\ufeffid,instruction,input,output,source,notes\n"
            "a1,Translate,Hello,Bonjour,doc.md,x\n"
            "\n"  # a blank line: skipped, still counted
            ',"Two\nlines",NA,007,,\n'
            ",,,,,\n"  # an empty row (a spreadsheet's trailing row): skipped
            "a3,Last,,null,,\n")
    path = write(tmp_path, "d.csv", text)
    (first, second, third), fmt = load_examples(path)
    assert fmt == "csv:alpaca"
    assert (first.id, first.instruction, first.input, first.output, first.source) == (
        "a1", "Translate", "Hello", "Bonjour", "doc.md")
    assert (second.instruction, second.input, second.output) == ("Two\nlines", "NA", "007")  # no NaN, no int
    assert second.id.startswith("h") and second.source is None  # an empty id cell means no id
    assert (third.output, third.input) == ("null", "")
    assert [e.origin for e in (first, second, third)] == [f"{path}:2", f"{path}:4", f"{path}:7"]


def test_csv_prompt_completion(tmp_path):
    (ex,), fmt = load_examples(write(tmp_path, "p.csv", "prompt,completion,id\n2+2=,4,7\n"))
    assert (fmt, ex.id, ex.instruction, ex.output) == ("csv:prompt_completion", "7", "2+2=", "4")


@pytest.mark.parametrize("text, line, fragment", [
    ("instruction,output\nq1,a1\nq2,\n", 3, "field 'output': empty"),
    ("instruction,output\nq1,a1\n\n,a3\n", 4, "field 'instruction': empty"),
    ('instruction,output\n"q\n1",a1\nq2, \n', 4, "field 'output': empty"),  # line counts the multi-line cell
    ("instruction,answer\nq1,a1\n", 2, "field 'output': missing"),
    ("id,instruction,output\nx,q1,a1\nx,q2,a2\n", 3, "field 'id': duplicate id 'x' (first at line 2)"),
    ("question,answer\nq1,a1\n", 2, "field 'messages'/'conversations'/'instruction'/'prompt': unrecognized"),
    ("instruction,output\nq1,a1\nq2,a2,extra\n", 3, "invalid CSV: Expected 2 fields in line 3, saw 3"),
    ('instruction,output\nq1,a1\n"q2,a2\n', 3, "invalid CSV: EOF inside string starting at row 2"),
    ("", 1, "no examples in file"),
    ("instruction,output\n", 1, "no examples in file"),
])
def test_bad_csv_row_names_file_line_and_column(tmp_path, text, line, fragment):
    path = write(tmp_path, "d.csv", text)
    message = data_error(path)
    assert message.startswith(f"{path}:{line}: ") and fragment in message


def test_csv_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("instruction,output\nq1,a1\nq2,caf\u00e9\n".encode("latin-1"))
    assert data_error(path).startswith(f"{path}:3: not valid UTF-8")


def test_csv_row_and_file_size_caps(tmp_path, monkeypatch):
    path = write(tmp_path, "d.csv", "instruction,output\nq1,a1\nq2," + "x" * 200 + "\n")
    monkeypatch.setattr(tables, "MAX_RECORD_BYTES", 100)
    assert f"{path}:3: record is 202 bytes, over the limit of 100 (MAX_RECORD_BYTES)" in data_error(path)
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 50)
    assert f"{path}:1: a CSV file may be at most 50 bytes" in data_error(path)


# ---------------------------------------------------------------- Parquet

def parquet(tmp_path: Path, name: str, columns: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_alpaca_prompt_completion_and_chat(tmp_path):
    alpaca = parquet(tmp_path, "a.parquet", {"id": [1, 2], "instruction": ["Translate", "Again"],
                                             "input": ["Hello", None], "output": ["Bonjour", "Encore"]})
    (a1, a2), fmt = load_examples(alpaca)
    assert fmt == "parquet:alpaca" and (a1.id, a1.input, a1.output, a2.id, a2.input) == ("1", "Hello", "Bonjour",
                                                                                          "2", "")
    assert (a1.origin, a2.origin) == (f"{alpaca}:row 0", f"{alpaca}:row 1")
    (pc,), fmt = load_examples(parquet(tmp_path, "p.parquet", {"prompt": ["2+2="], "completion": ["4"]}))
    assert (fmt, pc.instruction, pc.output) == ("parquet:prompt_completion", "2+2=", "4")
    chat = [[msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello")]]
    (c,), fmt = load_examples(parquet(tmp_path, "c.parquet", {"messages": chat}))  # list<struct> column
    assert (fmt, c.system, c.instruction, c.output) == ("parquet:chat", "Be brief.", "Hi", "Hello")


@pytest.mark.parametrize("columns, fragment", [
    ({"instruction": ["q1", "q2"], "output": ["a1", None]}, "row 1: field 'output': missing"),
    ({"instruction": ["q1", "q2"], "output": [1, 2]}, "row 0: field 'output': expected a string, got int"),
    ({"instruction": ["q1", " "], "output": ["a1", "a2"]}, "row 1: field 'instruction': empty"),
    ({"id": ["x", "x"], "instruction": ["q1", "q2"], "output": ["a1", "a2"]},
     "row 1: field 'id': duplicate id 'x' (first at row 0)"),
    ({"messages": [[msg("user", "q"), msg("bot", "a")]]}, "row 0: field 'messages[1].role': 'bot' is not one of"),
])
def test_bad_parquet_row_names_file_row_and_column(tmp_path, columns, fragment):
    path = parquet(tmp_path, "d.parquet", columns)
    assert data_error(path).startswith(f"{path}:{fragment}")


def test_parquet_that_is_not_parquet_or_too_big_is_one_line(tmp_path, monkeypatch):
    fake = write(tmp_path, "fake.parquet", '{"instruction": "q", "output": "a"}\n')
    assert data_error(fake).startswith(f"{fake}:1: not a readable Parquet file (")
    path = parquet(tmp_path, "d.parquet", {"instruction": ["q" * 5000], "output": ["a"]})
    monkeypatch.setattr(tables, "MAX_RECORD_BYTES", 1000)
    assert f"{path}:row 0: record is 5,001 bytes, over the limit of 1,000" in data_error(path)
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 100)
    assert f"{path}:1: a Parquet file may hold at most 100 bytes of data" in data_error(path)


def test_csv_and_parquet_files_in_a_task(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "task.yaml").write_text("data:\n  train: train.csv\n  test: test.parquet\n")
    rows = "".join(f"Question number {i}?,Answer {i}\n" for i in range(12))
    write(folder, "train.csv", "instruction,output\n" + rows)
    parquet(folder, "test.parquet", {"prompt": ["Something else?"], "completion": ["B"]})
    data = load_task(str(folder)).data
    assert data.formats == {"train.csv": "csv:alpaca", "test.parquet": "parquet:prompt_completion"}
    assert len(data.train) + len(data.dev) == 12 and len(data.test) == 1


# ---------------------------------------------------------------- hub datasets

def test_hub_ids_are_exempt_from_the_path_check_and_only_well_formed_ones(tmp_path):
    from harness.config import load_task_config

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "test.jsonl").write_text('{"instruction": "q", "output": "a"}\n')
    path = folder / "task.yaml"
    path.write_text("data:\n  train: hf:owner/name:config#train[:100]\n  test: test.jsonl\n")
    assert load_task_config(path).data.train == "hf:owner/name:config#train[:100]"
    for bad in ("hf:../../etc/passwd", "hf:owner/na me", "hf:", "hf:owner/name#"):
        path.write_text(f"data:\n  train: '{bad}'\n  test: test.jsonl\n")
        with pytest.raises(ConfigError) as err:
            load_task_config(path)
        assert str(err.value).startswith(f"{path}:2: field 'data.train': ") and "is not a hub dataset id" in str(
            err.value)
    path.write_text("data:\n  train: hf_owner/name\n  test: test.jsonl\n")  # no prefix: a path like any other
    with pytest.raises(ConfigError, match="field 'data.train': file not found"):
        load_task_config(path)


def validate(folder: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m harness validate` in a fresh process, so the hub settings are read from `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    return subprocess.run([sys.executable, "-m", "harness", "validate", str(folder)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False, env={**clean, **env})


def hub_task(tmp_path: Path, train: str, test: str = "test.jsonl") -> Path:
    folder = tmp_path / "t"
    folder.mkdir(exist_ok=True)
    (folder / "task.yaml").write_text(f"data:\n  train: {train}\n  test: {test}\n")
    (folder / "test.jsonl").write_text('{"instruction": "Something else?", "output": "B"}\n')
    return folder


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "unreachable-endpoint"])
def test_hub_dataset_offline_and_not_cached_is_one_line_naming_the_field(tmp_path, env):
    folder = hub_task(tmp_path, "hf:nobody/absent-dataset#train")
    proc = validate(folder, HF_DATASETS_CACHE=str(tmp_path / "empty"), HF_HOME=str(tmp_path / "home"), **env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"error: {folder / 'task.yaml'}:2: field 'data.train': dataset 'nobody/absent-dataset' is not in the local "
        f"datasets cache and the hub is not reachable (offline); load it once online, or give a local file")


def cache_dataset(cache: Path, repo: str, splits: dict[str, list[dict]]) -> None:
    """Put `repo` in a datasets cache as a load from the hub leaves it (what `datasets` reads offline)."""
    from datasets.packaged_modules.json.json import Json

    files = {}
    for split, records in splits.items():
        files[split] = [str(jsonl(cache.parent, f"{repo.replace('/', '_')}-{split}.jsonl", records))]
    builder = Json(cache_dir=str(cache), dataset_name=repo.split("/")[1], repo_id=repo, data_files=files,
                   hash="0123abcd")
    builder.download_and_prepare()
    config_dir = Path(builder.cache_dir).parents[1]
    config_dir.rename(config_dir.parent / "default")  # a hub dataset's default config, named as the hub names it


def test_hub_dataset_in_the_local_cache_loads_offline_with_default_splits_and_row_errors(tmp_path):
    cache = tmp_path / "datasets"
    rows = [{"instruction": f"Question number {i}?", "output": f"Answer {i}"} for i in range(12)]
    cache_dataset(cache, "owner/tiny_qa", {"train": rows, "test": [{"instruction": "Other?", "output": "B"}]})
    cache_dataset(cache, "owner/bad_qa", {"train": rows[:2] + [{"instruction": "q", "output": None}]})
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    proc = validate(hub_task(tmp_path, "hf:owner/tiny_qa", "hf:owner/tiny_qa"), **env)
    assert proc.returncode == 0, proc.stderr
    assert "t: 11 train / 1 dev / 1 test" in proc.stdout  # train's default split is train, test's is test
    assert "{'hf:owner/tiny_qa#train': 'hf:alpaca', 'hf:owner/tiny_qa#test': 'hf:alpaca'}" in proc.stdout
    proc = validate(hub_task(tmp_path, "hf:owner/tiny_qa#train[:4]"), **env)  # a slice, as datasets takes it
    assert proc.returncode == 0 and "formats {'hf:owner/tiny_qa#train[:4]': 'hf:alpaca'" in proc.stdout
    proc = validate(hub_task(tmp_path, "hf:owner/bad_qa"), **env)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: hf:owner/bad_qa#train:row 2: field 'output': missing"
    proc = validate(hub_task(tmp_path, "hf:owner/tiny_qa#validation"), **env)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(
        f"error: {tmp_path / 't' / 'task.yaml'}:2: field 'data.train': split 'validation' of 'owner/tiny_qa': ")
