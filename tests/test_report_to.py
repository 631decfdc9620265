"""`finetune.report_to`: TensorBoard event files from a real (tiny) training, reuse without new logs, and
the one-line error for an integration whose package is missing."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.task import load_task
from tests.conftest import ASSETS

TINY_TRAINING = """
finetune:
  engine: peft
  max_train_examples: 4
  epochs: 1
  batch_size: 4
  warmup_steps: 0
  max_seq_length: 256
  report_to: {report_to}
"""


def task_with(tmp_path: Path, report_to: str) -> Path:
    folder = tmp_path / f"tiny-{report_to}"
    if not folder.exists():
        shutil.copytree(ASSETS / "tasks" / "tiny", folder)
        (folder / "task.yaml").write_text((folder / "task.yaml").read_text()
                                          + TINY_TRAINING.format(report_to=report_to))
    return folder


@pytest.mark.parametrize("reporter", ["wandb", "mlflow"])
def test_an_integration_that_is_not_installed_is_a_one_line_error_at_load_time(tmp_path, reporter):
    if importlib.util.find_spec(reporter):
        pytest.skip(f"{reporter} is installed here")
    folder = task_with(tmp_path, reporter)
    line = (folder / "task.yaml").read_text().splitlines().index(f"  report_to: {reporter}") + 1
    with pytest.raises(ConfigError) as err:
        load_task(str(folder))
    assert str(err.value) == (f"{folder / 'task.yaml'}:{line}: field 'finetune.report_to': {reporter!r} needs the "
                              f"{reporter} package, which is not installed (pip install {reporter})")


def test_a_bad_report_to_value_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'finetune.report_to': 'comet' is not one of none, tensorboard, "):
        load_task(str(task_with(tmp_path, "comet")))


def fit(folder: Path, out: Path):
    from harness.backends.hf import TransformersBackend
    from harness.models import resolve_model
    from strategies import StrategyContext
    from strategies.finetune import FinetuneStrategy

    task = load_task(str(folder))
    out.mkdir(parents=True)
    model = resolve_model(task.config.model.name)
    ctx = StrategyContext(task.config, task.folder, out, lambda: TransformersBackend(model))
    return FinetuneStrategy().fit(task.data.train, task.data.dev, ctx).details


def scalars(logs: Path) -> dict[str, list[float]]:
    """Every scalar in the TensorBoard event files under `logs`, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list[float]] = {}
    for events in sorted(logs.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in accumulator.Scalars(tag))
    return values


@pytest.mark.slow
def test_tensorboard_logs_the_training_loss_and_a_cached_adapter_logs_nothing_new(tmp_path, monkeypatch):
    from harness.models import cache_root, resolve_model

    resolve_model("embedded:smollm2-135m-instruct")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(cache_root() / "models")
    monkeypatch.setenv("FTRAG_CACHE", str(cache))

    logged = fit(task_with(tmp_path, "tensorboard"), tmp_path / "run1" / "finetune")
    assert not logged["cache_hit"] and logged["report_to"] == "tensorboard"
    work_logs = Path(logged["cache_dir"]) / "logs"
    events = sorted(work_logs.rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files in the work folder"
    values = scalars(work_logs)
    assert len(values["train/loss"]) == 1 and values["train/loss"][0] > 0  # one epoch, logged per epoch
    assert values["train/loss"][0] == pytest.approx(logged["epochs"][1]["train_loss"], abs=1e-4)
    assert "eval/loss" in values
    assert logged["logs_dir"] == "finetune/logs" and scalars(tmp_path / "run1" / "finetune" / "logs") == values

    reused = fit(task_with(tmp_path, "none"), tmp_path / "run2" / "finetune")
    assert reused["cache_hit"] and reused["cache_key"] == logged["cache_key"]  # logging changes no weight
    assert sorted(work_logs.rglob("events.out.tfevents.*")) == events and scalars(work_logs) == values
