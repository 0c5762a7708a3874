"""``meepo`` exactly as the console script runs it, plus one timing line on stderr.

``Runner.run`` (connecting the source and sinks, streaming, the final checkpoint and
closing) is wrapped to print ``bench-timing run=SECONDS cpu=SECONDS hwm_kib=PEAK_RSS``
when it returns, so
the benchmark can compare the streaming phase without interpreter start-up and imports,
which it reports separately. Nothing else changes.

    python bench/_meepo_timed.py run NAME --once
"""

from __future__ import annotations

import sys
import time
from typing import Any

from meepo_core import runner

_run = runner.Runner.run


def _timed_run(self: runner.Runner, *, once: bool = False) -> Any:
    began, cpu = time.perf_counter(), time.process_time()
    try:
        return _run(self, once=once)
    finally:
        print(f"bench-timing run={time.perf_counter() - began:.6f} "
              f"cpu={time.process_time() - cpu:.6f} hwm_kib={peak_rss_kib()}",
              file=sys.stderr, flush=True)


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``). ``ru_maxrss`` from ``wait4`` can start at
    the parent's size: Linux carries the high-water mark across fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


runner.Runner.run = _timed_run  # type: ignore[method-assign]

if __name__ == "__main__":
    from meepo_core.cli import main

    main()
