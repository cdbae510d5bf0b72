"""Times single DuckDB queries that the feature families cannot do without, next to the bare scan.

    python bench/bench_primitives.py            # on the feature benchmark's cached simulation

The feature benchmark (bench_features.py) compares the whole build (162 columns) with a bare scan
(count and max per customer). This script shows where the floor is: each primitive below is one
query that some named feature needs (distinct sessions and days for usage, counts per event type
for journey and benefits, consecutive purchase-day gaps for timing), run alone on the same events
held in a DuckDB table, best of `--repeat` runs. Their sum is a lower bound for any implementation
of those features on this engine and machine, however clever the rest of it.

Needs the simulation cached by bench_features.py (it tells how to make it when it is missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

EVENTS = ROOT / "bench" / ".cache" / "sim-c100000-d365-s42" / "events.parquet"
RESULTS = ROOT / "bench" / "results" / "feature_primitives.json"
DAY = "CAST(epoch(timestamp) // 86400 AS BIGINT)"
QUERIES = {
    "bare scan: count and max per customer": "SELECT customer_id, count(*), max(timestamp) FROM ev GROUP BY 1",
    "usage: distinct sessions per customer": "SELECT customer_id, count(DISTINCT session_id) FROM ev GROUP BY 1",
    "usage: distinct active days per customer": f"SELECT customer_id, count(DISTINCT {DAY}) FROM ev GROUP BY 1",
    "journey and benefits: events per customer and event type":
        "SELECT customer_id, event_type, count(*) FROM ev GROUP BY 1, 2",
    "timing: mean and std of gaps between purchase days":
        "SELECT customer_id, avg(g), stddev_pop(g) FROM (SELECT customer_id, d - lag(d) OVER "
        f"(PARTITION BY customer_id ORDER BY d) AS g FROM (SELECT DISTINCT customer_id, {DAY} AS d FROM ev "
        "WHERE event_type = 'purchase')) GROUP BY 1",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, default=EVENTS, help="events Parquet file (default: the cached one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query; the best is kept")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="DuckDB threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    if not args.events.is_file():
        print(f"{args.events} is missing: run `python bench/bench_features.py` once to simulate and cache it",
              file=sys.stderr)
        return 2

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("CREATE TABLE ev AS SELECT * FROM read_parquet(?)", [str(args.events)])
    events = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    seconds: dict[str, float] = {}
    for name, query in QUERIES.items():
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {query}")
            runs.append(time.perf_counter() - started)
        seconds[name] = round(min(runs), 3)
    scan = seconds["bare scan: count and max per customer"]
    needed = round(sum(v for k, v in seconds.items() if not k.startswith("bare scan")), 3)
    result = {
        "benchmark": "feature primitives", "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__},
        "events": events, "threads": args.threads, "repeat": args.repeat,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "seconds": seconds, "times_the_bare_scan": {k: round(v / scan, 1) for k, v in seconds.items()},
        "sum_of_the_four_primitives_seconds": needed, "sum_times_the_bare_scan": round(needed / scan, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print("| query | seconds | x bare scan |\n| --- | ---: | ---: |")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / scan:.1f} |")
    print(f"| the four primitives together | {needed:.3f} | {needed / scan:.1f} |")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
