"""Row events to row images: one decoder per table definition, generated as Python code.

When a table definition is first seen, :class:`TableDecoder` turns each column into a
:class:`ColumnSpec` (how many bytes, which ``struct`` format, which conversion) and, per
combination of present-column bitmaps (with ``binlog_row_image = FULL`` only one),
generates and compiles a function that decodes every row of a rows event body:

* consecutive fixed-width columns of one byte order are read by one
  ``struct.unpack_from`` (a run of INTs, or DATETIME(6) as ``>IBBH``);
* the null bitmap is one integer: if it is zero (no NULL in the row) a straight-line
  variant runs without any per-column test; otherwise each nullable column tests its bit;
* images are dict displays with the visible column names as constants, so hidden
  columns are skipped, never converted.

When a generated function fails (a corrupt event, an unknown type), the row is decoded
again column by column to name the column in a :class:`RowDecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from . import charsets, compat, values
from . import tablemap as tm
from .binlog import BinlogFormatError, packed_int, uncompress

#: Extended MariaDB types found by name in information_schema (the binlog says BINARY(n)
#: or LONGTEXT): column name -> "json" | "inet4" | "inet6" | "uuid".
ExtendedTypes = Mapping[str, str]


class RowDecodeError(Exception):
    """A row that cannot be decoded; the message names the column and the reason."""


class UnsupportedColumn(Exception):
    """A column type or character set meepo cannot decode at all."""


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is read.

    Fixed-width columns have a ``fmt`` (struct codes, byte order ``order``) and ``expr``,
    a Python expression over the unpacked fields ``{0}``, ``{1}`` ...; variable-width
    columns have a length ``prefix`` (bytes) and ``expr`` over the value bytes ``{0}``.
    ``helpers`` are the names ``expr`` uses.
    """

    name: str
    nullable: bool
    fmt: str = ""
    order: str = "<"
    prefix: int = 0
    expr: str = "{0}"
    helpers: Mapping[str, Any] = field(default_factory=dict)
    always_null: bool = False
    #: The conversion is worth skipping when an update leaves the value's bytes as they
    #: were, and its result is immutable (so before and after may share it).
    reusable: bool = False

    @property
    def fixed(self) -> bool:
        return self.prefix == 0 and not self.always_null

    @property
    def size(self) -> int:
        return struct.calcsize(self.order + self.fmt) if self.fixed else 0

    @property
    def fields(self) -> int:
        return len(struct.unpack(self.order + self.fmt, bytes(self.size))) if self.fixed else 1


def _int_code(size: int, unsigned: bool) -> tuple[str, str]:
    code = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
    return (code.upper() if unsigned else code), "{0}"


