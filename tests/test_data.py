import json
from pathlib import Path

import pytest

from harness.data import Example, check_contamination, load_examples, normalize_prompt, size_warnings, split_by_hash
from harness.errors import DataError
from harness.task import load_task


def write(tmp_path: Path, name: str, lines: list) -> Path:
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_detects_alpaca_chat_and_prompt_completion(tmp_path):
    alpaca = write(tmp_path, "a.jsonl", [{"instruction": "Translate", "input": "Hello", "output": "Bonjour"}])
    chat = write(tmp_path, "c.jsonl", [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Name?"},
        {"role": "assistant", "content": "Smol"}]}])
    pc = write(tmp_path, "p.jsonl", [{"prompt": "2+2=", "completion": "4", "id": 7}])
    (a,), fmt_a = load_examples(alpaca)
    (c,), fmt_c = load_examples(chat)
    (p,), fmt_p = load_examples(pc)
    assert (fmt_a, fmt_c, fmt_p) == ("alpaca", "chat", "prompt_completion")
    assert (a.instruction, a.input, a.output) == ("Translate", "Hello", "Bonjour")
    assert c.system == "Be brief." and c.history == (("user", "Hi"), ("assistant", "Hello"))
    assert (c.instruction, c.output) == ("Name?", "Smol")
    assert (p.id, p.instruction, p.output) == ("7", "2+2=", "4")


def test_json_array_file_reports_element_lines(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"instruction": "x", "output": "y"},\n  {"instruction": "z"}\n]\n')
    with pytest.raises(DataError, match=r"a\.json:3: field 'output': missing"):
        load_examples(path)


@pytest.mark.parametrize("lines, fragment", [
    ([{"instruction": "x", "output": "y"}, {"instruction": "x2", "output": 3}],
     ":2: field 'output': expected a string"),
    ([{"instruction": "x", "output": "y"}, "{not json"], ":2: invalid JSON"),
    ([{"text": "<|user|>hi<|assistant|>yo"}], ":1: field 'messages'/'instruction'/'prompt': unrecognized format"),
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}],
     ":1: field 'messages[1].role': 'bot' is not one of"),
    ([{"messages": [{"role": "user", "content": "q"}]}], ":1: field 'messages': must end with"),
    ([{"id": "a", "instruction": "x", "output": "y"}, {"id": "a", "instruction": "z", "output": "y"}],
     ":2: field 'id': duplicate id 'a'"),
    ([{"instruction": " ", "output": "y"}], ":1: field 'instruction': empty"),
])
def test_bad_records_name_file_line_field(tmp_path, lines, fragment):
    path = write(tmp_path, "d.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_examples(path)
    assert str(err.value).startswith(str(path))
    assert fragment in str(err.value)


def examples(n: int) -> list[Example]:
    return [Example(f"id{i}", f"question {i}", output=f"answer {i}") for i in range(n)]


def test_split_is_deterministic_exact_and_stable_when_data_grows():
    rest, test = split_by_hash(examples(100), 0.2, seed=0)
    assert len(test) == 20 and len(rest) == 80
    assert not {e.id for e in rest} & {e.id for e in test}
    assert split_by_hash(examples(100), 0.2, seed=0)[1] == test
    assert split_by_hash(examples(100), 0.2, seed=1)[1] != test
    _, grown_test = split_by_hash(examples(110), 0.2, seed=0)
    # 22 held out of 110: the 20 of before stay held out (hash order doesn't depend on other items)
    assert {e.id for e in test} <= {e.id for e in grown_test}


def test_contamination_exact_and_near_duplicates():
    train = [Example("t1", "What does json.dumps do?", output="Serialize obj to a JSON formatted str."),
             Example("t2", "Explain the zipfile module in detail please now", output="Read and write ZIP files.")]
    test = [Example("x1", "what does JSON.dumps do", output="whatever"),
            Example("x2", "Explain the zipfile module in detail please now ok", output="Read and write ZIP files."),
            Example("x3", "Something else entirely new here and there", output="no overlap at all here")]
    result = check_contamination(train, test, n=4)
    assert [r["id"] for r in result["exact_overlap"]] == ["x1"]
    assert "x2" in result["near_duplicates"] and "x3" not in result["near_duplicates"]
    assert normalize_prompt(test[0]) == "what does json dumps do"


def test_contaminated_task_is_an_error_unless_allowed(tmp_path):
    (tmp_path / "task.yaml").write_text("data:\n  train: train.jsonl\n  test: test.jsonl\n")
    write(tmp_path, "train.jsonl", [{"instruction": f"Q{i}?", "output": f"A{i}"} for i in range(10)])
    write(tmp_path, "test.jsonl", [{"instruction": "q3", "output": "other"}])
    with pytest.raises(DataError, match=r"1 test item\(s\) have the same normalized prompt.*test\.jsonl:1"):
        load_task(str(tmp_path))
    task = load_task(str(tmp_path), allow_contamination=True)
    assert any("contamination allowed" in w for w in task.data.warnings)


def test_dev_is_carved_from_train_and_size_warnings():
    assert "fewer than 200" in size_warnings(150)[0]
    assert "recommended minimum of 500" in size_warnings(300)[0]
    assert size_warnings(500) == []


def test_task_split_for_single_file(tmp_path):
    (tmp_path / "task.yaml").write_text("data:\n  file: all.jsonl\n  test_fraction: 0.25\n")
    write(tmp_path, "all.jsonl", [{"instruction": f"Question number {i}", "output": f"A{i}"} for i in range(40)])
    data = load_task(str(tmp_path)).data
    assert len(data.test) == 10 and len(data.dev) == 3 and len(data.train) == 27
    ids = [e.id for e in data.train + data.dev + data.test]
    assert len(set(ids)) == 40
