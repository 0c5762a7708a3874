"""The compiled transforms give what CEL and the transforms one by one give.

* Filters translated to Python (``cel_python``) against CEL itself: thousands of random
  expressions of the translated subset (and a few just outside it) over random values of
  every kind a source gives (ints at and past int64's ends, bools, ASCII and other text,
  lone surrogates, floats, decimals, NULL, ``UNCHANGED``, missing columns): for every pair
  the chain keeps, drops or dead-letters the event exactly as CEL's own result says.
* Compiled chains mixing filters, edits and routes in every order against the same
  transforms run one step at a time (each alone, which is the uncompiled path).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meepo_core import UNCHANGED, RowEvent
from meepo_core.events import ACTIONS
from meepo_core.plugins import load_registry
from meepo_core.transforms import build_chain
from meepo_core.transforms.cel_python import translate
from meepo_core.transforms.chain import CompiledSteps, TransformChain
from meepo_core.transforms.expressions import Expression

VALUES: list[Any] = [
    0, 1, -1, 7, -7, 10, -10, 13, 99, -15, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64,
    True, False, "a", "b", "test", "", "é", "\udc80", 1.0, 2.5, Decimal("3"), None, UNCHANGED,
]
COLUMNS = ("a", "b", "s")
IMAGES = ("row", "after", "before")
RELATIONS = ("==", "!=", "<", "<=", ">", ">=")


def int_operand(rng: random.Random) -> str:
    column = f"{rng.choice(IMAGES)}.{rng.choice(COLUMNS)}"
    return rng.choice([
        column, column, f"{column} % {rng.choice([1, 2, 3, 10])}", str(rng.randint(-20, 20)),
        f"({column} % {rng.choice([3, 10])}) % 2", f"{column} % 0", f"{column} % -3",
        "9223372036854775807", f"{column} + 1",
    ])


def condition(rng: random.Random, depth: int = 0) -> str:
    pick = rng.randrange(9 if depth < 3 else 5)
    column = f"{rng.choice(IMAGES)}.{rng.choice(COLUMNS)}"
    if pick == 0:
        return f"{int_operand(rng)} {rng.choice(RELATIONS)} {rng.randint(-20, 20)}"
    if pick == 1:
        return f"{rng.randint(-20, 20)} {rng.choice(RELATIONS)} {int_operand(rng)}"
    if pick == 2:
        return f"{column} {rng.choice(RELATIONS)} {rng.choice(['a', 'test', '', 'é'])!r}"
    if pick == 3:
        return rng.choice([f"{column} == true", f"{column} != false", column,
                           f"{column} < true", f"{column} == 1.0", f"{column} == null"])
    if pick == 4:
        return rng.choice(["action == 'update'", "table != 'items'", "schema == 's'",
                           f"action {rng.choice(RELATIONS)} 'read'", "true", "1 < 2"])
    if pick in (5, 6):
        op = "&&" if pick == 5 else "||"
        return f"({condition(rng, depth + 1)} {op} {condition(rng, depth + 1)})"
    if pick == 7:
        return f"!({condition(rng, depth + 1)})"
    return f"!{column}"


def random_event(rng: random.Random) -> RowEvent:
    def image() -> dict[str, Any]:
        return {c: rng.choice(VALUES) for c in COLUMNS if rng.random() < 0.9}
    action = rng.choice(ACTIONS)
    before = image() if action in ("update", "delete") else None
    after = image() if action != "delete" else None
    return RowEvent("s", rng.choice(["items", "other"]), action, 1, before, after,
                    sequence=rng.randrange(10**9))


def cel_outcome(expression: Expression, event: RowEvent) -> str:
    try:
        result = expression.execute(event)
    except Exception:
        return "error"
    return {True: "keep", False: "drop"}.get(result, "error") if isinstance(result, bool) \
        else "error"


def chain_outcome(chain: TransformChain, event: RowEvent) -> str:
    errors: list[str] = []
    out = chain.run([event], lambda _e, _label, error: errors.append(error))
    if errors:
        assert not out
        return "error"
    return "keep" if out else "drop"


def test_translated_filters_give_what_cel_gives(tmp_path: Path) -> None:
    rng = random.Random(21)
    registry = load_registry()
    translated = 0
    for _ in range(1500):
        text = condition(rng)
        try:
            expression = Expression(text, "where")
            chain = build_chain(registry, [{"type": "filter", "where": text}], "transforms",
                                tmp_path)
        except Exception:
            continue  # not valid CEL, or a type error found at load (a config error)
        assert chain is not None and isinstance(chain._running[0], CompiledSteps)
        translated += translate(text, "s", "items") is not None
        for _ in range(12):
            event = random_event(rng)
            assert chain_outcome(chain, event) == cel_outcome(expression, event), (
                text, event)
    assert translated > 600  # most of them take the Python path


@pytest.mark.parametrize("text", [
    "row.a + 1 > 2", "has(row.a)", "row.a == 1.5", "row.a % 0 == 1", "row.a < row.b",
    "row.a == 1 ? true : false", "row.a in [1, 2]", "size(row.s) > 1", "row.a == 1u",
    "row.s == 'it\\'s'", "row.a.b == 1", "pk == 1", "1 < 2 < 3", "row.flag < true",
])
def test_what_is_not_translated(text: str) -> None:
    assert translate(text, "s", "t") is None


def test_a_translated_filter_reads_the_columns_once_with_constants_folded() -> None:
    condition_ = translate("row.id % 10 != 0 && table == 'items'", "s", "items")
    assert condition_ is not None
    assert condition_.source == (
        "((c0 % 10 != 0) and ('items' == 'items'))")
    # a remainder compared with anything but zero keeps CEL's sign (the dividend's)
    assert translate("row.id % 10 == -3", "s", "t").source == (  # type: ignore[union-attr]
        "((c0 % 10 if c0 >= 0 else -(-c0 % 10)) == -3)")
    assert condition_.columns == {("row", "id"): ("c0", "int")}


CHAIN_PARTS: list[dict[str, Any]] = [
    {"type": "filter", "where": "row.a % 3 != 0"},
    {"type": "filter", "where": "has(row.s) && row.s != 'test'"},
    {"type": "hash", "columns": ["s.items.s"], "salt": "salt"},
    {"type": "mask", "columns": ["s.items.b"], "mode": "partial", "keep_first": 1},
    {"type": "mask", "columns": ["*.*.a"], "mode": "null"},
    {"type": "drop_columns", "columns": ["s.items.b"]},
    {"type": "keep_columns", "columns": ["*.*.a", "*.*.s"]},
    {"type": "route", "to": "{table}_{action}", "tables": ["s.items"]},
    {"type": "route", "to": "all_{schema}"},
    {"type": "filter", "where": "row.s != 'x'"},  # after a hash or a mask: sees their values
]


class Seen:
    """What a chain reported (dead letters) and counted (drops)."""

    def __init__(self) -> None:
        self.errors: list[tuple[int, str, str]] = []
        self.drops: Counter[str] = Counter()

    def report(self, event: RowEvent, label: str, error: str) -> None:
        self.errors.append((event.sequence or 0, label, error))

    def count(self, label: str, dropped: int) -> None:
        self.drops[label] += dropped


def test_compiled_chains_equal_the_transforms_one_by_one(tmp_path: Path) -> None:
    rng = random.Random(5)
    registry = load_registry()
    events = [random_event(rng) for _ in range(300)]
    events += [RowEvent("s", "items", "write", 1, None, {}),
               RowEvent("s", "items", "delete", 2, {"a": 4}, None)]
    untouched = [dataclasses.replace(e, before=_copy(e.before), after=_copy(e.after))
                 for e in events]
    for _ in range(60):
        options = rng.sample(CHAIN_PARTS, rng.randint(2, 6))
        chain = build_chain(registry, options, "transforms", tmp_path)
        assert chain is not None and len(chain._running) == 1
        compiled_seen, separate_seen = Seen(), Seen()
        compiled = chain.run(events, compiled_seen.report, compiled_seen.count)
        separate: Any = events
        for index, option in enumerate(options):
            one = build_chain(registry, [option], "transforms", tmp_path)
            assert one is not None
            one.steps[0].transform.label = chain.steps[index].transform.label
            one._running = one.steps  # the uncompiled path: the transform's own function
            separate = one.run(separate, separate_seen.report, separate_seen.count)
        assert list(compiled) == list(separate), options
        assert [e.destination for e in compiled] == [e.destination for e in separate]
        # the compiled run reports in event order, one transform after the other in
        # transform order
        assert sorted(compiled_seen.errors) == sorted(separate_seen.errors), options
        assert compiled_seen.drops == separate_seen.drops, options
        assert events == untouched  # copies were changed, not the events given
        # fresh events (a source's): the same output, made of the given events changed
        fresh = [dataclasses.replace(e) for e in events]
        fresh_seen = Seen()
        in_place = chain.run(fresh, fresh_seen.report, fresh_seen.count, fresh=True)
        assert list(in_place) == list(compiled), options
        assert [e.destination for e in in_place] == [e.destination for e in compiled]
        assert {id(e) for e in in_place} <= {id(e) for e in fresh}
        assert sorted(fresh_seen.errors) == sorted(compiled_seen.errors), options
        assert fresh_seen.drops == compiled_seen.drops, options
        assert events == untouched  # their images were copied before being edited


def _copy(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if image is None else dict(image)


def test_equal_names_that_are_other_objects_share_the_compiled_run(tmp_path: Path) -> None:
    """Events decoded one by one (a JSON log) have equal table names that are different
    objects: one run of the generated function still takes them all, in order."""
    chain = build_chain(load_registry(), [{"type": "filter", "where": "row.a % 2 == 0"},
                                          {"type": "route", "to": "{table}_x"}],
                        "transforms", tmp_path)
    assert chain is not None
    names = ["".join(["it", "ems"]) for _ in range(6)]
    assert names[0] is not names[1]
    events = [RowEvent("s", name, "write", a, None, {"a": a}) for a, name in enumerate(names)]
    events.insert(3, RowEvent("s", "other", "write", 10, None, {"a": 10}))
    out = chain.run(events, lambda *failure: pytest.fail(str(failure)))
    assert [(e.table, e.pk, e.destination) for e in out] == [
        ("items", 0, "items_x"), ("items", 2, "items_x"), ("other", 10, "other_x"),
        ("items", 4, "items_x")]
    step = chain._running[0]
    assert isinstance(step, CompiledSteps) and len(step._runs) == 2
