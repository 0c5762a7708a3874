"""MkDocs hooks: pages built from files that live elsewhere in the repository.

- ``<!-- include: PATH -->`` (PATH relative to the repository root) is replaced by that
  file, so each plugin's README is written once, next to its code, and is also its page.
  Links that a README makes to the repository's own README (``../../README.md``) point to
  the site's home page instead.
- ``<!-- bench-results -->`` is replaced by the latest benchmark results, generated from
  the JSON files the benchmarks write to ``bench/results/``: nothing on that page is
  edited by hand.
- ``<!-- options-reference -->`` is replaced by every type's options table, collected from
  the READMEs and pages that document each type (those tables are generated from the
  types' declarations by ``docs/option_tables.py``, see there), with a link to the page.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "results"
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
ROOT_README_LINK = re.compile(r"\]\((?:\.\./)+README\.md(#[^)]*)?\)")


def on_page_markdown(markdown: str, **_: Any) -> str:
    markdown = INCLUDE.sub(lambda match: _included(match.group(1)), markdown)
    if "<!-- bench-results -->" in markdown:
        markdown = markdown.replace("<!-- bench-results -->", bench_results())
    if "<!-- options-reference -->" in markdown:
        markdown = markdown.replace("<!-- options-reference -->", options_reference())
    return markdown


def on_files(files: Files, config: Any, **_: Any) -> Files:
    """The results page shows the benchmarks' charts: they join the site next to it."""
    for chart in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, chart.name, abs_src_path=str(chart)))
    return files


def _included(path: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    return ROOT_README_LINK.sub(lambda m: f"](../index.md{m.group(1) or ''})", text)


def _option_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("option_tables", DOCS / "option_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def options_reference() -> str:
    """Every options table of the docs, by kind and type name, each linking to its page.
    Written for a page at the top of ``docs/`` (its links are relative to it)."""
    tables = _option_tables()
    pages = {}  # file holding tables -> docs page showing it
    for page in sorted(DOCS.glob("**/*.md")):
        for included in INCLUDE.findall(page.read_text(encoding="utf-8")):
            pages[ROOT / included] = page
    found: dict[tuple[str, str], tuple[str, list[str]]] = {}  # (kind, name) -> link, rows
    for path in tables.FILES:
        page = pages.get(path, path)
        if page == DOCS / "reference.md" or DOCS not in page.parents:
            continue
        link = page.relative_to(DOCS).as_posix()
        for kind, name, _, body in tables.blocks(path.read_text(encoding="utf-8")):
            lines = body.splitlines()
            if (kind, name) in found:  # a type documented in several tables, by topic
                found[kind, name][1].extend(lines[2:])  # one table here, without its header
            else:
                found[kind, name] = (link, lines)
    parts = []
    for kind in ("source", "sink", "transform"):
        parts.append(f"## {kind.title()}s")
        for (k, name), (link, lines) in sorted(found.items()):
            if k != kind:
                continue
            title = f"Every {kind}" if name == "*" else f"`{name}` {kind}"
            table = "\n".join(lines)
            parts.append(f"### {title}\n\nDescribed in [{link}]({link}).\n\n{table}")
    return "\n\n".join(parts)


def bench_results() -> str:
    """Markdown for every ``bench/results/*.json``: the end-to-end report as its own
    renderer writes it, the others as tables of their figures."""
    parts = []
    report = RESULTS / "RESULTS.md"
    if report.exists():
        body = report.read_text(encoding="utf-8").split("\n", 1)[1]  # without its title
        parts.append("## End to end (`bench/bench_e2e.py`)\n" + body)
    for path in sorted(RESULTS.glob("*.json")):
        if path.name == "results.json":
            continue  # rendered above, from the same data
        data = json.loads(path.read_text(encoding="utf-8"))
        parts.append(f"## {path.stem} (`bench/results/{path.name}`)\n\n{_table(data)}")
    return "\n\n".join(parts) if parts else "No benchmark has been run yet."


def _table(data: dict[str, Any]) -> str:
    rows = ["| Figure | Value |", "| --- | --- |"]
    rows += [f"| `{key}` | {value} |" for key, value in _flatten(data)]
    return "\n".join(rows)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted.key, shown value)`` for the scalars and short lists of a results dict."""
    if isinstance(data, dict):
        return [row for key, value in data.items()
                for row in _flatten(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(data, list):
        if len(data) <= 12 and all(not isinstance(v, dict | list) for v in data):
            return [(prefix, ", ".join(_shown(v) for v in data))]
        return [(prefix, f"({len(data)} entries in the JSON file)")]
    return [(prefix, _shown(data))]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")
