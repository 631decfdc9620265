"""Values and built-in functions for harness/export/gotemplate.py, with Go text/template's semantics.

Each function takes its evaluated arguments and an `error(message)` that builds a GoTemplateError naming
the call's line and column. Go strings are bytes: `len` counts UTF-8 bytes and `slice` cuts bytes (a cut
inside a character is refused rather than rendered as broken text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Error = Callable[[str], Exception]


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | str | list | dict | tuple):
        return bool(value)
    return True


def print_value(value: Any, error: Error) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    # Go would print "<no value>", "[...]" or "map[...]": never what a chat prompt wants.
    raise error(f"refusing to print a {type(value).__name__} value: {repr(value)[:60]}")


def lazy_and(args: list[Callable[[], Any]]) -> Any:
    value = None
    for arg in args:
        value = arg()
        if not truth(value):
            return value
    return value


def lazy_or(args: list[Callable[[], Any]]) -> Any:
    value = None
    for arg in args:
        value = arg()
        if truth(value):
            return value
    return value


def _kind(value: Any, error: Error) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    raise error(f"invalid type for comparison: {type(value).__name__}")


def _eq(args: list[Any], error: Error) -> bool:
    if len(args) < 2:
        raise error("missing argument for comparison")
    first = _kind(args[0], error)
    for other in args[1:]:
        if _kind(other, error) != first:
            raise error(f"incompatible types for comparison: {args[0]!r} and {other!r}")
        if args[0] == other:
            return True
    return False


def _ne(args: list[Any], error: Error) -> bool:
    if len(args) != 2:
        raise error(f"wants 2 arguments, got {len(args)}")
    return not _eq(args, error)


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[list[Any], Error], bool]:
    def function(args: list[Any], error: Error) -> bool:
        if len(args) != 2:
            raise error(f"wants 2 arguments, got {len(args)}")
        kinds = {_kind(args[0], error), _kind(args[1], error)}
        if len(kinds) != 1 or kinds == {"bool"}:
            raise error(f"can't order {args[0]!r} and {args[1]!r}")
        return compare(args[0], args[1])

    return function


def _one(args: list[Any], error: Error) -> Any:
    if len(args) != 1:
        raise error(f"wants 1 argument, got {len(args)}")
    return args[0]


def _len(args: list[Any], error: Error) -> int:
    value = _one(args, error)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list | dict):
        return len(value)
    raise error(f"len of type {type(value).__name__}")


def _int(value: Any, error: Error) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"cannot index with {value!r}")
    return value


def _index(args: list[Any], error: Error) -> Any:
    if not args:
        raise error("wants at least 1 argument")
    item = args[0]
    for key in args[1:]:
        if isinstance(item, list):
            position = _int(key, error)
            if not 0 <= position < len(item):
                raise error(f"index out of range: {position}")
            item = item[position]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise error(f"map key {key!r} is not a string")
            item = item.get(key)
        else:
            raise error(f"can't index item of type {type(item).__name__}")
    return item


def _slice(args: list[Any], error: Error) -> Any:
    if not args or len(args) > 3:
        raise error(f"wants 1 to 3 arguments, got {len(args)}")
    item = args[0]
    if not isinstance(item, list | str):
        raise error(f"can't slice item of type {type(item).__name__}")
    data = item.encode("utf-8") if isinstance(item, str) else item
    bounds = [_int(value, error) for value in args[1:]] + [0, len(data)][len(args) - 1:]
    start, stop = bounds[0], bounds[1]
    if not 0 <= start <= stop <= len(data):
        raise error(f"slice bounds out of range [{start}:{stop}] with length {len(data)}")
    if isinstance(data, list):
        return data[start:stop]
    try:
        return data[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"slice [{start}:{stop}] cuts a UTF-8 character in {item!r}") from None


def _printf(args: list[Any], error: Error) -> str:
    if not args or not isinstance(args[0], str):
        raise error("wants a format string first")
    form, values, out, index = args[0], list(args[1:]), [], 0
    while index < len(form):
        char = form[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        verb = form[index + 1:index + 2]
        index += 2
        if verb == "%":
            out.append("%")
            continue
        if verb not in ("s", "d", "v") or not values:
            raise error(f"unsupported verb %{verb} or missing argument in {form!r} (only %s %d %v %%)")
        value = values.pop(0)
        if verb == "d" and (isinstance(value, bool) or not isinstance(value, int)):
            raise error(f"%d of {value!r}")
        out.append(print_value(value, error))
    if values:
        raise error(f"{len(values)} extra argument(s) for {form!r}")
    return "".join(out)


FUNCTIONS: dict[str, Callable[[list[Any], Error], Any]] = {
    "eq": _eq,
    "ne": _ne,
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "not": lambda args, error: not truth(_one(args, error)),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "printf": _printf,
    "and": lambda args, error: lazy_and([lambda v=v: v for v in args]),
    "or": lambda args, error: lazy_or([lambda v=v: v for v in args]),
}
"""`and` and `or` appear here for name checks; the executor calls them lazily, as Go does since 1.18."""
