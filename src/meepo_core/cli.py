"""The ``meepo`` command line."""

from __future__ import annotations

import json
import signal
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from .checkpoints import Checkpoint
from .config import MeepoConfig, load_config
from .errors import ConfigError, MeepoError
from .logs import configure_logging
from .option_docs import lookup, text_listing
from .pipeline import Pipeline, build_pipeline
from .plugins import Registry, import_local_plugins, registry
from .runner import Runner
from .snapshots import request_snapshot
from .snapshots.progress import describe_job

EPILOG = """\b
Examples:
  meepo list                       pipelines in the nearest pyproject.toml
  meepo check orders               validate config and reach every server
  meepo run orders                 follow changes until SIGINT/SIGTERM
  meepo run orders --once          process what is there now, then exit
  meepo snapshot orders            copy the tables' current rows while streaming
  meepo transform orders --input events.jsonl   what each sink would receive
  meepo adopt-checkpoint orders    take over the checkpoint after a rename to orders
  meepo --config meepo.toml run orders
  meepo plugins                    installed plugins and the types they add
  meepo plugins --options mysql    the options of a type: key, type, default, meaning

\b
Pipelines live in pyproject.toml:
  [tool.meepo.pipelines.orders]
  source = { type = "mysql", dsn = "mysql://repl:${PW}@db:3306", tables = ["shop.orders"] }
  sinks = [{ type = "print" }]

\b
Exit codes: 0 done, 1 runtime failure, 2 usage or config error.
"""


class PluginCommands(click.Group):
    """Adds plugin subcommands (``meepo_add_commands``) on first use, not at import: those
    of installed plugins and of the config's own ``[tool.meepo] plugins``."""

    _loaded = False

    def _load(self, ctx: click.Context) -> None:
        if not self._loaded:
            self._loaded = True
            registry(_local_plugins(ctx.params.get("config_path"))).add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load(ctx)
        return super().get_command(ctx, name)


def _local_plugins(config_path: Path | None) -> tuple[str, ...]:
    """The config's ``[tool.meepo] plugins``, made importable; none when there is no
    readable config (``meepo --help`` anywhere, or a config error that the command itself
    reports)."""
    try:
        config = load_config(config_path)
    except MeepoError:
        return ()
    import_local_plugins(config.plugins, str(config.base_dir))
    return tuple(config.plugins)


class State:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: MeepoConfig | None = None

    @property
    def config(self) -> MeepoConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def registry(self) -> Registry:
        config = self.config
        import_local_plugins(config.plugins, str(config.base_dir))
        return registry(config.plugins)

    def pipeline(self, name: str) -> Pipeline:
        return build_pipeline(self.config, name, self.registry)


@click.group(
    cls=PluginCommands, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MEEPO_CONFIG",
    help="pyproject.toml or meepo.toml to read (default: the nearest one).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe log level shown.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr as text or JSON objects.",
)
@click.version_option(package_name="meepo-core", prog_name="meepo")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, debug: bool, log_level: str, log_format: str
) -> None:
    """meepo follows table changes and publishes them to sinks: cache invalidation,
    search and SQL replication, event sourcing, auditing, notifications.

    A pipeline reads row events (`table_action pk`) from a source, applies them to every
    sink in commit order, and checkpoints its position so a restart resumes without loss.
    """
    configure_logging("debug" if debug else log_level, log_format)
    ctx.obj = State(config_path)


@cli.command()
@click.argument("name")
@click.option(
    "--once",
    is_flag=True,
    help="Process everything available now, then exit (tests, cron, backfills).",
)
@click.pass_obj
def run(state: State, name: str, once: bool) -> None:
    """Run pipeline NAME until stopped (SIGINT/SIGTERM stop it gracefully: queued batches
    are applied and the checkpoint saved before exit).

    \b
    Examples:
      meepo run orders
      meepo run orders --once
    """
    runner = Runner(state.pipeline(name))

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends at once

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stats = runner.run(once=once)
    click.echo(f"meepo: {name}: {stats.summary()}", err=True)


