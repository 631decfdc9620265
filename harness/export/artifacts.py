"""The exported files: the merged model, its GGUFs (f16 and a quantized type) and the manifest.

- `merge(base, adapter, out)`: `merge_and_unload` of the LoRA adapter into the base weights, saved as safetensors
  with the tokenizer and its chat template (harness.training.adapters).
- `to_gguf(merged, out)`: llama.cpp's own `convert_hf_to_gguf.py --outtype f16` (harness.gguf).
- `quantize(f16, out, quant)`: llama.cpp's quantizer, reached through llama-cpp-python's `llama_model_quantize`
  (the same code as the `llama-quantize` tool). Tensors whose rows do not split into the type's blocks (SmolLM2's
  576 columns are not a multiple of 256) get llama.cpp's own fallback type; the manifest records the file's type.
- `write_manifest(folder, record)`: every file with its size and sha256, the quant types and tool versions;
  written last, so an export folder with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import repair_byte_level_decoder  # also applied at conversion; old folders need it here

MANIFEST = "manifest.json"


def quant_types() -> dict[str, int]:
    """llama.cpp's file types by name ("Q4_K_M" -> 15), as llama-cpp-python exposes them (LLAMA_FTYPE_MOSTLY_*)."""
    import llama_cpp

    prefix = "LLAMA_FTYPE_MOSTLY_"
    return {name.removeprefix(prefix): int(getattr(llama_cpp, name)) for name in dir(llama_cpp)
            if name.startswith(prefix)}


def check_quant(quant: str) -> str:
    """The quant type's canonical name, or one line naming the types there are."""
    try:
        known = quant_types()
    except ImportError:
        raise HarnessError("export needs llama-cpp-python (run `make setup`)") from None
    name = quant.upper()
    if name not in known or name in ("F32", "F16", "BF16"):
        choices = ", ".join(sorted(n for n in known if n not in ("F32", "F16", "BF16") and "GUESSED" not in n))
        raise HarnessError(f"--quant {quant}: not a llama.cpp quantization type; one of {choices}")
    return name


def merge(base_path: str, adapter_dir: Path, out_dir: Path) -> Path:
    """The base model with the adapter folded in, in the base's own dtype, saved as safetensors."""
    from harness.training.adapters import merge_adapter

    began = time.perf_counter()
    print(f"[export] merging the adapter into {base_path} (merge_and_unload)", file=sys.stderr, flush=True)
    merge_adapter(base_path, adapter_dir, out_dir, saved_dtype(base_path))
    if repair_byte_level_decoder(out_dir):
        print("[export] tokenizer.json: byte-level decoder restored (the GGUF loader's was SentencePiece-style)",
              file=sys.stderr, flush=True)
    print(f"[export] merged in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return out_dir


def saved_dtype(model_path: str) -> str:
    """The dtype the base model's weights are stored in (config.json), so the merged copy is no larger than the
    base: float32 for the embedded model (dequantized), bfloat16 for most hub models. Unknown: float32."""
    config = Path(model_path) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        dtype = data.get("dtype") or data.get("torch_dtype")
        if dtype in ("float32", "float16", "bfloat16"):
            return dtype
    return "float32"


def to_gguf(merged_dir: Path, out: Path) -> Path:
    """The merged folder as an f16 GGUF, by llama.cpp's convert_hf_to_gguf.py (its log beside the file)."""
    from harness.gguf import _convert

    return _convert(out, "convert_hf_to_gguf.py", [str(merged_dir), "--outtype", "f16"],
                    "the merged model to GGUF (f16)")


def quantize(source: Path, out: Path, quant: str, threads: int | None = None) -> Path:
    """`source` (a GGUF) quantized to `quant` by llama.cpp's quantizer, written whole or not at all. Its log (a line
    per tensor, and a warning per tensor that falls back to another type) goes to `<out>.quantize.log`."""
    import ctypes

    import llama_cpp
    from llama_cpp import _logger

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant_types()[quant]
    params.nthread = threads or os.cpu_count() or 1
    tmp = out.with_name(f".{out.name}.tmp")
    print(f"[export] quantizing {source.name} to {quant} with llama.cpp's quantizer", file=sys.stderr, flush=True)
    began = time.perf_counter()
    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params)
        if status != 0 or not tmp.is_file():
            raise HarnessError(f"llama.cpp's quantizer failed on {source} ({quant}, status {status}); its log: "
                               f"{out.name}.quantize.log")
        tmp.rename(out)
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        out.with_name(out.name + ".quantize.log").write_text("".join(lines), encoding="utf-8")
        tmp.unlink(missing_ok=True)
    fallbacks = sum("falling back" in line for line in "".join(lines).splitlines())
    fell_back = (f"; {fallbacks} tensors whose rows do not split into {quant}'s blocks took llama.cpp's fallback type"
                 if fallbacks else "")
    print(f"[export] quantized in {time.perf_counter() - began:.1f} s ({out.stat().st_size / 2**20:.1f} MiB)"
          f"{fell_back}", file=sys.stderr, flush=True)
    return out


def check_vocab(gguf: Path, model_dir: Path, texts: list[str]) -> None:
    """The GGUF's tokenizer (llama.cpp) splits `texts` into the same ids as the model folder's (transformers),
    or the export stops: a GGUF that tokenizes differently answers differently whatever its weights."""
    from transformers import AutoTokenizer

    from harness.backends.llamacpp import LlamaCppBackend
    from harness.gguf import describe

    served = LlamaCppBackend(str(gguf), use_cache=False)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    for text in texts:
        ours, theirs = served.tokenize(text), tokenizer(text, add_special_tokens=False)["input_ids"]
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise HarnessError(f"{gguf.name} tokenizes differently from {model_dir}: {text[:60]!r} gives "
                               f"{ours[at:at + 5]} in llama.cpp and {theirs[at:at + 5]} in transformers at token {at} "
                               f"(tokenizer model {describe(gguf)['tokenizer_model']})")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tool_versions() -> dict[str, str | None]:
    """llama-cpp-python (whose vendored llama.cpp quantized and serves), and the converters' gguf-py."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.gguf import converters_dir

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    gguf_py = None
    tools = converters_dir()
    if tools is not None and (tools / "gguf-py" / "pyproject.toml").is_file():
        import tomllib

        gguf_py = tomllib.loads((tools / "gguf-py" / "pyproject.toml").read_text()).get("project", {}).get("version")
    return {"llama_cpp_python": installed("llama_cpp_python"), "converters_gguf_py": gguf_py,
            "converters": str(tools) if tools else None, "transformers": installed("transformers"),
            "peft": installed("peft")}


def write_manifest(folder: Path, record: dict[str, Any]) -> Path:
    """Every file under `folder` (size in bytes, sha256) plus `record`; written last, through a rename."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        files.append({"path": path.relative_to(folder).as_posix(), "size_bytes": path.stat().st_size,
                      "sha256": sha256(path)})
    out = folder / MANIFEST
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**record, "files": files, "units": {"size_bytes": "bytes"}}, indent=2) + "\n",
                   encoding="utf-8")
    tmp.rename(out)
    return out
