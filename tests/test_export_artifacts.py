"""The export's file steps that need no model run: the tokenizer decoder repair and the quant type names."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import HarnessError


def test_the_embedded_tokenizer_gets_its_byte_level_decoder_back(tmp_path):
    """transformers' GGUF loader writes a SentencePiece-style decoder for SmolLM2's byte-level BPE vocabulary, which
    makes llama.cpp's converter build a "llama" vocabulary without merges; the repair restores a ByteLevel decoder,
    leaves tokens and merges alone, and does nothing the second time."""
    from harness.export.artifacts import repair_byte_level_decoder
    from harness.models import resolve_model

    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(f"{resolve_model('embedded:smollm2-135m-instruct')}/tokenizer.json", folder)
    before = json.loads((folder / "tokenizer.json").read_text())
    assert before["decoder"]["type"] == "ByteLevel"  # repaired at conversion since v3; put the loader's one back
    before["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    (folder / "tokenizer.json").write_text(json.dumps(before, ensure_ascii=False))
    assert repair_byte_level_decoder(folder) is True
    after = json.loads((folder / "tokenizer.json").read_text())
    assert after["decoder"]["type"] == "ByteLevel"
    assert after["model"] == before["model"] and after["pre_tokenizer"] == before["pre_tokenizer"]
    assert repair_byte_level_decoder(folder) is False
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    text = "naïve café — 東京 🙂\tdef f(a, *b)"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_quant_names():
    from harness.export.artifacts import check_quant

    assert check_quant("q4_k_m") == "Q4_K_M" and check_quant("Q8_0") == "Q8_0"
    for bad in ("Q9_X", "F16"):
        with pytest.raises(HarnessError, match=f"--quant {bad}: not a llama.cpp quantization type"):
            check_quant(bad)
