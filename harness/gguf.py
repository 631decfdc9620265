"""GGUF files for the llamacpp backend: find a model's GGUF, or make one with llama.cpp's own converters.

- `gguf_source(model)`: the GGUF a model already is (an embedded model's package file, a `*.gguf` path,
  a folder converted from a GGUF by harness.models, a folder holding one `*.gguf`), else None.
- `model_gguf(model, outtype)`: that file, or a transformers folder converted once by
  `convert_hf_to_gguf.py --outtype <outtype>`, cached under cache_root()/gguf/ by the folder's fingerprint.
- `adapter_gguf(adapter_dir, base_folder)`: a PEFT LoRA adapter converted once by `convert_lora_to_gguf.py`
  (`--base`: the transformers folder it was trained on), cached by the adapter's content.
- `describe(path)`: {quantization, chat_template, context_length, architecture} from the GGUF's metadata.

The converters come from llama-cpp-python's source distribution (vendor/llama.cpp), which `make setup`
unpacks into .venv/llama.cpp/ next to their `conversion/` package and the matching `gguf-py`;
$FTRAG_LLAMA_CPP_CONVERT names another llama.cpp checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import EMBEDDED_GGUF, cache_root, package_dir, touch_used

CONVERTERS = Path(sys.prefix) / "llama.cpp"
"""Where `make setup` unpacks llama.cpp's converters (inside the virtual environment)."""


def converters_dir() -> Path | None:
    """The llama.cpp folder holding convert_hf_to_gguf.py and convert_lora_to_gguf.py, if there is one."""
    folder = Path(os.environ.get("FTRAG_LLAMA_CPP_CONVERT") or CONVERTERS)
    return folder if (folder / "convert_hf_to_gguf.py").is_file() else None


CONVERTER_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/",
                   "models/templates/", "LICENSE")
"""What the converters need from vendor/llama.cpp of llama-cpp-python's source distribution."""


