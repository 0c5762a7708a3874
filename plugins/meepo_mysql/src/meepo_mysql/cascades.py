"""Foreign-key cascades, which change rows without putting them in the binlog.

InnoDB carries out ``ON UPDATE``/``ON DELETE`` ``CASCADE``, ``SET NULL`` and ``SET
DEFAULT`` inside the storage engine, below the layer that writes row events (MySQL bug
#32506): ``UPDATE store SET store_id = 99 WHERE store_id = 2`` logs the ``store`` row
only, and every ``customer`` row the cascade changed stays stale in every sink. MySQL 9.6
moved foreign keys to the SQL layer and logs the cascaded rows (unless
``innodb_native_foreign_keys`` is ON); MariaDB does not log them.

meepo cannot recover those rows from the binlog. It says so: at ``meepo check`` and at
every start it warns about each followed child table with such a constraint, and when
the stream shows a key change or delete on the parent it logs the table, key and
constraint and counts it (``fk_cascade_not_logged``). With ``cascades = "resnapshot"`` it
also asks the runner for a snapshot of the child rows the cascade changed: those whose
foreign key now holds the parent's new key (``CASCADE``), or is NULL (``SET NULL``). Rows
removed by ``ON DELETE CASCADE`` cannot be found that way; they are counted
(``fk_cascade_deleted_rows``) and logged. The remedy is in the README.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from meepo_core import PipelineContext, TableFilter

from .control_connection import ControlConnection

log = logging.getLogger("meepo.mysql")

CASCADING = ("CASCADE", "SET NULL", "SET DEFAULT")
#: Warnings logged per constraint and run; later cascades are counted only.
LOG_LIMIT = 10

QUERY = """
SELECT rc.CONSTRAINT_SCHEMA, rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.UNIQUE_CONSTRAINT_SCHEMA,
       rc.REFERENCED_TABLE_NAME, rc.UPDATE_RULE, rc.DELETE_RULE, k.COLUMN_NAME,
       k.REFERENCED_COLUMN_NAME
FROM information_schema.REFERENTIAL_CONSTRAINTS rc
JOIN information_schema.KEY_COLUMN_USAGE k
  ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME
 AND k.TABLE_NAME = rc.TABLE_NAME AND k.REFERENCED_TABLE_NAME IS NOT NULL
