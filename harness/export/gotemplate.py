"""A small interpreter for the part of Go's text/template that Ollama chat templates use.

    from harness.export.gotemplate import render
    render("{{- range .Messages }}<|im_start|>{{ .Role }}\\n{{ .Content }}<|im_end|>\\n{{ end }}", data)

It exists so an exported Modelfile's TEMPLATE can be checked against the tokenizer's chat template
without a Go toolchain or an Ollama server. Supported: text; `{{ }}` actions with `{{-`/`-}}` trim
markers; comments; `if` / `else if` / `else` / `end`; `range` (list, map, int; `$i, $m :=`; `else`;
`break`/`continue`); `with`; variables (`$x := ...`, `$x = ...`, `$`); fields (`.A.B`, `$.A`, `$x.A`,
`(index .Messages 0).Role`); pipes; string, int, bool and nil literals; the functions `eq ne lt le gt
ge and or not len index slice printf` (printf: %s %d %v %% only). Data is plain dicts and lists, a
field `.X` reads the key "X". Go's truthiness. Anything else raises GoTemplateError naming the line
and column: the interpreter never renders silently wrong. Deliberate strictness beyond Go: a field
missing from a dict, printing nil, a list or a map, and `eq` on mixed types are errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.export.gotemplate_lex import GoTemplateError, Piece, Token, fail, lex
from harness.export.gotemplate_ops import FUNCTIONS, lazy_and, lazy_or, print_value, truth

__all__ = ["GoTemplateError", "render"]


@dataclass
class Pipe:
    decl: list[str]
    assign: bool
    """`$x = v` (True) rather than `$x := v`."""
    commands: list[list[tuple]]
    pos: int


@dataclass
class Branch:
    kind: str
    """"if", "with" or "range"."""
    pipe: Pipe
    body: list = field(default_factory=list)
    orelse: list = field(default_factory=list)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def render(template: str, data: dict[str, Any]) -> str:
    """`template` executed on `data`, as Go's text/template would, or GoTemplateError."""
    nodes = _Parser(template).parse()
    out: list[str] = []
    _Exec(template, out, data).walk(nodes, data)
    return "".join(out)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pieces = lex(source)
        self.at = 0
        self.vars = ["$"]
        self.loops = 0
        self.rest: list[Token] = []
        """The tokens after the `else` or `end` that ended the last list."""

    def parse(self) -> list:
        nodes, stop = self.parse_list()
        if stop is not None:
            raise fail(self.source, stop.pos, f"unexpected {{{{{stop.value}}}}}")
        return nodes

    def parse_list(self) -> tuple[list, Token | None]:
        """Nodes up to an `else` or `end` (returned with the tokens after it) or the end of the source."""
        nodes: list = []
        while self.at < len(self.pieces):
            piece: Piece = self.pieces[self.at]
            self.at += 1
            if piece.tokens is None:
                nodes.append(piece.text)
                continue
            tokens = piece.tokens
            if not tokens:
                raise fail(self.source, piece.pos, "missing value for command")
            head = tokens[0]
            if head.kind == "keyword" and head.value in ("else", "end"):
                self.rest = tokens[1:]
                if head.value == "end" and self.rest:
                    raise fail(self.source, self.rest[0].pos, "unexpected token after end")
                return nodes, head
            if head.kind == "keyword" and head.value in ("if", "with", "range"):
                nodes.append(self.control(str(head.value), tokens[1:], head))
            elif head.kind == "keyword" and head.value in ("break", "continue"):
                if not self.loops or len(tokens) > 1:
                    raise fail(self.source, head.pos, f"{{{{{head.value}}}}} outside range or with arguments")
                nodes.append(head.value)
            else:
                nodes.append(("action", self.pipeline(tokens, head.pos, allow_two=False)))
        return nodes, None

    def control(self, kind: str, tokens: list[Token], head: Token) -> Branch:
        if not tokens:
            raise fail(self.source, head.end, f"missing pipeline after {kind}")
        depth = len(self.vars)
        branch = Branch(kind, self.pipeline(tokens, tokens[0].pos, allow_two=kind == "range"))
        scoped = len(self.vars)
        self.loops += kind == "range"
        branch.body, stop = self.parse_list()
        self.loops -= kind == "range"
        if stop is None:
            raise fail(self.source, head.pos, f"{{{{{kind}}}}} has no matching {{{{end}}}}")
        if stop.value == "else":
            del self.vars[scoped:]
            rest = self.rest
            if rest and rest[0].kind == "keyword" and rest[0].value in ("if", "with") and kind != "range":
                # `else if` shares the outer `end`: parse it as an if nested in the else branch.
                branch.orelse = [self.control(str(rest[0].value), rest[1:], rest[0])]
            elif rest:
                raise fail(self.source, rest[0].pos, "unexpected token after else")
            else:
                branch.orelse, stop = self.parse_list()
                if stop is None or stop.value != "end":
                    raise fail(self.source, head.pos, f"{{{{{kind}}}}}...{{{{else}}}} has no matching {{{{end}}}}")
        del self.vars[depth:]
        return branch

    def pipeline(self, tokens: list[Token], pos: int, allow_two: bool) -> Pipe:
        decl: list[str] = []
        assign = False
        names = [t for t in tokens[:3:2] if t.kind == "var"]
        if len(tokens) > 2 and tokens[0].kind == "var" and tokens[1].kind in (":=", "="):
            decl, assign, tokens = [str(tokens[0].value)], tokens[1].kind == "=", tokens[2:]
        elif allow_two and len(tokens) > 4 and len(names) == 2 and tokens[1].kind == "," and tokens[3].kind == ":=":
            decl, tokens = [str(t.value) for t in names], tokens[4:]
        if assign and decl[0] not in self.vars:
            raise fail(self.source, pos, f"undefined variable {decl[0]}")
        commands: list[list[tuple]] = [[]]
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.kind == "|":
                commands.append([])
                index += 1
                continue
            operand, index = self.operand(tokens, index)
            commands[-1].append(operand)
        if any(not command for command in commands):
            raise fail(self.source, pos, "missing command in pipeline")
        for command in commands:
            if command[0][0] != "ident" and len(command) > 1:
                raise fail(self.source, command[1][-1], "can't give arguments to a non-function")
        if not assign:
            self.vars.extend(decl)
        return Pipe(decl, assign, commands, pos)

    def operand(self, tokens: list[Token], index: int) -> tuple[tuple, int]:
        token = tokens[index]
        index += 1
        if token.kind in ("string", "number", "bool", "nil"):
            node: tuple = ("const", token.value, token.pos)
        elif token.kind == "ident":
            if token.value not in FUNCTIONS:
                raise fail(self.source, token.pos, f"unsupported function {token.value!r}")
            node = ("ident", token.value, token.pos)
        elif token.kind == "dot":
            node = ("dot", None, token.pos)
        elif token.kind == "field":
            node = ("field", (("dot", None, token.pos), [token.value]), token.pos)
        elif token.kind == "var":
            if token.value not in self.vars:
                raise fail(self.source, token.pos, f"undefined variable {token.value}")
            node = ("var", token.value, token.pos)
        elif token.kind == "(":
            depth, close = 1, index
            while close < len(tokens) and depth:
                depth += {"(": 1, ")": -1}.get(tokens[close].kind, 0)
                close += 1
            if depth:
                raise fail(self.source, token.pos, "unclosed left paren")
            node = ("pipe", self.pipeline(tokens[index:close - 1], token.pos, allow_two=False), token.pos)
            index = close
        else:
            raise fail(self.source, token.pos, f"unexpected {token.value!r} in command")
        # Fields touching the operand before them chain onto it: `$x.Role`, `(index .M 0).Role`, `.A.B`.
        while index < len(tokens) and tokens[index].kind == "field" and tokens[index].pos == tokens[index - 1].end:
            if node[0] in ("const", "ident"):
                raise fail(self.source, tokens[index].pos, "field access on a literal or function")
            base, names = node[1] if node[0] == "field" else (node, [])
            node = ("field", (base, [*names, tokens[index].value]), node[2])
            index += 1
        return node, index