def unpack_converters(sdist_dir: str) -> Path:
    """Unpack llama.cpp's converters from the llama-cpp-python sdist in `sdist_dir` into CONVERTERS
    (`make setup` runs this); replaced whole, so a partial unpack is never used."""
    import tarfile

    (archive,) = sorted(Path(sdist_dir).glob("llama_cpp_python-*.tar.gz"))
    staging = Path(tempfile.mkdtemp(dir=CONVERTERS.parent, prefix=".llama.cpp-"))
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 3)  # llama_cpp_python-X/vendor/llama.cpp/<path>
            if len(parts) == 4 and parts[1:3] == ["vendor", "llama.cpp"] and member.isfile() and any(
                    parts[3] == f or (f.endswith("/") and parts[3].startswith(f)) for f in CONVERTER_FILES):
                member.name = parts[3]
                tar.extract(member, staging, filter="data")
    if not (staging / "convert_hf_to_gguf.py").is_file():
        raise HarnessError(f"{archive} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
    old = CONVERTERS.with_name(".llama.cpp-old")
    if CONVERTERS.exists():
        CONVERTERS.rename(old)
    staging.rename(CONVERTERS)
    if old.exists():
        import shutil

        shutil.rmtree(old)
    print(f"llama.cpp converters unpacked into {CONVERTERS}")
    return CONVERTERS


def gguf_source(model: str) -> Path | None:
    """The GGUF file `model` (a name as in task.yaml, or a resolved path) already is, else None."""
    if model.startswith("embedded:"):
        entry = EMBEDDED_GGUF.get(model.removeprefix("embedded:"))
        if entry is None:
            return None
        path = package_dir(entry[0]) / entry[1]
        return path if path.is_file() else None
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve()
    if not path.is_dir():
        return None
    source = path / "source.json"  # a folder harness.models dequantized from a GGUF: run that GGUF itself
    if source.is_file():
        gguf = Path(json.loads(source.read_text(encoding="utf-8")).get("gguf") or "")
        if gguf.suffix == ".gguf" and gguf.is_file():
            return gguf
    found = sorted(path.glob("*.gguf"))
    return found[0] if len(found) == 1 else None


def can_serve(model: str) -> bool:
    """llama.cpp can run `model`: it is a GGUF, or a local transformers folder the converter can take."""
    if gguf_source(model) is not None:
        return True
    return converters_dir() is not None and (Path(model) / "config.json").is_file()


def model_gguf(model: str, outtype: str) -> Path:
    """The GGUF to load for `model`: its own, or its transformers folder converted once (cached)."""
    found = gguf_source(model)
    if found is not None:
        return found
    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise HarnessError(f"{model} is neither a GGUF file nor a local transformers folder to convert to one")
    from harness.gencache import fingerprint_dir

    target = cache_root() / "gguf" / f"{folder.name}-{fingerprint_dir(str(folder))}-{outtype}.gguf"
    return _convert(target, "convert_hf_to_gguf.py", [str(folder), "--outtype", outtype],
                    f"{folder.name} to GGUF ({outtype})")


def adapter_gguf(adapter_dir: str, base_folder: str) -> Path:
    """The PEFT LoRA adapter at `adapter_dir` as a llama.cpp LoRA GGUF (f32), converted once (cached by content)."""
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise HarnessError(f"{adapter_dir} is not a PEFT adapter (no adapter_config.json)")
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    target = cache_root() / "gguf" / f"lora-{h.hexdigest()[:16]}.gguf"
    # f32: an adapter is small, and f32 keeps its deltas exactly as trained.
    return _convert(target, "convert_lora_to_gguf.py", [str(folder), "--base", base_folder, "--outtype", "f32"],
                    f"adapter {folder.name} to a llama.cpp LoRA")


def _convert(target: Path, script: str, args: list[str], what: str) -> Path:
    """Run one converter into a temp file, renamed into place when complete (so a cached file is whole)."""
    if target.is_file():
        touch_used(target)
        return target
    from tqdm import tqdm

    tools = converters_dir()
    if tools is None:
        raise HarnessError(f"llama.cpp's converters are not installed ({CONVERTERS}); run `make setup`")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".gguf")
    os.close(fd)
    tmp = Path(tmp_name)
    print(f"[gguf] converting {what} with llama.cpp's {script} (once) -> {target}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tools / "gguf-py"),
                                                                      os.environ.get("PYTHONPATH")]))}
    log_path = target.with_name(target.name + ".convert.log")
    try:
        # The converter logs a line per tensor and a traceback when it fails: all of it goes to a log file
        # beside the output, the terminal gets a progress bar (lines logged) and, on failure, the last line.
        with subprocess.Popen([sys.executable, str(tools / script), *args, "--outfile", str(tmp)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child, \
                log_path.open("w", encoding="utf-8") as log, \
                tqdm(desc=f"[gguf] {script}", unit=" lines logged", file=sys.stderr) as bar:
            last = "no output"
            assert child.stdout is not None
            for line in child.stdout:
                log.write(line)
                bar.update(1)
                last = line.strip() or last
        if child.returncode != 0:
            raise HarnessError(f"llama.cpp's {script} failed for {what}: {last[:300]} (full output: {log_path})")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is meant to be read (by Ollama, say)
        tmp.rename(target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"[gguf] converted in {time.perf_counter() - began:.1f} s ({target.stat().st_size / 2**20:.1f} MiB)",
          file=sys.stderr, flush=True)
    return target


def file_id(path: Path) -> str:
    """Content id of a GGUF for caches: the hash of the whole file up to 256 MiB; of a larger one, its size and
    first and last 16 MiB (hashing a multi-GB model would cost seconds every run; the head holds all metadata
    and the tensor layout). Remembered per (path, size, mtime) within the process."""
    stat = path.stat()
    return _file_id(str(path), stat.st_size, stat.st_mtime_ns)


@cache
def _file_id(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 256 * 2**20:
            h.update(f.read())
        else:
            h.update(f.read(16 * 2**20))
            f.seek(size - 16 * 2**20)
            h.update(f.read())
    return h.hexdigest()[:16]


def describe(path: Path) -> dict[str, Any]:
    """What the GGUF's metadata says: quantization (e.g. "Q4_1", "F16"), chat template, context length,
    architecture, tokenizer model ("gpt2", "llama"...), and the end-of-turn token ids."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(str(path))

    def value(key: str) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    arch = value("general.architecture")
    file_type = value("general.file_type")
    try:
        quantization = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quantization = f"file_type {file_type}"
    return {"quantization": quantization or "F32", "architecture": arch,
            "chat_template": value("tokenizer.chat_template"),
            "context_length": value(f"{arch}.context_length"),
            "tokenizer_model": value("tokenizer.ggml.model"),
            "bos_token_id": value("tokenizer.ggml.bos_token_id"),
            "eos_token_id": value("tokenizer.ggml.eos_token_id")}

