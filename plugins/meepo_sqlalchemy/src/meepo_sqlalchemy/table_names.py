"""Table names in the ``sql`` sink's config: ``table`` or ``schema.table``, where a part
that contains a dot is quoted (``public."a.b"``, or with backticks), and whether a name
can be a table's name on the target server."""

from __future__ import annotations

from functools import lru_cache

#: Quote characters a part may be wrapped in; a doubled one inside stands for itself.
QUOTES = ('"', "`")


@lru_cache(maxsize=1024)  # the sink resolves its targets' names for every event
def parse_table_name(text: str) -> tuple[str | None, str]:
    """``(schema, table)`` of ``text`` (schema None when not given). Parts are split at the
    first dot outside quotes: ``public.a.b`` is table ``a.b`` in schema ``public``, the same
    as ``public."a.b"``; ``"a.b"`` alone is a table. Unquoted parts are taken literally
    (case included), as the target's own spelling. Raises ``ValueError`` saying what is
    wrong with ``text``."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False  # the current part was quoted (its dots are its own)
    index = 0
    while index < len(text):
        char = text[index]
        if char in QUOTES and not current and not quoted:
            end = index + 1
            while True:
                end = text.find(char, end)
                if end < 0:
                    raise ValueError(f"{text!r} has an unterminated {char} quote")
                if text[end + 1:end + 2] == char:
                    end += 2  # a doubled quote stands for itself
                    continue
                break
            current.append(text[index + 1:end].replace(char * 2, char))
            quoted = True
            index = end + 1
            if index < len(text) and text[index] != ".":
                raise ValueError(f"{text!r} has text after the closing {char} quote")
            continue
        if char == "." and (quoted or not parts):
            parts.append("".join(current))
            current, quoted = [], False
            index += 1
            continue
        if quoted:
            raise ValueError(f"{text!r} has text after a closing quote")
        current.append(char)
        index += 1
    parts.append("".join(current))
    if len(parts) > 2:
        raise ValueError(f"{text!r} has more parts than schema.table")
    if any(not part for part in parts):
        raise ValueError(f"{text!r} has an empty name")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def quote_part(name: str) -> str:
    """``name`` as written in config: quoted when it holds a dot or a quote."""
    if "." in name or any(q in name for q in QUOTES):
        return '"' + name.replace('"', '""') + '"'
    return name


def format_table_name(schema: str | None, name: str) -> str:
    """The config spelling of a table, which :func:`parse_table_name` reads back."""
    return f"{quote_part(schema)}.{quote_part(name)}" if schema else quote_part(name)


#: PostgreSQL truncates longer identifiers (NAMEDATALEN 64 less the terminating byte).
POSTGRES_MAX_BYTES = 63
#: MariaDB and MySQL: at most 64 characters, all in the Basic Multilingual Plane.
MYSQL_MAX_CHARACTERS = 64


def illegal_name(dialect: str, name: str) -> str | None:
    """Why ``name`` cannot be a schema or table name on a ``dialect`` server (as its
    documentation states the limits), or None when it can."""
    if "\x00" in name:
        return "it contains a NUL character"
    if dialect == "postgresql" and len(name.encode()) > POSTGRES_MAX_BYTES:
        return (f"it is {len(name.encode())} bytes long and PostgreSQL keeps only the first "
                f"{POSTGRES_MAX_BYTES}")
    if dialect in ("mysql", "mariadb"):
        if len(name) > MYSQL_MAX_CHARACTERS:
            return f"it is longer than {MYSQL_MAX_CHARACTERS} characters"
        outside = sorted({char for char in name if ord(char) > 0xFFFF})
        if outside:
            return (f"MariaDB and MySQL allow no characters outside the Basic Multilingual "
                    f"Plane, such as {''.join(outside)}")
        if name.endswith(" "):
            return "it ends with a space"
    return None
