"""Loss curves: per-epoch training and validation loss from the trainer's log, saved as JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def epoch_losses(log_history: list[dict[str, Any]], eval_before: float | None) -> list[dict[str, Any]]:
    """[{epoch, train_loss, eval_loss}], epoch 0 being the validation loss before training."""
    rows: dict[int, dict[str, Any]] = {}
    if eval_before is not None:
        rows[0] = {"epoch": 0, "train_loss": None, "eval_loss": round(eval_before, 5)}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        epoch = round(entry["epoch"])
        row = rows.setdefault(epoch, {"epoch": epoch, "train_loss": None, "eval_loss": None})
        if "loss" in entry:
            row["train_loss"] = round(entry["loss"], 5)
        if "eval_loss" in entry:
            row["eval_loss"] = round(entry["eval_loss"], 5)
    return [rows[k] for k in sorted(rows)]


def write_curves(epochs: list[dict[str, Any]], best_epoch: int | None, out_dir: Path,
                 title: str) -> tuple[Path, Path]:
    """loss_curve.json and loss_curve.png in out_dir; `title` names the strategy whose adapter it is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    json_path, png_path = out_dir / "loss_curve.json", out_dir / "loss_curve.png"
    json_path.write_text(json.dumps({"best_epoch": best_epoch, "epochs": epochs}, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("train_loss", "train"), ("eval_loss", "validation")):
        points = [(r["epoch"], r[key]) for r in epochs if r[key] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(f"{title}: loss per epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return json_path, png_path
