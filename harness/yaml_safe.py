"""Reading task.yaml safely: PyYAML takes silently or slowly what a settings file must refuse.

`compose_file` reads a small UTF-8 file into a YAML node tree, stopping at a bound on values and
nesting while composing; `key_lines` walks it once, refusing tags beyond plain YAML types, duplicate
keys and alias expansion past the bound, and returns the line of every key for error messages.
Errors are `ConfigError`s of one line naming the file, the line and the field.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any, NoReturn

import yaml

from harness.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
"""Largest task.yaml read (a real one is a few KB)."""
MAX_YAML_VALUES = 5_000
"""Most YAML values in task.yaml, also with aliases expanded (a bound on "billion laughs" alias bombs); the
schema has about 100 keys."""
MAX_YAML_DEPTH = 16
"""Deepest YAML nesting (the schema needs 3 levels): stops recursive aliases."""
SHOW = reprlib.Repr()  # repr for error messages: long values and aliased lists stay short
SHOW.maxstring = SHOW.maxother = 80


def compose_file(path: Path) -> yaml.Node | None:
    """The YAML node tree of `path`, read only when it is small and UTF-8."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}:1: field '<root>': cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}:1: field '<root>': file is over {MAX_CONFIG_BYTES:,} bytes (settings only, "
                          f"data goes in data files)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        field_name = _key_on_line(raw.decode("utf-8-sig", "replace"), line, path)
        raise ConfigError(f"{path}:{line}: field '{field_name}': not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
                          f"save the file as UTF-8") from None
    try:
        loader = _ShallowLoader(text)  # checks the characters
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path}:{line}: invalid YAML: character U+{exc.character:04X} is not allowed") from None
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{path}:{line}: invalid YAML: {one_line(getattr(exc, 'problem', None) or exc)}") from None
    finally:
        loader.dispose()


class _ShallowLoader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_YAML_VALUES values or MAX_YAML_DEPTH levels of nesting, while composing.

    Pure-Python PyYAML takes about 60 us a value (1 MB of "[1,1,...]" takes 30 s), its scanner slows down
    with each [ or { level (1 MB of "[[[]]]" takes minutes), and its recursive composer overflows the stack.
    """

    depth = 0
    values = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        self.values += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
            if self.values > MAX_YAML_VALUES:
                self._refuse(f"more than {MAX_YAML_VALUES:,} values", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    @staticmethod
    def _refuse(problem: str, mark: yaml.Mark) -> NoReturn:
        raise yaml.composer.ComposerError(None, None, problem, mark)


def key_lines(root: yaml.Node | None, path: Path) -> dict[str, int]:
    """Line (1-based) of every key by dotted name, after refusing what PyYAML would take silently or slowly.

    That is: tags beyond plain YAML types (`!!python/...`, `!foo`), duplicate keys (PyYAML keeps the last),
    keys that are not plain names, and aliases that expand past MAX_YAML_VALUES values ("billion laughs") or
    MAX_YAML_DEPTH levels (a recursive alias). An alias is the anchored node itself, so counting visits counts
    the expanded tree, and the walk stops at the bound instead of expanding it.
    """
    lines: dict[str, int] = {}
    visits = 0

    def visit(node: yaml.Node, dotted: str, depth: int) -> None:
        nonlocal visits
        visits += 1
        where = f"{at(path, node.start_mark)}: field '{dotted or '<root>'}'"
        if visits > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{where}: YAML expands to over {MAX_YAML_VALUES:,} values or {MAX_YAML_DEPTH} levels "
                              f"(aliases of aliases?)")
        if node.tag == "tag:yaml.org,2002:merge":
            raise ConfigError(f"{where}: merge keys (<<) are not supported; write the keys out")
        if node.tag not in yaml.SafeLoader.yaml_constructors:
            raise ConfigError(f"{where}: YAML tag {SHOW.repr(node.tag)} is not allowed (plain values only)")
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, f"{dotted}[{i}]", depth + 1)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(f"{path}:{line}: field '{dotted or '<root>'}': a key must be a plain name")
                visit(key_node, dotted, depth + 1)
                name = f"{dotted}.{key_node.value}" if dotted else key_node.value
                if key_node.value in seen:
                    raise ConfigError(f"{path}:{line}: field '{one_line(name)}': duplicate key (first at line "
                                      f"{seen[key_node.value]}); keep one")
                seen[key_node.value] = line
                lines.setdefault(name, line)
                visit(value_node, name, depth + 1)

    if root is not None:
        visit(root, "", 0)
    return lines


def _key_on_line(text: str, line: int, path: Path) -> str:
    """The key whose value is on `line` (the last key at or above it); '<root>' when unknown."""
    try:
        lines = key_lines(yaml.compose(text, Loader=_ShallowLoader), path)
    except (yaml.YAMLError, ConfigError, RecursionError):
        return "<root>"
    return max(((n, key) for key, n in lines.items() if n <= line), default=(0, "<root>"))[1]


def one_line(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


OVERRIDE = "--set"
"""How a setting given on the command line is named in errors (`--set rag.k=two: field 'rag.k': ...`)."""
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def at(path: Path, mark: yaml.Mark) -> str:
    """Where a YAML node came from: `file:line`, or the `--set key=value` that gave it."""
    return mark.name if mark.name.startswith(OVERRIDE) else f"{path}:{mark.line + 1}"


def merge_overrides(root: yaml.Node | None, sets: list[str]) -> tuple[yaml.Node | None, dict[str, str]]:
    """task.yaml's node tree with `key=value` settings put in (replacing what the file says), and, per
    dotted key, the option that set it. Values are YAML (`rag.k=2`, `generation.stop=["\\n"]`), parsed
    with the same bounds as the file, so the schema checks them exactly as if task.yaml said them."""
    origins: dict[str, str] = {}
    for pair in sets:
        key, sep, text = pair.partition("=")
        key = key.strip()
        label = f"{OVERRIDE} {one_line(pair, 80)}"
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"{label}: expected KEY=VALUE with a dotted key, e.g. rag.k=2")
        value = _compose_value(text, label)
        mark = yaml.Mark(label, 0, 0, 0, None, None)
        if root is None:
            root = yaml.MappingNode("tag:yaml.org,2002:map", [], mark, mark)
        node = root
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError(f"{label}: field '{'.'.join(parts[:depth])}' is not a section")
            last = depth == len(parts) - 1
            found = next((i for i, (k, _) in enumerate(node.value) if k.value == part), None)
            child = value if last else yaml.MappingNode("tag:yaml.org,2002:map", [], mark, mark)
            if found is None:
                node.value.append((yaml.ScalarNode("tag:yaml.org,2002:str", part, mark, mark), child))
            elif last:
                node.value[found] = (yaml.ScalarNode("tag:yaml.org,2002:str", part, mark, mark), child)
            else:
                child = node.value[found][1]
            node = child
        origins[key] = label
    return root, origins


def _compose_value(text: str, label: str) -> yaml.Node:
    mark = yaml.Mark(label, 0, 0, 0, None, None)
    if not text.strip():
        return yaml.ScalarNode("tag:yaml.org,2002:null", "", mark, mark)
    try:
        loader = _ShallowLoader(text)
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"{label}: character U+{exc.character:04X} is not allowed") from None
    loader.name = label  # every mark of the value names the option instead of a line of task.yaml
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML value: {one_line(getattr(exc, 'problem', None) or exc)}") from None
    finally:
        loader.dispose()
    return node if node is not None else yaml.ScalarNode("tag:yaml.org,2002:null", "", mark, mark)
