"""Self-contained report.html: the verdict, the decision matrix and plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import pandas as pd

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
#verdict { border-left: 6px solid #2a7; background: #f4fbf7; padding: 0.5rem 1rem; }
.warn { border-left: 6px solid #d80; background: #fff8ec; padding: 0.5rem 1rem; }
figure { display: inline-block; margin: 0.5rem; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plots(a: dict[str, Any]) -> dict[str, str]:
    """Figure title -> PNG data URI, for the plots the run has data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {n: m for n, m in a["strategies"].items() if m.get("status") == "ok"}
    out: dict[str, str] = {}
    if ok:
        names = list(ok)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        means = [ok[n]["score"] for n in names]
        err = [[ok[n]["score"] - ok[n]["ci_low"] for n in names], [ok[n]["ci_high"] - ok[n]["score"] for n in names]]
        ax.bar(names, means, yerr=err, capsize=6, color="#5a9")
        ax.set_ylabel(f"held-out {a['scorer']} (0-1)")
        ax.set_title("Score with 95% CI")
        out["Score with 95% confidence interval"] = _png(fig)

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for n in names:
            x, y = ok[n]["cost"]["per_1k_answers_usd"], ok[n]["score"]
            ax.errorbar(x, y, yerr=[[y - ok[n]["ci_low"]], [ok[n]["ci_high"] - y]], fmt="o", capsize=4)
            ax.annotate(n, (x, y), textcoords="offset points", xytext=(6, 4))
        ax.set_xlabel("serving cost per 1,000 answers (USD)")
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_ylabel(f"held-out {a['scorer']} (0-1)")
        ax.set_title("Score vs cost")
        out["Score vs serving cost"] = _png(fig)

    lat = {n: v for n, v in a.get("latencies_s", {}).items() if v}
    if lat:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.boxplot(list(lat.values()), tick_labels=list(lat))
        ax.set_ylabel("latency per answer (s)")
        ax.set_title("Latency distribution")
        out["Latency distribution"] = _png(fig)

    curve = (ok.get("finetune", {}).get("fit", {}).get("details", {}) or {}).get("loss_curve")
    if curve and curve.get("epoch"):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(curve["epoch"], curve.get("train_loss", []), "o-", label="train")
        if curve.get("eval_loss"):
            ax.plot(curve["epoch"], curve["eval_loss"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title("Fine-tune loss")
        ax.legend()
        out["Training and validation loss"] = _png(fig)
    return out


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def render_html(a: dict[str, Any], table: pd.DataFrame) -> str:
    from harness.report import _verdict_line

    v = a["verdict"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(a['task'])} report</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(a['task'])}: prompt vs RAG vs fine-tune</h1>",
             f"<p>{html.escape(a['description'])}</p>"]
    if a["warnings"]:
        parts.append(f"<section class='warn' id='warnings'><h2>Warnings</h2>{_list(a['warnings'])}</section>")
    parts.append(f"<section id='verdict'><h2>Verdict</h2><p><strong>{html.escape(_verdict_line(v))}</strong></p>"
                 f"{_list(v['reasons'])}")
    if a["what_would_change"]:
        parts.append(f"<p>What would change it:</p>{_list(a['what_would_change'])}")
    parts.append(f"<p><em>Rule: {html.escape(v['rule'])}</em></p></section>")
    parts.append("<h2>Decision matrix</h2>" + table.to_html(index=False, border=0, table_id="matrix"))
    if a["pairs"]:
        pairs = pd.DataFrame([{"pair": f"{p['a']} vs {p['b']}", "n": p["n"], "difference": f"{p['diff']:+.3f}",
                               "95% CI": f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]", "test": p["test"],
                               "p (Holm)": f"{p['p_holm']:.3g}", "result": p["verdict"]} for p in a["pairs"]])
        parts.append("<h2>Paired comparisons</h2>" + pairs.to_html(index=False, border=0))
    parts.append("<h2>Criteria</h2>" + pd.DataFrame(a["criteria"]).to_html(index=False, border=0))
    figures = plots(a)
    parts.append("<h2>Plots</h2>" + "".join(
        f"<figure><img alt='{html.escape(t)}' src='{uri}'><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, uri in figures.items()))
    parts.append(f"<p>Run directory: <code>{html.escape(a['run_dir'])}</code></p></body></html>")
    return "\n".join(parts)
