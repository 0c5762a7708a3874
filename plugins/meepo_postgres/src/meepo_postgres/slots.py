"""The replication slot and the publication: finding, creating and keeping them in shape.

The slot is created in one place, :func:`created_slot`, on a replication connection with
an exported snapshot: the snapshot shows the database exactly as of the slot's consistent
point, for as long as the ``with`` block runs, which is what an initial copy of the tables
needs to meet the stream without gap or overlap.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg2

from .config import PostgresSettings
from .connections import connect_replication
from .positions import parse_lsn
from .server import ControlConnection, TableInfo, quote_ident, quote_literal

log = logging.getLogger("meepo.postgres")

#: The comment that marks a publication meepo created (and so may extend).
MANAGED_COMMENT = "created by meepo; tables matching the pipeline's tables are added at start"


@dataclass(frozen=True)
class CreatedSlot:
    name: str
    consistent_point: int  # the stream starts here: changes committed after it
    snapshot: str | None  # exported snapshot name, valid inside created_slot's block


@contextlib.contextmanager
def created_slot(settings: PostgresSettings, name: str) -> Iterator[CreatedSlot]:
    """Create logical slot ``name`` with pgoutput; the exported snapshot is usable (``SET
    TRANSACTION SNAPSHOT``) until the block ends. Waits for transactions open on the server
    to finish, as every new logical slot does."""
    conn = connect_replication(settings)
    try:
        with conn.cursor() as cur:
            log.info("creating replication slot %s on %s", name, settings.address)
            cur.create_replication_slot(name, output_plugin="pgoutput")
            _, consistent_point, snapshot, _ = cur.fetchone()
            yield CreatedSlot(name, parse_lsn(consistent_point), snapshot)
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()


def publication_problems(
    control: ControlConnection, name: str, tables: Sequence[TableInfo], key_path: str
) -> list[str]:
    """Problems of publication ``name`` for the followed ``tables`` (one line each)."""
    found = _publication(control, name)
    if found is None:
        if _can_create_publication(control, tables):
            return []
        names = ", ".join(t.sql_name for t in tables if t.publishable) or "TABLE_NAMES"
        return [
            f"publication {name!r} does not exist and user {control.settings.user!r} cannot "
            f"create it (that needs CREATE on the database and ownership of the tables): run "
            f"CREATE PUBLICATION {quote_ident(name)} FOR TABLE {names} as the tables' owner, "
            f"or set {key_path}.publication to an existing one"
        ]
    problems = []
    all_tables, actions = found
    missing_actions = [a for a in ("insert", "update", "delete") if not actions[a]]
    if missing_actions:
        problems.append(
            f"publication {name!r} does not publish {', '.join(missing_actions)}: run ALTER "
            f"PUBLICATION {quote_ident(name)} SET (publish = 'insert, update, delete, truncate')"
        )
    if not all_tables and not _is_managed(control, name):
        published = set(_published_tables(control, name))
        for table in tables:
            if table.publishable and (table.schema, table.name) not in published:
                problems.append(
                    f"table {table.qualified} matches {key_path}.tables but is not in "
                    f"publication {name!r}: run ALTER PUBLICATION {quote_ident(name)} ADD "
                    f"TABLE {table.sql_name}"
                )
    return problems


def ensure_publication(
    control: ControlConnection, name: str, tables: Sequence[TableInfo]
) -> None:
    """Create publication ``name`` for the publishable ``tables`` if it does not exist; add
    newly matching tables to one meepo created. Tables without a usable replica identity
    are left out (publishing them would make their UPDATEs and DELETEs fail)."""
    publishable = [t for t in tables if t.publishable]
    found = _publication(control, name)
    if found is None:
        listed = ", ".join(t.sql_name for t in publishable)
        control.query(
            f"CREATE PUBLICATION {quote_ident(name)}" + (f" FOR TABLE {listed}" if listed else "")
        )
        control.query(
            f"COMMENT ON PUBLICATION {quote_ident(name)} IS {quote_literal(MANAGED_COMMENT)}"
        )
        log.info("created publication %s for %d table(s)", name, len(publishable))
        return
    if found[0] or not _is_managed(control, name):
        return
    published = set(_published_tables(control, name))
    missing = [t for t in publishable if (t.schema, t.name) not in published]
    if missing:
        control.query(
            f"ALTER PUBLICATION {quote_ident(name)} ADD TABLE "
            + ", ".join(t.sql_name for t in missing)
        )
        log.info("added %s to publication %s", ", ".join(t.qualified for t in missing), name)


def _publication(control: ControlConnection, name: str) -> tuple[bool, dict[str, bool]] | None:
    rows = control.query(
        "SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication "
        "WHERE pubname = %s", name,
    )
    if not rows:
        return None
    all_tables, insert, update, delete = rows[0]
    return bool(all_tables), {"insert": insert, "update": update, "delete": delete}


def _is_managed(control: ControlConnection, name: str) -> bool:
    rows = control.query(
        "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = %s",
        name,
    )
    return bool(rows) and rows[0][0] == MANAGED_COMMENT


def _published_tables(control: ControlConnection, name: str) -> list[tuple[str, str]]:
    rows = control.query(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", name
    )
    return [(str(schema), str(table)) for schema, table in rows]


def _can_create_publication(control: ControlConnection, tables: Sequence[TableInfo]) -> bool:
    rows = control.query(
        "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE') "
        "FROM pg_roles WHERE rolname = current_user"
    )
    if not rows:
        return False
    superuser, can_create = rows[0]
    if superuser:
        return True
    if not can_create:
        return False
    owned = control.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE pg_has_role(c.relowner, 'USAGE')"
    )
    mine = {(str(schema), str(table)) for schema, table in owned}
    return all((t.schema, t.name) in mine for t in tables if t.publishable)

