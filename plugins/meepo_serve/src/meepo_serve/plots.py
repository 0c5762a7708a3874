"""Server-side SVG plots of a pipeline's last hour: lag and throughput."""

from __future__ import annotations

import itertools
import time
from html import escape

from .history import HOUR, Sample

WIDTH, HEIGHT, PAD = 320, 80, 2
MINUTE = 60.0


def series(samples: list[Sample], kind: str) -> list[tuple[float, float]]:
    """``(unix time, value)`` points: ``lag`` in seconds, or ``rate`` in events/s between
    consecutive samples."""
    if kind == "lag":
        return [(s.at, s.lag) for s in samples]
    return [(b.at, max(0, b.events - a.events) / max(b.at - a.at, 1e-9))
            for a, b in itertools.pairwise(samples)]


def svg(points: list[tuple[float, float]], unit: str, title: str,
        now: float | None = None) -> str:
    """A sparkline of ``points`` over the last hour (x: time, y: 0 to the largest value),
    with the last and largest values written on it. While the service has run for less
    than an hour, the x axis spans the time it has run (at least a minute)."""
    now = time.time() if now is None else now
    shown = [(t, v) for t, v in points if t >= now - HOUR]
    span = min(HOUR, max(MINUTE, now - shown[0][0])) if shown else HOUR
    start = now - span
    largest = max((v for _, v in shown), default=0.0)
    top = largest or 1.0
    coords = " ".join(
        f"{PAD + (t - start) / span * (WIDTH - 2 * PAD):.1f},"
        f"{HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD - 14):.1f}"
        for t, v in shown)
    last = shown[-1][1] if shown else 0.0
    window = "1 h" if span >= HOUR else f"{span / 60:.0f} min" if span >= 120 else (
        f"{span:.0f} s")
    label = escape(f"{title}: {last:.2f}{unit} now, max {largest:.2f}{unit} (last {window})")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" '
        f'data-points="{len(shown)}" data-last="{last:.3f}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f7f7f9" stroke="#ccd"/>'
        f'<text x="4" y="11" font-size="10" font-family="sans-serif" fill="#334">{label}</text>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{coords}"/>'
        "</svg>"
    )
