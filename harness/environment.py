"""What a run ran on: package versions, device, threads, machine, and what served the answers (backend,
weights file, quantization). Stored as environment.json."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "trl", "unsloth", "bitsandbytes", "lm_eval",
            "sentence-transformers", "faiss-cpu", "datasets", "accelerate", "numpy", "scipy", "pandas",
            "llama_cpp_python")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def capture(backend: Any = None) -> dict[str, Any]:
    import psutil
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": {p: _version(p) for p in PACKAGES},
        "git_commit": _git_commit(),
    }
    if backend is not None:
        env["model"] = {"path": backend.model_path, "device": backend.device,
                        "dtype": getattr(backend, "dtype", None), "context_length": backend.context_length}
        # Which engine and which weights answered: llamacpp runs the embedded model's Q4_1 GGUF itself,
        # transformers its float32 dequantization, and their answers differ.
        env["serving"] = getattr(backend, "serving", None)
    return env


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None
