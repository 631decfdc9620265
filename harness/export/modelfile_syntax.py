"""Ollama Modelfile text: write it (`modelfile_text`) and read it back (`parse_modelfile`) as Ollama does.

parse_modelfile follows Ollama's own parser (parser/parser.go, `ParseFile`) rune by rune, so a round trip
here means `ollama create` reads the same values:
- a value runs to the first newline at which it unquotes: `"..."` or `\"\"\"...\"\"\"`, or bare;
- there are no escape sequences: quotes and backslashes are literal, so a value that holds `\"\"\"`
  cannot be triple-quoted, and one with a newline after a `"` cannot be single-quoted;
- characters Go's strconv.IsPrint rejects (controls, format characters such as U+200D, spaces other
  than U+0020) are dropped, except tabs and newlines inside quotes; we refuse them instead.
"""

from __future__ import annotations

import re
from typing import Any

from harness.errors import HarnessError

COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
            "message", "requires")
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_]+")
SPACES, NEWLINES = " \t", "\r\n"


def modelfile_text(gguf_file: str, template: str, system: str, stops: list[str],
                   parameters: dict[str, Any] | None = None) -> str:
    """A Modelfile: FROM ./<gguf_file>, TEMPLATE, SYSTEM, one `PARAMETER stop` per distinct stop (order kept),
    `PARAMETER temperature 0`, then `parameters` (a list value gives one line per item).

    Raises HarnessError, naming the field, for anything Ollama would read back differently.
    """
    if not gguf_file or any(char in gguf_file for char in "/\\\n\r") or gguf_file.startswith('"'):
        raise HarnessError(f"Modelfile FROM: {gguf_file!r} must be a bare file name next to the Modelfile")
    lines = [f"FROM ./{gguf_file}",
             f"TEMPLATE {_triple_quoted(template, 'TEMPLATE')}",
             f"SYSTEM {_triple_quoted(system, 'SYSTEM')}"]
    for stop in dict.fromkeys(stops):
        if not stop:
            raise HarnessError("Modelfile PARAMETER stop: an empty stop string would end every answer at once")
        lines.append(f"PARAMETER stop {_single_quoted(stop, 'PARAMETER stop')}")
    lines.append("PARAMETER temperature 0")
    written = [("stop", stop) for stop in dict.fromkeys(stops)] + [("temperature", "0")]
    for name, value in (parameters or {}).items():
        if name in ("stop", "temperature") or not PARAMETER_NAME.fullmatch(name):
            raise HarnessError(f"Modelfile PARAMETER {name!r}: not a settable parameter name here "
                               "(stop and temperature are written from their own arguments)")
        for item in value if isinstance(value, list) else [value]:
            written.append((name, _parameter_value(item, name)))
            bare = re.fullmatch(r'[^\s"]+', written[-1][1]) and written[-1][1].isprintable()
            lines.append(f"PARAMETER {name} " + (written[-1][1] if bare else
                                                 _single_quoted(written[-1][1], f"PARAMETER {name}")))
    text = "\n".join(lines) + "\n"
    parsed = parse_modelfile(text)
    expected = (f"./{gguf_file}", template, system, written)
    if (parsed["FROM"], parsed["TEMPLATE"], parsed["SYSTEM"], parsed["PARAMETER"]) != expected:
        # The quoting checks above follow Ollama's parser exactly, so this is a bug here, not bad input.
        raise HarnessError("Modelfile: the written text does not read back as written (a bug in modelfile_text)")
    return text


def parse_modelfile(text: str) -> dict[str, Any]:
    """{"FROM": str, "TEMPLATE": str | None, "SYSTEM": str | None, "PARAMETER": [(name, value), ...]}, plus
    any other command (ADAPTER, LICENSE, MESSAGE, ...) as a list of values under its upper-case name.

    HarnessError("Modelfile line N: ...") where Ollama's parser fails.
    """
    commands = _parse_commands(text.removeprefix("\ufeff"))
    parsed: dict[str, Any] = {"FROM": None, "TEMPLATE": None, "SYSTEM": None, "PARAMETER": []}
    for name, args, _ in commands:
        if name in ("model", "template", "system"):
            parsed["FROM" if name == "model" else name.upper()] = args  # the last one wins, as in Ollama
        elif name in COMMANDS:
            parsed.setdefault(name.upper(), []).append(args)
        else:
            parsed["PARAMETER"].append((name, args))
    if parsed["FROM"] is None:
        raise HarnessError("Modelfile: no FROM line")
    return parsed


