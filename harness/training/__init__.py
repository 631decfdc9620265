"""LoRA / QLoRA training for the strategies that answer with an adapter, one file per concern.

    formatting.py  examples -> prompt/completion records in the model's chat format (loss on answers only)
    planner.py     peak-memory estimate and the micro-batch / checkpointing plan that fits a budget
    engines.py     which engine runs (unsloth or peft), in which precision, and why; model loading
    spec.py        the JSON contract between the strategy and the worker, and the cache key
    resume.py      the hash-keyed training folder: checkpoints, resume point, lock, sessions
    worker.py      the child process that trains: `python -m harness.training.worker <spec.json>`
    launch.py      the parent side: reuse a cached adapter, or run the worker and read its record
    curves.py      per-epoch loss curves as JSON and PNG
    adapters.py    load base + adapter for answering, and merge_and_unload
    summary.py     the report's fine-tune section, from metrics.json alone

Training runs in a child process: unsloth patches transformers and TRL on import, and a killed
child (even `kill -9`) leaves its epoch checkpoints behind for the next run to resume from.
"""

ADAPTER_CACHE_DIR = "finetune"
"""The adapter cache's folder under `cache_root()` (named before other strategies trained; kept so
existing adapters stay valid)."""
