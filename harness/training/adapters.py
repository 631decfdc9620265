"""A trained adapter in use: the base model plus the adapter for answering, and the merged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_with_adapter(model_path: str, adapter_dir: Path, dtype: str) -> tuple[Any, Any]:
    """(PeftModel, tokenizer): the base model in `dtype` with the LoRA adapter on top, unmerged."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    return model.eval(), AutoTokenizer.from_pretrained(model_path)


def merge_adapter(model_path: str, adapter_dir: Path, out_dir: Path, dtype: str) -> Path:
    """Fold the adapter into the base weights (`merge_and_unload`) and save a plain model (safetensors)."""
    model, tokenizer = load_with_adapter(model_path, adapter_dir, dtype)
    merged = model.merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    merged.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    tmp.rename(out_dir)
    return out_dir
