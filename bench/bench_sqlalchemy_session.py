"""Side-by-side cost of the session source: plain commits vs in-process (null sink) vs
outbox mode, on a SQLite file (or the URL given as argv[1]). Reports ratios.

    python bench/bench_sqlalchemy_session.py [URL]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import meepo_sqlalchemy
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from meepo_core import Batch, Options, Sink


class CountingSink(Sink):
    """Counts the events it gets, as the built-in ``null`` sink does (built in code here:
    the embedding API takes sink objects)."""

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    def from_options(cls, options: Options) -> CountingSink:
        options.done()
        return cls()

    def apply(self, batch: Batch) -> None:
        self.count += len(batch.events)


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[str] = mapped_column(String(32))


def run(url: str, mode: str, transactions: int = 300) -> float:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)
    maker = sessionmaker(engine)
    installed = None
    if mode == "in-process":
        installed = meepo_sqlalchemy.install(maker, sinks=[CountingSink()])
    elif mode == "outbox":
        installed = meepo_sqlalchemy.install(maker, outbox=True)
    began = time.perf_counter()
    for i in range(transactions):
        with maker() as session:
            session.add_all([Row(id=i * 10 + k, data="x") for k in range(5)])
            session.commit()
    seconds = time.perf_counter() - began
    if installed is not None:
        meepo_sqlalchemy.uninstall(installed)
    engine.dispose()
    return seconds


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else (
        f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    base = run(url, "plain")
    for mode in ("plain", "in-process", "outbox"):
        seconds = run(url, mode)
        print(f"{mode:11s} {seconds:6.2f}s  x{seconds / base:4.2f} of plain "
              "(300 transactions of 5 inserted rows)")


if __name__ == "__main__":
    main()
