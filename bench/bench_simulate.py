"""Times simulate() at product scale and writes bench/results/simulate.json (wall clock, events, peak RSS)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

from pipeline.io import write_text_atomic
from pipeline.simulate import SimulateConfig, simulate


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="customers to simulate (default 100000)")
    parser.add_argument("--days", type=int, default=365, help="days to simulate (default 365)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "simulate.json",
                        help="where to write the JSON result")
    args = parser.parse_args(argv)

    config = SimulateConfig(customers=args.customers, days=args.days, seed=args.seed)
    start = time.perf_counter()
    sim = simulate(config)
    seconds = time.perf_counter() - start
    events = len(sim.events)
    active = int(sim.events["customer_id"].nunique())
    result = {
        "customers": args.customers,
        "days": args.days,
        "seed": args.seed,
        "events": events,
        "active_customers": active,
        "events_per_active_customer": round(events / max(active, 1), 1),
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(json.dumps(result, indent=2) + "\n", args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