class _Exec:
    def __init__(self, source: str, out: list[str], root: Any) -> None:
        self.source, self.out = source, out
        self.vars: list[list[Any]] = [["$", root]]

    def walk(self, nodes: list, dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                if node == "break":
                    raise _Break
                if node == "continue":
                    raise _Continue
                self.out.append(node)
            elif isinstance(node, tuple):
                pipe = node[1]
                value = self.pipe(pipe, dot)
                if not pipe.decl:
                    self.out.append(print_value(value, lambda m, p=pipe.pos: fail(self.source, p, m)))
            else:
                self.branch(node, dot)

    def branch(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(node, dot)
                return
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            else:
                self.walk(node.orelse, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Branch, dot: Any) -> None:
        pipe = node.pipe
        value = self.pipe(Pipe([], False, pipe.commands, pipe.pos), dot)
        if value is None:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = sorted(value.items())
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise fail(self.source, pipe.pos, f"range can't iterate over {type(value).__name__}")
        if not items:
            self.walk(node.orelse, dot)
        for key, element in items:
            mark = len(self.vars)
            bound = [element] if len(pipe.decl) == 1 else [key, element]
            self.vars.extend([name, v] for name, v in zip(pipe.decl, bound))
            try:
                self.walk(node.body, element)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]

    def pipe(self, pipe: Pipe, dot: Any) -> Any:
        value: Any = None
        for number, command in enumerate(pipe.commands):
            value = self.command(command, dot, value, piped=number > 0)
        if pipe.assign:
            next(slot for slot in reversed(self.vars) if slot[0] == pipe.decl[0])[1] = value
        elif pipe.decl:
            self.vars.append([pipe.decl[0], value])
        return value

    def command(self, command: list[tuple], dot: Any, final: Any, piped: bool) -> Any:
        head = command[0]
        if head[0] != "ident":
            if piped:
                raise fail(self.source, head[2], "can't give a piped argument to a non-function")
            return self.value(head, dot)
        args: list[Callable[[], Any]] = [lambda node=node: self.value(node, dot) for node in command[1:]]
        if piped:
            args.append(lambda: final)
        error = lambda message: fail(self.source, head[2], f"{head[1]}: {message}")  # noqa: E731
        if head[1] in ("and", "or"):
            if not args:
                raise error("needs at least one argument")
            return (lazy_and if head[1] == "and" else lazy_or)(args)
        return FUNCTIONS[head[1]]([arg() for arg in args], error)

    def value(self, node: tuple, dot: Any) -> Any:
        kind, payload, pos = node
        if kind == "const":
            return payload
        if kind == "dot":
            return dot
        if kind == "var":
            return next(slot[1] for slot in reversed(self.vars) if slot[0] == payload)
        if kind == "pipe":
            return self.pipe(payload, dot)
        if kind == "ident":
            return self.command([node], dot, None, piped=False)
        base, names = payload
        value = self.value(base, dot)
        for name in names:
            if not isinstance(value, dict):
                raise fail(self.source, pos, f"can't evaluate field {name} in type {type(value).__name__}")
            if name not in value:
                raise fail(self.source, pos, f"no field {name} in the data (keys: {', '.join(sorted(value))})")
            value = value[name]
        return value
