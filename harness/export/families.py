"""Ollama (Go) chat templates we write for common chat formats, and the conversations that check them.

Each template renders byte-identically to its family's Hugging Face Jinja template (without the
leading BOS text, which llama.cpp adds as a token) for conversations that start with one system
message: the Modelfile's SYSTEM makes Ollama always send one. tests/test_modelfile.py renders each
against the real Jinja template of a model of the family, shipped in the `trl` package.

What Go templates cannot express, so these templates do not: Llama 3 and Gemma trim each message
(`| trim`) and Ollama's template functions have no trim, so content with leading or trailing
whitespace renders differently there (the check then fails, rightly: the model would see other text).
Llama 3.2 writes today's date into the system turn, so it has no fixed template here.
"""

from __future__ import annotations

from harness.records import Message

FAMILIES: dict[str, str] = {
    # SmolLM2, Qwen2 and Qwen2.5 (both add a default system turn only when there is none).
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    ),
    # Llama 3 (3.0) Instruct.
    "llama3": (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    # Llama 3.1 Instruct: the system turn always opens with the knowledge cutoff and a fixed date.
    "llama3.1": (
        "{{- range $i, $m := .Messages }}\n"
        "{{- if and (eq $i 0) (eq .Role \"system\") }}<|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{{ .Content }}<|eot_id|>\n"
        "{{- else }}\n"
        "{{- if eq $i 0 }}<|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>\n"
        "{{- end }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
        "{{- end }}\n"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    # Gemma 3: no system role; the system text and a blank line open the first user turn.
    "gemma": (
        "{{- $prefix := \"\" }}\n"
        "{{- range $i, $m := .Messages }}\n"
        "{{- if and (eq $i 0) (eq .Role \"system\") }}{{ $prefix = printf \"%s\\n\\n\" .Content }}\n"
        "{{- else }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
        "{{ $prefix }}{{ .Content }}<end_of_turn>\n{{ $prefix = \"\" }}\n"
        "{{- end }}\n"
        "{{- end }}<start_of_turn>model\n"
    ),
    # Phi-3 (mini, medium) Instruct.
    "phi3": (
        "{{- range .Messages }}\n"
        "{{- if or (eq .Role \"system\") (eq .Role \"user\") (eq .Role \"assistant\") }}"
        "<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}\n"
        "{{- end }}<|assistant|>\n"
    ),
}
"""Family name to Go template, in the order choose_template tries them."""

PROBE_SYSTEM = "You are a careful assistant.\nAnswer in one line."

PROBES: list[list[Message]] = [
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": PROBE_SYSTEM},
     {"role": "user", "content": "Name a prime number."},
     {"role": "assistant", "content": "7"},
     {"role": "user", "content": "And one above 10?"}],
    # Quotes, template braces of both syntaxes, unicode, tabs, blank lines and trailing spaces inside
    # a message. Message ends stay trimmed: Llama 3 and Gemma trim them, and no Go template can.
    [{"role": "system", "content": 'Quote "this" and \'that\'; keep {{ .System }} and {% raw %} as text.'},
     {"role": "user", "content": "naïve café — 東京 🙂\n\tindented line   \n\nlast line after a blank"},
     {"role": "assistant", "content": 'print("}}{{")\n# done'},
     {"role": "user", "content": "Again, with a backslash \\n and <|im_end|>-like text <eos>."}],
]
"""Conversations every exported template must render exactly as the tokenizer does."""


def probe_conversations(system_prompt: str | None = None, example: str | None = None) -> list[list[Message]]:
    """PROBES, plus the task's own system prompt with a task input, once alone and once after a turn."""
    conversations = list(PROBES)
    if system_prompt is not None:
        question = example if example is not None else "What is 2 + 2?"
        conversations.append([{"role": "system", "content": system_prompt}, {"role": "user", "content": question}])
        conversations.append([{"role": "system", "content": system_prompt}, {"role": "user", "content": question},
                              {"role": "assistant", "content": "4"}, {"role": "user", "content": question}])
    return conversations
