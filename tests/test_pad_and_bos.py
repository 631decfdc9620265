"""The embedded model's special tokens after conversion, and the training batches built from them.

A pad equal to the end token lets padding logic drop the end token, so the model may not learn to stop; a BOS
that the chat template writes and the tokenizer adds again trains the model on a context it never answers in.
The batches are built as the worker builds them: harness.training's loader, TRL's SFTTrainer and its collator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import PromptConfig, generation_batch_size
from harness.data import Example
from harness.models import CONVERSION_VERSION, resolve_model, use_distinct_pad
from harness.prompting import build_messages
from harness.training import formatting

EXAMPLES = [Example("a", "List the parameter names.\n\nf(a, b=1)", output="a, b"),
            Example("b", "Say hi.", output="hi"),
            Example("c", "Name the language of `fn main() {}`, in one word, as it is usually spelled.", output="Rust")]
PROMPT = PromptConfig(system="Answer concisely.")


@pytest.fixture(scope="module")
def model_dir() -> str:
    return resolve_model("embedded:smollm2-135m-instruct")


def test_the_converted_model_pads_with_a_special_token_that_is_not_its_end_token(model_dir):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    assert Path(model_dir).name.endswith(f"-v{CONVERSION_VERSION}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert tokenizer.pad_token not in tokenizer.chat_template and tokenizer.pad_token != tokenizer.bos_token
    assert len(tokenizer) == 49152  # an existing token: none added
    assert AutoConfig.from_pretrained(model_dir).pad_token_id == tokenizer.pad_token_id == 0
    assert GenerationConfig.from_pretrained(model_dir).pad_token_id == 0
    assert GenerationConfig.from_pretrained(model_dir).eos_token_id == tokenizer.eos_token_id == 2


def test_the_converted_tokenizer_json_has_a_byte_level_decoder(model_dir):
    """Repaired at conversion (the GGUF loader writes a SentencePiece-style one), so llama.cpp's converter and the
    export read a byte-level BPE; text round-trips through it."""
    from transformers import PreTrainedTokenizerFast

    data = json.loads((Path(model_dir) / "tokenizer.json").read_text())
    assert data["decoder"]["type"] == "ByteLevel" and "ByteFallback" not in json.dumps(data["decoder"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(model_dir) / "tokenizer.json"))
    text = "naïve café — 東京 🙂\tdef f(a, *b)"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_an_end_token_pad_is_replaced_and_a_distinct_one_kept(model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert use_distinct_pad(tokenizer) is None and tokenizer.pad_token == "<|endoftext|>"
    tokenizer.pad_token = tokenizer.eos_token  # as the hub's SmolLM2 ships it
    assert use_distinct_pad(tokenizer) == "<|endoftext|>" and tokenizer.pad_token_id == 0
    tokenizer.pad_token = None
    assert use_distinct_pad(tokenizer) == "<|endoftext|>"
    assert len(tokenizer) == 49152


def worker_batch(model_dir: str, tokenizer, records: list[dict[str, str]], tmp_path: Path, padding_free: bool):
    """One batch of `records` as the worker's trainer collates it (peft engine, CPU)."""
    from datasets import Dataset

    from harness.training.engines import load_for_training, trainer_class
    from harness.training.spec import TrainSpec
    from harness.training.worker import training_args

    spec = TrainSpec(model_path=model_dir, device="cpu", engine="peft", engine_why="", load_in_4bit=False,
                     dtype="float32", lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-4, epochs=1,
                     batch_size=len(records), warmup_steps=0, max_seq_length=512, early_stopping_patience=1, seed=0,
                     eos_token=formatting.end_token(records, ["<|im_end|>"]), micro_batch=len(records),
                     grad_accum=1, gradient_checkpointing=False, work_dir=str(tmp_path), memory_plan={},
                     padding_free=padding_free)
    model, loaded, _, _ = load_for_training(spec)
    tokenizer = tokenizer or loaded
    use_distinct_pad(tokenizer)
    trainer = trainer_class("peft")(model=model, args=training_args(spec), processing_class=tokenizer,
                                    train_dataset=Dataset.from_list(records), eval_dataset=Dataset.from_list(records))
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(records))]), tokenizer


