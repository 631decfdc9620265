"""A task on disk: `tasks/<name>/task.yaml` + data files + docs/, loaded and validated in one call.

Beyond each file's own checks (harness.data), the task checks its splits together: train/test
contamination (exact and near-duplicate prompts), disjoint ids, duplicate examples and data size.
"""

from __future__ import annotations

import importlib.util
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import TaskConfig, load_task_config
from harness.data import Example, Query, TaskData, load_examples, load_hub_examples, split_by_hash
from harness.errors import ConfigError, DataError, HarnessError
from harness.tables import HUB_PREFIX, parse_hub_ref
from harness.yaml_safe import compose_file, key_lines

TASKS_DIR = Path("tasks")
MIN_RECOMMENDED_TRAIN = 500
MIN_SAFE_TRAIN = 200
HUB_DEFAULT_SPLITS = {"file": "train", "train": "train", "test": "test", "dev": "validation"}
"""The split of a hub dataset named without `#split`, by the data key that names it."""
REPORTER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}
"""finetune.report_to -> the packages, any one of which transformers' integration can log through."""


@dataclass
class Task:
    config: TaskConfig
    folder: Path
    data: TaskData
    overrides: dict[str, str] = field(default_factory=dict)
    """Keys set on the command line rather than in task.yaml: dotted key -> the option (`--model`)."""

    @property
    def docs_dir(self) -> Path:
        return self.folder / self.config.docs

    def where(self, key: str) -> str:
        """Where a setting came from, for an error message: `task.yaml:7: field 'model.name'`, or the option."""
        if key in self.overrides:
            return self.overrides[key]
        path = self.folder / "task.yaml"
        line = key_lines(compose_file(path), path).get(key)
        return f"{path}:{line}: field '{key}'" if line else f"{path}: field '{key}' (default)"


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
    if (path / "task.yaml").resolve().parent != path.resolve():
        raise HarnessError(f"{path / 'task.yaml'}: a symlink out of the task folder (to "
                           f"{(path / 'task.yaml').resolve()}); the task's files must be inside it")
    return path


def load_task(name_or_path: str, allow_contamination: bool = False, overrides: list[str] = ()) -> Task:  # type: ignore[assignment]
    """The task folder's config (with `--set key=value` overrides) and data, checked."""
    folder = resolve_task_dir(name_or_path)
    origins: dict[str, str] = {}
    cfg = load_task_config(folder / "task.yaml", overrides, origins)
    check_reporter(cfg, folder / "task.yaml", origins)
    data = load_task_data(cfg, folder, allow_contamination or cfg.data.allow_contamination)
    if cfg.scorer == "label":  # labels against the data now, before a run directory exists
        from harness.scorers.label import check_task_labels

        data.warnings += check_task_labels(cfg, data, folder / "task.yaml")
    return Task(cfg, folder, data, origins)


def load_task_data(cfg: TaskConfig, folder: Path, allow_contamination: bool) -> TaskData:
    d = cfg.data
    formats: dict[str, str] = {}

    def read(key: str, name: str) -> list:
        if not name.startswith(HUB_PREFIX):
            examples, formats[name] = load_examples(folder / name)
            return examples
        ref = parse_hub_ref(name)
        assert ref is not None, f"config loading checks hub ids: {name!r}"
        split = ref.split or HUB_DEFAULT_SPLITS[key]
        path = folder / "task.yaml"
        line = key_lines(compose_file(path), path).get(f"data.{key}", 1)
        # keyed by hf:owner/name#split, as train and test may name one dataset
        examples, formats[ref.label(split)] = load_hub_examples(ref, split, f"{path}:{line}: field 'data.{key}'")
        return examples

    if d.file:
        train, test = split_by_hash(read("file", d.file), d.test_fraction, d.split_seed)
    else:
        assert d.train and d.test, "config loading guarantees train and test"
        train, test = read("train", d.train), read("test", d.test)
    if d.dev:
        dev = read("dev", d.dev)
    else:
        train, dev = split_by_hash(train, d.dev_fraction, f"dev:{d.split_seed}")
    _check_sizes(train, test, cfg, folder / "task.yaml")
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
    warnings += duplicate_warnings(train + dev, d.train or d.file or "", "training examples")
    warnings += duplicate_warnings(test, d.test or d.file or "", "test items")
    return TaskData(train, dev, test, formats, warnings, contamination)


