import json
import random
import tracemalloc
from pathlib import Path

import pytest

from harness import jsonfile
from harness.data import Example, load_examples, read_records, split_by_hash
from harness.errors import DataError
from harness.task import check_contamination, load_task, normalize_prompt, size_warnings
from tests.conftest import ROOT


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
    ([{"text": "<|user|>hi<|assistant|>yo"}],
     ":1: field 'messages'/'conversations'/'instruction'/'prompt': unrecognized format"),
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


def write_bytes(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def data_error(path: Path, **kwargs) -> str:
    """The DataError message for loading `path`, checked to be one line naming the file."""
    with pytest.raises(DataError) as err:
        if kwargs:
            list(read_records(path, **kwargs))
        else:
            load_examples(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    return message


def rec(i: int, **extra) -> str:
    return json.dumps({"instruction": f"Question {i}", "output": f"A{i}", **extra})


def test_jsonl_splits_on_newline_only_and_takes_crlf_and_bom(tmp_path):
    odd = "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"  # str.splitlines breaks at each of these
    raw = "\ufeff" + json.dumps({"instruction": odd, "output": "x"}, ensure_ascii=False) + "\r\n\r\n"
    raw += json.dumps({"instruction": "raw", "output": "y"}).replace('"raw"', '"r\x0bw\x0c"') + "\r\n"
    examples, _ = load_examples(write_bytes(tmp_path, "d.jsonl", raw))
    assert [e.instruction for e in examples] == [odd, "r\x0bw\x0c"]
    assert [e.origin.rsplit(":", 1)[1] for e in examples] == ["1", "3"]
    (one,), _ = load_examples(write_bytes(tmp_path, "a.json", "\ufeff [\r\n" + rec(1) + "\r\n]\r\n"))
    assert one.instruction == "Question 1"


def test_oversized_record_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.write((rec(1) + "\n").encode())
        f.write(b'{"instruction": "' + b"x" * (20 << 20) + b'", "output": "y"}\r\n')
        f.write((rec(2) + "\n").encode())
    tracemalloc.start()
    try:
        message = data_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = (20 << 20) + len('{"instruction": "", "output": "y"}')
    assert f":2: record is {size:,} bytes, over the limit of 1,048,576 (MAX_RECORD_BYTES)" in message
    assert peak < 8 << 20  # the 20 MB line is never held whole, let alone parsed
    assert "record is 4" in data_error(write_bytes(tmp_path, "s.jsonl", rec(1) + "\n"), max_record_bytes=40)
    array = write_bytes(tmp_path, "a.json", f"[\n{rec(1)},\n{rec(2, input='x' * 200)}\n]")
    assert ":3: invalid JSON array: record is 2" in data_error(array, max_record_bytes=100)


def test_json_array_file_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonfile, "MAX_ARRAY_FILE_BYTES", 100)
    path = write_bytes(tmp_path, "a.json", "[" + ",\n".join(rec(i) for i in range(5)) + "]")
    assert ":1: a JSON array file may be at most 100 bytes; use JSONL" in data_error(path)


@pytest.mark.parametrize("text, line, fragment", [
    (f"[\n{rec(1)}\n{rec(2)}\n]", 3, "missing comma between records"),
    (f"[\n{rec(1)} {rec(2)}]", 2, "missing comma between records"),
    (f"[\n{rec(1)},\n]", 3, "a trailing comma after the last record"),
    (f"[\n,{rec(1)}]", 2, "a comma with no record before it"),
    (f"[\n{rec(1)},\n,\n{rec(2)}]", 3, "a comma with no record before it"),
    (f"[\n{rec(1)}\n]\n{rec(2)}\n", 4, "content after the closing ']'"),
    (f"[{rec(1)}]\n[]\n", 2, "content after the closing ']'"),
    (f"[\n{rec(1)},\n{rec(2)}\n", 4, "not closed with ']'"),
    (f"[\n{rec(1)},\n" + '{"instruction": "x",\n "output": }]', 4, "invalid JSON: Expecting value"),
])
def test_json_array_commas_and_closing_bracket_are_checked(tmp_path, text, line, fragment):
    path = write_bytes(tmp_path, "a.json", text)
    message = data_error(path)
    assert message.startswith(f"{path}:{line}: ") and fragment in message


@pytest.mark.parametrize("extra, fragment", [
    ("NaN", "NaN is not a number JSON allows"),
    ("Infinity", "Infinity is not a number JSON allows"),
    ("-Infinity", "-Infinity is not a number JSON allows"),
    ("1e999", "1e999 is not a number JSON allows"),
    ("9" * 5000, "an integer with too many digits"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_json_python_accepts_but_json_does_not_is_one_line(tmp_path, name, extra, fragment):
    record = f'{{"instruction": "q", "output": "a", "extra": {extra}}}'
    text = f"{rec(1)}\n{record}\n" if name.endswith("l") else f"[\n{rec(1)},\n{record}\n]"
    path = write_bytes(tmp_path, name, text)
    assert data_error(path).startswith(f"{path}:{2 if name.endswith('l') else 3}: invalid JSON: {fragment}")


@pytest.mark.parametrize("record, fragment", [
    ({"instruction": "q\ud800", "output": "a"}, "field 'instruction': not valid Unicode (lone surrogate U+D800"),
    ({"instruction": "q", "input": "\udfff", "output": "a"}, "field 'input': not valid Unicode"),
    ({"id": "x\udc00", "instruction": "q", "output": "a"}, "field 'id': not valid Unicode"),
    ({"instruction": "q", "output": "a", "source": "\ud83d"}, "field 'source': not valid Unicode"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\ud800"}]},
     "field 'messages[1].content': not valid Unicode"),
])
def test_lone_surrogates_are_refused_naming_the_field(tmp_path, record, fragment):
    path = write_bytes(tmp_path, "d.jsonl", json.dumps(record) + "\n")  # json.dumps escapes them as \ud800
    assert fragment in data_error(path)


def chat(*roles: str) -> dict:
    return {"messages": [{"role": role, "content": f"{role} {i}"} for i, role in enumerate(roles)]}


@pytest.mark.parametrize("roles, fragment", [
    (("user", "system", "assistant"), "'messages[1].role': 'system': a system message may only come first"),
    (("assistant", "user", "assistant"), "'messages[0].role': 'assistant': expected user"),
    (("system", "user", "user", "assistant"), "'messages[2].role': 'user': expected assistant"),
    (("system", "assistant", "user", "assistant"), "'messages[1].role': 'assistant': expected user"),
    (("user", "assistant", "assistant"), "'messages[2].role': 'assistant': expected user"),
    (("system", "user", "assistant", "user"), "field 'messages': must end with a user message then the assistant"),
    (("system",), "field 'messages': must end with"),
])
def test_chat_roles_alternate_after_an_optional_system_message(tmp_path, roles, fragment):
    assert fragment in data_error(write(tmp_path, "c.jsonl", [chat(*roles)]))


def test_valid_chat_orders_load(tmp_path):
    path = write(tmp_path, "c.jsonl", [chat("user", "assistant"), chat("system", "user", "assistant", "user",
                                                                         "assistant")])
    first, second = load_examples(path)[0]
    assert first.system is None and second.system == "system 0" and len(second.history) == 2


def test_random_corruption_of_real_data_gives_only_data_errors(tmp_path):
    """Mutated bytes of shipped data files: each load succeeds or raises one DataError line, nothing else."""
    rng = random.Random(0)
    lines = (ROOT / "tests/assets/tasks/tiny/train.jsonl").read_bytes().split(b"\n")[:6]
    original = b"\n".join(lines)
    alphabet = b'{}[],:"\\\n\r 0-eE.\x00\xe9\xff\xedNaI'
    for i in range(300):
        raw = bytearray(original if i % 2 else b"[" + original.replace(b"\n", b",\n") + b"]")
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[at] = rng.choice(alphabet)
            else:
                raw.insert(at, rng.choice(alphabet))
        path = write_bytes(tmp_path, "d.json" if i % 2 == 0 else "d.jsonl", bytes(raw))
        try:
            load_examples(path)
        except DataError as err:
            assert "\n" not in str(err) and str(err).startswith(f"{path}:")


def test_duplicate_examples_are_warned_with_count_and_lines(tmp_path):
    (tmp_path / "task.yaml").write_text("data:\n  train: train.jsonl\n  test: test.jsonl\n  dev_fraction: 0\n")
    train = [{"instruction": f"Question {i}?", "output": f"A{i}"} for i in range(10)]
    train += [{"id": "copy", **train[3]}, train[3], train[5]]  # ids aside, 3 copies
    write(tmp_path, "train.jsonl", train)
    write(tmp_path, "test.jsonl", [{"instruction": "Other question", "output": "B"},
                                   {"instruction": "Other question", "output": "B", "id": "t2"},
                                   {"instruction": "Other question", "output": "C"}])
    warnings = load_task(str(tmp_path)).data.warnings
    assert f"train.jsonl: 3 duplicate training examples (first: {tmp_path}/train.jsonl:11 = " \
           f"{tmp_path}/train.jsonl:4)" in warnings
    assert f"test.jsonl: 1 duplicate test items (first: {tmp_path}/test.jsonl:2 = {tmp_path}/test.jsonl:1)" \
           in warnings
