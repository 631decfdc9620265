"""A task on disk: `tasks/<name>/task.yaml` + data files + docs/, loaded and validated in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import TaskConfig, load_task_config
from harness.data import TaskData, check_contamination, load_examples, size_warnings, split_by_hash
from harness.errors import DataError, HarnessError

TASKS_DIR = Path("tasks")


@dataclass
class Task:
    config: TaskConfig
    folder: Path
    data: TaskData

    @property
    def docs_dir(self) -> Path:
        return self.folder / self.config.docs


def resolve_task_dir(name_or_path: str) -> Path:
    """`stdlib_qa` means tasks/stdlib_qa; a path to a folder (or its task.yaml) is taken as is."""
    path = Path(name_or_path)
    if path.name == "task.yaml":
        path = path.parent
    if not (path / "task.yaml").is_file() and (TASKS_DIR / name_or_path / "task.yaml").is_file():
        path = TASKS_DIR / name_or_path
    if not (path / "task.yaml").is_file():
        known = sorted(p.parent.name for p in TASKS_DIR.glob("*/task.yaml"))
        raise HarnessError(f"no task.yaml in {path} (tasks here: {', '.join(known) or 'none'})")
    return path


def load_task(name_or_path: str, allow_contamination: bool = False) -> Task:
    folder = resolve_task_dir(name_or_path)
    cfg = load_task_config(folder / "task.yaml")
    data = load_task_data(cfg, folder, allow_contamination or cfg.data.allow_contamination)
    return Task(cfg, folder, data)


def load_task_data(cfg: TaskConfig, folder: Path, allow_contamination: bool) -> TaskData:
    d = cfg.data
    formats: dict[str, str] = {}

    def read(name: str) -> list:
        examples, fmt = load_examples(folder / name)
        formats[name] = fmt
        return examples

    if d.file:
        train, test = split_by_hash(read(d.file), d.test_fraction, d.split_seed)
    else:
        assert d.train and d.test, "config loading guarantees train and test"
        train, test = read(d.train), read(d.test)
    if d.dev:
        dev = read(d.dev)
    else:
        train, dev = split_by_hash(train, d.dev_fraction, f"dev:{d.split_seed}")
    contamination = check_contamination(train + dev, test, d.near_duplicate_ngram)
    warnings = size_warnings(len(train) + len(dev))
    overlap = contamination["exact_overlap"]
    if overlap:
        first = overlap[0]
        message = (f"{len(overlap)} test item(s) have the same normalized prompt as a training item "
                   f"(first: {first['test']} = {first['train']})")
        if not allow_contamination:
            raise DataError(f"{message}; fix the split or set data.allow_contamination: true")
        warnings.append(f"contamination allowed: {message}")
    if contamination["near_duplicates"]:
        warnings.append(f"{len(contamination['near_duplicates'])} of {len(test)} test items are near-duplicates "
                        f"of training items (word {d.near_duplicate_ngram}-gram overlap >= 50%)")
    _check_disjoint_ids(train + dev, test)
    return TaskData(train, dev, test, formats, warnings, contamination)


def _check_disjoint_ids(train: list, test: list) -> None:
    """Test and train ids never coincide: per-item diffs and regressions pair items by id."""
    train_ids = {e.id: e for e in train}
    for ex in test:
        if ex.id in train_ids:
            raise DataError(f"{ex.origin}: field 'id': {ex.id!r} is also a training example "
                            f"({train_ids[ex.id].origin}); ids must be unique across splits")
