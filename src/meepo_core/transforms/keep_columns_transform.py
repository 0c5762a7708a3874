"""``keep_columns``: keep only the named columns in the row images."""

from __future__ import annotations

from .drop_columns_transform import DropColumnsTransform


class KeepColumnsTransform(DropColumnsTransform):
    """``{ type = "keep_columns", columns = ["shop.users.id", "shop.users.name"] }``: in
    the tables the list names, every other column is removed from ``before`` and
    ``after``; tables the list does not name pass unchanged."""

    keep = True
