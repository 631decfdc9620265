"""Turning queries into chat messages: system prompt, k worked examples, optional context."""

from __future__ import annotations

from harness.config import PromptConfig
from harness.data import Example, Query
from harness.records import Message


def render_user_turn(query: Query, template: str) -> str:
    """The user message of a query; chat-format data (no `input`) keeps its own message text."""
    if not query.input:
        # Drop "{input}" and the separator before it, so an empty input leaves no dangling blank lines.
        head = template.split("{input}")[0].rstrip()
        return head.format(instruction=query.instruction) if "{instruction}" in head else query.instruction
    return template.format(instruction=query.instruction, input=query.input)


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
