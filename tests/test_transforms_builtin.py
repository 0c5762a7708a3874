"""The built-in transforms and a third-party one pass the TransformContract, and each does
what its documentation says to the contract events."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from meepo_core import UNCHANGED, RowEvent
from meepo_core.testing import TransformContract

TEST_PLUGINS = Path(__file__).parent / "plugins_for_tests"


def rows(output: list[RowEvent]) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(e.action, e.pk, dict(e.row)) for e in output]


class TestFilterOnRows(TransformContract):
    transform_type = "filter"

    def transform_options(self) -> dict[str, Any]:
        return {"where": "row.name != 'deux' && (action != 'update' || 'name' in changed)"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [(e.action, e.pk) for e in output] == [
            ("write", 1), ("write", 2), ("write", 3), ("delete", 3), ("update", 1),
            ("update", 1), ("read", 5), ("update", 5)]
        assert all(e.row["name"] != "deux" for e in output)
        assert output[0] is events[0]  # kept events are passed as they are


class TestFilterOnTables(TransformContract):
    transform_type = "filter"

    def transform_options(self) -> dict[str, Any]:
        return {"where": "action != 'delete' && table == 'items'"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [e.action for e in output] == [e.action for e in events if e.action != "delete"]


class TestMaskPartial(TransformContract):
    transform_type = "mask"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.items.name"], "mode": "partial", "keep_first": 1,
                "keep_last": 1}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [e.row["name"] for e in output] == [
            "o*e", "t*o", "t***e", "d**x", "t***e", "**", "u*o", "f**e", "c**q"]  # "un": all hidden
        assert output[3].before == {**events[3].before, "name": "t*o"}  # type: ignore[dict-item]
        assert output[8].after["price"] is UNCHANGED  # type: ignore[index]


class TestMaskNullAndFixed(TransformContract):
    transform_type = "mask"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.*.price"], "mode": "null"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [e.row["price"] for e in output[:-1]] == [None] * 8
        assert output[-1].after["price"] is UNCHANGED  # type: ignore[index]

    def test_fixed_value(self) -> None:
        chain = self.build({"columns": ["meepo_contract.items.name"], "value": "<hidden>"})
        assert {e.row["name"] for e in self.run(chain, self.events())} == {"<hidden>"}


class TestHash(TransformContract):
    transform_type = "hash"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.items.name"], "salt": "salt123"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        # SHA-256 of the salt's then the value's UTF-8 bytes, hex (golden values from
        # Debezium itself are in test_transform_hash_debezium.py)
        assert output[0].after["name"] == hashlib.sha256(b"salt123one").hexdigest()  # type: ignore[index]
        assert all(len(e.row["name"]) == 64 for e in output)
        assert output[3].before["price"] == events[3].before["price"]  # type: ignore[index]


class TestDropColumns(TransformContract):
    transform_type = "drop_columns"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.items.price", "*.*.updated_*"]}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert all(set(e.row) <= {"id", "name"} for e in output)
        assert output[3].before == {"id": 2, "name": "two"}


class TestKeepColumns(TransformContract):
    transform_type = "keep_columns"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.items.id", "meepo_contract.items.price"]}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert all(set(e.row) <= {"id", "price"} for e in output)
        assert output[-1].before == {"id": 5}


class TestRename(TransformContract):
    transform_type = "rename"

    def transform_options(self) -> dict[str, Any]:
        return {"tables": {"meepo_contract.items": "archive.things"},
                "columns": {"meepo_contract.items.name": "title"}}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert {(e.schema, e.table) for e in output} == {("archive", "things")}
        assert output[0].after == {"id": 1, "title": "one", "price": events[0].after["price"],  # type: ignore[index]
                                   "updated_at": events[0].after["updated_at"]}  # type: ignore[index]
        assert output[0].name == "things_write"


class TestRouteTemplate(TransformContract):
    transform_type = "route"

    def transform_options(self) -> dict[str, Any]:
        return {"to": "{schema}_{table}_{action}"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [e.destination for e in output] == [
            f"meepo_contract_items_{e.action}" for e in events]


class TestRouteExpression(TransformContract):
    transform_type = "route"

    def transform_options(self) -> dict[str, Any]:
        return {"expression": "'items_' + string(row.id % 2)", "tables": ["meepo_contract.*"]}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [e.destination for e in output] == [f"items_{e.pk % 2}" for e in events]


class TestPythonCallable(TransformContract):
    transform_type = "python"

    @pytest.fixture(autouse=True)
    def _importable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.syspath_prepend(str(TEST_PLUGINS))

    def transform_options(self) -> dict[str, Any]:
        return {"callable": "stamp_transform:split_by_half"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert [(e.pk, e.table) for e in output] == [
            (1, "items"), (2, "items"), (2, "items_copy"), (2, "items"), (2, "items_copy"),
            (1, "items"), (1, "items"), (5, "items"), (5, "items")]


class TestThirdPartyStamp(TransformContract):
    """The README's example plugin, written from the docs alone."""

    transform_type = "stamp"
    plugin_modules = ("stamp_transform",)

    @pytest.fixture(autouse=True)
    def _importable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.syspath_prepend(str(TEST_PLUGINS))

    def transform_options(self) -> dict[str, Any]:
        return {"column": "_source"}

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        assert all(e.after["_source"] == "meepo" for e in output if e.after is not None)
        assert len(output) == len(events)