WHERE (rc.UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT')
    OR rc.DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT')) {schemas}
ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""


def find(control: ControlConnection, tables: TableFilter) -> list[Cascade]:
    """Cascading constraints whose child table is followed; none where the server logs
    the cascaded rows itself. Naming the followed schemas (when the patterns do) keeps
    the server from opening every table it has."""
    if control.logs_cascades():
        return []
    schemas = tables.schemas()
    if schemas is None:
        rows = control.query(QUERY.format(schemas=""))
    else:
        marks = ", ".join(["%s"] * len(schemas))
        rows = control.query(QUERY.format(schemas=f"AND rc.CONSTRAINT_SCHEMA IN ({marks})"),
                             *schemas)
    return load(rows, tables.follows)


@dataclass(frozen=True)
class Cascade:
    """One foreign key whose parent changes reach the child without row events."""

    schema: str
    name: str
    child: str  # schema.table
    parent: str  # schema.table
    columns: tuple[str, ...]  # in the child
    referenced: tuple[str, ...]  # in the parent
    on_update: str
    on_delete: str

    @property
    def actions(self) -> str:
        found = [f"ON UPDATE {self.on_update}" if self.on_update in CASCADING else "",
                 f"ON DELETE {self.on_delete}" if self.on_delete in CASCADING else ""]
        return " ".join(a for a in found if a)

    def describe(self) -> str:
        return (f"{self.child}: foreign key {self.name} ({', '.join(self.columns)}) -> "
                f"{self.parent} ({', '.join(self.referenced)}) {self.actions}")


def load(rows: Iterable[tuple[Any, ...]], follows: Callable[[str, str], bool]) -> list[Cascade]:
    """Cascading constraints whose child table is followed, from :data:`QUERY` rows."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for schema, name, child, parent_schema, parent, on_update, on_delete, column, ref in rows:
        if not follows(str(schema), str(child)):
            continue
        entry = found.setdefault((str(schema), str(child), str(name)), {
            "parent": f"{parent_schema}.{parent}", "columns": [], "referenced": [],
            "on_update": str(on_update), "on_delete": str(on_delete),
        })
        entry["columns"].append(str(column))
        entry["referenced"].append(str(ref))
    return [
        Cascade(schema, name, f"{schema}.{child}", e["parent"], tuple(e["columns"]),
                tuple(e["referenced"]), e["on_update"], e["on_delete"])
        for (schema, child, name), e in found.items()
    ]


def warning(cascade: Cascade) -> str:
    """The start/check warning for one constraint."""
    return (
        f"{cascade.describe()}: the server changes {cascade.child} rows for this constraint "
        "without logging them, so sinks miss those changes; change child rows explicitly "
        "(ON UPDATE/DELETE RESTRICT) or backfill the child table after a parent key "
        "change or delete (see the meepo-mysql README, Limits)"
    )


class CascadeWatch:
    """Watches one parent table's row events for changes that cascade unseen."""

    def __init__(self, cascades: list[Cascade], context: PipelineContext, *,
                 resnapshot: bool = False) -> None:
        self.on_update = [c for c in cascades if c.on_update in CASCADING]
        self.on_delete = [c for c in cascades if c.on_delete in CASCADING]
        self.context = context
        self.resnapshot = resnapshot
        self.logged: dict[str, int] = {}

    def columns(self) -> set[str]:
        """The parent columns this watch reads."""
        return {col for c in self.on_update + self.on_delete for col in c.referenced}

    def check(self, action: str, rows: list[Any], where: str) -> None:
        """Report each row of ``rows`` (decoded images) that cascades."""
        if action == "update":
            for before, after in rows:
                for cascade in self.on_update:
                    if any(before.get(c) != after.get(c) for c in cascade.referenced):
                        self._report(cascade, "key change", before, where)
                        self._resnapshot(cascade, cascade.on_update, after)
        elif action == "delete":
            for before in rows:
                for cascade in self.on_delete:
                    self._report(cascade, "delete", before, where)
                    self._resnapshot(cascade, cascade.on_delete, None)

    def _resnapshot(self, cascade: Cascade, rule: str, after: dict[str, Any] | None) -> None:
        """Ask for a snapshot of the child rows the cascade changed (``resnapshot``)."""
        if not self.resnapshot:
            return
        if rule == "CASCADE" and after is not None:
            where = {col: after.get(ref) for col, ref in zip(
                cascade.columns, cascade.referenced, strict=True)}
        elif rule == "SET NULL":
            where = dict.fromkeys(cascade.columns)
        else:  # the rows ON DELETE CASCADE removed, or SET DEFAULT's unknown default
            if rule == "CASCADE":
                self.context.metrics.record_failure("source", "fk_cascade_deleted_rows")
            log.warning("%s: the rows %s %s changed cannot be selected again; backfill %s",
                        cascade.child, cascade.name, rule, cascade.child)
            return
        self.context.request_snapshot(cascade.child, where)

    def _report(self, cascade: Cascade, what: str, image: dict[str, Any], where: str) -> None:
        self.context.metrics.record_failure("source", "fk_cascade_not_logged")
        count = self.logged[cascade.name] = self.logged.get(cascade.name, 0) + 1
        if count > LOG_LIMIT:
            return
        key = {c: image.get(c) for c in cascade.referenced}
        action = cascade.on_update if what == "key change" else cascade.on_delete
        more = (f"; further cascades of {cascade.name} are only counted "
                "(fk_cascade_not_logged)" if count == LOG_LIMIT else "")
        log.warning(
            "%s on %s %s at %s cascades (%s %s) to %s through foreign key %s, and the server "
            "does not log the child rows it changes: backfill %s%s",
            what, cascade.parent, key, where, "ON UPDATE" if what == "key change" else
            "ON DELETE", action, cascade.child, cascade.name, cascade.child, more,
        )
