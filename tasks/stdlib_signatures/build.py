"""Build the stdlib_signatures task from `inspect.signature` of Python 3.11 stdlib callables.

Run from the repository root (stdlib only, no third-party packages):

    python3 tasks/stdlib_signatures/build.py

For public functions, classes and methods across many standard-library modules it
renders the signature, e.g. ``shutil.copyfile(src, dst, *, follow_symlinks=True)``,
and asks for the parameter names in order without defaults, annotations, stars or
the ``/`` and ``*`` markers (``src, dst, follow_symlinks``).  It writes chat-format
``train.jsonl`` and ``test.jsonl`` next to this script: examples are ordered by
sha256("stdlib_signatures:" + id) and the first 20% go to the test split.

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
    abc argparse ast base64 binascii bisect bz2 calendar cmath cmd codecs codeop
    collections collections.abc colorsys compileall concurrent.futures configparser
    contextlib contextvars copy copyreg csv dataclasses datetime decimal difflib dis
    doctest email email.header email.message email.parser email.utils enum errno
    filecmp fileinput fnmatch fractions ftplib functools gc getopt getpass gettext
    glob graphlib gzip hashlib heapq hmac html html.parser http.client http.cookiejar
    http.cookies http.server imaplib importlib importlib.util inspect io ipaddress
    itertools json keyword linecache locale logging logging.handlers lzma mailbox
    marshal math mimetypes netrc numbers operator optparse os os.path pathlib pickle
    pickletools pkgutil platform plistlib poplib pprint profile pstats py_compile
    queue quopri random re reprlib runpy sched secrets selectors shelve shlex shutil
    signal smtplib socket socketserver sqlite3 stat statistics string struct
    subprocess symtable sys sysconfig tabnanny tarfile tempfile textwrap threading
    time timeit token tokenize trace traceback tracemalloc types typing unicodedata
    unittest unittest.mock urllib.error urllib.parse urllib.request uuid warnings
    wave weakref webbrowser xml.dom.minidom xml.etree.ElementTree zipapp zipfile
    zipimport zlib
""".split())
MAX_CHARS = 200  # keep inputs (and answers) short enough for one line of output
CAP = 1500  # examples kept (hash-ordered selection), enough for a small fine-tune
TEST_FRACTION = 0.2
PROMPT = ("List the parameter names of this Python function signature, in order, "
          "comma-separated, without defaults or stars.\n\n")
ROUTINE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                 types.ClassMethodDescriptorType, classmethod, staticmethod)


def signature(obj):
    """inspect.Signature, or None when unavailable or not reproducible."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    for p in sig.parameters.values():
        if isinstance(p.default, (set, frozenset)) and len(p.default) > 1:
            return None  # repr order depends on the string hash seed
    return sig


def callables(modname):
    """Yield (qualified name, callable) for the public API of a module."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, v in vars(mod).items()
                 if getattr(v, "__module__", None) in (mod.__name__, "_" + mod.__name__)]
    for name in sorted(set(names)):
        obj = getattr(mod, name, None)
        if name.startswith("_") or not callable(obj) or getattr(obj, "__name__", name) != name:
            continue  # private names, constants and aliases
        yield f"{modname}.{name}", obj
        if isinstance(obj, type):
            for attr, raw in sorted(vars(obj).items()):
                func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
                if (isinstance(raw, ROUTINE_TYPES) and not attr.startswith("_")
                        and getattr(func, "__name__", attr) == attr):
                    yield f"{modname}.{name}.{attr}", getattr(obj, attr)


def main():
    assert sys.version_info[:2] == (3, 11), "build with Python 3.11"
    rows, seen = [], set()
    for modname in MODULES:
        for qualname, obj in callables(modname):
            sig = signature(obj)
            if sig is None or list(sig.parameters) in ([], ["self"]):
                continue  # nothing to list, or the trivial answer "self"
            rendered = qualname + re.sub(r" at 0x[0-9a-fA-F]+", "", str(sig))
            if len(rendered) > MAX_CHARS or "\n" in rendered:
                continue
            keys = {qualname, rendered, " ".join(rendered.lower().split())}
            if keys & seen:
                continue  # first occurrence wins
            seen |= keys
            rows.append({"id": qualname, "messages": [
                {"role": "user", "content": PROMPT + rendered},
                {"role": "assistant", "content": ", ".join(sig.parameters)}]})
    rows.sort(key=lambda r: hashlib.sha256(("stdlib_signatures:" + r["id"]).encode()).hexdigest())
    n_candidates, rows = len(rows), rows[:CAP]
    n_test = round(len(rows) * TEST_FRACTION)
    splits = {"test": rows[:n_test], "train": rows[n_test:]}
    train_prompts = {r["messages"][0]["content"] for r in splits["train"]}
    assert not any(r["messages"][0]["content"] in train_prompts for r in splits["test"])
    for split, items in splits.items():
        with open(HERE / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for row in sorted(items, key=lambda r: r["id"]):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(MODULES)} modules, {n_candidates} candidates, {len(rows)} examples: "
          f"{len(splits['train'])} train, {len(splits['test'])} test")


if __name__ == "__main__":
    main()
