"""End-to-end benchmark: MariaDB binlog -> meepo -> null / redis / elasticsearch / sql.

Starts its own MariaDB, Redis, PostgreSQL and Elasticsearch-API (noida-db) servers in a
temp dir and measures, side by side in one run:

* per workload (narrow or wide rows x many small transactions or one huge one, each a
  binlog range of N inserts, N updates and N/2 deletes): raw python-mysql-replication
  decoding of the range (the reference), ``mariadb-binlog -v --base64-output=decode-rows``
  over it (MariaDB's C decoder, the limit), then ``meepo run bench --once`` from the
  ``mysql`` source into ``null``, ``redis`` (invalidation), ``elasticsearch`` and ``sql``
  (PostgreSQL replica); every run a fresh subprocess (peak RSS via ``wait4``), rounds
  interleaved and the best of ``--repeat`` kept; each sink's result is checked against
  the MariaDB table;
* peak RSS (and the ratio) of one ``--big-update``-row UPDATE transaction into ``null``;
* commit-to-sink latency p50/p99 at ``--latency-rate`` rows/s (one row per transaction)
  while ``meepo run`` follows into each sink (then a recorder), with the default
  ``batch_wait`` and a low one.

Writes ``bench/results/RESULTS.md``, ``results.json`` and ``throughput.png``.

    python bench/bench_e2e.py                 # full run (about 30 minutes on 2 cores)
    python bench/bench_e2e.py --quick         # small sizes, a few minutes
    python bench/bench_e2e.py --rows 50000 --big-update 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import _env
import _latency
import _report
import _runs
import _workloads
from _workloads import SHAPES, Prepared, Workload

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run (results marked as quick)")
    parser.add_argument("--rows", type=int, default=None,
                        help="N for narrow workloads (default 20000, quick 2000); wide use N/2")
    parser.add_argument("--repeat", type=int, default=None,
                        help="interleaved rounds, best counts (default 3, quick 1)")
    parser.add_argument("--big-update", type=int, default=None, metavar="M",
                        help="rows of the single-UPDATE transaction (default 1000000, "
                             "quick 50000; 0 skips it)")
    parser.add_argument("--latency-rate", type=int, default=1000, help="rows/s (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=None,
                        help="writer duration per latency run (default 20, quick 5)")
    parser.add_argument("--latency-batch-wait", type=float, default=0.01,
                        help="the low batch_wait for the tuned latency runs (default 0.01)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"bench_e2e: ignoring arguments meant for other bench scripts: {unknown}")
    quick = args.quick
    args.rows = args.rows if args.rows is not None else (2_000 if quick else 20_000)
    args.repeat = args.repeat if args.repeat is not None else (1 if quick else 3)
    args.big_update = (args.big_update if args.big_update is not None
                       else (50_000 if quick else 1_000_000))
    args.latency_seconds = args.latency_seconds or (5.0 if quick else 20.0)
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def throughput(env: _env.Servers, prepared: Prepared, repeat: int,
               rounds: list[dict[str, object]]) -> list[_runs.Measurement]:
    """Raw decode, mariadb-binlog and the four pipelines, interleaved over ``repeat``
    rounds; the best
    streaming time and CPU time of each, and its highest peak RSS. Every single run is
    appended to ``rounds`` (with its round number) for the per-round ratios."""
    order = ["raw", "mariadb-binlog", *_runs.SINKS]
    runs: dict[str, list[_runs.Measurement]] = {name: [] for name in order}
    for round_ in range(repeat):
        for name in order if round_ % 2 == 0 else order[::-1]:
            m = (_runs.raw_decode(env, prepared) if name == "raw"
                 else _runs.c_reference(env, prepared) if name == "mariadb-binlog"
                 else _runs.meepo_once(env, prepared, name))
            runs[name].append(m)
            rounds.append({"round": round_ + 1, **asdict(m)})
            log(f"  round {round_ + 1} {name:13s} {m.rate:>9,.0f} rows/s  run {m.run:6.2f}s  "
                f"process {m.wall:6.2f}s  CPU {m.run_cpu:6.2f}s  RSS {m.rss_mib:5.0f} MiB")
    reference = _runs.es_bulk(env, prepared)  # once: a capacity check, not a contender
    log(f"  ES server alone (raw helpers.bulk of the same operations) {reference.rate:>9,.0f} "
        f"ops/s  run {reference.run:6.2f}s")
    return [*(best(items) for items in runs.values()), reference]


def best(items: list[_runs.Measurement]) -> _runs.Measurement:
    fastest = min(items, key=lambda m: m.run)
    return _runs.Measurement(
        fastest.workload, fastest.pipeline, fastest.rows,
        wall=min(m.wall for m in items), cpu=min(m.cpu for m in items),
        rss_kib=max(m.rss_kib for m in items), run=fastest.run,
        run_cpu=min(m.run_cpu for m in items),
    )


def save_partial(results: dict[str, object], out: Path) -> None:
    """What is measured so far, in case a later part fails."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.partial.json").write_text(json.dumps(results, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM ends through SystemExit, so the servers are stopped and their dirs removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    workloads = [
        Workload(SHAPES["narrow"], "small", args.rows),
        Workload(SHAPES["narrow"], "huge", args.rows),
        Workload(SHAPES["wide"], "small", max(1, args.rows // 2)),
        Workload(SHAPES["wide"], "huge", max(1, args.rows // 2)),
    ]
    results: dict[str, object] = {"settings": {
        "quick": args.quick, "rows": args.rows, "repeat": args.repeat,
        "big_update": args.big_update, "latency_rate": args.latency_rate,
        "latency_seconds": args.latency_seconds, "latency_batch_wait": args.latency_batch_wait,
        "small_txn_rows": _workloads.SMALL_TXN,
    }}
    results["code"] = _env.code_fingerprint()
    log("starting MariaDB, Redis, PostgreSQL and Elasticsearch (noida-db)")
    with _env.servers() as env:
        results["machine"] = _env.machine(env)
        idle_raw = _runs.raw_decode(env, Prepared(Workload(SHAPES["narrow"], "idle", 0),
                                                  env.binlog_end(), env.binlog_end(), 0.0))
        _workloads.create_tables(env, "idle", SHAPES["narrow"])
        idle_meepo = _runs.meepo_idle(env, "idle")
        results["startup"] = [asdict(idle_raw), asdict(idle_meepo)]
        log(f"start-up over an empty range: raw {idle_raw.wall:.2f}s / {idle_raw.rss_mib:.0f} "
            f"MiB, meepo {idle_meepo.wall:.2f}s / {idle_meepo.rss_mib:.0f} MiB")
        measured: list[dict[str, object]] = []
        rounds: list[dict[str, object]] = []
        results["rounds"] = rounds
        for workload in workloads:
            prepared = _workloads.prepare(env, workload)
            log(f"{workload.name}: {workload.events:,} row events prepared in "
                f"{prepared.seconds:.1f}s ({prepared.start[0]}:{prepared.start[1]} .. "
                f"{prepared.end[1]})")
            measured += [asdict(m) for m in throughput(env, prepared, args.repeat, rounds)]
            results["throughput"] = measured
            save_partial(results, args.out)
        results["throughput"] = measured
        if args.big_update:
            log(f"big transaction: preparing a {args.big_update:,}-row UPDATE")
            big = _workloads.prepare_big_update(env, args.big_update)
            log(f"  committed in {big.seconds:.1f}s; decoding")
            raw = _runs.raw_decode(env, big)
            log(f"  raw {raw.rate:,.0f} rows/s, RSS {raw.rss_mib:.0f} MiB")
            null = _runs.meepo_once(env, big, "null")
            log(f"  meepo -> null {null.rate:,.0f} rows/s, RSS {null.rss_mib:.0f} MiB")
            c = _runs.c_reference(env, big)
            log(f"  mariadb-binlog {c.rate:,.0f} rows/s, RSS {c.rss_mib:.0f} MiB")
            results["big"] = [asdict(raw), asdict(null), asdict(c)]
            save_partial(results, args.out)
        latency = []
        for sinks in ([], ["redis"], ["elasticsearch"], ["sql"]):
            for batch_wait in (None, args.latency_batch_wait):
                r = _latency.measure(env, sinks, rate=args.latency_rate,
                                     seconds=args.latency_seconds, batch_wait=batch_wait)
                log(f"latency {r.label} (batch_wait {r.batch_wait or 'default'}): p50 "
                    f"{r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms at {r.achieved:,.0f} rows/s; "
                    f"{r.arrived}/{r.rows} arrived; p99 by second {r.p99_by_second}")
                latency.append(asdict(r))
        results["latency"] = latency
    results["seconds"] = time.monotonic() - started
    results["code_at_end"] = _env.code_fingerprint()
    if results["code_at_end"] != results["code"]:
        changed = [k for k, v in results["code"].items() if results["code_at_end"].get(k) != v]
        log(f"WARNING: source of {', '.join(changed)} changed during the run")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    _report.write(results, args.out)
    (args.out / "results.partial.json").unlink(missing_ok=True)
    log(f"done in {results['seconds'] / 60:.1f} min; see {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
