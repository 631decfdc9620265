"""The Ollama Modelfile of an exported model, and the check that its TEMPLATE is the tokenizer's.

    render_hf = hf_renderer(model_dir)
    family, template = choose_template(render_hf, probe_conversations(system_prompt, example))
    text = modelfile_text("model.gguf", template, system_prompt, stops=["<|im_end|>"], parameters={"num_ctx": 2048})

The template check renders each conversation twice, with the Go template (harness/export/gotemplate.py,
on the data Ollama hands a template: `ollama_data`) and with the tokenizer's own chat template, and
wants the two byte-identical: a fine-tuned model served with other separators answers worse, silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.export.families import FAMILIES, PROBES, probe_conversations
from harness.export.gotemplate import render
from harness.export.modelfile_syntax import modelfile_text, parse_modelfile
from harness.records import Message

__all__ = ["FAMILIES", "PROBES", "Mismatch", "TemplateMismatch", "check_template", "choose_template",
           "describe_mismatch", "hf_renderer", "modelfile_text", "ollama_data", "parse_modelfile",
           "probe_conversations"]

Renderer = Callable[[list[Message]], str]
SHOWN_LINES = 40


class TemplateMismatch(HarnessError):
    """No Go template renders what the tokenizer's chat template renders; the message shows both."""


@dataclass(frozen=True)
class Mismatch:
    conversation: list[Message]
    go: str
    """What the Go template rendered."""
    hf: str
    """What the tokenizer's chat template rendered (leading BOS text removed where llama.cpp adds BOS)."""
    offset: int
    """The first character (0-based) where the two differ; the shorter length when one is a prefix."""


def ollama_data(messages: list[Message], modelfile_system: str = "") -> dict[str, Any]:
    """The data Ollama executes a chat template on, for a /api/chat request with these messages.

    Follows Ollama's template/template.go (`Template.Execute`, the branch for templates that use
    .Messages, and `collate`): "System" is every system message's content joined by a blank line;
    "Messages" keeps every message, system ones included, with consecutive messages of one role
    (tools apart) merged by a blank line, each with the fields of api.Message a template can read;
    "Response" is "". There is no "Prompt" key: Ollama sets .Prompt only for legacy templates without
    .Messages, so a template that reads .Prompt here fails the check instead of passing it wrongly.
    `modelfile_system` is the Modelfile's SYSTEM: Ollama's chat handler (server/routes.go) puts it first
    as a system message when it is not empty and the request does not start with a system message.
    """
    if modelfile_system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": modelfile_system}, *messages]
    merged: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if merged and merged[-1]["Role"] == role and role != "tool":
            merged[-1]["Content"] += "\n\n" + content
        else:
            merged.append({"Role": role, "Content": content, "Thinking": "", "Images": None, "ToolCalls": None,
                           "ToolName": ""})
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return {"System": system, "Messages": merged, "Tools": None, "Response": "", "Think": False,
            "IsThinkSet": False, "Query": "", "Document": "", "Instruction": ""}


def hf_renderer(model_dir: str | Path, *, strip_bos: bool | None = None) -> Renderer:
    """The tokenizer's `apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`.

    A leading BOS text is removed when the tokenizer adds BOS itself at tokenization (`strip_bos=None`
    asks the tokenizer; pass the GGUF's `tokenizer.ggml.add_bos_token` to decide instead): llama.cpp and
    Ollama add BOS as a token from that flag, never from the template, so what the model sees is BOS +
    the rest, and the Go template must render only the rest.
    """
    from jinja2 import TemplateError
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise HarnessError(f"{model_dir}: cannot load the tokenizer: {error}") from None
    if not tokenizer.chat_template:
        raise HarnessError(f"{model_dir}: the tokenizer has no chat template, so there is nothing to export to Ollama")
    bos = tokenizer.bos_token
    if strip_bos is None:
        ids = tokenizer("a")["input_ids"]
        strip_bos = bos is not None and ids[:1] == [tokenizer.bos_token_id]

    def render_hf(messages: list[Message]) -> str:
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as error:
            roles = ", ".join(m["role"] for m in messages)
            raise HarnessError(f"{model_dir}: the tokenizer's chat template fails on a conversation "
                               f"({roles}): {error}") from None
        return text[len(bos):] if strip_bos and bos and text.startswith(bos) else text

    return render_hf


def check_template(go_template: str, render_hf: Renderer, conversations: Sequence[list[Message]], *,
                   modelfile_system: str = "") -> list[Mismatch]:
    """The conversations whose Go rendering is not byte-identical to the tokenizer's, in order.

    Each conversation is a request as the harness sends it: the tokenizer renders it as it is, Ollama
    after adding `modelfile_system` where the request has no system message (see ollama_data).
    """
    mismatches = []
    for conversation in conversations:
        go = render(go_template, ollama_data(conversation, modelfile_system))
        hf = render_hf(conversation)
        if go != hf:
            offset = next((i for i, (a, b) in enumerate(zip(go, hf)) if a != b), min(len(go), len(hf)))
            mismatches.append(Mismatch(list(conversation), go, hf, offset))
    return mismatches


def choose_template(render_hf: Renderer, conversations: Sequence[list[Message]], *,
                    modelfile_system: str = "") -> tuple[str, str]:
    """(family name, Go template) of the first family in FAMILIES with no mismatch on `conversations`.

    None: TemplateMismatch, whose message shows the closest family's rendering beside the tokenizer's.
    """
    if not conversations:
        raise HarnessError("template check: no conversations to check the template on")
    results = {name: check_template(template, render_hf, conversations, modelfile_system=modelfile_system)
               for name, template in FAMILIES.items()}
    for name, mismatches in results.items():
        if not mismatches:
            return name, FAMILIES[name]
    closest = min(results, key=lambda name: (len(results[name]), -results[name][0].offset))
    first = results[closest][0]
    raise TemplateMismatch(
        f"no Ollama template family ({', '.join(FAMILIES)}) renders this tokenizer's chat template exactly; "
        f"closest: {closest}, {len(results[closest])} of {len(conversations)} conversations differ, the first "
        f"at character {first.offset}\n" + describe_mismatch(first, f"{closest} (Go template)"))


def describe_mismatch(mismatch: Mismatch, go_label: str = "Modelfile TEMPLATE") -> str:
    """The two renderings side by side, one repr'd line each, `!` on lines that differ."""
    go_lines, hf_lines = mismatch.go.splitlines(keepends=True), mismatch.hf.splitlines(keepends=True)
    line = mismatch.hf[:mismatch.offset].count("\n") + 1
    rows = [f"  conversation roles: {', '.join(m['role'] for m in mismatch.conversation)}",
            f"  first difference: character {mismatch.offset} (line {line}): "
            f"Go {mismatch.go[mismatch.offset:mismatch.offset + 20]!r} vs tokenizer "
            f"{mismatch.hf[mismatch.offset:mismatch.offset + 20]!r}"]
    pairs = list(zip_longest(go_lines, hf_lines, fillvalue=""))
    width = max([len(go_label)] + [len(repr(go)) for go, _ in pairs[:SHOWN_LINES]])
    rows.append(f"    {go_label:<{width}} | tokenizer chat template")
    for go, hf in pairs[:SHOWN_LINES]:
        rows.append(f"  {'!' if go != hf else ' '} {repr(go) if go else '':<{width}} | {repr(hf) if hf else ''}")
    if len(pairs) > SHOWN_LINES:
        rows.append(f"    ... {len(pairs) - SHOWN_LINES} more lines")
    return "\n".join(rows)
