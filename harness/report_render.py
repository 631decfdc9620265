"""Two renderings of one `Report`: report.md (plots linked as PNG files beside it) and a self-contained
report.html (the same Markdown through markdown-it-py, the same PNGs embedded as data URIs).

Raw HTML in the Markdown is not passed through (`html: False`): task descriptions, warnings and file
names come from user data and must not become markup.
"""

from __future__ import annotations

import base64
import html
import re

from harness.report_sections import Report

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
section.verdict { border-left: 6px solid #2a7; background: #f4fbf7; padding: 0.5rem 1rem; }
section.warn { border-left: 6px solid #d80; background: #fff8ec; padding: 0.5rem 1rem; }
figure { display: inline-block; margin: 0.5rem; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _markdown_it():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if report.intro:
        lines += [report.intro, ""]
    for s in report.sections:
        lines += [f"## {s.heading}", "", s.body, ""]
        for name in s.plots:
            lines += [f"![{report.plots[name].caption}]({name})", ""]
    return "\n".join(lines)


def render_html(report: Report, pngs: dict[str, bytes]) -> str:
    """The HTML page; `pngs` maps plot file names to the PNG bytes also written beside report.md."""
    md = _markdown_it()
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(report.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>", md.render(report.intro) if report.intro else ""]
    for s in report.sections:
        css = f" class='{s.css_class}'" if s.css_class else ""
        parts.append(f"<section id='{slug(s.heading)}'{css}><h2>{html.escape(s.heading)}</h2>\n{md.render(s.body)}")
        for name in s.plots:
            caption = html.escape(report.plots[name].caption, quote=True)
            uri = "data:image/png;base64," + base64.b64encode(pngs[name]).decode()
            parts.append(f"<figure><img alt='{caption}' src='{uri}'><figcaption>{caption}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