def duplicate_warnings(examples: list[Example], label: str, kind: str) -> list[str]:
    """One warning counting examples identical to an earlier one (ids aside): they weigh double in training or
    scoring, and a split by id hash can put copies on both sides."""
    first: dict[tuple, Example] = {}
    copies: list[tuple[Example, Example]] = []
    for ex in sorted(examples, key=_file_order):
        key = (ex.system, ex.history, ex.instruction, ex.input, ex.output)
        if key in first:
            copies.append((ex, first[key]))
        else:
            first[key] = ex
    if not copies:
        return []
    return [f"{label}: {len(copies)} duplicate {kind} (first: {copies[0][0].origin} = {copies[0][1].origin})"]


def _file_order(ex: Example) -> tuple[str, int]:
    path, _, at = ex.origin.rpartition(":")
    at = at.removeprefix("row ")  # Parquet and hub rows
    return path, int(at) if at.isdigit() else 0


def check_reporter(cfg: TaskConfig, path: Path, origins: dict[str, str] | None = None) -> None:
    """finetune.report_to names an integration whose package is installed (else training would fail late)."""
    reporter = cfg.finetune.report_to
    packages = REPORTER_PACKAGES.get(reporter, ())
    if packages and not any(importlib.util.find_spec(p) for p in packages):
        key = "finetune.report_to"
        where = (origins or {}).get(key) or f"{path}:{key_lines(compose_file(path), path).get(key, 1)}"
        raise ConfigError(f"{where}: field '{key}': {reporter!r} needs the {packages[0]} "
                          f"package, which is not installed (pip install {packages[0]})")


def _check_sizes(train: list, test: list, cfg: TaskConfig, path: Path) -> None:
    """Every split the run needs has examples (a tiny `data.file` can leave train empty after the split)."""
    lines = key_lines(compose_file(path), path)
    key = "data.file" if cfg.data.file else "data.train"
    if not train:
        raise DataError(f"{path}:{lines.get(key, 1)}: field '{key}': no training examples left after the split "
                        f"(train also gives k-shot examples and the fine-tune's data); add examples")
    if not test:
        key = "data.file" if cfg.data.file else "data.test"
        raise DataError(f"{path}:{lines.get(key, 1)}: field '{key}': no test examples after the split")


def _check_disjoint_ids(train: list, test: list) -> None:
    """Test and train ids never coincide: per-item diffs and regressions pair items by id."""
    train_ids = {e.id: e for e in train}
    for ex in test:
        if ex.id in train_ids:
            raise DataError(f"{ex.origin}: field 'id': {ex.id!r} is also a training example "
                            f"({train_ids[ex.id].origin}); ids must be unique across splits")


_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_prompt(q: Query) -> str:
    parts = [c for _, c in q.history] + [q.instruction, q.input]
    return " ".join(" ".join(parts).lower().translate(_PUNCT).split())


def check_contamination(train: list[Example], test: list[Example], n: int) -> dict[str, Any]:
    """Exact prompt overlaps (ids) and near-duplicates (shared word n-grams) between train and test.

    N-grams that occur in more than 10% of training items are template boilerplate ("Answer in one
    sentence") and don't count; a test item is a near-duplicate when at least half of its remaining
    n-grams occur in train.
    """
    train_prompts: dict[str, Example] = {normalize_prompt(e): e for e in train}
    exact = [(t, train_prompts[p]) for t in test if (p := normalize_prompt(t)) in train_prompts]

    def grams(ex: Example) -> set[tuple[str, ...]]:
        words = (normalize_prompt(ex) + " " + ex.output.lower().translate(_PUNCT)).split()
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    doc_freq: Counter[tuple[str, ...]] = Counter()
    train_grams: set[tuple[str, ...]] = set()
    for ex in train:
        g = grams(ex)
        doc_freq.update(g)
        train_grams |= g
    boiler = {g for g, c in doc_freq.items() if c > max(2, 0.1 * len(train))}
    near = []
    for ex in test:
        g = grams(ex) - boiler
        if g and len(g & train_grams) / len(g) >= 0.5:
            near.append(ex.id)
    return {
        "exact_overlap": [{"test": t.origin, "train": r.origin, "id": t.id} for t, r in exact],
        "near_duplicates": near,
        "ngram": n,
        "test_items": len(test),
    }


def size_warnings(n_train: int) -> list[str]:
    if n_train < MIN_SAFE_TRAIN:
        return [f"only {n_train} training examples: fewer than {MIN_SAFE_TRAIN} often overfits a fine-tune"]
    if n_train < MIN_RECOMMENDED_TRAIN:
        return [f"only {n_train} training examples: below the recommended minimum of {MIN_RECOMMENDED_TRAIN}"]
    return []
