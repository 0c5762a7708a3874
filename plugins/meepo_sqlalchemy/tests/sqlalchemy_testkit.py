"""Models and helpers shared by the meepo-sqlalchemy tests (importable: conftest puts this
folder on sys.path)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from meepo_core.builtin.memory import channel
from meepo_core.builtin.memory_sink import MemorySink
from meepo_core.events import RowEvent


class Base(DeclarativeBase):
    pass


class Test(Base):
    """The original meepo example's model."""

    __tablename__ = "test"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[str] = mapped_column(String(32))


class Auto(Base):
    """An autoincrement key and a server-side default."""

    __tablename__ = "auto"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32))
    hits: Mapped[int] = mapped_column(Integer, server_default="0")


class Pair(Base):
    """A composite primary key."""

    __tablename__ = "pair"

    a: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    b: Mapped[str] = mapped_column(String(16), primary_key=True)
    note: Mapped[str] = mapped_column(String(32))


class Parent(Base):
    __tablename__ = "parent"

    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list[Child]] = relationship(back_populates="parent")


class Child(Base):
    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parent.id"))
    parent: Mapped[Parent | None] = relationship(back_populates="children")


class Product(Base):
    """The replicated table of the random workload."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    stock: Mapped[int] = mapped_column(Integer)


def memory_sink(name: str = "session") -> MemorySink:
    return MemorySink(name)


def events(name: str = "session") -> list[RowEvent]:
    return channel(name).events


def lines(name: str = "session") -> list[str]:
    """``table_action pk`` per event, as the print sink shows them."""
    return [f"{e.name} {e.pk}" for e in events(name)]
