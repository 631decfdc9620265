"""Turning queries into chat messages: system prompt, k worked examples, optional context."""

from __future__ import annotations

import string

from harness.config import PromptConfig
from harness.data import Example, Query
from harness.records import Message


def fill(template: str, **values: str) -> str:
    """`template` with its placeholders replaced by `values`, parsed as str.format parses it ({{ and }}
    are literal braces) but filled piece by piece: braces inside the values stay text."""
    pieces: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if name is not None:
            pieces.append(values[name])
    return "".join(pieces)


def render_user_turn(query: Query, template: str) -> str:
    """The user message of a query; chat-format data (no `input`) keeps its own message text.

    The template is parsed as str.format parses it ({{ and }} are literal braces), but filled piece by
    piece: braces inside the instruction or input are text, never placeholders.
    """
    pieces: list[str] = []
    has_instruction = False
    for literal, name, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if name == "input" and not query.input:
            # Stop before an empty input, dropping its separator, so no dangling blank lines are left.
            return "".join(pieces).rstrip() if has_instruction else query.instruction
        if name == "instruction":
            pieces.append(query.instruction)
            has_instruction = True
        elif name == "input":
            pieces.append(query.input)
        elif name is not None:
            raise ValueError(f"template placeholder {{{name}}} is not {{instruction}} or {{input}}")
    return "".join(pieces) if has_instruction or query.input else query.instruction


def build_messages(query: Query, prompt: PromptConfig, shots: list[Example] = (),  # type: ignore[assignment]
                   context: str | None = None) -> list[Message]:
    """System prompt, then k (user, assistant) shot pairs, then the query's history and question.

    `context` (retrieved passages) goes before the question in the final user turn.
    """
    system = query.system or prompt.system
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages.append({"role": "user", "content": render_user_turn(shot, prompt.template)})
        messages.append({"role": "assistant", "content": shot.output})
    messages.extend({"role": role, "content": content} for role, content in query.history)
    question = render_user_turn(query, prompt.template)
    if context:
        question = f"{context}\n\n{question}"
    messages.append({"role": "user", "content": question})
    return messages
