"""Listing and reading a docs folder that holds hostile entries: symlinks out, loops, odd files, bad JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.retrieval.documents import list_files, list_files_checked, read_documents


def make_docs(tmp_path: Path) -> tuple[Path, Path]:
    """(task folder, its docs folder) with two ordinary files, and a secret outside the task."""
    task = tmp_path / "task"
    docs = task / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("Alpha.")
    (docs / "sub" / "b.txt").write_text("Beta.")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key.txt").write_text("password")
    return task, docs


def test_symlinks_out_of_docs_loops_and_special_files_are_skipped_and_named(tmp_path):
    task, docs = make_docs(tmp_path)
    (docs / "leak.txt").symlink_to(tmp_path / "secret" / "key.txt")
    (docs / "leak_dir").symlink_to(tmp_path / "secret")
    (docs / "up").symlink_to(task)  # inside the task, but outside docs
    (docs / "loop1").symlink_to(docs / "loop2")
    (docs / "loop2").symlink_to(docs / "loop1")
    (docs / "sub" / "parent").symlink_to(docs)  # a folder link inside docs: followed it would never end
    (docs / "alias.md").symlink_to(docs / "a.md")
    (docs / "dangling.txt").symlink_to(docs / "missing.txt")
    os.mkfifo(docs / "pipe.txt")  # reading it would block forever
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "h.txt").write_text("hidden")

    files, skipped = list_files_checked(docs)
    assert files == [docs / "a.md", docs / "alias.md", docs / "sub" / "b.txt"]
    assert list_files(docs) == files
    reasons = {path.relative_to(docs).as_posix(): reason for path, reason in skipped}
    assert set(reasons) == {"leak.txt", "leak_dir", "up", "loop1", "loop2", "sub/parent", "dangling.txt", "pipe.txt"}
    assert reasons["leak.txt"].startswith("symlink to outside the docs folder") and "secret" in reasons["leak.txt"]
    assert reasons["leak_dir"].startswith("symlink to outside the docs folder")
    assert reasons["up"].startswith("symlink to outside the docs folder")
    assert reasons["loop1"] == "symlink loop" and reasons["dangling.txt"] == "broken symlink"
    assert reasons["sub/parent"] == "symlinked folder (not followed)"
    assert reasons["pipe.txt"] == "not a regular file"
    documents, unreadable = read_documents(files, task)
    assert "password" not in " ".join(d.text for d in documents) and unreadable == []


def test_a_docs_folder_that_is_a_symlink_out_of_the_task_gives_nothing(tmp_path):
    task, docs = make_docs(tmp_path)
    (task / "linked").symlink_to(tmp_path / "secret")
    files, skipped = list_files_checked(task / "linked", within=task)
    assert files == [] and skipped[0][1].startswith("the docs folder resolves outside the task folder")
    (task / "inner").symlink_to(docs)  # a link that stays inside the task is fine
    assert [p.name for p in list_files_checked(task / "inner", within=task)[0]] == ["a.md", "b.txt"]
    assert list_files_checked(task / "missing", within=task) == ([], [])


def test_bad_json_documents_and_unreadable_files_are_skipped_not_raised(tmp_path):
    task, docs = make_docs(tmp_path)
    odd = "one\u2028two\u0085three"  # str.splitlines would cut the record at each
    (docs / "odd.jsonl").write_text(json.dumps({"text": odd}, ensure_ascii=False) + "\n" + json.dumps({"text": "2"}))
    (docs / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (docs / "digits.jsonl").write_text('{"text": "x", "n": ' + "9" * 5000 + "}\n")
    (docs / "surrogate.jsonl").write_text(json.dumps({"text": "bad \ud800"}) + "\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer <<>>\n")
    (docs / "marked.html").write_text("<p>Text</p><![foo bar]>")  # html.parser raises AssertionError
    (docs / "folder.txt").mkdir()  # read_documents may be handed a path that is not a file any more
    documents, skipped = read_documents(list_files(docs) + [docs / "folder.txt"], task)
    by_source = {(d.source, d.locator): d.text for d in documents}
    assert by_source[("docs/odd.jsonl", "line 1")] == odd and by_source[("docs/odd.jsonl", "line 2")] == "2"
    reasons = dict(skipped)
    assert set(reasons) == {"docs/deep.json", "docs/digits.jsonl", "docs/surrogate.jsonl", "docs/broken.pdf",
                            "docs/marked.html", "docs/folder.txt"}
    assert reasons["docs/marked.html"].startswith("malformed HTML")
    assert reasons["docs/surrogate.jsonl"] == "record 1: text is not valid Unicode (lone surrogate)"
    assert reasons["docs/broken.pdf"].startswith("unreadable PDF")
    assert reasons["docs/folder.txt"].startswith("unreadable")
