"""The original meepo example, made with SQLAlchemy on SQLite in outbox mode.

Run from the repository root, then relay the outbox to the print sink::

    python examples/demo/make_changes.py && meepo --config examples/demo/meepo.toml run demo --once

which prints::

    test_write 1
    test_write 2
    test_write 3
    test_update 2
    test_delete 3

Every run starts from a fresh ``demo.db`` next to this file. The events are written to
the ``meepo_outbox`` table in the same transaction as the changes, so they reach the
sinks even if this process dies right after a commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import meepo_sqlalchemy
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

DATABASE = Path(__file__).resolve().parent / "demo.db"


class Base(DeclarativeBase):
    pass


class Test(Base):
    __tablename__ = "test"

    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[str] = mapped_column(String(32))


def main() -> None:
    DATABASE.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{DATABASE}")
    Base.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)

    Session = sessionmaker(engine)
    meepo_sqlalchemy.install(Session, outbox=True)

    with Session() as session:
        session.add(Test(id=1, data="a"))
        session.commit()

        t_2, t_3 = Test(id=2, data="b"), Test(id=3, data="c")
        session.add_all([t_2, t_3])
        session.commit()

        t_2.data = "x"
        session.commit()

        session.delete(t_3)
        session.commit()
    engine.dispose()
    print(f"make_changes: 4 transactions committed to {DATABASE} with their events in "
          "meepo_outbox", file=sys.stderr)


if __name__ == "__main__":
    main()