@cli.command(name="list")
@click.pass_obj
def list_pipelines(state: State) -> None:
    """List the pipelines in the config, with their source, sinks and checkpoint."""
    config = state.config
    if not config.pipelines:
        click.echo(f"no pipelines in {config.path}; add [{config.pipeline_path('NAME')}]")
        return
    for name, table in sorted(config.pipelines.items()):
        source = _type_of(table.get("source"))
        sinks = ", ".join(_type_of(s) for s in table.get("sinks", []) or []) or "(none)"
        checkpoint = table.get("checkpoint", f"file:.meepo/{name}.json")
        click.echo(f"{name}: {source} -> {sinks} (checkpoint {checkpoint})")


def _type_of(table: Any) -> str:
    return str(table.get("type", "?")) if isinstance(table, dict) else "?"


@cli.command()
@click.option("--options", "type_name", metavar="TYPE",
              help="Show the options of the source, sink or transform type TYPE instead.")
@click.pass_obj
def plugins(state: State, type_name: str | None) -> None:
    """List installed plugins, their versions and the types they provide.

    Disable a plugin with MEEPO_DISABLE_PLUGINS=name1,name2.

    \b
    Examples:
      meepo plugins
      meepo plugins --options print
    """
    try:
        reg = state.registry
    except MeepoError:  # no config file: entry points only
        reg = registry()
    if type_name is not None:
        click.echo("\n\n".join(text_listing(found) for found in lookup(reg, type_name)))
        return
    for info in reg.plugins.values():
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.provides.items())
        status = "disabled" if info.disabled else f"BROKEN: {info.error}" if info.error else ""
        click.echo(
            f"{info.name} ({info.package} {info.version}) {provides or '-'} {status}".rstrip()
        )


@cli.command()
@click.argument("name")
@click.pass_obj
def check(state: State, name: str) -> None:
    """Validate pipeline NAME and reach its source and every sink.

    Prints one line per problem, naming the setting and its fix; exits 1 if any.
    """
    pipeline = state.pipeline(name)
    problems: list[str] = []
    parts: list[tuple[str, Any]] = [("source", pipeline.source), *pipeline.sinks]
    for label, part in parts:
        try:
            found = part.check()
        except MeepoError as exc:
            found = [str(exc)]
        problems += [f"{label}: {line}" for line in found]
        click.echo(f"{label}: {'ok' if not found else 'FAILED'}")
    problems += _table_problems(pipeline)
    problems += _checkpoint_problems(pipeline)
    found = pipeline.dead_letters.check()
    click.echo(f"dead_letter: {'FAILED' if found else 'ok'} ({pipeline.dead_letters.description})")
    problems += [f"dead_letter: {line}" for line in found]
    if pipeline.transforms:
        _transform_warnings(pipeline)
    for line in problems:
        click.echo(f"meepo: {line}", err=True)
    if problems:
        raise SystemExit(1)


@cli.command()
@click.argument("name")
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="SCHEMA.TABLE",
    help="A table to snapshot (repeat for more); default: every table the pipeline follows.",
)
@click.option("--status", is_flag=True, help="Show the snapshots queued, running and done.")
@click.pass_obj
def snapshot(state: State, name: str, tables: tuple[str, ...], status: bool) -> None:
    """Ask pipeline NAME for an incremental snapshot: the tables' current rows are copied
    to every sink (as `read` events) while the pipeline keeps streaming changes.

    A running `meepo run NAME` takes the request within a second; if none runs, the next
    run does. Progress is part of the checkpoint, so an interrupted snapshot resumes from
    its last finished chunk.

    \b
    Examples:
      meepo snapshot orders                       every table of the pipeline
      meepo snapshot orders --table shop.orders   one table (repeat --table for more)
      meepo snapshot orders --status              queued, running and finished snapshots
    """
    pipeline = state.pipeline(name)
    if status:
        for line in snapshot_status(pipeline):
            click.echo(line)
        return
    request, resolved = request_snapshot(pipeline, tables)
    click.echo(
        f"meepo: {name}: snapshot of {', '.join(t.qualified for t in resolved)} requested "
        f"({request['id']}); a running `meepo run {name}` takes it within a second, "
        "otherwise the next run does",
        err=True,
    )


