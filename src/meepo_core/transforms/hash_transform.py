"""``hash``: replace column values by a salted hash, equal to Debezium's
``column.mask.hash.v2.<algorithm>.with.salt.<salt>`` for the same value."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Self

from ..options import REQUIRED, Options, OptionSpec
from .columns import COLUMNS, ColumnList, ColumnValueTransform, SourceNames

#: Debezium's algorithm names (Java's MessageDigest names) and hashlib's.
ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA-512/224": "sha512_224",
    "SHA-512/256": "sha512_256",
    "SHA3-224": "sha3_224",
    "SHA3-256": "sha3_256",
    "SHA3-384": "sha3_384",
    "SHA3-512": "sha3_512",
}


#: Digests remembered per hash transform (then forgotten all at once).
RECENT_DIGESTS = 4096


def debezium_hash(algorithm: str, salt: str, length: int = 0) -> Callable[[Any], str]:
    """The function Debezium's ``column.mask.hash.v2.<algorithm>.with.salt.<salt>`` applies
    to a character column of ``length`` characters (0: no limit): the digest of the salt's
    UTF-8 bytes followed by the value's UTF-8 bytes, as lowercase hex, cut to ``length``.
    Debezium turns the value into bytes with Java's default charset, UTF-8 from Java 18 on
    and with a UTF-8 locale before. Other values are hashed by their text (``str``), bytes
    as they are."""
    salted = hashlib.new(ALGORITHMS[algorithm], salt.encode("utf-8"))
    # Recent values' digests: an update's before and after mostly hold the same value, and
    # keys such as emails recur; a lookup costs a tenth of a digest.
    recent: dict[str, str] = {}

    def digest(value: Any) -> str:
        if value.__class__ is str:
            found = recent.get(value)
            if found is None:
                if len(recent) >= RECENT_DIGESTS:
                    recent.clear()
                found = recent[value] = compute(value.encode("utf-8"))
            return found
        if isinstance(value, bytes | bytearray | memoryview):
            return compute(bytes(value))
        return compute(str(value).encode("utf-8"))

    def compute(data: bytes) -> str:
        hashed = salted.copy()
        hashed.update(data)
        text = hashed.hexdigest()
        return text[:length] if length > 0 else text
    return digest


ALGORITHM = OptionSpec(
    "algorithm", "string", "SHA-256",
    "The digest, by Debezium's name.",
    choices=tuple(ALGORITHMS))
SALT = OptionSpec("salt", "string", REQUIRED,
                  "Hashed before the value; must not be empty (Debezium's "
                  "`column.mask.hash.v2.<algorithm>.with.salt.<salt>`).")
LENGTH = OptionSpec("length", "integer", 0,
                    "Cut the hex digest to this many characters, as Debezium cuts it to a "
                    "shorter column's length; `0` keeps it whole.", minimum=0)


class HashTransform(ColumnValueTransform):
    """``{ type = "hash", columns = ["shop.users.email"], algorithm = "SHA-256", salt =
    "${PII_SALT}" }``: each value becomes the hex digest Debezium's
    ``column.mask.hash.v2.SHA-256.with.salt.<salt>`` gives, so hashed keys join across
    Debezium and meepo topics. ``length`` cuts it the way Debezium cuts it to a shorter
    column's length (set it to the column's length when that is below the digest's
    64 hex characters for SHA-256). NULL and ``UNCHANGED`` stay as they are.

    Debezium hashes only character columns and passes other types through; meepo cannot
    tell a column's SQL type from its value, so it hashes the text of any other value
    rather than let it through."""

    OPTIONS = (COLUMNS, ALGORITHM, SALT, LENGTH)

    @classmethod
    def from_options(cls, options: Options) -> Self:
        columns = ColumnList.from_options(options)
        algorithm = options.choice(ALGORITHM)
        salt = options.string(SALT)
        if not salt:
            raise options.error("salt", "must not be empty (Debezium's "
                                "column.mask.hash.v2.<algorithm>.with.salt.<salt> needs one)")
        length = options.integer(LENGTH)
        options.done()
        transform = cls(columns, debezium_hash(algorithm, salt, length))
        transform.salted = hashlib.new(ALGORITHMS[algorithm], salt.encode("utf-8"))
        transform.length = length
        return transform

    #: The hasher fed with the salt (copied per value) and the length digests are cut to.
    salted: Any = None
    length = 0

    def value_lines(self, names: SourceNames) -> list[str] | None:
        if self.salted is None or type(self).value_lines is not HashTransform.value_lines:
            return None
        cut = f"[:{self.length}]" if self.length > 0 else ""
        # the last text hashed and its digest: an update's before and after mostly hold
        # the same value (set once the digest is made: an error leaves them as they were)
        last_text, last_digest = names.local("None"), names.local("None")
        # text, the common case, inline; other values through the function (same digest)
        return ["if value.__class__ is str:",
                f"    if value != {last_text}:",
                f"        hashed = {names.constant(self.salted)}.copy()",
                "        hashed.update(value.encode())  # UTF-8",
                f"        {last_digest} = hashed.hexdigest(){cut}",
                f"        {last_text} = value",
                f"    value = {last_digest}",
                "else:",
                f"    value = {names.constant(self.replace)}(value)"]
