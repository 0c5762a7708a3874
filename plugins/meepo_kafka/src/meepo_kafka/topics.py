"""Which topic an event goes to."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from meepo_core import qualified_name

from .config import topic_problem

log = logging.getLogger("meepo.kafka")
_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")


class TopicRouter:
    """``overrides["schema.table"]`` if set, else ``prefix + template`` formatted with the
    event's ``schema`` and ``table``. Characters Kafka does not allow in topic names
    (anything but ``a-z A-Z 0-9 . _ -``) become ``_``, as Debezium does; that is logged
    once per table. Names are computed once per table."""

    def __init__(self, template: str, prefix: str = "",
                 overrides: Mapping[str, str] | None = None) -> None:
        self.template = prefix + template
        self.overrides = dict(overrides or {})
        self._names: dict[tuple[str, str], str] = {}
        self._routed: dict[str, str] = {}

    def topic(self, schema: str, table: str) -> str:
        """The topic for ``schema.table``; ``ValueError`` if no legal name can be made."""
        found = self._names.get((schema, table))
        if found is None:
            found = self._names[(schema, table)] = self._name(schema, table)
        return found

    def routed(self, destination: str) -> str:
        """The topic for a ``route`` transform's ``destination``, a whole topic name (no
        prefix, no overrides), made legal the same way; ``ValueError`` if it cannot be."""
        found = self._routed.get(destination)
        if found is None:
            name = _ILLEGAL.sub("_", destination)
            problem = topic_problem(name)
            if problem is not None:
                raise ValueError(f"routed destination {destination!r}: {problem}")
            if name != destination:
                log.warning("destination %r goes to topic %r: Kafka does not allow the other "
                            "characters", destination, name)
            found = self._routed[destination] = name
        return found

    def _name(self, schema: str, table: str) -> str:
        qualified = qualified_name(schema, table)
        override = self.overrides.get(qualified)
        if override is not None:
            return override
        raw = self.template.format(schema=schema, table=table)
        name = _ILLEGAL.sub("_", raw)
        problem = topic_problem(name)
        if problem is not None:
            raise ValueError(f"table {qualified}: {problem}; name its topic in topics")
        if name != raw:
            log.warning("table %s goes to topic %r: Kafka does not allow the other "
                        "characters of %r (set topics to choose the name)", qualified, name,
                        raw)
        return name
