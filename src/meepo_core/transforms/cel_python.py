"""Simple CEL conditions as Python source, so that a ``filter`` over a few columns costs a
few bytecodes per event instead of a call into CEL.

Only a small subset is translated, where Python gives exactly CEL's result:

* operands: ``before.c``, ``after.c``, ``row.c`` (a column), ``schema``, ``table``,
  ``action``, integer literals (within int64), string literals without escapes, ``true``
  and ``false``;
* ``x % n`` with ``n`` a positive integer literal (CEL's remainder takes the dividend's
  sign, which the Python source spells out);
* comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``) with at least one side that is
  not a column, ``&&``, ``||``, ``!`` and parentheses.

Each column gets one type from how the expression uses it (int, str or bool). The Python
condition applies only when every column's value is exactly of that type (an ``int``
within int64, a ``str`` of ASCII characters, a ``bool``): then no CEL error is possible and
Python's operators, comparisons and short-circuits give CEL's value. For any other value
(missing, NULL, ``UNCHANGED``, a ``Decimal``, a float, a larger integer, other text) the
caller evaluates the expression with CEL, which gives its result or its error. Anything
outside the subset is not translated (:func:`translate` returns None)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The int64 range CEL's integers have.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
IMAGE_NAMES = ("before", "after", "row")
TABLE_NAMES = ("schema", "table", "action")
_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[uU]?)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!%().\-])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_RELATIONS = ("==", "!=", "<", "<=", ">", ">=")


class _Unsupported(Exception):
    """The text is outside the translated subset."""


@dataclass(frozen=True)
class Condition:
    """A translated expression: ``source`` is a Python expression over the local names in
    ``columns`` (one per ``(image, column)`` read, with its required type) and ``action``;
    ``guards`` is the Python test that every column value has its type."""

    source: str
    #: ``(image, column) -> (local name, "int" | "str" | "bool")``
    columns: dict[tuple[str, str], tuple[str, str]]

    def guard(self) -> str:
        """The Python test that the column values allow :attr:`source`."""
        tests = []
        for name, kind in self.columns.values():
            if kind == "int":
                tests.append(f"{name}.__class__ is int and {INT_MIN} <= {name} <= {INT_MAX}")
            elif kind == "str":
                tests.append(f"{name}.__class__ is str and {name}.isascii()")
            else:
                tests.append(f"{name}.__class__ is bool")
        return " and ".join(f"({test})" for test in tests) or "True"


def translate(text: str, schema: str, table: str) -> Condition | None:
    """``text`` as a :class:`Condition` for the events of ``schema.table`` (whose names are
    folded in as constants), or None when it is outside the subset."""
    try:
        tokens = _tokens(text)
        parser = _Parser(tokens)
        node = parser.parse_or()
        if parser.index != len(tokens):
            raise _Unsupported
        typer = _Typer()
        if typer.type_of(node) != "bool":
            raise _Unsupported
        source = _python(node, typer.names, schema, table)
    except _Unsupported:
        return None
    return Condition(source, {key: (typer.names[key], kind)
                              for key, kind in typer.kinds.items()})


Node = tuple[Any, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _Unsupported
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over CEL's precedence: ``||`` < ``&&`` < relations < ``%`` <
    unary ``!``/``-`` < member selection."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        found_kind, found = self.peek()
        if (value is not None and found != value) or (kind is not None and found_kind != kind) \
                or found_kind == "end":
            raise _Unsupported
        self.index += 1
        return found

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.peek()[1] == "||":
            self.take()
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_relation()
        while self.peek()[1] == "&&":
            self.take()
            node = ("and", node, self.parse_relation())
        return node

    def parse_relation(self) -> Node:
        node = self.parse_remainder()
        if self.peek()[1] in _RELATIONS:
            op = self.take()
            node = ("cmp", op, node, self.parse_remainder())
            if self.peek()[1] in _RELATIONS:  # a < b < c: a type error in CEL
                raise _Unsupported
        return node

    def parse_remainder(self) -> Node:
        node = self.parse_unary()
        while self.peek()[1] == "%":
            self.take()
            node = ("mod", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        value = self.peek()[1]
        if value == "!":
            self.take()
            return ("not", self.parse_unary())
        if value == "-":
            self.take()
            number = self.take(kind="number")
            return ("int", -_integer(number))
        return self.parse_primary()

    def parse_primary(self) -> Node:
        kind, value = self.peek()
        self.take()
        if kind == "number":
            return ("int", _integer(value))
        if kind == "string":
            return ("str", value[1:-1])
        if value == "(":
            node = self.parse_or()
            self.take(")")
            return node
        if kind != "ident":
            raise _Unsupported
        if value in ("true", "false"):
            return ("bool", value == "true")
        if value in TABLE_NAMES:
            return ("var", value)
        if value in IMAGE_NAMES:
            self.take(".")
            column = self.take(kind="ident")
            if self.peek()[1] in (".", "("):  # row.a.b, row.a(): not a plain column
                raise _Unsupported
            return ("col", value, column)
        raise _Unsupported


def _integer(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise _Unsupported  # 1.5, 1e3, 1u, 012: other types or forms
    value = int(text)
    if value > INT_MAX:
        raise _Unsupported
    return value


class _Typer:
    """Gives every node a type and every column the one type its uses require."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str], str] = {}
        self.names: dict[tuple[str, str], str] = {}

    def require(self, node: Node, kind: str) -> None:
        if node[0] == "col":
            key = (node[1], node[2])
            if self.kinds.setdefault(key, kind) != kind:
                raise _Unsupported
            self.names.setdefault(key, f"c{len(self.names)}")
        elif self.type_of(node) != kind:
            raise _Unsupported

    def type_of(self, node: Node) -> str:
        tag = node[0]
        if tag in ("int", "str", "bool"):
            return str(tag)
        if tag == "var":
            return "str"
        if tag == "col":
            raise _Unsupported  # a column's type comes from its use
        if tag == "mod":
            divisor = node[2]
            if divisor[0] != "int" or divisor[1] <= 0:
                raise _Unsupported
            self.require(node[1], "int")
            return "int"
        if tag == "cmp":
            left, right = node[2], node[3]
            if left[0] == "col" and right[0] == "col":
                raise _Unsupported
            kind = self.type_of(right if left[0] == "col" else left)
            if kind == "bool" and node[1] not in ("==", "!="):
                raise _Unsupported  # ordering of booleans: left to CEL
            self.require(left, kind)
            self.require(right, kind)
            return "bool"
        if tag in ("and", "or"):
            self.require(node[1], "bool")
            self.require(node[2], "bool")
            return "bool"
        if tag == "not":
            self.require(node[1], "bool")
            return "bool"
        raise _Unsupported


