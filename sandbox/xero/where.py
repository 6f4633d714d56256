"""Parser and evaluator for the subset of Xero's `where` language the connector can use.

Xero's `where` is a .NET Dynamic LINQ expression. The sandbox understands: `==` `=` `!=` `<>` `<` `<=`
`>` `>=`, `AND` `&&` `OR` `||` `NOT` `!`, parentheses, string literals with backslash escapes, numbers,
`true` `false` `null`, `Guid("...")`, `DateTime(y, m, d[, h, m, s])`, dotted fields (`Contact.ContactID`)
and the string methods `Contains` `StartsWith` `EndsWith` `ToLower` `ToUpper`. Expressions are type
checked before any record is read, like LINQ: a Guid field compared with a plain string, an unknown
field or a syntax error raises `QueryParseError`, which the API answers as 400 QueryParseException.
String comparison is case-sensitive (see choices.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.xero import choices

Value = str | Decimal | bool | datetime | uuid.UUID | None
Getter = Callable[[Any, Any], Value]
Predicate = Callable[[Any, Any], bool]

TYPE_NAMES = {"string": "String", "number": "Decimal", "bool": "Boolean", "datetime": "DateTime", "guid": "Guid",
              "null": "Object"}


class QueryParseError(ValueError):
    """A `where` or `order` the sandbox (and Xero) cannot parse or type check."""


@dataclass(frozen=True)
class Field:
    """One queryable field of an entity: its canonical name, type and how to read it from a record."""

    name: str
    type: str
    get: Getter


Schema = Mapping[str, Field]  # keyed by lower-case dotted path

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>\d+(?:\.\d+)?)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)'
    r"|(?P<op>==|!=|<>|<=|>=|&&|\|\||[=<>!().,-]))"
)
_KEYWORD_OPS = {"and": "&&", "or": "||", "not": "!"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise QueryParseError(f"Syntax error at position {pos}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "ident" and value.lower() in _KEYWORD_OPS:
            kind, value = "op", _KEYWORD_OPS[value.lower()]
        out.append((kind, value))
        pos = match.end()
    return out


@dataclass
class _Node:
    type: str
    get: Getter


def _const(value: Value, kind: str) -> _Node:
    return _Node(kind, lambda _r, _t: value)


class _Parser:
    def __init__(self, text: str, schema: Schema, entity: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.schema = schema
        self.entity = entity

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryParseError("Expression expected" if value is None else f"'{value}' expected")
        if value is not None and token[1] != value:
            raise QueryParseError(f"'{value}' expected")
        self.pos += 1
        return token

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == value:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        node = self.or_expr()
        if self.peek() is not None:
            raise QueryParseError("')' or operator expected")
        if node.type != "bool":
            raise QueryParseError(f"Expression of type 'Boolean' expected, got '{TYPE_NAMES[node.type]}'")
        get = node.get
        return lambda record, ctx: get(record, ctx) is True

    def or_expr(self) -> _Node:
        left = self.and_expr()
        while self.accept("||"):
            left = self._logic(left, self.and_expr(), both=False)
        return left

    def and_expr(self) -> _Node:
        left = self.not_expr()
        while self.accept("&&"):
            left = self._logic(left, self.not_expr(), both=True)
        return left

    def _logic(self, left: _Node, right: _Node, *, both: bool) -> _Node:
        if left.type != "bool" or right.type != "bool":
            raise QueryParseError("Operator requires operands of type 'Boolean'")
        lg, rg = left.get, right.get
        if both:
            return _Node("bool", lambda r, c: lg(r, c) is True and rg(r, c) is True)
        return _Node("bool", lambda r, c: lg(r, c) is True or rg(r, c) is True)

    def not_expr(self) -> _Node:
        if self.accept("!"):
            inner = self.not_expr()
            if inner.type != "bool":
                raise QueryParseError("Operator '!' requires an operand of type 'Boolean'")
            get = inner.get
            return _Node("bool", lambda r, c: get(r, c) is not True)
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.operand()
        token = self.peek()
        if token is None or token[0] != "op" or token[1] not in ("==", "=", "!=", "<>", "<", "<=", ">", ">="):
            return left
        op = self.take()[1]
        right = self.operand()
        return _compare(left, op, right)

    def operand(self) -> _Node:
        node = self.primary()
        while self.accept("."):
            name = self.take()
            if name[0] != "ident":
                raise QueryParseError("Identifier expected")
            node = self._method(node, name[1])
        return node

    def _method(self, node: _Node, name: str) -> _Node:
        if node.type != "string":
            raise QueryParseError(f"No applicable method '{name}' exists in type '{TYPE_NAMES[node.type]}'")
        self.take("(")
        get = node.get
        lowered = name.lower()
        if lowered in ("tolower", "toupper"):
            self.take(")")
            convert = str.lower if lowered == "tolower" else str.upper
            return _Node("string", lambda r, c: None if (v := get(r, c)) is None else convert(str(v)))
        if lowered not in ("contains", "startswith", "endswith"):
            raise QueryParseError(f"No applicable method '{name}' exists in type 'String'")
        argument = self.or_expr()
        self.take(")")
        if argument.type != "string":
            raise QueryParseError(f"No applicable method '{name}' exists for argument of type "
                                  f"'{TYPE_NAMES[argument.type]}'")
        arg = argument.get
        test: Callable[[str, str], bool] = {
            "contains": lambda a, b: b in a, "startswith": str.startswith, "endswith": str.endswith,
        }[lowered]

        def call(r: Any, c: Any) -> bool:
            value, needle = get(r, c), arg(r, c)
            return value is not None and needle is not None and test(str(value), str(needle))

        return _Node("bool", call)

    def primary(self) -> _Node:
        kind, value = self.take()
        if kind == "string":
            return _const(re.sub(r"\\(.)", r"\1", value[1:-1]), "string")
        if kind == "number":
            return _const(Decimal(value), "number")
        if kind == "op" and value == "-":
            number = self.take()
            if number[0] != "number":
                raise QueryParseError("Number expected")
            return _const(-Decimal(number[1]), "number")
        if kind == "op" and value == "(":
            if self.accept(")"):
                raise QueryParseError("Expression expected")
            node = self.or_expr()
            self.take(")")
            return node
        if kind == "ident":
            return self._identifier(value)
        raise QueryParseError("Expression expected")

    def _identifier(self, name: str) -> _Node:
        lowered = name.lower()
        if lowered in ("true", "false"):
            return _const(lowered == "true", "bool")
        if lowered == "null":
            return _const(None, "null")
        token = self.peek()
        if lowered == "guid" and token == ("op", "("):
            self.take("(")
            text = self.take()
            self.take(")")
            if text[0] != "string":
                raise QueryParseError("Guid(...) expects a string")
            try:
                return _const(uuid.UUID(text[1][1:-1]), "guid")
            except ValueError as exc:
                raise QueryParseError("Unrecognized Guid format") from exc
        if lowered == "datetime" and token == ("op", "("):
            return self._datetime()
        path = [name]
        while self.peek() == ("op", ".") and self._next_is_field():
            self.take(".")
            path.append(self.take()[1])
        field = self.schema.get(".".join(path).lower())
        if field is None:
            raise QueryParseError(f"No property or field '{'.'.join(path)}' exists in type '{self.entity}'")
        return _Node(field.type, field.get)

    def _next_is_field(self) -> bool:
        after = self.tokens[self.pos + 2] if self.pos + 2 < len(self.tokens) else None
        return after != ("op", "(")

    def _datetime(self) -> _Node:
        self.take("(")
        parts: list[int] = []
        while True:
            kind, value = self.take()
            if kind != "number" or "." in value:
                raise QueryParseError("Integer expected in DateTime(...)")
            parts.append(int(value))
            if self.accept(")"):
                break
            self.take(",")
        if len(parts) not in (3, 6):
            raise QueryParseError("DateTime(...) takes year, month, day[, hour, minute, second]")
        year, month, day, hour, minute, second = [*parts, 0, 0, 0][:6]
        try:
            return _const(datetime(year, month, day, hour, minute, second, tzinfo=UTC), "datetime")
        except ValueError as exc:
            raise QueryParseError(f"Invalid DateTime: {exc}") from exc


_ORDERED = {"number", "datetime"}


def _folded(get: Getter) -> Getter:
    return lambda r, c: None if (v := get(r, c)) is None else str(v).casefold()


def _compare(left: _Node, op: str, right: _Node) -> _Node:
    lt, rt = left.type, right.type
    if lt != rt and "null" not in (lt, rt):
        raise QueryParseError(
            f"Operator '{op}' incompatible with operand types '{TYPE_NAMES[lt]}' and '{TYPE_NAMES[rt]}'")
    lg, rg = left.get, right.get
    if lt == "string" and not choices.WHERE_STRINGS_CASE_SENSITIVE:
        lg, rg = _folded(lg), _folded(rg)
    if op in ("==", "="):
        return _Node("bool", lambda r, c: lg(r, c) == rg(r, c))
    if op in ("!=", "<>"):
        return _Node("bool", lambda r, c: lg(r, c) != rg(r, c))
    if lt not in _ORDERED:
        raise QueryParseError(f"Operator '{op}' incompatible with operand types '{TYPE_NAMES[lt]}' and "
                              f"'{TYPE_NAMES[rt]}'")
    test: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }[op]

    def ordered(r: Any, c: Any) -> bool:
        a, b = lg(r, c), rg(r, c)
        return a is not None and b is not None and test(a, b)

    return _Node("bool", ordered)


def compile_where(text: str, schema: Schema, entity: str) -> Predicate:
    """Compile a `where` clause against an entity's schema; raises QueryParseError."""
    if not text.strip():
        return lambda _r, _c: True
    return _Parser(text, schema, entity).parse()


def compile_order(text: str, schema: Schema, entity: str) -> list[tuple[Field, bool]]:
    """Parse `order` ("UpdatedDateUTC ASC, InvoiceNumber DESC") into (field, descending) pairs."""
    keys: list[tuple[Field, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise QueryParseError("Syntax error in order")
        field = schema.get(words[0].lower())
        if field is None:
            raise QueryParseError(f"No property or field '{words[0]}' exists in type '{entity}'")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise QueryParseError(f"'ASC' or 'DESC' expected, got '{words[1]}'")
        keys.append((field, direction == "DESC"))
    return keys
