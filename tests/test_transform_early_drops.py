"""Which columns a pipeline's transforms let the source leave out
(:mod:`meepo_core.transforms.early_drops`): those a drop removes before any step could
read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meepo_core.plugins import load_registry
from meepo_core.transforms import build_chain
from meepo_core.transforms.early_drops import columns_dropped_early

COLUMNS = ["id", "email", "phone", "price", "note"]
DROP = {"type": "drop_columns", "columns": ["shop.users.phone", "shop.*.pr*"]}


def dropped(tmp_path: Path, options: list[dict[str, Any]], table: str = "users",
            columns: list[str] = COLUMNS) -> set[str] | None:
    chain = build_chain(load_registry(), options, "transforms", tmp_path)
    assert chain is not None
    found = columns_dropped_early(chain.transforms)
    return None if found is None else set(found("shop", table, columns))


@pytest.mark.parametrize("before", [
    [],
    [{"type": "hash", "columns": ["shop.users.phone"], "salt": "s"}],  # its change is lost
    [{"type": "mask", "columns": ["shop.users.email"]}],
    [{"type": "route", "to": "{table}_v2"}],
    [{"type": "filter", "where": "row.id % 10 != 0 && after.email != 'x'"}],
    [{"type": "keep_columns", "columns": ["shop.users.id", "shop.users.phone",
                                          "shop.users.price"]}],
])
def test_steps_that_cannot_read_the_columns_let_the_drop_through(
        tmp_path: Path, before: list[dict[str, Any]]) -> None:
    found = dropped(tmp_path, [*before, DROP])
    assert found is not None and {"phone", "price"} <= found
    assert "id" not in found


def test_a_filter_keeps_what_it_reads_from_the_drops_after_it(tmp_path: Path) -> None:
    assert dropped(tmp_path, [DROP, {"type": "filter", "where": "row.price > 1"}]) == {
        "phone", "price"}  # after the drop: it never saw price anyway
    assert dropped(tmp_path, [{"type": "filter", "where": "row.price > 1"}, DROP]) == {
        "phone"}
    assert dropped(tmp_path, [{"type": "filter", "where": "row.price > 1"}, DROP, {
        "type": "drop_columns", "columns": ["shop.users.note"]}]) == {"phone", "note"}


@pytest.mark.parametrize("before", [
    {"type": "filter", "where": "size(row) > 2"},  # the whole row
    {"type": "filter", "where": "'phone' in changed"},
    {"type": "rename", "columns": {"shop.users.phone": "tel"}},
    {"type": "route", "expression": "row.email"},  # an expression: reads columns
])
def test_a_step_that_may_read_any_column_ends_the_search(
        tmp_path: Path, before: dict[str, Any]) -> None:
    assert dropped(tmp_path, [before, DROP]) is None


def test_keep_columns_drops_the_others_of_the_tables_it_names(tmp_path: Path) -> None:
    keep = {"type": "keep_columns", "columns": ["shop.users.id", "shop.users.email"]}
    assert dropped(tmp_path, [keep]) == {"phone", "price", "note"}
    assert dropped(tmp_path, [keep], table="orders") == set()  # it leaves orders alone
    assert dropped(tmp_path, [DROP], table="orders") == {"price"}


def test_no_drop_no_early_columns(tmp_path: Path) -> None:
    assert dropped(tmp_path, [{"type": "hash", "columns": ["shop.users.email"],
                               "salt": "s"}]) is None