@cli.command()
@click.argument("name")
@click.option("--input", "input_path", required=True, metavar="EVENTS.jsonl",
              type=click.Path(path_type=Path, dir_okay=False),
              help="Recorded events: a log written by the jsonl sink.")
@click.option("--sink", "sink", metavar="LABEL",
              help="Show only this sink: its index (1), label (sinks[1]) or type (kafka).")
@click.pass_obj
def transform(state: State, name: str, input_path: Path, sink: str | None) -> None:
    """Run pipeline NAME's transforms over recorded events and print, for each sink, the
    events it would receive (a dry run: nothing connects, nothing is written). Events a
    transform fails on are listed on stderr.

    \b
    Examples:
      meepo transform orders --input .meepo/audit.jsonl
      meepo transform orders --input audit.jsonl --sink 1
    """
    from .transforms.dry_run import dry_run, read_events, sink_labels

    pipeline = state.pipeline(name)
    labels = sink_labels(pipeline, sink)
    events = read_events(input_path)

    def report(event: Any, label: str, error: str) -> None:
        click.echo(f"meepo: {label}: would dead-letter {event.name} pk={event.pk!r}: {error}",
                   err=True)

    for line in dry_run(pipeline, events, labels, report):
        click.echo(line)


@cli.command(name="adopt-checkpoint")
@click.argument("name")
@click.pass_obj
def adopt_checkpoint(state: State, name: str) -> None:
    """Make pipeline NAME the owner of the checkpoint its `checkpoint` key points at, after
    the pipeline that saved it was renamed to NAME. Until then `run`, `check` and
    `snapshot` refuse a checkpoint saved by another pipeline.

    \b
    Example (pipeline orders renamed to orders_v2, its checkpoint key unchanged):
      meepo adopt-checkpoint orders_v2
    """
    pipeline = state.pipeline(name)
    store = pipeline.checkpoints
    try:
        checkpoint = store.load()
        if checkpoint is None:
            raise ConfigError(f"{pipeline.key_path}.checkpoint",
                              f"{store.description} holds no checkpoint to adopt")
        previous = checkpoint.pipeline
        if previous not in (None, name):
            store.save(Checkpoint(checkpoint.position, checkpoint.snapshot))
    finally:
        store.close()
    owner = "already its own" if previous in (None, name) else f"taken over from {previous!r}"
    click.echo(f"meepo: {name}: checkpoint {store.description} {owner}; resumes from "
               f"{json.dumps(checkpoint.position, default=str)}", err=True)


#: A running snapshot's checkpoint is "stalled" for ``meepo snapshot --status`` once it is
#: older than this many checkpoint intervals, and at least STALE_SECONDS: a live run saves
#: its progress after every chunk, at most one checkpoint interval apart.
STALE_INTERVALS = 10
STALE_SECONDS = 5.0


def snapshot_status(pipeline: Pipeline) -> list[str]:
    """``meepo snapshot NAME --status``: one line per waiting request and per job."""
    checkpoint = pipeline.load_checkpoint()
    state = (checkpoint.snapshot if checkpoint is not None else None) or {}
    adopted = set(state.get("adopted", []))
    lines = [
        f"requested: {', '.join(r.get('tables') or ['every table'])} ({r.get('id')}); waiting "
        f"for `meepo run {pipeline.name}`"
        for r in pipeline.checkpoints.requests() if r.get("id") not in adopted
    ]
    stale_after = max(STALE_INTERVALS * pipeline.settings.checkpoint_interval, STALE_SECONDS)
    for index, job in enumerate(state.get("jobs", [])):
        if index == 0 and job.get("started_at") is not None:
            saved_at = checkpoint.saved_at if checkpoint is not None else None
            lines.append(describe_running_job(job, saved_at, stale_after))
        else:
            lines.append(f"queued: {describe_job(job, running=False)}")
    for job in reversed(state.get("done", [])[-10:]):
        if job.get("error"):
            lines.append(f"refused: request {job['request']}: {job['error']}")
        else:
            lines.append(f"done {job.get('finished_at')}: {describe_job(job, running=False)}")
    return lines or [f"no snapshots for pipeline {pipeline.name}"]


