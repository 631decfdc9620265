"""The report's plots, drawn once from the analysis dict (matplotlib, Agg canvas, no pyplot state).

`figures(a)` returns the figures the run has data for; report.md links them as PNG files beside it
and report.html embeds the same PNG bytes. Axes say their units; score axes of bounded scorers span
0 to 1 and cost and latency axes start at 0, so bars of different runs can be compared by eye.

    from harness.report_plots import figures, png_bytes
    plots = figures(analyze(run_dir)); png = png_bytes(plots["plot_score.png"].figure)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from harness.report_format import BOUNDED_SCORERS, latency_label
from harness.report_record import Cost, RunReport
from harness.run_schema import StrategyMetrics

SIZE = (5.5, 3.4)


@dataclass(frozen=True)
class Plot:
    file: str
    """File name beside report.md, also the key in `figures`."""
    caption: str
    """Alt text and caption, in both reports."""
    figure: Any
    """The matplotlib Figure (tests read its axes)."""


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def png_bytes(figure: Any) -> bytes:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _score_axis(ax: Any, scorer: str) -> None:
    if scorer in BOUNDED_SCORERS:
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"held-out {scorer}, mean per item (0 to 1)")
    else:
        ax.set_ylabel(f"held-out {scorer}, mean per item")


def score_plot(ok: dict[str, StrategyMetrics], scorer: str) -> Plot:
    fig, ax = _figure()
    names = list(ok)
    means = [ok[n].score for n in names]
    err = [[max(0.0, ok[n].score - ok[n].ci_low) for n in names],  # type: ignore[operator]
           [max(0.0, ok[n].ci_high - ok[n].score) for n in names]]  # type: ignore[operator]
    ax.bar(names, means, yerr=err, capsize=6, color="#5a9")
    _score_axis(ax, scorer)
    ax.set_xlabel("strategy")
    ax.set_title("Held-out score with 95% confidence interval")
    fig.tight_layout()
    return Plot("plot_score.png", "Held-out score per strategy with its 95% confidence interval", fig)


def cost_plot(ok: dict[str, StrategyMetrics], costs: dict[str, Cost], scorer: str) -> Plot:
    fig, ax = _figure()
    xs = []
    for n, m in ok.items():
        x, y = costs[n].per_1k_answers, m.score
        xs.append(x)
        ax.errorbar(x, y, yerr=[[max(0.0, y - m.ci_low)], [max(0.0, m.ci_high - y)]],  # type: ignore[operator]
                    fmt="o", capsize=4)
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(6, 4))
    ax.set_xlim(0, max(xs) * 1.3 if max(xs) > 0 else 0.01)
    ax.set_xlabel("serving cost per 1,000 answers (USD)")
    ax.tick_params(axis="x", labelrotation=30)
    _score_axis(ax, scorer)
    ax.set_title("Score vs serving cost")
    fig.tight_layout()
    return Plot("plot_score_vs_cost.png", "Held-out score against serving cost per 1,000 answers", fig)


def latency_plot(latencies: dict[str, list[float]], kinds: set[str | None]) -> Plot:
    label = latency_label(next(iter(kinds))) if len(kinds) == 1 else "latency per answer (kinds differ, see matrix)"
    fig, ax = _figure()
    ax.boxplot(list(latencies.values()), tick_labels=list(latencies))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("strategy")
    ax.set_ylabel(f"{label} (s)")
    ax.set_title(label[0].upper() + label[1:] + " per test item")
    fig.tight_layout()
    return Plot("plot_latency.png", f"Distribution of {label} over the test items, in seconds", fig)


def loss_plot(name: str, details: dict[str, Any]) -> Plot | None:
    """Training and validation loss per epoch, from `epochs` rows (or the older `loss_curve` lists)."""
    from matplotlib.ticker import MaxNLocator

    rows = details.get("epochs") or []
    curve = details.get("loss_curve") or {}
    if not rows and curve.get("epoch"):
        rows = [{"epoch": e, "train_loss": t, "eval_loss": v} for e, t, v in
                zip(curve["epoch"], curve.get("train_loss") or [None] * len(curve["epoch"]),
                    curve.get("eval_loss") or [None] * len(curve["epoch"]))]
    if not rows:
        return None
    fig, ax = _figure()
    for key, label, marker in (("train_loss", "train", "o-"), ("eval_loss", "validation", "s-")):
        points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker, label=label)
    if details.get("best_epoch") is not None:
        ax.axvline(details["best_epoch"], color="grey", linestyle=":", label=f"best epoch ({details['best_epoch']})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("loss (nats per answer token)")
    ax.set_title(f"{name}: loss per epoch")
    ax.legend()
    fig.tight_layout()
    return Plot(f"plot_loss_{name}.png", f"{name}: training and validation loss per epoch", fig)


def figures(a: RunReport) -> dict[str, Plot]:
    """File name -> Plot, for each plot the run has data for."""
    ok = a.ran
    out: list[Plot | None] = []
    if ok:
        out += [score_plot(ok, a.scorer), cost_plot(ok, a.costs, a.scorer)]
    latencies = {n: v for n, v in a.latencies.items() if v and n in ok}
    if latencies:
        out.append(latency_plot(latencies, {ok[n].latency_kind for n in latencies}))
    for name, owner in loss_plot_owners(ok).items():
        if name == owner:
            out.append(loss_plot(name, ok[name].record.details))
    from harness.report_label import confusion_plots  # it imports Plot from here

    out += confusion_plots(ok)
    return {p.file: p for p in out if p is not None}


def loss_plot_owners(ok: dict[str, StrategyMetrics]) -> dict[str, str]:
    """strategy -> the strategy whose loss plot shows its training: the first with the same trained weights
    (one plot per adapter, however many strategies answer with it)."""
    first: dict[str, str] = {}
    out = {}
    for name, m in ok.items():
        if m.record.details.get("engine"):
            out[name] = first.setdefault(m.record.weights.key, name)
    return out
