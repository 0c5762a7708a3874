"""``redis`` sink: cache invalidation, the original meepo's main use.

For each event of a configured table, the keys rendered from its row images are deleted
(``DEL``), and configured hash fields are removed (``HDEL``); a whole batch is one pipelined
round trip. Updates use both images, so a changed ``email`` also invalidates the old
``user:email:...`` key; writes and snapshot rows (``read``) use the after image, deletes
the before image. Deleting is idempotent, so replays after a crash are harmless.

A column the source left :data:`~meepo_core.UNCHANGED` in the after image renders from the
before image (it did not change); without a before value a template naming it is a config
error, like a missing column. An event whose value does not fit a template's format spec
(``{id:d}`` of a string) goes to the dead-letter store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import redis

from meepo_core import (
    UNCHANGED,
    Batch,
    Options,
    OptionSpec,
    Row,
    RowEvent,
    Sink,
    SinkError,
    describe_error,
)

from .connection import connect, execute, ping_problems, redact, url_option, url_spec
from .delayed import DelayedDeleter
from .templates import Template

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.redis")
#: Keys per DEL command, so a huge batch does not build one gigantic command.
CHUNK = 500


@dataclass
class TableTargets:
    """What one ``schema.table`` invalidates: plain keys, and hash fields per hash key."""

    keys: list[Template] = field(default_factory=list)
    hashes: list[tuple[Template, list[Template]]] = field(default_factory=list)

    def templates(self) -> Iterator[Template]:
        yield from self.keys
        for key, fields in self.hashes:
            yield key
            yield from fields


@dataclass
class Invalidation:
    """The keys and hash fields one batch removes (bytes, de-duplicated, in first-seen order)."""

    keys: dict[bytes, None] = field(default_factory=dict)
    fields: dict[bytes, dict[bytes, None]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.keys or self.fields)

    def update(self, other: Invalidation) -> None:
        self.keys.update(other.keys)
        for key, names in other.fields.items():
            self.fields.setdefault(key, {}).update(names)

    def queue(self, pipe: Any) -> None:
        keys = list(self.keys)
        for start in range(0, len(keys), CHUNK):
            pipe.delete(*keys[start:start + CHUNK])
        for key, names in self.fields.items():
            pipe.hdel(key, *names)


URL = url_spec("The Redis holding the cache.")
KEYS = OptionSpec(
    "keys", "table", {},
    '`"schema.table" = [templates]`: keys to `DEL` for each change of that table.')
HASH_FIELDS = OptionSpec(
    "hash_fields", "table", {},
    '`"schema.table" = { "hash key template" = [field templates] }`: `HDEL` from hashes.')
PREFIX = OptionSpec(
    "prefix", "string", "",
    'Prepended to every key and hash key (not to hash fields), e.g. `"app1:"`.')
DELAY_MS = OptionSpec(
    "delay_ms", "integer", 0,
    "When > 0, delete everything a second time this many ms later (see below).", minimum=0)


class RedisSink(Sink):
    """Deletes cache keys derived from row images; its options are declared in ``OPTIONS``
    (see the plugin README)."""

    OPTIONS = (URL, KEYS, HASH_FIELDS, PREFIX, DELAY_MS)

    #: Keys, channels and streams of row events hold no table shape: schema changes are
    #: left out by the core.
    follows_schema_changes = False

    #: Config key path of the URL, for errors; set by ``from_options``.
    url_key = "url"

    def __init__(self, url: str, targets: dict[str, TableTargets], prefix: str = "",
                 delay_ms: int = 0) -> None:
        self.url = url
        self.targets = targets
        self.prefix = prefix
        self.delay_ms = delay_ms
        self.client: redis.Redis | None = None
        self._delayed: DelayedDeleter | None = None
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL)
        raw_keys = options.table(KEYS)
        raw_hashes = options.table(HASH_FIELDS)
        if not raw_keys and not raw_hashes:
            raise options.error(
                "keys", 'required: map tables to key templates, e.g. keys = { "shop.users" = '
                '["user:{id}"] } (or give hash_fields)'
            )
        targets: dict[str, TableTargets] = {}
        keys_path = options.key_path("keys")
        for table, templates in raw_keys.items():
            where = f'{keys_path}."{table}"'
            targets.setdefault(table, TableTargets()).keys = _templates(options, templates, where)
        hashes_path = options.key_path("hash_fields")
        for table, mapping in raw_hashes.items():
            where = f'{hashes_path}."{table}"'
            if not isinstance(mapping, dict) or not mapping:
                raise options.error(
                    f'hash_fields."{table}"',
                    'must map hash key templates to field templates, e.g. '
                    '{ "users" = ["{id}"] }',
                )
            hashes = targets.setdefault(table, TableTargets()).hashes
            for hash_key, fields in mapping.items():
                key = _template(options, hash_key, f'{where}."{hash_key}"')
                hashes.append((key, _templates(options, fields, f'{where}."{hash_key}"')))
        prefix = options.string(PREFIX)
        delay_ms = options.integer(DELAY_MS)
        options.done()
        sink = cls(url, targets, prefix, delay_ms)
        sink.url_key = options.key_path("url")
        return sink

    def open(self, context: PipelineContext) -> None:
        self._context = context
        self.client = connect(self.url)
        if self.delay_ms:
            self._delayed = DelayedDeleter(self.delay_ms / 1000, self._delayed_failed)

    def check(self) -> list[str]:
        return ping_problems(connect(self.url), self.url)

    def invalidation(self, events: tuple[RowEvent, ...] | list[RowEvent],
                     failed: list[tuple[RowEvent, str]] | None = None) -> Invalidation:
        """Everything ``events`` invalidate. Raises a non-retryable :class:`SinkError` when a
        template names a column that an image lacks: a config mistake, not a no-op. An
        event whose values do not fit a template is added to ``failed`` with the reason
        (raised when ``failed`` is None) and invalidates nothing."""
        out = Invalidation()
        for event in events:
            targets = self.targets.get(event.qualified_table)
            if targets is None:
                continue
            try:
                out.update(self._event_invalidation(event, targets))
            except (ValueError, TypeError, RecursionError) as exc:
                if failed is None:
                    raise
                failed.append((event, f"cannot render a key: {type(exc).__name__}: {exc}"))
        return out

    def _event_invalidation(self, event: RowEvent, targets: TableTargets) -> Invalidation:
        out = Invalidation()
        for which, image in _images(event):
            self._check_columns(event, which, image, targets)
            for template in targets.keys:
                key = template.render(image)
                if key is not None:
                    out.keys[self._encode(key, prefixed=True)] = None
            for key_template, field_templates in targets.hashes:
                hash_key = key_template.render(image)
                if hash_key is None:
                    continue
                names = out.fields.setdefault(self._encode(hash_key, prefixed=True), {})
                for field_template in field_templates:
                    name = field_template.render(image)
                    if name is not None:
                        names[self._encode(name, prefixed=False)] = None
        return out

    def apply(self, batch: Batch) -> None:
        assert self.client is not None and self._context is not None, "open() first"
        failed: list[tuple[RowEvent, str]] = []
        work = self.invalidation(batch.events, failed)
        if work:
            pipe = self.client.pipeline(transaction=False)
            work.queue(pipe)
            execute(pipe, self.url, self.url_key)
            if self._delayed is not None:
                self._delayed.schedule(lambda: self._second_delete(work))
        for event, reason in failed:
            self._context.dead_letter(event, "redis", reason)

    def close(self) -> None:
        if self._delayed is not None:
            self._delayed.close()
            self._delayed = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def _second_delete(self, work: Invalidation) -> None:
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        work.queue(pipe)
        pipe.execute()

    def _delayed_failed(self, exc: BaseException) -> None:
        if self._context is not None:
            self._context.metrics.record_failure("redis delayed delete", "skipped")
        log.warning("redis at %s: a delayed second delete was skipped: %s",
                    redact(self.url), describe_error(exc))

    def _encode(self, key: str, *, prefixed: bool) -> bytes:
        text = self.prefix + key if prefixed else key
        return text.encode("utf-8", "surrogateescape")

    def _check_columns(self, event: RowEvent, which: str, image: Mapping[str, Any],
                       targets: TableTargets) -> None:
        for template in targets.templates():  # a few dict lookups: cheaper than caching
            column = template.missing(image)
            if column is None:
                continue
            if column in image:  # UNCHANGED, and the before image cannot tell either
                raise SinkError(
                    f"{template.path}: template {template.text!r} uses column {column!r}, "
                    f"which the source left unchanged (not sent) in the after image of "
                    f"{event.qualified_table} and the before image lacks; make the source "
                    f"log full row images ({FULL_IMAGES_HINT})",
                    retryable=False,
                )
            raise SinkError(
                f"{template.path}: template {template.text!r} uses column {column!r}, "
                f"which the {which} image of {event.qualified_table} lacks (its columns: "
                f"{', '.join(sorted(image)) or 'none'}); fix the template, or make the "
                f"source log full row images ({FULL_IMAGES_HINT})",
                retryable=False,
            )


#: How to make each source log full row images, for template errors.
FULL_IMAGES_HINT = "MySQL: binlog_row_image=FULL; PostgreSQL: REPLICA IDENTITY FULL"


def _images(event: RowEvent) -> list[tuple[str, Row]]:
    """The images keys are rendered from: ``before`` and ``after`` where present, with an
    :data:`~meepo_core.UNCHANGED` value of ``after`` taken from ``before`` (it did not
    change)."""
    images: list[tuple[str, Row]] = []
    before, after = event.before, event.after
    if before is not None:
        images.append(("before", before))
    if after is not None:
        if before is not None and any(value is UNCHANGED for value in after.values()):
            after = {column: before.get(column, value) if value is UNCHANGED else value
                     for column, value in after.items()}
        images.append(("after", after))
    return images


def _template(options: Options, text: Any, path: str) -> Template:
    if not isinstance(text, str):
        raise options.error(path.removeprefix(options.path + "."), "must be a string template")
    try:
        return Template.parse(text, path)
    except ValueError as exc:
        raise options.error(path.removeprefix(options.path + "."), str(exc)) from None


def _templates(options: Options, value: Any, path: str) -> list[Template]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise options.error(path.removeprefix(options.path + "."),
                            'must be a list of key templates, e.g. ["user:{id}"]')
    return [_template(options, text, f"{path}[{i}]") for i, text in enumerate(items)]
