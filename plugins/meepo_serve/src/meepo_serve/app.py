"""The HTTP service: the JSON API, health checks, metrics, the OpenAPI document and the
status page, over a :class:`~meepo_serve.supervisor.Supervisor` (Starlette)."""

from __future__ import annotations

import logging
import re
import secrets as secrets_module
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from meepo_core import ConfigError, MeepoError, request_snapshot

from . import dead_letters, plots
from .models import (
    Accepted,
    DeadLetters,
    PipelineList,
    Problem,
    ReloadResponse,
    ReplayRequest,
    ReplayResponse,
    SnapshotAccepted,
    SnapshotRequest,
)
from .openapi import openapi_document
from .page import PAGE
from .redaction import redact
from .status import pipeline_status, readiness
from .supervisor import Supervised, Supervisor

T = TypeVar("T")
log = logging.getLogger("meepo.serve")
_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")


class ApiError(Exception):
    """Ends a request with ``status`` and a :class:`Problem` body."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.problem = status, Problem(error, field)


def json_response(value: Any, status: int = 200) -> Response:
    # str() for what msgspec does not encode itself: str subclasses (SQLAlchemy's
    # quoted_name in table names), and values inside source positions
    return Response(msgspec.json.encode(value, enc_hook=str), status,
                    media_type="application/json")


def create_app(supervisor: Supervisor, token: str | None) -> Starlette:
    """The service over ``supervisor``. Requests that change something need
    ``Authorization: Bearer <token>``; without a token configured they are refused."""
    hidden = (token,) if token else ()

    def find(request: Request) -> Supervised:
        name = request.path_params["name"]
        supervised = supervisor.get(name)
        if supervised is None:
            known = ", ".join(s.name for s in supervisor.all()) or "none"
            raise ApiError(404, f"no pipeline named {name!r}; pipelines: {known}")
        return supervised

    def authorize(request: Request) -> None:
        if token is None:
            raise ApiError(401, f"changes are refused: no token is configured; set the "
                           f"environment variable {supervisor.serve.token_env} and restart")
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets_module.compare_digest(
                value.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong token: send Authorization: Bearer <token> "
                           f"(the value of {supervisor.serve.token_env})")

    async def body(request: Request, kind: type[T]) -> T:
        raw = await request.body()
        try:
            return msgspec.json.decode(raw or b"{}", type=kind)
        except msgspec.ValidationError as exc:
            text = str(exc)
            found = _UNKNOWN_FIELD.search(text) or _FIELD.search(text)
            raise ApiError(400, f"invalid body: {text}",
                           found.group(1) if found else None) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None

    def endpoint(handler: Callable[[Request], Awaitable[Response]],
                 mutating: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                if mutating:
                    authorize(request)
                return await handler(request)
            except ApiError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                response = json_response(exc.problem, exc.status)
                if headers:
                    response.headers.update(headers)
                return response
            except Exception as exc:  # one line, redacted; the service goes on
                text = redact(f"{type(exc).__name__}: {exc}", hidden)
                log.error("%s %s failed: %s", request.method, request.url.path, text,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                return json_response(Problem(f"internal error: {text}"), 500)
        return wrapped

    # -- reading --------------------------------------------------------------------------
    async def list_pipelines(request: Request) -> Response:
        statuses = await run_in_threadpool(
            lambda: [pipeline_status(s, hidden) for s in supervisor.all()])
        return json_response(PipelineList(statuses))

    async def get_pipeline(request: Request) -> Response:
        supervised = find(request)
        return json_response(await run_in_threadpool(pipeline_status, supervised, hidden))

    async def plot(request: Request) -> Response:
        supervised = find(request)
        kind = request.path_params["kind"]
        if kind not in ("lag", "rate"):
            raise ApiError(404, f"no plot {kind!r}; plots: lag, rate")
        points = plots.series(supervised.history.samples(), kind)
        title = "lag" if kind == "lag" else "events/s"
        text = plots.svg(points, " s" if kind == "lag" else "/s", title)
        return Response(text, media_type="image/svg+xml",
                        headers={"Cache-Control": "no-store"})

    async def healthz(request: Request) -> Response:
        return json_response({"alive": True})

    async def readyz(request: Request) -> Response:
        ready = readiness(supervisor.all(), hidden)
        return json_response(ready, 200 if ready.ready else 503)

    async def metrics(request: Request) -> Response:
        parts = []
        restarts = ["# HELP meepo_serve_restarts_total Restarts of a pipeline by meepo serve.",
                    "# TYPE meepo_serve_restarts_total counter"]
        for supervised in supervisor.all():
            runner = supervised.runner
            if runner is not None:
                parts.append(runner.metrics.prometheus())
            restarts.append(f'meepo_serve_restarts_total{{pipeline="{supervised.name}"}} '
                            f"{supervised.restarts}")
        return Response("".join(parts) + "\n".join(restarts) + "\n",
                        media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document())

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def list_dead_letters(request: Request) -> Response:
        supervised = find(request)
        pipeline = supervised.pipeline
        if pipeline is None:
            raise ApiError(409, f"pipeline {supervised.name} is {supervised.state}: "
                           f"{supervised.error}")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise ApiError(400, "limit must be a whole number", "limit") from None
        try:
            total, pending, letters = await run_in_threadpool(
                dead_letters.list_letters, pipeline, limit)
        except dead_letters.NotListable as exc:
            raise ApiError(501, str(exc)) from None
        return json_response(DeadLetters(supervised.name, total, pending, letters))

    # -- changing -------------------------------------------------------------------------
    async def pause(request: Request) -> Response:
        supervised = find(request)
        supervised.pause()
        return json_response(Accepted(supervised.name, supervised.state))

    async def resume(request: Request) -> Response:
        supervised = find(request)
        supervised.resume()
        return json_response(Accepted(supervised.name, supervised.state))

    async def restart(request: Request) -> Response:
        supervised = find(request)
        supervised.restart()
        return json_response(Accepted(supervised.name, "restarting"), 202)

    def fresh(supervised: Supervised) -> Any:
        try:
            return supervised.build()
        except ConfigError as exc:
            raise ApiError(409, f"pipeline {supervised.name} has an invalid config: "
                           f"{exc}") from None

    async def snapshot(request: Request) -> Response:
        supervised = find(request)
        wanted = await body(request, SnapshotRequest)
        pipeline = await run_in_threadpool(fresh, supervised)
        try:
            made, resolved = await run_in_threadpool(request_snapshot, pipeline, wanted.tables)
        except ConfigError as exc:
            raise ApiError(400, str(exc), "tables") from None
        except MeepoError as exc:
            raise ApiError(502, str(exc)) from None
        return json_response(SnapshotAccepted(
            supervised.name, str(made["id"]), [t.qualified for t in resolved]), 202)

    async def replay(request: Request) -> Response:
        supervised = find(request)
        wanted = await body(request, ReplayRequest)
        pipeline = await run_in_threadpool(fresh, supervised)
        try:
            done = await run_in_threadpool(dead_letters.replay, pipeline, wanted.indexes)
        except dead_letters.NotListable as exc:
            raise ApiError(501, str(exc)) from None
        except KeyError as exc:
            raise ApiError(400, f"no dead letter with index {exc.args[0]}", "indexes") from None
        return json_response(ReplayResponse(
            supervised.name, done.replayed,
            {str(i): redact(e, hidden) for i, e in done.failed.items()}))

    async def reload(request: Request) -> Response:
        try:
            result = await run_in_threadpool(supervisor.reload)
        except ConfigError as exc:
            raise ApiError(400, f"config not reloaded, nothing changed: {exc}") from None
        return json_response(ReloadResponse(result.started, result.stopped, result.restarted,
                                            result.unchanged))

    routes = [
        Route("/", endpoint(page)),
        Route("/healthz", endpoint(healthz)),
        Route("/readyz", endpoint(readyz)),
        Route("/metrics", endpoint(metrics)),
        Route("/openapi.json", endpoint(openapi)),
        Route("/pipelines", endpoint(list_pipelines)),
        Route("/reload", endpoint(reload, True), methods=["POST"]),
        Route("/pipelines/{name}", endpoint(get_pipeline)),
        Route("/pipelines/{name}/plots/{kind}.svg", endpoint(plot)),
        Route("/pipelines/{name}/pause", endpoint(pause, True), methods=["POST"]),
        Route("/pipelines/{name}/resume", endpoint(resume, True), methods=["POST"]),
        Route("/pipelines/{name}/restart", endpoint(restart, True), methods=["POST"]),
        Route("/pipelines/{name}/snapshots", endpoint(snapshot, True), methods=["POST"]),
        Route("/pipelines/{name}/dead-letters", endpoint(list_dead_letters)),
        Route("/pipelines/{name}/dead-letters", endpoint(replay, True), methods=["POST"]),
    ]
    return Starlette(routes=routes)