def column_spec(
    column: tm.Column, charset_of: Mapping[int, str], extended: ExtendedTypes, mariadb: bool
) -> ColumnSpec:
    """The reading rule for one column; raises :class:`UnsupportedColumn`."""
    kind, meta, name, nullable = column.type, column.meta, column.name, column.nullable
    h = f"_{column.index}"  # helper-name prefix, unique per column
    if extended.get(name) == "mariadb53" and kind in (tm.TIME, tm.DATETIME, tm.TIMESTAMP):
        raise UnsupportedColumn(
            f"column {name!r} has fractional seconds in MariaDB 5.3's temporal format, "
            "whose binlog form does not say its size; convert the table with SET GLOBAL "
            "mysql56_temporal_format = ON and ALTER TABLE ... FORCE"
        )
    if kind in (tm.TINY, tm.SHORT, tm.LONG, tm.LONGLONG):
        size = {tm.TINY: 1, tm.SHORT: 2, tm.LONG: 4, tm.LONGLONG: 8}[kind]
        fmt, expr = _int_code(size, column.unsigned)
        return ColumnSpec(name, nullable, fmt, "<", expr=expr)
    if kind == tm.INT24:
        return ColumnSpec(name, nullable, "HB" if column.unsigned else "Hb", "<",
                          expr="{0} | {1} << 16" if column.unsigned else "{0} + ({1} << 16)")
    if kind == tm.FLOAT:
        return ColumnSpec(name, nullable, "f", "<")
    if kind == tm.DOUBLE:
        return ColumnSpec(name, nullable, "d", "<")
    if kind == tm.YEAR:
        return ColumnSpec(name, nullable, "B", "<", expr="({0} + 1900 if {0} else 0)")
    if kind == tm.NEWDECIMAL:
        assert isinstance(meta, tuple)
        precision, scale = meta
        size = values.decimal_size(precision, scale)
        return ColumnSpec(name, nullable, f"{size}s", ">", expr=f"{h}dec({{0}})",
                          helpers={f"{h}dec": values.decimal_reader(precision, scale)},
                          reusable=True)
    if kind in (tm.DATE, tm.NEWDATE):
        return ColumnSpec(name, nullable, "HB", "<", expr="_date({0} | {1} << 16)",
                          helpers={"_date": values.date_value}, reusable=True)
    if kind in (tm.DATETIME2, tm.TIMESTAMP2, tm.TIME2):
        return _temporal2(kind, int(meta) if isinstance(meta, int) else 0, name, nullable)
    if kind == tm.TIMESTAMP:
        return ColumnSpec(name, nullable, "I", "<", expr="_ts({0}, 0)",
                          helpers={"_ts": values.timestamp_value})
    if kind == tm.DATETIME:
        return ColumnSpec(name, nullable, "Q", "<", expr="_dt({0})",
                          helpers={"_dt": values.datetime_value})
    if kind == tm.TIME:
        return ColumnSpec(name, nullable, "Hb", "<", expr="_time({0} + ({1} << 16))",
                          helpers={"_time": values.time_value})
    if kind == tm.BIT:
        assert isinstance(meta, int)
        return ColumnSpec(name, nullable, f"{(meta + 7) // 8}s", ">", expr="_bits({0})",
                          helpers={"_bits": values.bit_value}, reusable=True)
    if kind in (tm.ENUM, tm.SET):
        return _enum_or_set(column, charset_of, h)
    if kind == tm.NULL:
        return ColumnSpec(name, True, always_null=True)
    if kind in (tm.VARCHAR, tm.VAR_STRING, tm.STRING):
        assert isinstance(meta, int)
        prefix = 1 if meta < 256 else 2
        return _text(column, charset_of, extended, prefix, h, pad=kind == tm.STRING)
    if kind in (tm.BLOB, tm.TINY_BLOB, tm.MEDIUM_BLOB, tm.LONG_BLOB):
        assert isinstance(meta, int)
        return _text(column, charset_of, extended, meta, h, pad=False)
    if kind == tm.JSON:
        assert isinstance(meta, int)
        return ColumnSpec(name, nullable, prefix=meta, expr="_mysql_json({0})",
                          helpers={"_mysql_json": _mysql_json})
    if kind == tm.GEOMETRY:
        assert isinstance(meta, int)
        return ColumnSpec(name, nullable, prefix=meta)
    raise UnsupportedColumn(f"column {name!r} has binlog type {kind}, which meepo cannot decode")


def _temporal2(kind: int, digits: int, name: str, nullable: bool) -> ColumnSpec:
    """DATETIME2 / TIMESTAMP2 / TIME2 with ``digits`` fractional digits."""
    frac_fmt, frac_expr = {
        0: ("", "0"), 1: ("B", "{f0}"), 2: ("B", "{f0}"), 3: ("H", "{f0}"),
        4: ("H", "{f0}"), 5: ("BH", "({f0} << 16 | {f1})"), 6: ("BH", "({f0} << 16 | {f1})"),
    }[digits]
    first = {tm.DATETIME2: 2, tm.TIMESTAMP2: 1, tm.TIME2: 2}[kind]  # fields before fraction
    frac = frac_expr.format(f0=f"{{{first}}}", f1=f"{{{first + 1}}}")
    scale = values.FRACTION_SCALE[digits]
    micro = f"{frac} * {scale}" if scale not in (0, 1) else frac
    if kind == tm.DATETIME2:
        return ColumnSpec(name, nullable, "IB" + frac_fmt, ">",
                          expr=f"_dt2({{0}} << 8 | {{1}}, {micro}, {digits})",
                          helpers={"_dt2": values.datetime2_value}, reusable=True)
    if kind == tm.TIMESTAMP2:  # inline: 0 is the zero timestamp (TIMESTAMP starts at 1 s)
        return ColumnSpec(name, nullable, "I" + frac_fmt, ">",
                          expr=f"(_epoch + _td(0, {{0}}, {micro}) if {{0}} else None)",
                          helpers={"_epoch": values.EPOCH, "_td": timedelta}, reusable=True)
    return ColumnSpec(name, nullable, "HB" + frac_fmt, ">",
                      expr=f"_time2({{0}} << 8 | {{1}}, {frac}, {digits})",
                      helpers={"_time2": values.time2_value}, reusable=True)


