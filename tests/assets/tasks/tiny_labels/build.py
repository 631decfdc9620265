"""Build the tiny_labels fixture: which standard-library module defines a function, from CPython 3.11 itself.

Run from the repository root (stdlib only):

    python3 tests/assets/tasks/tiny_labels/build.py

Each item shows a public function of one of four modules (math, os.path, shutil, statistics) without its module:
its name, its signature when inspect can read one, and the first sentence of its docstring; the reference is
the module's name, one of four labels. Items are ordered by sha256("tiny_labels:" + id); per module the
first 3 go to test and the next 7 or 8 to train (12 test / 30 train). Real data for the label scorer's
end-to-end test; deterministic on the same Python 3.11 build.
"""
import hashlib
import importlib
import inspect
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("math", "os.path", "shutil", "statistics")
TEST_PER_MODULE = 3
TRAIN = (8, 7, 8, 7)  # per module, 30 in all
PROMPT = ("Which Python standard-library module defines this function? Reply with the module name only: "
          "math, os.path, shutil or statistics.\n\n")


def first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    return text.split(". ")[0].rstrip(".") + "."


def items(module_name: str) -> list[dict]:
    module = importlib.import_module(module_name)
    out = []
    for name in sorted(getattr(module, "__all__", dir(module))):
        obj = getattr(module, name, None)
        if name.startswith("_") or not callable(obj) or isinstance(obj, type) or not (obj.__doc__ or "").strip():
            continue
        if getattr(obj, "__module__", None) not in (module.__name__, module_name, None) and module_name != "math":
            continue  # re-exports (os.path's `os.fspath`, shutil's `os` helpers) belong to another module
        try:
            # a default that is a function prints its address, which changes from run to run
            shown = re.sub(r" at 0x[0-9a-f]+>", ">", f"{name}{inspect.signature(obj)}")
        except (TypeError, ValueError):
            shown = name
        doc = first_sentence(obj.__doc__)
        if module_name in doc:  # the answer written in the question is no test of anything
            continue
        out.append({"id": f"{module_name}.{name}", "instruction": PROMPT + f"{shown}: {doc}", "output": module_name})
    return sorted(out, key=lambda r: hashlib.sha256(f"tiny_labels:{r['id']}".encode()).hexdigest())


def main() -> None:
    train, test = [], []
    for module_name, n_train in zip(MODULES, TRAIN):
        rows = items(module_name)
        assert len(rows) >= TEST_PER_MODULE + n_train, f"{module_name}: only {len(rows)} functions"
        test += rows[:TEST_PER_MODULE]
        train += rows[TEST_PER_MODULE:TEST_PER_MODULE + n_train]
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(train)} train / {len(test)} test items in {HERE}")


if __name__ == "__main__":
    main()
