"""`device: auto` and `dtype: auto`, resolved in one place: CUDA when there is one, else the CPU;
bfloat16 on CUDA, float32 on the CPU. Every strategy, the backend, training and lm-eval use these,
so they all load the same base weights."""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """"cuda" or "cpu" for "auto"; any other value as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """bfloat16 on CUDA, float32 elsewhere for "auto"; any other value as given."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device.startswith("cuda") else "float32"
