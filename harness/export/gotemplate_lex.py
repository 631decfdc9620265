"""The lexer for harness/export/gotemplate.py: Go text/template source into text pieces and action tokens.

Follows Go's text/template/parse lexer where chat templates need it: `{{- ` trims every space, tab, CR and
newline before the action, ` -}}` every one after it (the dash must touch a space, as in Go); comments are
`{{/* ... */}}`, with optional trim markers, and must close right after `*/`. Anything this lexer does not
know raises GoTemplateError naming the line and column.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

SPACE = " \t\r\n"
KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "true", "false", "nil"}
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


class GoTemplateError(HarnessError):
    """The template uses Go template syntax this renderer does not implement, or is invalid."""


def where(source: str, pos: int) -> str:
    line = source.count("\n", 0, pos) + 1
    return f"line {line} col {pos - (source.rfind(chr(10), 0, pos) + 1) + 1}"


def fail(source: str, pos: int, message: str) -> GoTemplateError:
    return GoTemplateError(f"Go template: {message} at {where(source, pos)}")


@dataclass(frozen=True)
class Token:
    kind: str
    """One of: string, number, bool, nil, field, var, ident, keyword, dot, (, ), |, ",", :=, =."""
    value: object
    pos: int
    end: int


@dataclass(frozen=True)
class Piece:
    """Literal text (tokens None) or one action's tokens; pos is where it starts in the source."""

    text: str | None
    tokens: list[Token] | None
    pos: int


def lex(source: str) -> list[Piece]:
    pieces: list[Piece] = []
    at, trim_next = 0, False
    while at <= len(source):
        start = source.find("{{", at)
        text = source[at:] if start < 0 else source[at:start]
        left_trim = start >= 0 and source[start + 2:start + 3] == "-" and source[start + 3:start + 4] in tuple(SPACE)
        if trim_next:
            text = text.lstrip(SPACE)
        if left_trim:
            text = text.rstrip(SPACE)
        if text:
            pieces.append(Piece(text, None, at))
        if start < 0:
            break
        inner = start + (4 if left_trim else 2)
        tokens, at, trim_next = _lex_action(source, inner)
        if tokens is not None:
            pieces.append(Piece(None, tokens, start))
    return pieces


def _close_at(source: str, at: int) -> tuple[int, bool] | None:
    """(offset after the closing delimiter, right trim) when one starts at `at`."""
    if source.startswith("}}", at):
        return at + 2, False
    if source[at:at + 1] in tuple(SPACE) and source.startswith("-}}", at + 1):
        return at + 4, True
    return None


def _lex_action(source: str, at: int) -> tuple[list[Token] | None, int, bool]:
    """The tokens of one action (None for a comment), the offset after it, and whether it trims right."""
    body = at
    while source[body:body + 1] in tuple(SPACE) and source[body:body + 1]:
        body += 1
    if source.startswith("/*", body) and body == at:
        end = source.find("*/", body + 2)
        closed = _close_at(source, end + 2) if end >= 0 else None
        if closed is None:
            raise fail(source, body, "comment is not closed by '*/' right before '}}'")
        return None, closed[0], closed[1]
    tokens: list[Token] = []
    while True:
        while source[at:at + 1] and source[at] in SPACE and _close_at(source, at) is None:
            at += 1
        closed = _close_at(source, at)
        if closed is not None:
            return tokens, closed[0], closed[1]
        if at >= len(source):
            raise fail(source, at, "unclosed action (no '}}')")
        token = _token(source, at)
        tokens.append(token)
        at = token.end


def _token(source: str, at: int) -> Token:
    char = source[at]
    if char == '"':
        return _string(source, at)
    if char == "`":
        end = source.find("`", at + 1)
        if end < 0:
            raise fail(source, at, "unterminated raw string")
        return Token("string", source[at + 1:end], at, end + 1)
    for symbol in (":=", "(", ")", "|", ",", "="):
        if source.startswith(symbol, at):
            return Token(symbol, symbol, at, at + len(symbol))
    word_end = at + 1
    while word_end < len(source) and (source[word_end].isalnum() or source[word_end] == "_"):
        word_end += 1
    word = source[at:word_end]
    if char == "." and len(word) == 1:
        return Token("dot", ".", at, at + 1)
    if char == "." and (word[1:2].isalpha() or word[1:2] == "_"):
        return Token("field", word[1:], at, word_end)
    if char == "$":
        return Token("var", word, at, word_end)
    if char == "-" or char.isdigit():
        digits = _word(source, at) if char != "-" else "-" + _word(source, at + 1)
        if digits.lstrip("-").isdigit():
            return Token("number", int(digits), at, at + len(digits))
        raise fail(source, at, f"unsupported number {digits!r} (integers only)")
    if char.isalpha() or char == "_":
        if word in ("true", "false"):
            return Token("bool", word == "true", at, word_end)
        if word == "nil":
            return Token("nil", None, at, word_end)
        return Token("keyword" if word in KEYWORDS else "ident", word, at, word_end)
    raise fail(source, at, f"unsupported character {char!r} in action")


def _word(source: str, at: int) -> str:
    end = at
    while end < len(source) and (source[end].isalnum() or source[end] in "._"):
        end += 1
    return source[at:end]


def _string(source: str, at: int) -> Token:
    out, index = [], at + 1
    while index < len(source) and source[index] != '"':
        char = source[index]
        if char == "\n":
            break
        if char == "\\":
            code = source[index + 1:index + 2]
            if code in ESCAPES:
                out.append(ESCAPES[code])
                index += 2
                continue
            if code in ("u", "U", "x"):
                width = {"u": 4, "U": 8, "x": 2}[code]
                digits = source[index + 2:index + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(chr(int(digits, 16)))
                    index += 2 + width
                    continue
            raise fail(source, index, f"unsupported escape '\\{code}' in string")
        out.append(char)
        index += 1
    if index >= len(source) or source[index] != '"':
        raise fail(source, at, "unterminated string")
    return Token("string", "".join(out), at, index + 1)
