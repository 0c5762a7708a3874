"""The options tables of the READMEs and docs pages, generated from the types' ``OPTIONS``
declarations.

A table sits between two markers, in the Markdown file that documents the type::

    <!-- options: sink print -->

    | Key | Type | Default | Meaning |
    ...

    <!-- /options -->

(``transform *``: the options every transform takes; ``pipeline *``: a pipeline's tuning
keys; ``table MODULE:NAME``: a tuple of specs for a table that is not a type's, such as
``[tool.meepo.serve]``; ``<!-- options: sink elasticsearch
hosts api_key -->``: those two only, for a type documented in several tables.)

``python docs/option_tables.py`` rewrites every such table from the declarations of the
installed types (install all plugins first); ``--check`` only reports the stale ones
(exit 1). ``tests/test_docs.py`` fails while a table and its declaration disagree, and the
docs site's configuration reference (docs/hooks.py) collects these tables into one page.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The Markdown files that may hold options tables.
FILES = [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md")),
         *sorted(ROOT.glob("examples/*/README.md")), *sorted(ROOT.glob("docs/**/*.md"))]
BLOCK = re.compile(
    r"^<!-- options: (?P<kind>source|sink|transform|pipeline|table) (?P<name>\S+)"
    r"(?P<keys>(?: [a-z_]+)*) -->\n(?P<body>.*?)\n?"
    r"^<!-- /options -->$", re.MULTILINE | re.DOTALL)


def blocks(text: str) -> list[tuple[str, str, tuple[str, ...], str]]:
    """``(kind, name, keys, table)`` of each options table in ``text``; ``keys``: the
    options it shows (a type documented in several tables, by topic), empty for all."""
    return [(m["kind"], m["name"], tuple(m["keys"].split()), m["body"].strip())
            for m in BLOCK.finditer(text)]


def rewritten(text: str, table: Callable[[str, str, tuple[str, ...]], str | None]) -> str:
    """``text`` with each options table replaced by ``table(kind, name, keys)`` (kept as it
    is where that gives None: a type that is not installed)."""
    def replace(match: re.Match[str]) -> str:
        body = table(match["kind"], match["name"], tuple(match["keys"].split()))
        if body is None:
            return match[0]
        # blank lines around the table: Markdown would take it into the comment's HTML block
        head = match[0].split("\n", 1)[0]
        return f"{head}\n\n{body}\n\n<!-- /options -->"
    return BLOCK.sub(replace, text)


def declared_options(kind: str, name: str) -> tuple[Any, ...] | None:
    """The ``OptionSpec``s of an installed type (``*``: those every type of the kind
    takes); None when it is not installed."""
    from meepo_core.option_docs import common_options, declared_types
    from meepo_core.plugins import registry

    if kind == "table":
        module, _, attribute = name.partition(":")
        try:
            return tuple(getattr(importlib.import_module(module), attribute))
        except ImportError:
            return None  # its plugin is not installed
    if name == "*":
        return common_options(kind)
    if name not in registry().types[kind]:
        return None
    return next(t.options for t in declared_types(registry(), name) if t.kind == kind)


def declared_table(kind: str, name: str, keys: tuple[str, ...] = ()) -> str | None:
    """The generated table of an installed type, of ``keys`` only when given; None when
    the type is not installed."""
    from meepo_core.option_docs import markdown_table

    options = declared_options(kind, name)
    return None if options is None else markdown_table(options, keys)


def main(argv: list[str]) -> int:
    stale = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        new = rewritten(text, declared_table)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    verb = "stale" if "--check" in argv else "rewritten"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