def _python(node: Node, names: dict[tuple[str, str], str], schema: str, table: str) -> str:
    tag = node[0]
    if tag in ("int", "str", "bool"):
        return repr(node[1])
    if tag == "var":
        return {"schema": repr(schema), "table": repr(table), "action": "action"}[node[1]]
    if tag == "col":
        return names[(node[1], node[2])]
    if tag == "mod":
        value, divisor = _python(node[1], names, schema, table), node[2][1]
        # CEL's remainder has the dividend's sign (truncated division), Python's the
        # divisor's: spelled out for a positive divisor
        return f"({value} % {divisor} if {value} >= 0 else -(-{value} % {divisor}))"
    if tag == "cmp":
        left, right = node[2], node[3]
        if node[1] in ("==", "!=") and {left[0], right[0]} == {"mod", "int"} \
                and (left if left[0] == "int" else right)[1] == 0:
            # whether a remainder is zero does not depend on its sign: Python's will do
            mod = left if left[0] == "mod" else right
            return f"({_python(mod[1], names, schema, table)} % {mod[2][1]} {node[1]} 0)"
        return (f"({_python(left, names, schema, table)} {node[1]} "
                f"{_python(right, names, schema, table)})")
    if tag in ("and", "or"):
        return (f"({_python(node[1], names, schema, table)} {tag} "
                f"{_python(node[2], names, schema, table)})")
    return f"(not {_python(node[1], names, schema, table)})"
