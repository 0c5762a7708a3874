"""The OpenAPI 3.1 description of the API (``GET /openapi.json``), with the request and
response schemas generated from :mod:`meepo_serve.models`."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from . import models

_MODELS = (models.PipelineList, models.PipelineStatus, models.Problem, models.Readiness,
           models.Accepted, models.SnapshotRequest, models.SnapshotAccepted,
           models.DeadLetters, models.ReplayRequest, models.ReplayResponse,
           models.ReloadResponse)


def _ref(model: type) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
_PROBLEMS = {"404": _json(models.Problem, "no pipeline of that name")}
_WRITE = {"401": _json(models.Problem, "missing or wrong bearer token"), **_PROBLEMS}


def _operation(summary: str, responses: dict[str, Any], *, mutating: bool = False,
               named: bool = True, body: type | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if named:
        operation["parameters"] = _NAME
        operation["responses"] = {**responses, **(_WRITE if mutating else _PROBLEMS)}
    if mutating:
        operation["security"] = [{"bearer": []}]
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {
            "application/json": {"schema": _ref(body)}}}
        operation["responses"]["400"] = _json(models.Problem, "invalid body; `field` names it")
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_MODELS, ref_template=(
        "#/components/schemas/{name}"))
    text = {"200": {"description": "text", "content": {"text/plain": {}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "meepo serve", "version": "1",
                 "description": "Every pipeline of a meepo config, supervised in one process."},
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/pipelines": {"get": _operation(
                "Every pipeline's status", {"200": _json(models.PipelineList, "statuses")},
                named=False)},
            "/pipelines/{name}": {"get": _operation(
                "One pipeline's status", {"200": _json(models.PipelineStatus, "status")})},
            "/pipelines/{name}/pause": {"post": _operation(
                "Stop reading the source (position kept)",
                {"200": _json(models.Accepted, "paused")}, mutating=True)},
            "/pipelines/{name}/resume": {"post": _operation(
                "Read the source again", {"200": _json(models.Accepted, "resumed")},
                mutating=True)},
            "/pipelines/{name}/restart": {"post": _operation(
                "Stop gracefully and start again",
                {"202": _json(models.Accepted, "restarting")}, mutating=True)},
            "/pipelines/{name}/snapshots": {"post": _operation(
                "Request an incremental snapshot (as `meepo snapshot`)",
                {"202": _json(models.SnapshotAccepted, "requested")}, mutating=True,
                body=models.SnapshotRequest)},
            "/pipelines/{name}/dead-letters": {
                "get": _operation("The last dead letters (`?limit=100`)",
                                  {"200": _json(models.DeadLetters, "letters")}),
                "post": _operation("Replay dead letters to the sink that failed them",
                                   {"200": _json(models.ReplayResponse, "replayed")},
                                   mutating=True, body=models.ReplayRequest)},
            "/reload": {"post": _operation(
                "Reload the config: start added, stop removed, restart changed pipelines",
                {"200": _json(models.ReloadResponse, "what changed"),
                 "400": _json(models.Problem, "config invalid; nothing changed"),
                 "401": _json(models.Problem, "missing or wrong bearer token")},
                mutating=True, named=False)},
            "/healthz": {"get": _operation("The process is alive", {"200": {
                "description": "alive"}}, named=False)},
            "/readyz": {"get": _operation("Every pipeline delivering within its max_lag", {
                "200": _json(models.Readiness, "ready"),
                "503": _json(models.Readiness, "names each pipeline not ready, and why")},
                named=False)},
            "/metrics": {"get": _operation("Prometheus metrics of every pipeline", text,
                                           named=False)},
        },
    }
