"""Bad config gives one line naming the key and the fix, exit code 2, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from meepo_core.testing import run_meepo, write_config


def assert_one_line_error(result: object, code: int, *fragments: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == code, stderr  # type: ignore[attr-defined]
    errors = [line for line in stderr.splitlines() if line.startswith("meepo: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_malformed_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.meepo.pipelines.x]\nsource = {type = \n")
    result = run_meepo("run", "x", cwd=tmp_path)
    assert_one_line_error(result, 2, "invalid TOML", "pyproject.toml", "line 2")


def test_unknown_sink_type_lists_available_and_package(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "orders": {
                "source": {"type": "memory"},
                "sinks": [{"type": "print"}, {"type": "elasticsearch"}],
            }
        },
    )
    result = run_meepo("run", "orders", "--once", cwd=tmp_path, env={"MEEPO_DISABLE_PLUGINS": "es"})
    assert_one_line_error(
        result,
        2,
        "tool.meepo.pipelines.orders.sinks[1].type: unknown sink type 'elasticsearch'",
        "available: ",
        "print",
        "pip install meepo-es",
    )


def test_unknown_source_type(tmp_path: Path) -> None:
    write_config(tmp_path, {"orders": {"source": {"type": "kafka"}, "sinks": [{"type": "print"}]}})
    result = run_meepo("check", "orders", cwd=tmp_path)
    assert_one_line_error(result, 2, "pipelines.orders.source.type: unknown source type 'kafka'")


def test_missing_required_key(tmp_path: Path) -> None:
    write_config(tmp_path, {"audit": {"source": {"type": "memory"}, "sinks": [{"type": "jsonl"}]}})
    result = run_meepo("run", "audit", "--once", cwd=tmp_path)
    assert_one_line_error(result, 2, "tool.meepo.pipelines.audit.sinks[0].path: required")


def test_missing_sinks(tmp_path: Path) -> None:
    write_config(tmp_path, {"audit": {"source": {"type": "memory"}}})
    result = run_meepo("run", "audit", cwd=tmp_path)
    assert_one_line_error(result, 2, "tool.meepo.pipelines.audit.sinks: required")


def test_wrong_type(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "audit": {
                "source": {"type": "memory"},
                "sinks": [{"type": "print"}],
                "batch_size": "big",
            }
        },
    )
    result = run_meepo("run", "audit", cwd=tmp_path)
    assert_one_line_error(
        result, 2, "tool.meepo.pipelines.audit.batch_size: must be an integer", "'big'"
    )


def test_misspelled_option(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"a": {"source": {"type": "memory"}, "sinks": [{"type": "print", "fromat": "json"}]}},
    )
    result = run_meepo("run", "a", cwd=tmp_path)
    assert_one_line_error(
        result, 2, "sinks[0].fromat: unknown option; did you mean 'format'?", "format"
    )


def test_unset_environment_variable(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "a": {
                "source": {"type": "jsonl", "path": "${MEEPO_TEST_UNSET_LOG}"},
                "sinks": [{"type": "print"}],
            }
        },
    )
    result = run_meepo("run", "a", cwd=tmp_path)
    assert_one_line_error(
        result, 2, "tool.meepo.pipelines.a.source.path", "MEEPO_TEST_UNSET_LOG is not set"
    )


def test_environment_variables_are_interpolated(tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"
    write_config(
        tmp_path,
        {
            "a": {
                "source": {"type": "jsonl", "path": "${LOG_PATH}"},
                "sinks": [{"type": "print", "template": "${PREFIX:-ev} {name}"}],
                "checkpoint": "none",
            }
        },
    )
    result = run_meepo("run", "a", "--once", cwd=tmp_path, env={"LOG_PATH": str(sample)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "ev test_write"


def test_unknown_pipeline_lists_the_configured_ones(tmp_path: Path) -> None:
    write_config(tmp_path, {"orders": {"source": {"type": "memory"}, "sinks": [{"type": "print"}]}})
    result = run_meepo("run", "ordres", cwd=tmp_path)
    assert_one_line_error(result, 2, "tool.meepo.pipelines.ordres", "configured pipelines: orders")


def test_no_config_file(tmp_path: Path) -> None:
    result = run_meepo("list", cwd=tmp_path)
    assert_one_line_error(
        result, 2, "no pyproject.toml with [tool.meepo.pipelines.NAME]", "--config"
    )


def test_bad_checkpoint_scheme(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "a": {
                "source": {"type": "memory"},
                "sinks": [{"type": "print"}],
                "checkpoint": "s3://bucket/key",
            }
        },
    )
    result = run_meepo("run", "a", cwd=tmp_path)
    assert_one_line_error(
        result, 2, "tool.meepo.pipelines.a.checkpoint: unknown checkpoint store type 's3'", "file"
    )


def test_corrupt_checkpoint_is_a_runtime_error_that_keeps_the_file(tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"
    write_config(
        tmp_path,
        {
            "a": {
                "source": {"type": "jsonl", "path": str(sample)},
                "sinks": [{"type": "print"}],
                "checkpoint": "file:cp.json",
            }
        },
    )
    (tmp_path / "cp.json").write_text("{not json")
    result = run_meepo("run", "a", "--once", cwd=tmp_path)
    assert_one_line_error(result, 1, "cp.json is corrupt", "delete it")
    assert result.stdout == ""
    assert (tmp_path / "cp.json").read_text() == "{not json"


def test_meepo_toml_with_top_level_pipelines(tmp_path: Path) -> None:
    config = tmp_path / "meepo.toml"
    config.write_text(
        '[pipelines.x]\nsource = { type = "memory" }\nsinks = [{ type = "null" }]\nbatch_size = 0\n'
    )
    result = run_meepo("--config", str(config), "run", "x", cwd=tmp_path)
    assert_one_line_error(result, 2, "pipelines.x.batch_size: must be at least 1")


@pytest.mark.parametrize("args", [["run"], ["frobnicate"], ["run", "x", "--bogus"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = run_meepo(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("run", "p", "--once"), ("snapshot", "p")])
def test_a_source_that_cannot_snapshot_is_refused_naming_the_key(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "log.jsonl").write_text("")
    write_config(tmp_path, {"p": {"source": {"type": "jsonl", "path": "log.jsonl"},
                                  "sinks": [{"type": "print"}], "snapshot": "initial"}})
    result = run_meepo(*command, cwd=tmp_path)
    assert_one_line_error(result, 2, "tool.meepo.pipelines.p.snapshot: the 'jsonl' source "
                          "cannot snapshot tables")
    assert not (tmp_path / ".meepo").exists()


def test_snapshot_setting_takes_only_the_known_modes(tmp_path: Path) -> None:
    write_config(tmp_path, {"p": {"source": {"type": "memory"}, "sinks": [{"type": "print"}],
                                  "snapshot": "always"}})
    result = run_meepo("check", "p", cwd=tmp_path)
    assert_one_line_error(result, 2, "tool.meepo.pipelines.p.snapshot: must be one of 'never', "
                          "'initial', 'initial_only', not 'always'")
