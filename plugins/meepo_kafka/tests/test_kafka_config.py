"""Bad input: every option is validated before anything connects, errors name the key, and
the CLI answers in one line with exit 2 (config) or 1 (runtime), losing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meepo_kafka.kafka_sink import KafkaSink
from meepo_kafka.kafka_source import KafkaSource
from meepo_testkit.servers.base import free_port

from meepo_core import ConfigError, Options
from meepo_core.testing import run_meepo, write_config

from .conftest import unique

SINK = {"type": "kafka", "bootstrap_servers": "kafka1:9092,kafka2:9092"}
SOURCE = {"type": "kafka", "bootstrap_servers": "kafka1:9092", "topics": ["shop.orders"],
          "group": "search"}


@pytest.mark.parametrize(("options", "error"), [
    ({"bootstrap_servers": None}, r"sinks\[0\]\.bootstrap_servers: required"),
    ({"bootstrap_servers": "kafka1:99999"},
     r"bootstrap_servers: 'kafka1:99999' is not a broker address; write host:port"),
    ({"bootstrap_servers": "kafka1:9092,,kafka2"}, r"bootstrap_servers: must list brokers"),
    ({"bootstrap_servers": "kafka one:9092"}, r"'kafka one:9092' is not a broker address"),
    ({"format": "avro"}, r"sinks\[0\]\.format: must be one of 'meepo', 'debezium', not 'avro'"),
    ({"topic": "{schema}.{tabel}"},
     r"sinks\[0\]\.topic: unknown field \{tabel\} in '\{schema\}\.\{tabel\}'; available: "
     r"\{schema\}, \{table\}"),
    ({"topic": "{}.x"}, r"sinks\[0\]\.topic: '\{\}\.x' is not a valid template"),
    ({"topic": "cdc {table}"}, r"sinks\[0\]\.topic: 'cdc \{table\}' makes topic names Kafka"),
    ({"topics": {"shop.x": "no spaces"}}, r"sinks\[0\]\.topics\.shop\.x: 'no spaces' is not a"),
    ({"delivery_timeout": 0}, r"delivery_timeout: must be at least 1"),
    ({"config": {"acks": 1}}, r"config\.acks: is set by meepo; the kafka sink always waits"),
    ({"config": {"enable.idempotence": False}}, r"config\.enable\.idempotence: is set by meepo"),
    ({"config": {"bootstrap.servers": "x:1"}}, r"config\.bootstrap\.servers: is set by meepo; "
                                                r"use bootstrap_servers"),
    ({"config": {"message.timeout.ms": 1}}, r"use delivery_timeout"),
    ({"config": {"compresion.type": "lz4"}},
     r"sinks\[0\]\.config\.compresion\.type: librdkafka refused it: No such configuration"),
    ({"config": {"linger.ms": "soon"}}, r"config\.linger\.ms: librdkafka refused it: Invalid"),
    ({"config": {"linger.ms": [1]}}, r"config\.linger\.ms: must be a string, number or boolean"),
    ({"tombstone": True}, r"sinks\[0\]\.tombstone: unknown option"),
    ({"format": "debezium", "debezium": {"time_precision_mode": "micro"}},
     r"debezium\.time_precision_mode: must be one of 'adaptive', "
     r"'adaptive_time_microseconds', 'connect', not 'micro'"),
    ({"format": "debezium", "debezium": {"binary_handling_mode": "raw"}},
     r"debezium\.binary_handling_mode: must be one of 'bytes', 'base64', 'base64-url-safe', "
     r"'hex', not 'raw'"),
    ({"format": "debezium", "debezium": {"interval_handling_mode": "string"}},
     r"debezium\.interval_handling_mode: must be one of 'numeric', not 'string'"),
    ({"format": "debezium", "debezium": {"skipped_operations": "c,x"}},
     r"debezium\.skipped_operations: 'x' is not an operation; write a comma-separated list "
     r"of c, u, d, t, or \"none\""),
    ({"format": "debezium", "debezium": {"provide_transaction_metadata": "yes"}},
     r"debezium\.provide_transaction_metadata: must be true or false, not a string"),
    ({"format": "debezium", "debezium": {"heartbeat_interval_ms": -1}},
     r"debezium\.heartbeat_interval_ms: must be at least 0, not -1"),
    ({"format": "debezium", "debezium": {"tombstone_on_delete": False}},
     r"debezium\.tombstone_on_delete: unknown option; did you mean 'tombstones_on_delete'\? "
     r"valid options here: "
     r"bigint_unsigned_handling_mode, binary_handling_mode, decimal_handling_mode"),
    ({"debezium": {"topic_prefix": "dbz"}},
     r"sinks\[0\]\.debezium: applies to format = \"debezium\" only"),
])
def test_sink_options_are_validated(options: dict[str, Any], error: str,
                                    tmp_path: Path) -> None:
    data = {k: v for k, v in {**SINK, **options}.items() if v is not None}
    with pytest.raises(ConfigError, match=error):
        KafkaSink.from_options(Options(data, "sinks[0]", tmp_path))


def test_debezium_settings_take_debeziums_names_and_defaults(tmp_path: Path) -> None:
    def settings(**options: Any) -> Any:
        return KafkaSink.from_options(Options({**SINK, **options}, "sinks[0]",
                                              tmp_path)).settings

    default = settings(format="debezium")
    assert default.tombstones is True  # tombstones.on.delete defaults to true
    assert default.schemas is True  # the JSON converter's schemas.enable
    assert default.debezium.skipped_operations == {"t"}
    assert (default.debezium.decimal_handling_mode, default.debezium.time_precision_mode,
            default.debezium.binary_handling_mode) == ("precise", "adaptive", "bytes")
    named = settings(format="debezium", debezium={
        "topic_prefix": "dbz", "tombstones_on_delete": False, "skipped_operations": "none",
        "decimal_handling_mode": "string"}, schemas=False)
    assert (named.topic_prefix, named.topic, named.server_name) == ("dbz.", "{schema}.{table}",
                                                                    "dbz")
    assert named.tombstones is False
    assert named.schemas is False
    assert named.debezium.skipped_operations == frozenset()
    assert settings().tombstones is False  # meepo's own format keeps its default


def test_sink_accepts_its_own_guarantees_and_librdkafka_settings(tmp_path: Path) -> None:
    sink = KafkaSink.from_options(Options({**SINK, "bootstrap_servers": ["a:1", "b:2,c"],
        "config": {"acks": "all", "enable.idempotence": True, "compression.type": "lz4",
                   "linger.ms": 5, "security.protocol": "PLAINTEXT"},
        "topics": {"shop.orders": "orders-v2"}}, "sinks[0]", tmp_path))
    config = sink.producer_config()
    assert config["bootstrap.servers"] == "a:1,b:2,c"
    assert config["enable.idempotence"] == "true" and config["acks"] == "all"
    assert config["linger.ms"] == 5 and config["partitioner"] == "murmur2_random"


@pytest.mark.parametrize(("options", "error"), [
    ({"group": None}, r"source\.group: required"),
    ({"group": " "}, r"source\.group: must name the consumer group"),
    ({"topics": None}, r"source\.topics: required"),
    ({"topics": []}, r"source\.topics: must list topic names"),
    ({"topics": ["^shop\\.(orders"]}, r"source\.topics\[0\]: bad regex"),
    ({"topics": ["shop orders"]}, r"source\.topics\[0\]: 'shop orders' is not a legal Kafka"),
    ({"format": "json"}, r"source\.format: must be one of 'meepo', 'debezium'"),
    ({"start": "middle"}, r"source\.start: must be one of 'earliest', 'latest'"),
    ({"config": {"enable.auto.commit": True}},
     r"config\.enable\.auto\.commit: is set by meepo; offsets are committed only after"),
    ({"config": {"partition.assignment.strategy": "cooperative-sticky"}},
     r"needs the eager protocol"),
    ({"config": {"group.id": "other"}}, r"config\.group\.id: is set by meepo; use group"),
    ({"config": {"auto.offset.reset": "latest"}}, r"use start"),
])
def test_source_options_are_validated(options: dict[str, Any], error: str,
                                      tmp_path: Path) -> None:
    data = {k: v for k, v in {**SOURCE, **options}.items() if v is not None}
    with pytest.raises(ConfigError, match=error):
        KafkaSource.from_options(Options(data, "source", tmp_path))


def test_source_takes_names_a_single_string_and_regexes(tmp_path: Path) -> None:
    source = KafkaSource.from_options(Options({**SOURCE, "topics": "shop.orders",
                                               "config": {"fetch.min.bytes": 1}},
                                              "source", tmp_path))
    assert source.settings.topics == ("shop.orders",)
    source = KafkaSource.from_options(Options({**SOURCE, "topics": ["^shop\\..*", "a.b"]},
                                              "source", tmp_path))
    assert source.settings.topics == ("^shop\\..*", "a.b")


# -- through the CLI -------------------------------------------------------------------


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("meepo: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(("sink", "expected"), [
    ({"bootstrap_servers": "kafka1:port"},
     "sinks[0].bootstrap_servers: 'kafka1:port' is not a broker address"),
    ({"format": "avro"}, "sinks[0].format: must be one of 'meepo', 'debezium', not 'avro'"),
    ({"topic": "{db}.{table}"}, "sinks[0].topic: unknown field {db} in '{db}.{table}'"),
    ({"format": "debezium", "debezium": {"decimal_handling_mode": "exact"}},
     "sinks[0].debezium.decimal_handling_mode: must be one of 'precise', 'double', 'string', "
     "not 'exact'"),
    ({"format": "debezium", "debezium": {"topic.prefix": "dbz"}},
     "sinks[0].debezium.topic.prefix: unknown option; did you mean 'topic_prefix'? "
     "valid options here: "),
])
def test_bad_sink_config_is_one_line_and_exit_2(
    sink: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    (tmp_path / "events.jsonl").write_text("")
    write_config(tmp_path, {"pub": {"source": {"type": "jsonl", "path": "events.jsonl"},
                                    "sinks": [{**SINK, **sink}]}})
    for command in ("check", "run"):
        result = run_meepo(command, "pub", "--once", cwd=tmp_path) if command == "run" else \
            run_meepo(command, "pub", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"tool.meepo.pipelines.pub.{expected}" in one_line_error(result.stderr)


def events_file(path: Path, count: int) -> None:
    lines = [json.dumps({"schema": "shop", "table": "items", "action": "write", "pk": i,
                         "after": {"id": i}, "committed_at": "2026-01-01T00:00:00+00:00",
                         "sequence": i + 1}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def test_unreachable_brokers_stop_the_run_with_exit_1_and_keep_the_checkpoint(
    tmp_path: Path
) -> None:
    events_file(tmp_path / "events.jsonl", 3)
    dead = f"127.0.0.1:{free_port()}"
    write_config(tmp_path, {
        "pub": {"source": {"type": "jsonl", "path": "events.jsonl"},
                "sinks": [{"type": "kafka", "bootstrap_servers": dead}]},
        "work": {"source": {"type": "kafka", "bootstrap_servers": dead, "topics": ["t"],
                            "group": "g"}, "sinks": [{"type": "null"}]},
    })
    for pipeline in ("pub", "work"):
        result = run_meepo("run", pipeline, "--once", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        line = one_line_error(result.stderr)
        assert f"bootstrap_servers: cannot reach Kafka at {dead}" in line
        assert not (tmp_path / ".meepo" / f"{pipeline}.json").exists()  # nothing moved on
    check = run_meepo("check", "work", cwd=tmp_path)
    assert check.returncode == 1
    assert "cannot reach Kafka" in check.stderr and "Traceback" not in check.stderr


def test_check_names_a_missing_topic(tmp_path: Path, bootstrap: str) -> None:
    missing = unique("missing")
    write_config(tmp_path, {"work": {
        "source": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [missing],
                   "group": "g"},
        "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap}]}})
    result = run_meepo("check", "work", cwd=tmp_path)
    assert result.returncode == 1
    assert "sinks[0] kafka: ok" in result.stdout
    assert f"meepo: source: topics: topic {missing!r} does not exist; the broker's " \
           "auto.create.topics.enable is" in result.stderr