def _charset(column: tm.Column, charset_of: Mapping[int, str]) -> str:
    """The column's character set name (``binary`` for binary strings)."""
    collation = column.collation
    if collation is None or collation == tm.BINARY_COLLATION:
        return charsets.BINARY
    charset = charset_of.get(collation)
    if charset is None:
        raise UnsupportedColumn(
            f"column {column.name!r} has collation id {collation}, which the server does not "
            "list in information_schema"
        )
    if charset != charsets.BINARY and charsets.decoder(charset) is None:
        raise UnsupportedColumn(f"column {column.name!r} has character set {charset}, "
                                "which meepo cannot decode")
    return charset


def _text(
    column: tm.Column, charset_of: Mapping[int, str], extended: ExtendedTypes, prefix: int,
    h: str, *, pad: bool,
) -> ColumnSpec:
    name, nullable = column.name, column.nullable
    charset = _charset(column, charset_of)
    special = extended.get(name)
    if charset == charsets.BINARY:
        length = column.meta if isinstance(column.meta, int) else 0
        fixed = f"{{0}}.ljust({length}, b'\\0')" if pad else "{0}"
        convert = _BINARY_TYPES.get(special or "")
        if convert is not None and pad and length == convert[0]:
            return ColumnSpec(name, nullable, prefix=prefix, expr=f"{h}x({fixed})",
                              helpers={f"{h}x": convert[1]}, reusable=True)
        return ColumnSpec(name, nullable, prefix=prefix, expr=fixed, reusable=pad)
    codec = charsets.CODECS.get(charset)
    helpers: dict[str, Any] = {}
    if codec is not None:
        text = f"{{0}}.decode({codec!r}, {charsets.LOSSLESS!r})"
    else:
        text, helpers[f"{h}t"] = f"{h}t({{0}})", charsets.decoder(charset)
    if special == "json":  # parsed into a dict or list: never shared between images
        helpers["_mariadb_json"] = values.mariadb_json
        return ColumnSpec(name, nullable, prefix=prefix, expr=f"_mariadb_json({text})",
                          helpers=helpers)
    return ColumnSpec(name, nullable, prefix=prefix, expr=text, helpers=helpers, reusable=True)


#: MariaDB's binary-stored types: (stored length, conversion to the server's text).
_BINARY_TYPES: dict[str, tuple[int, Callable[[bytes], str]]] = {
    "inet4": (4, values.inet4_value), "inet6": (16, values.inet6_value),
    "uuid": (16, values.uuid_value),
}


def _enum_or_set(column: tm.Column, charset_of: Mapping[int, str], h: str) -> ColumnSpec:
    decode = charsets.decoder(_charset(column, charset_of)) or _utf8
    members = tuple(decode(member) for member in column.members)
    assert isinstance(column.meta, int)
    size = column.meta
    if column.type == tm.ENUM:
        fmt = {1: "B", 2: "H"}[size]
        return ColumnSpec(column.name, column.nullable, fmt, "<", expr=f"{h}e({{0}})",
                          helpers={f"{h}e": values.enum_reader(members)})
    if size in (1, 2, 4, 8):
        fmt, expr = {1: "B", 2: "H", 4: "I", 8: "Q"}[size], "{0}"
    else:  # 3 bytes
        fmt, expr = "HB", "{0} | {1} << 16"
    return ColumnSpec(column.name, column.nullable, fmt, "<", expr=f"{h}s({expr})",
                      helpers={f"{h}s": values.set_reader(members)})


def _mysql_json(data: bytes) -> Any:
    if not data:
        return None
    return values.mysql_json(compat.binary_json(data))


