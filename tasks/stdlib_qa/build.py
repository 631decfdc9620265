"""Build the stdlib_qa task from the docstrings of the Python 3.11 standard library.

Run from the repository root (stdlib only, no third-party packages):

    python3 tasks/stdlib_qa/build.py

It writes, next to this script:
  * docs/<module>.md -- one Markdown file per module: the module docstring, then
    for every public, documented, non-deprecated member a heading
    "## <qualified name><signature>" followed by the member's full docstring.
  * data.jsonl -- alpaca-style questions "what does `<name>` do?" whose answer is
    the first sentence of that member's docstring (whitespace-collapsed).

The output is deterministic: re-running it on the same Python 3.11 build gives
byte-identical files (checked with PYTHONHASHSEED varied).
"""
import hashlib
import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = sorted("""
    argparse ast base64 bisect calendar cmd collections colorsys configparser
    contextlib copy csv dataclasses datetime difflib email.utils enum filecmp
    fileinput fnmatch fractions functools getopt gettext glob graphlib gzip
    hashlib heapq hmac html html.parser http.cookies inspect ipaddress
    itertools json logging mimetypes netrc numbers operator os.path pathlib
    plistlib pprint queue quopri random reprlib sched secrets shlex shutil
    statistics string tarfile tempfile textwrap timeit tokenize traceback
    unittest.mock urllib.parse uuid wave zipfile
""".split())
MIN_WORDS, MAX_WORDS, CAP = 6, 40, 900
ABBREVIATIONS = {"e.g", "i.e", "eg", "ie", "etc", "vs", "cf", "approx", "No", "Mr", "Dr"}
ROUTINE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                 types.ClassMethodDescriptorType, classmethod, staticmethod)


def signature(obj):
    """Rendered signature, or '(...)' when inspect cannot produce one."""
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # drop memory addresses


def own_doc(obj):
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def keep(name, doc):
    return doc is not None and not name.startswith("_") and "deprecated" not in doc.lower()


def members(modname):
    """Yield (qualified name, object used for signature, docstring) for a module."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, v in vars(mod).items() if getattr(v, "__module__", None) == mod.__name__]
    for name in sorted(set(names)):
        obj = getattr(mod, name, None)
        if not (isinstance(obj, type) or callable(obj)) or getattr(obj, "__name__", name) != name:
            continue  # constants, instances and aliases
        doc = own_doc(obj)
        if not keep(name, doc):
            continue
        yield f"{modname}.{name}", obj, doc
        if not isinstance(obj, type):
            continue
        for attr, raw in sorted(vars(obj).items()):
            if not isinstance(raw, ROUTINE_TYPES):
                continue
            func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
            if getattr(func, "__name__", attr) != attr:
                continue  # alias of another method
            mdoc = own_doc(func)
            inherited = any(own_doc(getattr(base, attr, None)) == mdoc for base in obj.__mro__[1:]
                            if attr in dir(base))
            if keep(attr, mdoc) and not inherited:
                yield f"{modname}.{name}.{attr}", getattr(obj, attr), mdoc


def first_sentence(doc, qualname):
    """First sentence of the first paragraph, skipping old-style signature lines."""
    short = qualname.rsplit(".", 1)[-1]
    lines = doc.splitlines()
    if lines and re.match(r"[\w.]*\b" + re.escape(short) + r"\(", lines[0]):
        while lines and lines[0].strip():
            lines.pop(0)  # e.g. "chain(*iterables) --> chain object"
    while lines and not lines[0].strip():
        lines.pop(0)
    para = []
    for line in lines:
        if not line.strip():
            break
        para.append(line.strip())
    text = " ".join(" ".join(para).split())
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        word = re.search(r"(\S*)$", text[:m.start()]).group(1)
        if word.lstrip("(") not in ABBREVIATIONS:
            text = text[:m.end()]
            break
    # Old C docstrings prefix a type signature: "int, int, int -> Construct a date ..."
    head, arrow, rest = text.partition("-> ")
    if arrow and "." not in head and rest[:1].isupper():
        text = rest
    return text


def informative(sentence, qualname):
    words = sentence.split()
    short = qualname.rsplit(".", 1)[-1]
    return (MIN_WORDS <= len(words) <= MAX_WORDS and not sentence.endswith(":")
            and not sentence.lower().startswith("return self") and ">>>" not in sentence
            and not sentence.startswith(short + "(") and "->" not in sentence
            and not re.match(r"[\w, ]+ = ", sentence))  # ASDL grammar, usage lines


def main():
    assert sys.version_info[:2] == (3, 11), "build with Python 3.11"
    docs_dir = HERE / "docs"
    docs_dir.mkdir(exist_ok=True)
    for stale in docs_dir.glob("*.md"):
        stale.unlink()
    candidates = []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        parts = [f"# {modname}\n\n"]
        if own_doc(mod):
            parts.append(own_doc(mod) + "\n\n")
        for qualname, obj, doc in members(modname):
            parts.append(f"## {qualname}{signature(obj)}\n\n{doc}\n\n")
            sentence = first_sentence(doc, qualname)
            if informative(sentence, qualname):
                candidates.append((qualname, sentence, f"docs/{modname}.md"))
        text = "".join(parts).rstrip("\n") + "\n"
        (docs_dir / f"{modname}.md").write_text(text, encoding="utf-8", newline="\n")

    seen_q, seen_a, rows = set(), set(), []
    for qualname, sentence, source in sorted(candidates):
        instruction = (f"In Python's standard library, what does `{qualname}` do? "
                       "Answer in one sentence.")
        norm_q, norm_a = " ".join(instruction.lower().split()), " ".join(sentence.lower().split())
        if norm_q in seen_q or norm_a in seen_a:
            continue  # keep the first of any duplicate question or answer
        seen_q.add(norm_q)
        seen_a.add(norm_a)
        rows.append({"id": qualname, "instruction": instruction, "input": "",
                     "output": sentence, "source": source})
    # Cap with a hash-based (not alphabetical) selection, then sort by id.
    rows = sorted(rows, key=lambda r: hashlib.sha256(("stdlib_qa:" + r["id"]).encode()).hexdigest())
    rows = sorted(rows[:CAP], key=lambda r: r["id"])
    with open(HERE / "data.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(MODULES)} modules, {len(candidates)} candidates, {len(rows)} examples")


if __name__ == "__main__":
    main()