class TestFusedImageTransforms(TransformContract):
    """Consecutive image transforms run on one copy of each image: the result must equal
    running them one after the other, and a failure names the transform that raised."""

    transform_type = "mask"

    def transform_options(self) -> dict[str, Any]:
        return {"columns": ["meepo_contract.items.name"], "mode": "partial", "keep_first": 1}

    def chain_options(self) -> list[dict[str, Any]]:
        return [
            {"type": "hash", "columns": ["*.*.name"], "salt": "s", "length": 8},
            {"type": "mask", "columns": ["*.*.name"], "mode": "partial", "keep_last": 2},
            {"type": "drop_columns", "columns": ["*.*.updated_at"]},
            {"type": "keep_columns", "columns": ["*.*.id", "*.*.name"]},
            {"type": "route", "to": "{table}_{action}", "tables": ["meepo_contract.items"]},
        ]

    def test_fused_equals_one_after_the_other(self) -> None:
        from meepo_core.plugins import load_registry
        from meepo_core.transforms import build_chain

        registry, events = load_registry(), self.events()
        chain = build_chain(registry, self.chain_options(), "transforms", self.tmp_path)
        assert chain is not None and len(chain._running) == 1  # fused
        fused = self.run(chain, events)
        separate = events
        for options in self.chain_options():
            one = build_chain(registry, [options], "transforms", self.tmp_path)
            assert one is not None
            separate = self.run(one, separate)
        assert fused == separate
        assert fused[0].after == {"id": 1, "name": "******" + hashlib.sha256(
            b"sone").hexdigest()[6:8]}
        assert [e.destination for e in fused] == [f"items_{e.action}" for e in events]
        other = RowEvent("meepo_contract", "other", "write", 1, None, {"id": 1, "x": 2})
        (unrouted,) = self.run(chain, [other])
        assert unrouted.destination is None and unrouted.after == {"id": 1}

    def test_a_failure_names_the_transform_that_raised(self) -> None:
        from meepo_core.plugins import load_registry
        from meepo_core.transforms import build_chain

        class Unprintable:
            def __str__(self) -> str:
                raise ValueError("no text")

        chain = build_chain(load_registry(), [
            {"type": "drop_columns", "columns": ["*.*.price"]},
            {"type": "hash", "columns": ["*.*.name"], "salt": "s"},
            {"type": "mask", "columns": ["*.*.id"]}], "transforms", self.tmp_path)
        assert chain is not None
        bad = RowEvent("meepo_contract", "items", "write", 7, None,
                       {"id": 7, "name": Unprintable(), "price": 1})
        good = self.events()[0]
        failures: list[tuple[str, str]] = []
        out = chain.run([bad, good], lambda e, label, error: failures.append((label, error)))
        assert failures == [("transforms[1] hash", "ValueError: no text")]
        assert [e.pk for e in out] == [1]
        assert out[0].after == {"id": "****", "name": hashlib.sha256(b"sone").hexdigest(),
                                "updated_at": good.after["updated_at"]}  # type: ignore[index]


def test_a_filter_over_one_column_remembers_results_exactly(tmp_path: Path) -> None:
    """The per-value memo of a one-column filter gives what CEL gives for every event,
    also for values Python calls equal (1, True, 1.0) and for many distinct values."""
    import cel

    from meepo_core.plugins import load_registry
    from meepo_core.transforms import build_chain

    where = "row.flag == 1 && action != 'delete'"
    values: list[Any] = [1, True, 1.0, 0, False, None, "1", *range(5000)]
    events = [RowEvent("s", "t", "delete" if i % 7 == 0 else "write", i, None,
                       {"id": i, "flag": value}) for i, value in enumerate(values * 2)]
    chain = build_chain(load_registry(), [{"type": "filter", "where": where}], "transforms",
                        tmp_path)
    assert chain is not None
    kept = chain.run(events, lambda *failure: pytest.fail(str(failure)))
    program = cel.compile(where)
    expected = [e for e in events if program.execute({"row": e.after, "action": e.action})]
    assert [e.pk for e in kept] == [e.pk for e in expected]
    assert {e.after["flag"] for e in kept if e.pk < 7} == {1}  # type: ignore[index]


@pytest.mark.parametrize("text", [
    "row.id % 10 != 0",
    "action == 'delete' || after.qty > 1",
    "after.qty > 1 || before.qty > 1",
    "row.flag == true && row.id > 2",
    "before.qty < after.qty",
    "row.missing == 1 || row.id > 0",
    "row.id > 0 && row.missing == 1",
    "row.name + 'x' == 'ax'",
])
def test_expressions_give_what_cel_gives_on_the_whole_event(text: str) -> None:
    """Expressions are handed only the columns they read (as plain variables when the
    text allows): every result, and every error, is the one CEL gives on the whole event."""
    import cel

    from meepo_core.transforms.expressions import Expression

    def row(pk: int, **extra: Any) -> dict[str, Any]:
        return {"id": pk, "qty": pk % 3, "flag": pk % 2 == 0, "name": "a", **extra}

    events = [
        RowEvent("s", "t", "write", 1, None, row(1)),
        RowEvent("s", "t", "update", 2, row(2), row(2, qty=9)),
        RowEvent("s", "t", "delete", 3, row(3), None),
        RowEvent("s", "t", "read", 4, None, row(4, qty=None)),
        RowEvent("s", "t", "update", 5, {"id": 5}, {**row(5), "qty": UNCHANGED}),
    ]
    expression, program = Expression(text, "where"), cel.compile(text)
    for event in events:
        after = {k: v for k, v in (event.after or {}).items() if v is not UNCHANGED}
        whole = {"action": event.action, "before": event.before or {}, "after": after,
                 "row": after if event.after is not None else event.before}
        try:
            expected: Any = program.execute(whole)
        except Exception:
            expected = "error"
        try:
            found: Any = expression.execute(event)
        except Exception:
            found = "error"
        assert found == expected, (event, found, expected)
