"""A supervised pipeline's status, and the service's readiness, as the API reports them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from .dead_letters import count_pending
from .models import PipelineStatus, Readiness, SnapshotJob
from .redaction import redact
from .supervisor import NOT_READY, Supervised


def pipeline_status(supervised: Supervised, secrets: tuple[str, ...] = ()) -> PipelineStatus:
    events = supervised.events_total()
    now = time.time()
    pipeline = supervised.pipeline
    lag = supervised.lag_seconds()
    return PipelineStatus(
        name=supervised.name,
        state=supervised.state,
        paused=supervised.paused,
        position=supervised.position(),
        checkpoint=supervised.checkpoint(),
        lag_seconds=None if lag is None else round(lag, 3),
        max_lag=pipeline.settings.max_lag if pipeline is not None else None,
        events_total=events,
        events_per_second_1m=round(supervised.history.rate(60, events, now), 2),
        events_per_second_5m=round(supervised.history.rate(300, events, now), 2),
        batches=supervised.batches_total(),
        last_error=redact(supervised.error, secrets) if supervised.error else None,
        last_error_at=supervised.error_at.isoformat() if supervised.error_at else None,
        restarts=supervised.restarts,
        next_restart_in=(round(max(0.0, supervised.next_restart_at - now), 1)
                         if supervised.next_restart_at is not None else None),
        dead_letters=count_pending(pipeline) if pipeline is not None else 0,
        dead_letters_since_start=supervised.dead_letters_total(),
        snapshots=snapshot_jobs(supervised.snapshot_state()),
        source_problems=[redact(problem, secrets) for problem in supervised.health],
    )


def snapshot_jobs(state: dict[str, Any] | None) -> list[SnapshotJob]:
    """Running and queued jobs, then the last few finished, from the checkpoint's snapshot
    state; ETA from the running job's rate so far."""
    if not state:
        return []
    now = datetime.now(UTC)
    jobs = []
    for index, job in enumerate(state.get("jobs", [])):
        running = index == 0 and job.get("started_at") is not None
        rows, estimate = int(job.get("rows") or 0), job.get("estimate")
        eta = None
        if running and estimate and rows:
            elapsed = (now - datetime.fromisoformat(job["started_at"])).total_seconds()
            eta = round(max(0.0, (estimate - rows) * elapsed / rows), 1)
        jobs.append(SnapshotJob(
            table=str(job.get("table")), state="running" if running else "queued", rows=rows,
            estimate=estimate, progress=min(rows / estimate, 1.0) if estimate else None,
            eta_seconds=eta, text=job_text(job, rows, estimate, eta)))
    for job in state.get("done", [])[-5:]:
        rows = int(job.get("rows") or 0)
        jobs.append(SnapshotJob(
            table=str(job.get("table", job.get("request"))),
            state="refused" if job.get("error") else "done", rows=rows,
            estimate=job.get("estimate"), progress=1.0, eta_seconds=None,
            text=str(job.get("error")) if job.get("error") else job_text(
                job, rows, job.get("estimate"), None)))
    return jobs


def job_text(job: dict[str, Any], rows: int, estimate: int | None, eta: float | None) -> str:
    """``"shop.orders: 1,024 of ~10,000 rows (10%), ETA 12s"``."""
    text = f"{job.get('table')}: {rows:,} "
    text += f"of ~{estimate:,} rows ({min(rows / estimate, 1):.0%})" if estimate else "rows"
    return text + (f", ETA {eta:.0f}s" if eta is not None else "")


def readiness(pipelines: list[Supervised], secrets: tuple[str, ...] = ()) -> Readiness:
    """Ready unless a pipeline is failed, restarting, starting or invalid, lags more than
    its ``max_lag``, or its source reports a problem (``Source.health``: a PostgreSQL slot
    retaining more than ``max_retained_wal``)."""
    not_ready: dict[str, str] = {}
    for supervised in pipelines:
        if supervised.state in NOT_READY:
            why: str = supervised.state
            if supervised.error and supervised.state != "starting":
                why += f": {redact(supervised.error, secrets)}"
            not_ready[supervised.name] = why
            continue
        pipeline, lag = supervised.pipeline, supervised.lag_seconds()
        limit = pipeline.settings.max_lag if pipeline is not None else None
        problems = list(supervised.health)
        if limit is not None and lag is not None and lag > limit:
            problems.insert(0, f"lag {lag:.1f}s exceeds max_lag {limit:g}s")
        if problems:
            not_ready[supervised.name] = redact("; ".join(problems), secrets)
    return Readiness(ready=not not_ready, not_ready=not_ready)
