"""Build the stdlib_modules task: which standard-library module defines a function, from CPython 3.11 itself.

Run from the repository root (stdlib only, Python 3.11):

    python3 tasks/stdlib_modules/build.py

Each item shows a public function of one of eight modules without its module: its name, its signature when
inspect can read one, and the first sentence of its docstring. The reference is the module's name, one of
eight labels (`labels:` in task.yaml); math and cmath, os and os.path are near neighbours on purpose. Items
are ordered by sha256("stdlib_modules:" + id); per module the first 40 are kept, of which the first quarter
(at least 3) goes to test and the rest to train. docs/ holds one Markdown file per module: every public
function under a heading that names module and function, with its signature and whole docstring, so
retrieval can find the module a function belongs to. Deterministic on the same Python 3.11 build.
"""
import hashlib
import importlib
import inspect
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("base64", "cmath", "inspect", "math", "os", "os.path", "shutil", "statistics")
TEST_SHARE = 0.25
MAX_PER_MODULE = 40
"""os alone has over 170 documented functions: the first 40 in hash order keep the labels within 2.2x of each other."""
PROMPT = ("Which Python standard-library module defines this function? Reply with the module name only: "
          + ", ".join(MODULES[:-1]) + " or " + MODULES[-1] + ".\n\n")


def first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    return text.split(". ")[0].rstrip(".") + "."


def shown(name: str, obj) -> str:
    try:
        # a default that is a function prints its address, which changes from run to run
        return re.sub(r" at 0x[0-9a-f]+>", ">", f"{name}{inspect.signature(obj)}")
    except (TypeError, ValueError):
        return name


def functions(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    out = []
    for name in sorted(getattr(module, "__all__", dir(module))):
        obj = getattr(module, name, None)
        if name.startswith("_") or not callable(obj) or isinstance(obj, type) or not (obj.__doc__ or "").strip():
            continue
        owner = getattr(obj, "__module__", None)
        if owner not in (module.__name__, module_name, None) and module_name not in ("math", "cmath", "os"):
            continue  # re-exports (os.path's `os.fspath`, shutil's `os` helpers) belong to another module
        if module_name == "os" and owner not in ("os", "posix", "nt", None):
            continue
        out.append((name, obj))
    return out


def items(module_name: str) -> list[dict]:
    out = []
    for name, obj in functions(module_name):
        doc = first_sentence(obj.__doc__)
        if module_name in doc.replace("os.path", "") or (module_name == "os.path" and "os.path" in doc):
            continue  # the answer written in the question is no test of anything
        out.append({"id": f"{module_name}.{name}", "instruction": PROMPT + f"{shown(name, obj)}: {doc}",
                    "output": module_name})
    return sorted(out, key=lambda r: hashlib.sha256(f"stdlib_modules:{r['id']}".encode()).hexdigest())


def doc_page(module_name: str) -> str:
    module = importlib.import_module(module_name)
    lines = [f"# The {module_name} module", "", " ".join((module.__doc__ or "").split()[:80]), ""]
    for name, obj in functions(module_name):
        lines += [f"## {module_name}.{name}", "", f"`{module_name}.{shown(name, obj)}`", "",
                  inspect.cleandoc(obj.__doc__), ""]
    return "\n".join(lines)


def main() -> None:
    train, test = [], []
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    for module_name in MODULES:
        rows = items(module_name)[:MAX_PER_MODULE]
        n_test = max(3, round(TEST_SHARE * len(rows)))
        assert len(rows) >= n_test + 6, f"{module_name}: only {len(rows)} functions"
        test += rows[:n_test]
        train += rows[n_test:]
        (docs / f"{module_name}.md").write_text(doc_page(module_name), encoding="utf-8")
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(train)} train / {len(test)} test items, {len(MODULES)} document pages in {HERE}")


if __name__ == "__main__":
    main()