def describe_running_job(
    job: dict[str, Any], saved_at: str | None, stale_after: float, now: datetime | None = None
) -> str:
    """The ``meepo snapshot --status`` line of the job a run was copying, as of the last
    checkpoint (saved at ``saved_at``): ``running: ..., ETA ..., last seen 0:00:01 ago``
    while runs keep saving progress, since a running snapshot checkpoints after its chunks;
    ``stalled: ...`` with when it was last seen and no rate or ETA once no checkpoint was
    saved for ``stale_after`` seconds (the run was killed or stopped, or is stuck)."""
    now = now or datetime.now(UTC)
    if saved_at is None:
        return f"running: {describe_job(job, running=True, now=now)}"
    seen = datetime.fromisoformat(saved_at)
    seconds = (now - seen).total_seconds()
    age = timedelta(seconds=int(max(seconds, 0)))
    if seconds <= stale_after:
        return f"running: {describe_job(job, running=True, now=now)}, last seen {age} ago"
    return (f"stalled: {describe_job(job, running=False)}; last seen "
            f"{seen.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({age} ago), no progress saved "
            "since: the run was stopped or killed, or is stuck; a new run resumes from the "
            "last finished chunk")


def _transform_warnings(pipeline: Pipeline) -> None:
    """Warn (without failing the check) about columns the transforms name that no table
    of the source has, where the source can tell its tables' columns."""
    from .transforms.checks import unknown_columns

    assert pipeline.transforms is not None
    try:
        tables = pipeline.source.table_columns()
    except MeepoError:
        tables = None  # the source's own check reported why
    if tables is None:
        click.echo("transforms: ok (the source cannot list its tables' columns: column "
                   "names unchecked)")
        return
    warnings = unknown_columns(pipeline.transforms, tables)
    click.echo(f"transforms: {'ok' if not warnings else 'WARNING'}")
    for line in warnings:
        click.echo(f"meepo: warning: {line}", err=True)


def _table_problems(pipeline: Pipeline) -> list[str]:
    """Hand the source's table definitions (where it can tell them) to every sink; print
    the sinks' warnings about column types and return their problems."""
    try:
        definitions = pipeline.source.table_definitions()
    except MeepoError:
        definitions = None  # the source's own check reported why
    if not definitions:
        return []
    problems: list[str] = []
    for label, sink in pipeline.sinks:
        found, warnings = sink.check_tables(definitions)
        if found or warnings:
            click.echo(f"{label} tables: {'FAILED' if found else 'WARNING'}")
        for line in warnings:
            click.echo(f"meepo: warning: {label}: {line}", err=True)
        problems += [f"{label}: {line}" for line in found]
    return problems


def _checkpoint_problems(pipeline: Pipeline) -> list[str]:
    """Print the checkpoint's line of ``meepo check``; return its problems: a corrupt or
    unreadable checkpoint, or one the source can no longer resume from."""
    where = pipeline.checkpoints.description
    found = pipeline.checkpoints.check()
    if found:
        click.echo(f"checkpoint: FAILED ({where})")
        return [f"checkpoint: {line}" for line in found]
    try:
        checkpoint = pipeline.load_checkpoint()
        if checkpoint is None:
            click.echo(f"checkpoint: ok ({where}: none saved yet; the first run starts from "
                       "the source's configured start)")
            return []
        position = checkpoint.position
        found = pipeline.source.check_resume(position)
    except MeepoError as exc:
        click.echo("checkpoint: FAILED")
        return [f"checkpoint: {exc}"]
    state = "FAILED" if found else "ok"
    click.echo(f"checkpoint: {state} ({where}: resumes from {json.dumps(position, default=str)})")
    return [f"checkpoint: {line}" for line in found]


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit codes (2 config/usage, 1 runtime)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args, prog_name="meepo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("meepo: aborted", err=True)
        raise SystemExit(1) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except MeepoError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"meepo: error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"meepo: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback)",
            err=True,
        )
        raise SystemExit(1) from None
