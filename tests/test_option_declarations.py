"""Options declared once: ``from_options`` reads through ``OptionSpec``s (defaults,
minimums and choices come from them; a key read past the declaration is a bug), and
``meepo plugins --options TYPE`` prints the declaration."""

from __future__ import annotations

from pathlib import Path

import pytest

from meepo_core import REQUIRED, Computed, ConfigError, Options, OptionSpec
from meepo_core.option_docs import markdown_table
from meepo_core.options import DeclarationError
from meepo_core.testing import run_meepo

SIZE = OptionSpec("size", "integer", 10, "Rows per batch.", minimum=1)
MODE = OptionSpec("mode", "string", "fast", "How.", choices=("fast", "safe"))
NAME = OptionSpec("name", "string", REQUIRED, "Who.")
PREFIX = OptionSpec("prefix", "string", Computed("the name"), "Before each key.")
NESTED = OptionSpec("inner", "table", {}, "A table.", options=(SIZE,))


def options(**data: object) -> Options:
    return Options(data, "sink", Path("."))


def test_a_spec_supplies_default_minimum_and_choices() -> None:
    assert options().integer(SIZE) == 10
    assert options().choice(MODE) == "fast"
    with pytest.raises(ConfigError, match=r"^sink.size: must be at least 1, not 0$"):
        options(size=0).integer(SIZE)
    with pytest.raises(ConfigError, match=r"^sink.mode: must be one of 'fast', 'safe'"):
        options(mode="slow").choice(MODE)
    with pytest.raises(ConfigError, match=r"^sink.name: required$"):
        options().string(NAME)


def test_a_computed_default_is_passed_and_a_declared_one_is_not() -> None:
    assert options().string(PREFIX, "x") == "x"
    with pytest.raises(DeclarationError, match="computed default"):
        options().string(PREFIX)
    with pytest.raises(DeclarationError, match="declared in its OptionSpec"):
        options().integer(SIZE, 5)


def test_reading_with_the_wrong_getter_is_a_declaration_error() -> None:
    with pytest.raises(DeclarationError, match=r"declared as integer, but read with "
                       r"Options\.string"):
        options().string(SIZE)


def test_a_key_read_past_the_declaration_fails_at_done() -> None:
    read = options(size=3, other=1)
    read.integer(SIZE)
    read.integer("other", 0)
    with pytest.raises(DeclarationError, match="read without an OptionSpec: other"):
        read.done()


def test_a_misspelled_key_still_gets_the_closest_declared_one() -> None:
    read = options(sise=3)
    read.integer(SIZE)
    read.choice(MODE)
    with pytest.raises(ConfigError, match=r"^sink.sise: unknown option; did you mean 'size'\? "
                       r"valid options here: mode, size$"):
        read.done()


def test_declared_container_defaults_are_not_shared() -> None:
    first = options().table(NESTED)
    first["x"] = 1
    assert options().table(NESTED) == {}


def test_the_table_shows_type_default_choices_and_nested_keys() -> None:
    assert markdown_table((MODE, NAME, PREFIX, NESTED)).splitlines()[2:] == [
        '| `mode` | string | `"fast"` | How. One of `"fast"`, `"safe"`. |',
        "| `name` | string | required | Who. |",
        "| `prefix` | string | the name | Before each key. |",
        "| `inner` | table | `{}` | A table. |",
        "| `inner.size` | integer | `10` | Rows per batch. |",
    ]


def test_meepo_plugins_options_prints_the_declaration(tmp_path: Path) -> None:
    result = run_meepo("plugins", "--options", "print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "sink 'print' (plugin builtin):",
        '  format    string, default "line"',
        '      "line": one line per event from template; "json": the whole event as a JSON line.',
    ]
    both = run_meepo("plugins", "--options", "jsonl", cwd=tmp_path)
    assert "source 'jsonl' (plugin builtin):" in both.stdout
    assert "sink 'jsonl' (plugin builtin):" in both.stdout
    assert "  path           path, required" in both.stdout


def test_a_type_without_a_declaration_says_so() -> None:
    from meepo_core import Sink

    class Undeclared(Sink):
        @classmethod
        def from_options(cls, options: Options) -> Undeclared:
            return cls()

        def apply(self, batch: object) -> None:  # type: ignore[override]
            pass

    class NoOptions(Undeclared):
        OPTIONS = ()

    from meepo_core.option_docs import DeclaredType, _declares, text_listing
    assert not _declares(Undeclared) and _declares(NoOptions)
    assert text_listing(DeclaredType("sink", "u", "p", (), declared=False)) == (
        "sink 'u' (plugin p): its options are not declared (no OPTIONS); see its plugin's docs")
    assert text_listing(DeclaredType("sink", "n", "p", ())) == "sink 'n' (plugin p): no options"


def test_meepo_plugins_options_of_an_unknown_type_suggests_one(tmp_path: Path) -> None:
    result = run_meepo("plugins", "--options", "prnt", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "meepo: error: no source, sink or transform type 'prnt'; did you mean 'print'? types: ")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"type": "text"}, "type 'text' is not one of"),
    ({"meaning": "a | b"}, "one paragraph without an unescaped '|'"),
    ({"default": "slow", "choices": ("fast",)}, "the default 'slow' is not one of its choices"),
])
def test_a_malformed_declaration_is_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"name": "x", "type": "string", "default": "fast",
                                 "meaning": "M.", **kwargs}
    with pytest.raises(DeclarationError, match=message):
        OptionSpec(**fields)  # type: ignore[arg-type]
