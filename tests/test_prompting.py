from harness.config import PromptConfig
from harness.data import Example, Query
from harness.prompting import build_messages, render_user_turn


def test_template_drops_empty_input_and_its_separator():
    assert render_user_turn(Query("1", "Summarize"), "{instruction}\n\n{input}") == "Summarize"
    assert render_user_turn(Query("1", "Summarize", "Text"), "{instruction}\n\n{input}") == "Summarize\n\nText"


def test_k_shot_messages_then_question_with_context():
    shots = [Example("s1", "Q1", output="A1"), Example("s2", "Q2", output="A2")]
    messages = build_messages(Query("q", "Q?"), PromptConfig(system="Sys"), shots, context="[doc] fact")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == "A1"
    assert messages[-1]["content"] == "[doc] fact\n\nQ?"


def test_example_system_and_history_are_kept():
    q = Query("q", "And now?", system="Own system", history=(("user", "Hi"), ("assistant", "Hello")))
    messages = build_messages(q, PromptConfig(system="Default"))
    assert messages[0] == {"role": "system", "content": "Own system"}
    assert [m["content"] for m in messages[1:]] == ["Hi", "Hello", "And now?"]
