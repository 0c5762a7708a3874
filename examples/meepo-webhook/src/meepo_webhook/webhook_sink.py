"""The ``webhook`` sink: one HTTP POST per batch, JSON body, retried by the runner."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Self
from urllib.parse import urlparse

from meepo_core import Batch, Options, Sink, SinkError
from meepo_core.serialization import event_to_dict


class WebhookSink(Sink):
    """POSTs ``{"events": [...]}`` (events as in :mod:`meepo_core.serialization`) to ``url``.

    The batch is durable once the receiver answers 2xx. The ``Idempotency-Key`` header
    (first and last event sequence, or the batch position) lets receivers drop replays.
    A 4xx other than 408/429 is permanent (not retried); anything else is retried by the
    runner with backoff.
    """

    def __init__(self, url: str, timeout: float, headers: dict[str, str]) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = headers

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = options.string("url")
        if urlparse(url).scheme not in ("http", "https"):
            raise options.error("url", f"must be an http:// or https:// URL, not {url!r}")
        timeout = options.number("timeout", 10.0, minimum=0.1)
        headers = options.table("headers", {})
        options.done()
        return cls(url, timeout, {str(k): str(v) for k, v in headers.items()})

    def apply(self, batch: Batch) -> None:
        if not batch.events:
            return
        first, last = batch.events[0], batch.events[-1]
        key = (
            f"{first.sequence}-{last.sequence}"
            if last.sequence is not None
            else json.dumps(batch.position)
        )
        body = json.dumps({"events": [event_to_dict(e) for e in batch.events]}).encode()
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
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise SinkError(
                f"{self.url} answered {exc.code} {exc.reason}", retryable=not permanent
            ) from exc

    def check(self) -> list[str]:
        host = urlparse(self.url)
        try:
            urllib.request.urlopen(f"{host.scheme}://{host.netloc}/", timeout=self.timeout).close()
        except urllib.error.HTTPError:
            return []  # reachable; the root path need not exist
        except OSError as exc:
            return [f"cannot reach {host.netloc}: {exc}; check url"]
        return []
