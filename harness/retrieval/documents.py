"""Read every file under a task's docs folder into plain text documents.

.txt, .md and other text files are read as UTF-8; .html/.htm keep their visible text (the standard
library's html.parser, without script and style); .jsonl/.json give one document per record with a
string `text` field; .pdf gives one document per page (pypdf). A file that can't be read is skipped
and named, with the reason, in `skipped`. Hidden files and folders (".git", ".DS_Store") are ignored;
symlinks that lead outside the docs folder are not followed (`list_files_checked` names them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Document:
    source: str
    """The file, relative to the task folder, with forward slashes (`docs/json.md`)."""
    text: str
    locator: str = ""
    """Where in the file the text is: `line 3` (a JSONL record), `page 2` (PDF); empty for the whole file."""


class Unreadable(Exception):
    """A file that can't be turned into text; the message is the reason."""


def list_files(docs_dir: Path) -> list[Path]:
    """Every non-hidden file under docs_dir, sorted; empty when the folder is missing."""
    return list_files_checked(docs_dir)[0]


def list_files_checked(docs_dir: Path, within: Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files, skipped): every non-hidden regular file under docs_dir, sorted, and (path, reason) for what is left out.

    Left out: symlinks that resolve outside docs_dir (a link must not pull in files from elsewhere on the
    machine), broken or looping symlinks, symlinked folders (never followed, so a link to a parent
    can't loop; their files are listed where they really are), and special files (a FIFO would block).
    With `within` (the task folder), a docs_dir that itself resolves outside it gives nothing.
    """
    if not docs_dir.is_dir():
        return [], []
    root = docs_dir.resolve()
    if within is not None and not root.is_relative_to(within.resolve()):
        return [], [(docs_dir, f"the docs folder resolves outside the task folder ({root})")]
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    folders = [docs_dir]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            skipped.append((folder, f"unreadable folder ({exc.strerror})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                reason = _link_problem(path, root)
                if reason:
                    skipped.append((path, reason))
                    continue
            if entry.is_dir(follow_symlinks=False):
                folders.append(path)
            elif entry.is_file():
                files.append(path)
            else:
                skipped.append((path, "not a regular file"))
    return sorted(files), sorted(skipped)


def _link_problem(path: Path, root: Path) -> str | None:
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return "broken symlink"
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return "symlink loop"
    if not target.is_relative_to(root):
        return f"symlink to outside the docs folder ({target})"
    if target.is_dir():
        return "symlinked folder (not followed)"
    return None


def source_name(path: Path, task_dir: Path) -> str:
    """How chunks and examples name a file: relative to the task folder, or absolute when outside it."""
    try:
        return path.relative_to(task_dir).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def fingerprint(files: list[Path], task_dir: Path) -> str:
    """sha256 over every file's path and bytes: any added, removed, renamed or edited file changes it."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(source_name(path, task_dir).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_documents(files: list[Path], task_dir: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    """(documents, skipped) where skipped lists (source, reason) for files that gave no text."""
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for path in files:
        source = source_name(path, task_dir)
        reader = READERS.get(path.suffix.lower(), _read_text)
        try:
            parts = [(locator, text) for locator, text in reader(path) if text.strip()]
        except Unreadable as reason:
            skipped.append((source, str(reason)))
            continue
        except OSError as exc:
            skipped.append((source, f"unreadable ({exc.strerror or type(exc).__name__})"))
            continue
        if not parts:
            skipped.append((source, "no text"))
            continue
        documents.extend(Document(source, text, locator) for locator, text in parts)
    return documents, skipped


Parts = list[tuple[str, str]]
"""(locator, text) pieces of one file."""


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 text (byte {exc.start})") from None
    if "\0" in text:
        raise Unreadable("binary file (NUL bytes)")
    return text


def _read_text(path: Path) -> Parts:
    return [("", _decode(path))]


class _VisibleText(HTMLParser):
    """Collects the text a browser shows; block elements end a line."""

    HIDDEN: ClassVar[set[str]] = {"script", "style", "noscript", "template", "svg"}
    BLOCKS: ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "pre", "table", "ul", "ol", "section", "article",
                                  "header", "footer", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "title",
                                  "dd", "dt", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN:
            self.hidden_depth += 1
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.pieces.append(data)


def _read_html(path: Path) -> Parts:
    parser = _VisibleText()
    try:
        parser.feed(_decode(path))
        parser.close()
    except AssertionError as exc:  # html.parser's way of refusing some malformed markup ("<![if" ...)
        raise Unreadable(f"malformed HTML ({_short(exc)})") from None
    lines = (" ".join(line.split()) for line in "".join(parser.pieces).splitlines())
    return [("", re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())]


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 60 else text[:60] + "..."


def _read_json_records(path: Path) -> Parts:
    """One part per record with a string `text`; a JSON file may be one object or an array of them."""
    text = _decode(path)
    records: list[tuple[str, object]]
    try:
        whole = _loads(text, "")
        items = whole if isinstance(whole, list) else [whole]
        records = [(f"record {i + 1}", item) for i, item in enumerate(items)]
    except json.JSONDecodeError:
        if path.suffix.lower() == ".json":
            raise Unreadable("invalid JSON") from None
        # Lines end at "\n" only: U+2028 and friends are legal inside JSON strings.
        records = [(f"line {n}", _loads(line, f" on line {n}"))
                   for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    parts = [(where, r["text"]) for where, r in records if isinstance(r, dict) and isinstance(r.get("text"), str)]
    if not parts:
        raise Unreadable("no record with a string 'text' field")
    for where, part in parts:
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800" in JSON: it would crash writing the chunks later
            raise Unreadable(f"{where}: text is not valid Unicode (lone surrogate)") from None
    return parts


def _loads(text: str, where: str) -> object:
    """json.loads, with hostile input made Unreadable; with no `where`, a JSONDecodeError passes (JSONL is next)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if where:
            raise Unreadable(f"invalid JSON{where}") from None
        raise
    except (ValueError, RecursionError):  # an integer past Python's digit limit; nesting past the stack
        raise Unreadable(f"invalid JSON{where} (number too long or nesting too deep)") from None


def _read_pdf(path: Path) -> Parts:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Unreadable("encrypted PDF")
        return [(f"page {n}", page.extract_text() or "") for n, page in enumerate(reader.pages, start=1)]
    except Unreadable:
        raise
    except Exception as exc:  # pypdf raises many kinds on a malformed file (PyPdfError, KeyError, RecursionError...)
        raise Unreadable(f"unreadable PDF ({type(exc).__name__})") from None


READERS: dict[str, Callable[[Path], Parts]] = {
    ".html": _read_html, ".htm": _read_html,
    ".json": _read_json_records, ".jsonl": _read_json_records,
    ".pdf": _read_pdf,
}
"""Readers by file suffix; any other suffix is read as UTF-8 text."""
