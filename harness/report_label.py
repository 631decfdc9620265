"""The report's classification figures, for runs scored with `scorer: label` (harness/scorers/label.py).

Per strategy that ran: a line with accuracy, macro-F1 and the invalid-answer rate, a per-class table
(precision, recall, F1, test items, answers given) and a confusion-matrix plot (`plot_confusion_<name>.png`).
Everything is read from metrics.json's `scoring` figures, so an old run's report rebuilds from disk alone.

    from harness.report_label import confusion_plots, label_body
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report_format import NOT_RUN, count, md_table
from harness.report_plots import Plot
from harness.run_schema import StrategyMetrics


def label_figures(ok: dict[str, StrategyMetrics]) -> dict[str, dict[str, Any]]:
    """Strategy -> its label scorer's figures, for the strategies that have them."""
    return {n: m.scoring for n, m in ok.items() if m.scoring and m.scoring.get("kind") == "label"}


def _plot_file(name: str) -> str:
    return f"plot_confusion_{name}.png"


def _fraction(value: float | None) -> str:
    return NOT_RUN if value is None else f"{value:.3f}"


def _shown(label: str) -> str:
    """A label as a code span: user data, so Markdown in it (`__init__`, `*`) is not rendered."""
    return f"`{label.replace('`', chr(39))}`"


def _summary_line(f: dict[str, Any]) -> str:
    return (f"Accuracy {f['accuracy']:.3f}, macro-F1 {f['macro_f1']:.3f} (fractions, 0 to 1; macro-F1 averages "
            f"the {f['macro_f1_classes']} classes with test items), invalid answers {f['invalid_rate']:.1%} "
            f"({count(f['invalid'])} of {count(f['n'])} items mapped to no label); labels from "
            f"{f.get('labels_from', 'the task')}.")


def per_class_table(f: dict[str, Any]) -> str:
    rows = [{"label": _shown(label), "precision (0-1)": _fraction(c["precision"]),
             "recall (0-1)": _fraction(c["recall"]), "F1 (0-1)": _fraction(c["f1"]),
             "test items": count(c["support"]), "answers with this label": count(c["predicted"])}
            for label, c in f["per_class"].items()]
    return md_table(pd.DataFrame(rows))


def label_body(ok: dict[str, StrategyMetrics], plots: dict[str, Plot]) -> tuple[str, tuple[str, ...]] | None:
    """The Classification section's Markdown and its plot files, or None when no strategy has label figures."""
    figures = label_figures(ok)
    if not figures:
        return None
    parts = ["Each answer is mapped to one label or to `invalid` (it names none, or several); an item is right "
             "when its label is the reference's. Precision is — for a label never answered, recall — for one "
             "with no test items. Confusion matrices: rows are the reference labels, columns the answers' labels, "
             "cells count items."]
    for name, f in figures.items():
        parts.append(f"### {name}\n\n{_summary_line(f)}\n\n{per_class_table(f)}")
    return "\n\n".join(parts), tuple(_plot_file(n) for n in figures if _plot_file(n) in plots)


def confusion_plot(name: str, f: dict[str, Any]) -> Plot:
    """Counts of items per (reference label, answer's label), `invalid` the last column."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows, columns, matrix = f["confusion"]["labels"], f["confusion"]["columns"], f["confusion"]["matrix"]
    side = min(12.0, 2.5 + 0.55 * len(columns))  # room for the labels, capped for large label sets
    fig = Figure(figsize=(side + 1.0, side * 0.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", aspect="auto", vmin=0)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    if len(columns) <= 20:  # numbers in cells stay legible up to about 20 classes
        peak = max((max(r) for r in matrix if r), default=0)
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                        color="white" if peak and value > peak / 2 else "black")
    ax.set_xlabel("answer's label")
    ax.set_ylabel("reference label")
    ax.set_title(f"{name}: confusion matrix (items)")
    fig.colorbar(image, ax=ax, label="items", ticks=MaxNLocator(integer=True))
    fig.tight_layout()
    return Plot(_plot_file(name), f"{name}: confusion matrix, items per reference label (rows) and answer's label "
                "(columns, invalid last)", fig)


def confusion_plots(ok: dict[str, StrategyMetrics]) -> list[Plot]:
    return [confusion_plot(n, f) for n, f in label_figures(ok).items()]
