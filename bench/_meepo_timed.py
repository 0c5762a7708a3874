"""``meepo run NAME --once`` through the public embedding API, plus one timing line on stderr.

    python bench/_meepo_timed.py NAME

Does what the ``meepo run NAME --once`` command does, as a program that embeds meepo would:
the pipeline from the nearest config file (:func:`meepo_core.load_pipeline`, plugins
included), meepo's log lines on stderr at INFO, ``Runner(pipeline).run(once=True)`` and the
command's summary line (``meepo: NAME: 3 events in 1 batch, ...``). Exit status 1 with the
one-line message for a :class:`meepo_core.MeepoError` (2 for a config error).

Around ``Runner(pipeline).run`` it prints ``bench-timing run=SECONDS cpu=SECONDS hwm_kib=PEAK_RSS``:
wall and CPU seconds (the whole process, all threads) of the streaming phase, which is
connecting the source and sinks, streaming, the final checkpoint and closing -- the same
span as when the command's ``Runner.run`` was wrapped: building the runner first adds a
context and an empty queue, no I/O. The benchmark compares that phase
without interpreter start-up and imports, which it reports separately; those do not include
the command line's own modules (click), a few tens of milliseconds.
"""

from __future__ import annotations

import logging
import sys
import time

from meepo_core import ConfigError, MeepoError, Runner, load_pipeline


def main(name: str) -> int:
    handler = logging.StreamHandler(sys.stderr)  # as the CLI: meepo's loggers only
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                  "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    meepo_log = logging.getLogger("meepo")
    meepo_log.handlers[:] = [handler]
    meepo_log.setLevel(logging.INFO)
    meepo_log.propagate = False
    try:
        pipeline = load_pipeline(name)
        began, cpu = time.perf_counter(), time.process_time()
        try:
            stats = Runner(pipeline).run(once=True)
        finally:
            print(f"bench-timing run={time.perf_counter() - began:.6f} "
                  f"cpu={time.process_time() - cpu:.6f} hwm_kib={peak_rss_kib()}",
                  file=sys.stderr, flush=True)
    except MeepoError as exc:
        print(f"meepo: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    print(f"meepo: {name}: {stats.summary()}", file=sys.stderr)
    return 0


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``). ``ru_maxrss`` from ``wait4`` can start at
    the parent's size: Linux carries the high-water mark across fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} PIPELINE")
    sys.exit(main(sys.argv[1]))
