"""``redis`` sink: cache invalidation, the original meepo's main use.

For each event of a configured table, the keys rendered from its row images are deleted
(``DEL``), and configured hash fields are removed (``HDEL``); a whole batch is one pipelined
round trip. Updates use both images, so a changed ``email`` also invalidates the old
``user:email:...`` key. Deleting is idempotent, so replays after a crash are harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import redis

from meepo_core.errors import SinkError
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.sink import Sink

from .connection import connect, describe, execute, ping_problems, redact, url_option
from .delayed import DelayedDeleter
from .templates import Template

if TYPE_CHECKING:
    from meepo_core.context import PipelineContext

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

    def queue(self, pipe: Any) -> None:
        keys = list(self.keys)
        for start in range(0, len(keys), CHUNK):
            pipe.delete(*keys[start:start + CHUNK])
        for key, names in self.fields.items():
            pipe.hdel(key, *names)


class RedisSink(Sink):
    """Deletes cache keys derived from row images. Options: ``url``, ``keys``,
    ``hash_fields``, ``prefix``, ``delay_ms`` (see the plugin README)."""

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
        url = url_option(options)
        raw_keys = options.table("keys", {})
        raw_hashes = options.table("hash_fields", {})
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
        prefix = options.string("prefix", "")
        delay_ms = options.integer("delay_ms", 0, minimum=0)
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

    def invalidation(self, events: tuple[RowEvent, ...] | list[RowEvent]) -> Invalidation:
        """Everything ``events`` invalidate. Raises a non-retryable :class:`SinkError` when a
        template names a column that an image lacks: a config mistake, not a no-op."""
        out = Invalidation()
        for event in events:
            targets = self.targets.get(event.qualified_table)
            if targets is None:
                continue
            for which, image in (("before", event.before), ("after", event.after)):
                if image is None:
                    continue
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
        assert self.client is not None, "open() first"
        work = self.invalidation(batch.events)
        if not work:
            return
        pipe = self.client.pipeline(transaction=False)
        work.queue(pipe)
        execute(pipe, self.url, self.url_key)
        if self._delayed is not None:
            self._delayed.schedule(lambda: self._second_delete(work))

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
                    redact(self.url), describe(exc))

    def _encode(self, key: str, *, prefixed: bool) -> bytes:
        text = self.prefix + key if prefixed else key
        return text.encode("utf-8", "surrogateescape")

    def _check_columns(self, event: RowEvent, which: str, image: Mapping[str, Any],
                       targets: TableTargets) -> None:
        for template in targets.templates():  # a few dict lookups: cheaper than caching
            column = template.missing(image)
            if column is not None:
                raise SinkError(
                    f"{template.path}: template {template.text!r} uses column {column!r}, "
                    f"which the {which} image of {event.qualified_table} lacks (its columns: "
                    f"{', '.join(sorted(image)) or 'none'}); fix the template, or make the "
                    "source log full row images (MySQL: binlog_row_image=FULL)",
                    retryable=False,
                )


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
