"""What the worker is asked to train (a JSON file), and the content hash that names its cache folder.

The hash covers what changes the adapter: the base model's files, the training and dev records, the
training settings, the engine and precision, the device, and the library versions. It leaves out what
only changes how the work is split (micro-batch, gradient accumulation, checkpointing, threads), so a
rerun under a different memory budget still reuses the adapter, and where the losses are logged
(report_to), which changes no weight. An adapter trained with retrieved passages (RAFT-style) adds
its context settings, so it never shares a folder with the plain adapter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT_VERSION = 2
"""2: the worker pads with a token other than the end token (harness.models.use_distinct_pad), so the
end token stays a labelled target; adapters trained before are not reused."""
# padding_free is hashed: the same batches, but LoRA dropout draws its masks over other shapes, so the
# adapter differs (statistically, not in expectation) from a padded training.
HASHED_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "learning_rate", "epochs", "batch_size", "warmup_steps",
                   "max_seq_length", "early_stopping_patience", "seed", "engine", "load_in_4bit", "dtype", "device",
                   "eos_token", "padding_free")
LOGS_DIR = "logs"
"""The work folder's subfolder for report_to's TensorBoard event files: kept with the adapter, across resumes."""
LIBRARIES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "unsloth", "unsloth_zoo")


@dataclass
class TrainSpec:
    model_path: str
    device: str
    """cpu or cuda."""
    engine: str
    """unsloth or peft."""
    engine_why: str
    load_in_4bit: bool
    dtype: str
    """Weights and compute dtype (float32 / bfloat16); with 4-bit, the compute dtype."""
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    learning_rate: float
    epochs: int
    batch_size: int
    warmup_steps: int
    max_seq_length: int
    early_stopping_patience: int
    seed: int
    eos_token: str
    """The stop token completions end with (SFTConfig.eos_token)."""
    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    work_dir: str
    """The hash-keyed folder: records, checkpoints, adapter, fit.json."""
    memory_plan: dict[str, Any]
    threads: int | None = None
    allow_fallback: bool = False
    """engine was `auto`: if unsloth fails to load, train with peft and say why."""
    padding_free: bool | None = False
    """Each batch flattened into one row, sequences told apart by position ids (TRL padding_free);
    only when no record is longer than max_seq_length, as TRL then leaves truncation to the caller.
    None: the engine decides (unsloth's own rule)."""
    report_to: str = "none"
    """finetune.report_to: none, tensorboard, wandb or mlflow. Not hashed: logging changes no weight."""
    precision_why: str = ""
    """Why `dtype` was chosen (finetune.precision). Not hashed: `dtype` is, so a spec written before this
    field existed keeps its key."""

    @property
    def precision(self) -> str:
        return f"4-bit nf4 + {self.dtype} LoRA (QLoRA)" if self.load_in_4bit else f"{self.dtype} LoRA"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def model_fingerprint(model_path: str) -> dict[str, Any]:
    """A local model by its config and weight files (names and sizes); a hub id by name."""
    folder = Path(model_path)
    if not folder.is_dir():
        return {"hub_id": model_path}
    config = folder / "config.json"
    files = sorted((p.name, p.stat().st_size) for p in folder.iterdir()
                   if p.suffix in (".safetensors", ".bin", ".gguf"))
    return {"folder": folder.name, "config": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file()
            else None, "weights": files}


def records_digest(records: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def library_versions(engine: str) -> dict[str, str | None]:
    names = LIBRARIES if engine == "unsloth" else LIBRARIES[:5]
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cache_key(spec: TrainSpec, train: list[dict[str, str]], dev: list[dict[str, str]],
              context: dict[str, Any] | None = None) -> str:
    """`context`: RAFT-style settings (index content id, k, distractor share), for an adapter trained with
    passages; None for the plain adapter, whose key stays what it was before context training existed."""
    content: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "base": model_fingerprint(spec.model_path),
        "train": records_digest(train),
        "dev": records_digest(dev),
        "settings": {k: getattr(spec, k) for k in HASHED_SETTINGS},
        "libraries": library_versions(spec.engine),
    }
    if context is not None:
        content["context"] = context
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
