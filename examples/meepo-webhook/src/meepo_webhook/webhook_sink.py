"""The ``webhook`` sink: one HTTP POST per batch, JSON body, retried by the runner."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self
from urllib.parse import urlparse

from meepo_core import (
    REQUIRED,
    Batch,
    Options,
    OptionSpec,
    RowEvent,
    Sink,
    SinkError,
    event_to_dict,
)

if TYPE_CHECKING:
    from meepo_core import PipelineContext

#: Answers saying the receiver refuses the content (not the request): the events are sent
#: one by one and those refused alone go to the dead-letter store.
REFUSED = frozenset({400, 413, 422})
#: 4xx answers that are worth retrying (timeout, rate limit).
RETRYABLE_4XX = frozenset({408, 429})


class Refused(Exception):
    """The receiver refused the content of a request (an answer in :data:`REFUSED`)."""


# Declared once: from_options reads through these, and the README's table and
# `meepo plugins --options webhook` are generated from them.
URL = OptionSpec("url", "string", REQUIRED, "`http://` or `https://` URL to POST to.")
TIMEOUT = OptionSpec("timeout", "number", 10.0, "Seconds per request.", minimum=0.1)
HEADERS = OptionSpec("headers", "table", {}, "Extra request headers, e.g. a token.")


class WebhookSink(Sink):
    """POSTs ``{"events": [...]}`` (events as in :mod:`meepo_core.serialization`) to ``url``.

    The batch is durable once the receiver answers 2xx. The ``Idempotency-Key`` header (the
    SHA-256 of the body: the same events sent again carry the same key, other events never
    do, even snapshot rows sharing a sequence) lets receivers drop replays.
    A refused batch (400, 413, 422) is sent again one event at a time and the events the
    receiver refuses alone go to the dead-letter store; any other 4xx but 408/429 is a
    configuration problem (not retried); anything else is retried by the runner with
    backoff.
    """

    OPTIONS = (URL, TIMEOUT, HEADERS)

    def __init__(self, url: str, timeout: float, headers: dict[str, str]) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = headers
        self.label = f"webhook {url}"
        self.context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = options.string(URL)
        if urlparse(url).scheme not in ("http", "https"):
            raise options.error("url", f"must be an http:// or https:// URL, not {url!r}")
        timeout = options.number(TIMEOUT)
        headers = options.table(HEADERS)
        options.done()
        return cls(url, timeout, {str(k): str(v) for k, v in headers.items()})

    def open(self, context: PipelineContext) -> None:
        self.context = context

    def apply(self, batch: Batch) -> None:
        assert self.context is not None, "open() first"
        if not batch.events:
            return
        try:
            self.post(batch.events)
        except Refused:
            for event in batch.events:  # find the events the receiver refuses
                try:
                    self.post((event,))
                except Refused as exc:
                    self.context.dead_letter(event, self.label, str(exc))

    def post(self, events: Sequence[RowEvent]) -> None:
        """POST ``events``; returns on 2xx, raises :class:`Refused` or :class:`SinkError`."""
        try:
            body = json.dumps({"events": [event_to_dict(e) for e in events]}).encode()
        except (TypeError, ValueError) as exc:  # a value JSON cannot carry
            raise Refused(f"cannot encode as JSON: {exc}") from exc
        key = hashlib.sha256(body).hexdigest()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": key, **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            answer = f"{self.url} answered {exc.code} {exc.reason}"
            if exc.code in REFUSED:
                raise Refused(f"{answer}: {exc.read()[:200].decode(errors='replace')}") from exc
            permanent = 400 <= exc.code < 500 and exc.code not in RETRYABLE_4XX
            raise SinkError(answer, retryable=not permanent) from exc
        except OSError as exc:
            raise SinkError(f"cannot reach {self.url}: {exc}") from exc

    def check(self) -> list[str]:
        host = urlparse(self.url)
        try:
            urllib.request.urlopen(f"{host.scheme}://{host.netloc}/", timeout=self.timeout).close()
        except urllib.error.HTTPError:
            return []  # reachable; the root path need not exist
        except OSError as exc:
            return [f"cannot reach {host.netloc}: {exc}; check url"]
        return []
