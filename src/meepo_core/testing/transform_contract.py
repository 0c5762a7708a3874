"""The contract suite every transform type passes; subclass it in pytest::

    class TestTenantFilter(TransformContract):
        transform_type = "tenant_filter"

        def transform_options(self) -> dict[str, Any]:
            return {"tenant": "test"}

        def check_output(self, events, output):
            assert all(e.row.get("tenant") != "test" for e in output)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ..errors import ConfigError
from ..events import ACTIONS, UNCHANGED, RowEvent
from ..plugins import load_registry
from ..transforms import Step, Transform, TransformChain, build_chain
from .contract_rows import CONTRACT_STAMP, contract_row
from .contracts import contract_events, make_context


class TransformContract:
    """Subclass, set ``transform_type`` and implement :meth:`transform_options`; override
    :meth:`events` for events your transform acts on and :meth:`check_output` to assert
    what it did to them.

    The tests: an unknown option is an error naming its key path; the type builds a
    :class:`~meepo_core.Transform`; every result is an event, ``None`` or a list of events
    with valid actions; the chain over all events equals the events transformed one at a
    time, concatenated (nothing held back, reordered or carried from one event to the
    next); a second run gives equal events (replays after a crash go through transforms
    again); the input events' images are not changed in place; the function from
    ``for_table`` gives what ``apply`` gives.
    """

    transform_type: str = ""
    #: Modules registered besides the installed plugins (a plugin not installed as a
    #: package, importable from ``sys.path``).
    plugin_modules: tuple[str, ...] = ()
    schema = "meepo_contract"
    table = "items"

    def transform_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def events(self) -> list[RowEvent]:
        """The events run through the transform: by default those of the sink contract
        (writes, updates, a delete) on ``schema.table``, plus a snapshot ``read`` and an
        update whose ``price`` the source did not send."""
        events = [event for batch in contract_events(self.schema, self.table)
                  for event in batch.events]
        events.append(RowEvent(self.schema, self.table, "read", 5, None, contract_row(5, "five"),
                               6, CONTRACT_STAMP, "tx6", 101))
        events.append(RowEvent(self.schema, self.table, "update", 5, {"id": 5},
                               {**contract_row(5, "cinq"), "price": UNCHANGED}, 6,
                               CONTRACT_STAMP, "tx6", 102))
        return events

    def check_output(self, events: list[RowEvent], output: list[RowEvent]) -> None:
        """Assert what the transform did (``output`` is the chain's result for
        ``events``); the default checks nothing more than the contract."""

    @pytest.fixture(autouse=True)
    def _contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def build(self, options: dict[str, Any] | None = None) -> TransformChain:
        """A chain of this one transform, built through the registry like a config's."""
        raw = [{"type": self.transform_type, **(options or self.transform_options())}]
        chain = build_chain(load_registry(self.plugin_modules), raw, "transforms",
                            self.tmp_path)
        assert chain is not None
        chain.open(make_context(self.tmp_path))
        return chain

    def run(self, chain: TransformChain, events: list[RowEvent]) -> list[RowEvent]:
        """The chain's output; a transform error fails the test with the error."""
        errors: list[str] = []
        output = list(chain.run(events, lambda e, label, error: errors.append(
            f"{label} on {e.name} {e.pk!r}: {error}")))
        assert not errors, errors
        return output

    def test_unknown_option_is_an_error_naming_the_key(self) -> None:
        with pytest.raises(ConfigError) as raised:
            self.build({**self.transform_options(), "no_such_option": 1})
        assert raised.value.path == "transforms[0].no_such_option"

    def test_builds_a_transform(self) -> None:
        chain = self.build()
        assert all(isinstance(t, Transform) for t in chain.transforms)
        assert chain.transforms[0].label == f"transforms[0] {self.transform_type}"

    def test_results_are_events(self) -> None:
        transform = self.build().transforms[0]
        for event in self.events():
            result = transform.apply(event)
            items = result if isinstance(result, list) else [] if result is None else [result]
            assert all(isinstance(item, RowEvent) and item.action in ACTIONS
                       for item in items), result

    def test_nothing_held_back_or_reordered(self) -> None:
        events = self.events()
        together = self.run(self.build(), events)
        one_by_one = [out for event in events for out in self.run(self.build(), [event])]
        assert together == one_by_one
        self.check_output(events, together)

    def test_a_replay_gives_the_same_events(self) -> None:
        chain = self.build()
        assert self.run(chain, self.events()) == self.run(chain, self.events())

    def test_input_events_are_not_changed(self) -> None:
        events = self.events()
        images = [copy.deepcopy((e.before, e.after)) for e in events]
        self.run(self.build(), events)
        assert [(e.before, e.after) for e in events] == images

    def test_for_table_gives_what_apply_gives(self) -> None:
        transform = self.build().transforms[0]
        step = Step(transform)
        for event in self.events():
            function = step.function(event.schema, event.table)
            compiled = event if function is None else function(event)
            assert compiled == transform.apply(event)