def _triple_quoted(value: str, field: str) -> str:
    if '"""' in value:
        raise HarnessError(f'Modelfile {field}: the text contains """, which a Modelfile cannot quote')
    _printable(value, field)
    return f'"""{value}"""'


def _single_quoted(value: str, field: str) -> str:
    _printable(value, field)
    quoted = f'"{value}"'
    try:
        read_back = _parse_commands(f"PARAMETER x {quoted}\nFROM x\n")[0][1]
    except HarnessError:
        read_back = None
    if read_back != value:
        raise HarnessError(f"Modelfile {field}: {value!r} cannot be quoted so Ollama reads it back unchanged")
    return quoted


def _printable(value: str, field: str) -> None:
    for line, text in enumerate(value.split("\n"), 1):
        bad = next((char for char in text if not (char.isprintable() or char == "\t")), None)
        if bad is not None:
            raise HarnessError(f"Modelfile {field}: line {line} of the text holds U+{ord(bad):04X}, "
                               "which Ollama's Modelfile parser drops")


def _parameter_value(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise HarnessError(f"Modelfile PARAMETER {name}: {value!r} is not a number, string or boolean")


def _unquote(text: str) -> tuple[str, bool]:
    if text.startswith('"""'):
        return (text[3:-3], True) if len(text) >= 6 and text.endswith('"""') else ("", False)
    if text.startswith('"'):
        return (text[1:-1], True) if len(text) >= 2 and text.endswith('"') else ("", False)
    return text, True


def _parse_commands(text: str) -> list[tuple[str, str, int]]:
    """(command, value, line) in order; Ollama's state machine: nil, name, value, parameter, message, comment."""
    commands: list[tuple[str, str, int]] = []
    state, buffer, name, role, line = "nil", [], "", "", 1

    def error(message: str) -> HarnessError:
        return HarnessError(f"Modelfile line {line}: {message}")

    for char in text:
        line += char == "\n"
        following, keep = _next_state(state, char, error)
        if following != state:
            word = "".join(buffer)
            if state == "name":
                if word.lower() not in COMMANDS:
                    raise error(f"unknown command {word!r} (one of {', '.join(COMMANDS)})")
                name = "model" if word.lower() == "from" else word.lower()
                following = {"parameter": "parameter", "message": "message"}.get(name, following)
            elif state == "parameter":
                name = word
            elif state == "message":
                if word not in ("system", "user", "assistant"):
                    raise error(f"message role {word!r} is not system, user or assistant")
                role = word
            elif state == "value":
                value, ok = _unquote(word.strip(SPACES + NEWLINES))
                if not ok or char in SPACES:
                    buffer.append(char)
                    continue
                commands.append((name, f"{role}: {value}" if role else value, line))
                role = ""
            buffer = []
            state = following
        if keep and char.isprintable():
            buffer.append(char)
    if state == "value":
        value, ok = _unquote("".join(buffer).strip(SPACES + NEWLINES))
        if not ok:
            raise error("unterminated quoted value at the end of the file")
        commands.append((name, f"{role}: {value}" if role else value, line))
    elif state not in ("nil", "comment"):
        raise error("unexpected end of file")
    return commands


def _next_state(state: str, char: str, error: Any) -> tuple[str, bool]:
    """The state after `char` and whether `char` may go into the buffer (Ollama's parseRuneForState)."""
    space, newline = char in SPACES, char in NEWLINES
    if state == "nil":
        return ("comment", False) if char == "#" else ("nil", False) if space or newline else ("name", True)
    if state == "comment":
        return ("nil", False) if newline else ("comment", False)
    if state == "value":
        return ("nil", True) if space or newline else ("value", True)
    if state == "name" and char.isascii() and char.isalpha():
        return "name", True
    if state == "parameter" and char.isascii() and (char.isalnum() or char == "_"):
        return state, True
    if state == "message" and char.isascii() and char.isalpha():
        return state, True
    if space:
        return "value", False
    raise error(f"unexpected {char!r} in a command name")

