"""The fast path of decimal columns (a value with at most the column's scale, through
``as_integer_ratio``) gives the bytes of the general path for every value, and Java's
``BigInteger.toByteArray`` for known ones."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from meepo_kafka.debezium_types import _decimal_at, _unscaled, _unscaled_bytes


@pytest.mark.parametrize("scale", [0, 1, 2, 5, 10, -2])
def test_every_value_encodes_as_the_general_path_does(scale: int) -> None:
    convert = _decimal_at(scale)
    rng = random.Random(scale)
    values = [Decimal(rng.randint(-10**30, 10**30)).scaleb(-rng.randint(0, 12))
              for _ in range(5000)]
    values += [Decimal(text) for text in ("0", "-0.00", "1E+5", "-1.005", "0.5", "-0.5",
                                          "123456789012345678901234567890.12", "1E-30")]
    for value in values:
        assert convert(value) == _unscaled_bytes(_unscaled(value, scale)), (value, scale)


def test_known_values_are_javas_big_endian_twos_complement() -> None:
    convert = _decimal_at(2)
    assert convert(Decimal("1.25")) == "fQ=="  # 125 = 0x7D
    assert convert(Decimal("1.28")) == "AIA="  # 128 needs a sign byte: 0x00 0x80
    assert convert(Decimal("-1.28")) == "gA=="  # -128 fits one byte: 0x80
    assert convert(Decimal("-1.29")) == "/38="  # -129: 0xFF 0x7F
    assert convert(Decimal("1.5")) == "AJY="  # fewer places than the scale: 150
    assert convert(Decimal("1.255")) == "fg=="  # more: rounded half up to 126 (0x7E)
