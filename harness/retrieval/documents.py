"""Read every file under a task's docs folder into plain text documents.

.txt, .md and other text files are read as UTF-8; .html/.htm keep their visible text (the standard
library's html.parser, without script and style); .jsonl/.json give one document per record with a
string `text` field; .pdf gives one document per page (pypdf). A file that can't be read is skipped
and named, with the reason, in `skipped`. Hidden files and folders (".git", ".DS_Store") are ignored.
"""

from __future__ import annotations

import hashlib
import json
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
    if not docs_dir.is_dir():
        return []
    return sorted(p for p in docs_dir.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(docs_dir).parts))


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
    parser.feed(_decode(path))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.pieces).splitlines())
    return [("", re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())]


def _read_json_records(path: Path) -> Parts:
    """One part per record with a string `text`; a JSON file may be one object or an array of them."""
    text = _decode(path)
    records: list[tuple[str, object]]
    try:
        whole = json.loads(text)
        items = whole if isinstance(whole, list) else [whole]
        records = [(f"record {i + 1}", item) for i, item in enumerate(items)]
    except json.JSONDecodeError:
        if path.suffix.lower() == ".json":
            raise Unreadable("invalid JSON") from None
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError:
                    raise Unreadable(f"invalid JSON on line {number}") from None
    parts = [(where, r["text"]) for where, r in records if isinstance(r, dict) and isinstance(r.get("text"), str)]
    if not parts:
        raise Unreadable("no record with a string 'text' field")
    return parts


def _read_pdf(path: Path) -> Parts:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Unreadable("encrypted PDF")
        return [(f"page {n}", page.extract_text() or "") for n, page in enumerate(reader.pages, start=1)]
    except (PyPdfError, ValueError, KeyError, OSError) as exc:
        raise Unreadable(f"unreadable PDF ({type(exc).__name__})") from None


READERS: dict[str, Callable[[Path], Parts]] = {
    ".html": _read_html, ".htm": _read_html,
    ".json": _read_json_records, ".jsonl": _read_json_records,
    ".pdf": _read_pdf,
}
"""Readers by file suffix; any other suffix is read as UTF-8 text."""