@pytest.mark.parametrize("padding_free", [False, True])
def test_the_end_token_is_a_labelled_target_in_the_workers_batches(model_dir, tmp_path, padding_free):
    """Each completion's '<|im_end|>' is a target (its label is its id, not -100); the prompt's turn ends are not;
    padding is the pad token, never labelled; each example starts with one '<|im_start|>' (no second BOS)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = formatting.build_records(EXAMPLES, PROMPT, tokenizer, formatting.stop_tokens(tokenizer, [2]))
    batch, tokenizer = worker_batch(model_dir, None, records, tmp_path, padding_free)
    eos, pad, bos = tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id
    assert pad != eos
    ids, labels = batch["input_ids"], batch["labels"]
    if padding_free:
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
        rows = [(ids[0, s:e], labels[0, s:e]) for s, e in zip(starts, starts[1:] + [ids.shape[1]])]
    else:
        rows = [(ids[r][batch["attention_mask"][r] == 1], labels[r][batch["attention_mask"][r] == 1])
                for r in range(len(records))]
        assert (labels[batch["attention_mask"] == 0] == -100).all() and (ids[batch["attention_mask"] == 0] == pad).all()
        assert (batch["attention_mask"] == 0).any()  # the examples differ in length: there is padding to check
    assert len(rows) == len(EXAMPLES)
    for (row_ids, row_labels), example in zip(rows, EXAMPLES):
        targets = row_ids[row_labels != -100]
        assert targets[-1] == eos and row_labels[-1] == eos, example.id
        assert tokenizer.decode(targets) == example.output + "<|im_end|>"
        ends = (row_ids == eos).nonzero().flatten().tolist()
        assert len(ends) == 3 and all(row_labels[i] == -100 for i in ends[:2])  # system and user turns: context
        assert row_ids[0] == bos and row_ids[1] != bos


def test_a_tokenizer_that_adds_a_bos_trains_with_the_one_bos_it_answers_with(model_dir, tmp_path):
    """Llama-3-style: the template writes the BOS and the tokenizer adds one. The record's prompt drops the written
    one, so TRL's tokenization of prompt + completion starts with the ids the backend answers from (the rendered
    prompt, tokenized without special tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_bos_token=True)
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id  # the tokenizer adds '<|im_start|>'
    stops = formatting.stop_tokens(tokenizer, [2])
    records = formatting.build_records(EXAMPLES, PROMPT, tokenizer, stops)
    rendered = [formatting.render_prompt(tokenizer, build_messages(ex, PROMPT, [])) for ex in EXAMPLES]
    assert all(r["prompt"] == text.removeprefix(tokenizer.bos_token) for r, text in zip(records, rendered))
    batch, _ = worker_batch(model_dir, tokenizer, records, tmp_path, padding_free=False)
    for row, text in enumerate(rendered):
        answered = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert batch["input_ids"][row, :len(answered)].tolist() == answered
        assert answered[0] == tokenizer.bos_token_id and answered[1] != tokenizer.bos_token_id
    plain = AutoTokenizer.from_pretrained(model_dir)  # adds no BOS: the rendered prompt is kept whole
    assert formatting.build_records(EXAMPLES[:1], PROMPT, plain, stops)[0]["prompt"] == rendered[0]


def test_generation_batch_size_zero_is_chosen_for_the_device_and_a_number_is_kept():
    assert generation_batch_size(0, "cuda") == 32 and generation_batch_size(0, "cuda:1") == 32
    assert generation_batch_size(0, "cpu") == 8 and generation_batch_size(0, "mps") == 8
    assert generation_batch_size(5, "cuda") == 5 and generation_batch_size(5, "cpu") == 5