def _utf8(data: bytes) -> str:
    return data.decode("utf-8", charsets.LOSSLESS)


# -- rows event bodies ------------------------------------------------------------------
class RowsBody(NamedTuple):
    """A rows event, split: the table, the present-column bitmaps and where the rows are."""

    table_id: int
    action: str  # "write" | "update" | "delete"
    column_count: int
    present: bytes
    present_after: bytes | None  # updates only
    data: bytes  # the packet, or the inflated rows of a compressed event
    start: int  # the first row in ``data``
    end: int  # after the last row


def parse_rows_body(data: bytes, start: int, end: int, action: str, version: int,
                    compressed: bool, post_header: int) -> RowsBody:
    """Split a WRITE/UPDATE/DELETE_ROWS body (v1, v2, MariaDB compressed) that occupies
    ``data[start:end]``."""
    id_size = tm.table_id_size(post_header)
    table_id = int.from_bytes(data[start:start + id_size], "little")
    pos = start + post_header
    if version == 2:
        (extra,) = struct.unpack_from("<H", data, start + id_size + 2)
        pos += extra - 2
    count, pos = packed_int(data, pos)
    width = (count + 7) // 8
    present = data[pos:pos + width]
    pos += width
    present_after = None
    if action == "update":
        present_after = data[pos:pos + width]
        pos += width
    if pos > end:
        raise BinlogFormatError("the rows event ends inside its header")
    if compressed:
        rows = uncompress(data[pos:end])
        return RowsBody(table_id, action, count, present, present_after, rows, 0, len(rows))
    return RowsBody(table_id, action, count, present, present_after, data, pos, end)


# -- generated decoders -----------------------------------------------------------------
RowsFunction = Callable[[bytes, int, int], tuple[list[Any], int]]


class TableDecoder:
    """Decodes the rows of one table definition into images of its visible columns."""

    def __init__(self, table: tm.TableMap, specs: list[ColumnSpec], hidden: Collection[str]):
        self.table = table
        self.specs = specs
        self.visible = [spec.name not in hidden for spec in specs]
        self._helpers: dict[str, Any] = {"_S": {}}
        for spec in specs:
            self._helpers.update(spec.helpers)
        self._functions: dict[tuple[bytes, bytes | None], RowsFunction] = {}
        self._column_readers: list[Callable[[bytes, int], tuple[Any, int]]] | None = None
        self.full = bytes([0xFF] * (len(specs) // 8)) + (
            bytes([(1 << (len(specs) % 8)) - 1]) if len(specs) % 8 else b"")

    def decode(self, body: RowsBody, packet: bytes = b"", fmt: Any = None) -> list[Any]:
        """Images (writes, deletes) or ``(before, after)`` pairs (updates), row by row
        (``packet`` and ``fmt`` are for the reference decoder's signature).

        Columns missing from a row image (``binlog_row_image`` MINIMAL or NOBLOB) are
        absent from the image. Raises :class:`RowDecodeError` naming the column.
        """
        if body.column_count != len(self.specs):
            raise RowDecodeError(f"the rows event has {body.column_count} columns, its table "
                                 f"map {len(self.specs)}")
        key = (self._normal(body.present), None if body.present_after is None
               else self._normal(body.present_after))
        function = self._functions.get(key)
        if function is None:
            function = self._functions[key] = self._compile(*key)
        try:
            rows, end = function(body.data, body.start, body.end)
        except Exception:  # any failure is a bad row: find and name the column
            rows, end = [], -1
        if end != body.end:
            self._locate(body, key)
        return rows

    def _normal(self, bitmap: bytes) -> bytes:
        return self.full if bitmap == self.full else bytes(bitmap)

    # -- code generation ----------------------------------------------------------------
    def _present(self, bitmap: bytes) -> list[int]:
        return [i for i in range(len(self.specs)) if bitmap[i >> 3] & (1 << (i & 7))]

    def _compile(self, first: bytes, second: bytes | None) -> RowsFunction:
        lines = ["def rows(data, pos, end):", "    out = []",
                 "    append = out.append", "    while pos < end:"]
        before = self._present(first)
        if second is None:
            lines += self._image_code(before, "before", "        ", {})
            lines.append("        append(before)")
        else:
            # An update's after image reuses the before image's converted value of each
            # column whose bytes did not change (most columns of most updates).
            after = self._present(second)
            shared = [i for i in before if i in after and self.specs[i].reusable
                      and self.visible[i]]
            lines += self._image_code(before, "before", "        ", dict.fromkeys(shared, "save"))
            lines += self._image_code(after, "after", "        ", dict.fromkeys(shared, "reuse"))
            lines.append("        append((before, after))")
        lines.append("    return out, pos")
        namespace = dict(self._helpers)
        self.source = "\n".join(lines)
        exec(compile(self.source, f"<meepo rows {self.table.qualified}>", "exec"), namespace)
        function: RowsFunction = namespace["rows"]
        return function

    def _struct(self, fmt: str) -> str:
        structs = self._helpers["_S"]
        if fmt not in structs:
            structs[fmt] = struct.Struct(fmt)
        name = f"_s{list(structs).index(fmt)}"
        self._helpers[name] = structs[fmt]
        return name

    def _image_code(self, present: list[int], target: str, indent: str,
                    share: dict[int, str]) -> list[str]:
        """Code for one row image; ``share`` marks columns whose raw value is kept in
        ``r{i}`` (``save``) or compared with it to keep ``c{i}`` (``reuse``)."""
        width = (len(present) + 7) // 8
        # The server sets the bitmap's unused high bits: mask them, so that a row without
        # NULLs takes the straight path.
        mask = f" & {(1 << len(present)) - 1:#x}" if len(present) % 8 else ""
        lines = []
        if width == 0:
            lines.append(f"{indent}nulls = 0")
        elif width == 1:
            lines.append(f"{indent}nulls = data[pos]{mask}")
        elif width == 2:
            lines.append(f"{indent}nulls = (data[pos] | data[pos + 1] << 8){mask}")
        else:
            lines.append(
                f"{indent}nulls = int.from_bytes(data[pos:pos + {width}], 'little'){mask}")
        if width:
            lines.append(f"{indent}pos += {width}")
        if any(self.specs[i].nullable for i in present):
            lines.append(f"{indent}if nulls:")
            lines += self._columns_code(present, indent + "    ", share, checked=True)
            lines.append(f"{indent}else:")
            lines += self._columns_code(present, indent + "    ", share, checked=False)
        else:
            lines += self._columns_code(present, indent, share, checked=False)
        items = ", ".join(f"{self.specs[i].name!r}: c{i}" for i in present if self.visible[i])
        lines.append(f"{indent}{target} = {{{items}}}")
        return lines

    def _columns_code(self, present: list[int], indent: str, share: dict[int, str], *,
                      checked: bool) -> list[str]:
        lines: list[str] = []
        run: list[int] = []
        for bit, index in enumerate(present):
            spec = self.specs[index]
            tested = checked and spec.nullable
            if spec.fixed and not tested and (not run or self.specs[run[0]].order == spec.order):
                run.append(index)
                continue
            lines += self._run_code(run, indent, share)
            run = [index] if spec.fixed and not tested else []
            if run:
                continue
            if tested:
                lines.append(f"{indent}if nulls & {1 << bit}:")
                lines.append(f"{indent}    c{index} = None")
                if share.get(index) == "save":
                    lines.append(f"{indent}    r{index} = None")
                lines.append(f"{indent}else:")
                lines += self._single_code(index, indent + "    ", share=share)
            else:
                lines += self._single_code(index, indent, share=share)
        lines += self._run_code(run, indent, share)
        return lines or [f"{indent}pass"]

    def _single_code(self, index: int, indent: str, *, keep: bool | None = None,
                     share: dict[int, str] | None = None) -> list[str]:
        """Code that reads column ``index`` at ``pos`` into ``c{index}`` (converted only
        when the column is visible, or ``keep``)."""
        spec = self.specs[index]
        keep = self.visible[index] if keep is None else keep
        if spec.always_null:
            return [f"{indent}c{index} = None"]
        if spec.fixed:
            return self._run_code([index], indent, share or {}, keep=keep)
        prefix = spec.prefix
        read = {
            1: "data[pos]", 2: "data[pos] | data[pos + 1] << 8",
            3: "data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16",
            4: "int.from_bytes(data[pos:pos + 4], 'little')",
        }[prefix]
        if not keep:
            return [f"{indent}pos += {prefix} + ({read})"]
        # One statement: the slice's start, then its end (read at the old pos) as new pos.
        value = f"data[(p := pos + {prefix}):(pos := p + ({read}))]"
        mode = (share or {}).get(index)
        if mode == "save":
            return [f"{indent}r{index} = {value}",
                    f"{indent}c{index} = {spec.expr.format(f'r{index}')}"]
        if mode == "reuse":
            return [f"{indent}v = {value}",
                    f"{indent}c{index} = c{index} if v == r{index} else {spec.expr.format('v')}"]
        if spec.expr.count("{0}") > 1:
            return [f"{indent}v = {value}", f"{indent}c{index} = {spec.expr.format('v')}"]
        return [f"{indent}c{index} = {spec.expr.format(value)}"]

    def _run_code(self, run: list[int], indent: str, share: dict[int, str], *,
                  keep: bool = False) -> list[str]:
        if not run:
            return []
        specs = [self.specs[i] for i in run]
        fmt = specs[0].order + "".join(spec.fmt for spec in specs)
        names, assigns, field = [], [], 0
        for index, spec in zip(run, specs, strict=True):
            fields = [f"t{field + k}" for k in range(spec.fields)]
            field += spec.fields
            if spec.expr == "{0}" and len(fields) == 1:
                names.append(f"c{index}")
                continue
            names += fields
            if not (keep or self.visible[index]):
                continue
            raw = fields[0] if len(fields) == 1 else f"({', '.join(fields)})"
            value = spec.expr.format(*fields)
            if share.get(index) == "save":
                assigns.append(f"{indent}r{index} = {raw}")
            elif share.get(index) == "reuse":
                value = f"c{index} if {raw} == r{index} else {value}"
            assigns.append(f"{indent}c{index} = {value}")
        size = struct.calcsize(fmt)
        target = ", ".join(names) + ("," if len(names) == 1 else "")
        return [f"{indent}{target} = {self._struct(fmt)}.unpack_from(data, pos)",
                f"{indent}pos += {size}", *assigns]

    # -- naming the bad column ------------------------------------------------------------
    def _locate(self, body: RowsBody, key: tuple[bytes, bytes | None]) -> None:
        """Decode column by column to raise a :class:`RowDecodeError` naming the column."""
        readers = self._readers()
        data, pos, end, row = body.data, body.start, body.end, 0
        bitmaps = [self._present(key[0])] + ([] if key[1] is None else [self._present(key[1])])
        while pos < end:
            for present in bitmaps:
                width = (len(present) + 7) // 8
                if pos + width > end:
                    raise RowDecodeError(f"row {row}: the null bitmap runs past the event's end")
                nulls = int.from_bytes(data[pos:pos + width], "little")
                pos += width
                for bit, index in enumerate(present):
                    if nulls & (1 << bit):
                        continue
                    name = self.specs[index].name
                    try:
                        _, pos = readers[index](data, pos)
                    except Exception as exc:
                        raise RowDecodeError(
                            f"row {row}, column {name!r}: {_reason(exc)}") from None
                    if pos > end:
                        raise RowDecodeError(
                            f"row {row}, column {name!r}: the value runs past the event's end")
            row += 1
        if pos != end:
            raise RowDecodeError(f"row {row}: {end - pos} bytes left after the last row")
        raise RowDecodeError("the row decoder failed on a row that decodes column by column")

    def _readers(self) -> list[Callable[[bytes, int], tuple[Any, int]]]:
        if self._column_readers is None:
            readers = []
            for index, spec in enumerate(self.specs):
                code = self._single_code(index, "    ", keep=True)  # converting is the check
                namespace = dict(self._helpers)
                source = "\n".join(["def read(data, pos):", *code, f"    return c{index}, pos"])
                exec(compile(source, f"<meepo column {spec.name}>", "exec"), namespace)
                readers.append(namespace["read"])
            self._column_readers = readers
        return self._column_readers


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
