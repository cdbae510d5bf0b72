"""Times the feature build at product scale against hand-written pandas and a bare DuckDB scan.

    python bench/bench_features.py                 # 100k customers x 365 days (~10M events)
    python bench/bench_features.py --customers 5000 --repeat 1 --out /tmp/features.json   # a quick check

The simulated data is made once and cached as Parquet under bench/.cache/ (git-ignored). Each
variant then runs in its own subprocess (this script re-invoked with --variant), so its peak RSS is
its own:

  project      load_dataset (read + map + validate, timed apart), register the canonical tables in
               DuckDB (timed apart) and let the pandas copy go, as `python -m pipeline features` does,
               then build_features over every family at the day after the last event (the timed
               part); then build_features of timing + value alone (the families pandas mirrors);
  pandas       what a user writes by hand on the same events frame: groupby customer -> last event,
               last purchase, order count, revenue sum, daypart shares, weekend share, mean gap
               between purchase days (the timed part; reading the Parquet is timed apart);
  duckdb_scan  SELECT customer_id, count(*), max(timestamp) FROM read_parquet(...) GROUP BY customer_id.

With --csv, load_dataset is also timed on a CSV export of the same events (written once to the
cache), where every cell arrives as text: the shape of most users' exports. With --spark, the same
build runs on a local Spark session (engine: spark, default settings, once: it is slow on few
cores), timing the hand-over and the build, with the driver's and Spark's JVM peak memory and the
largest difference from the DuckDB frame.

The columns both the project and pandas make are compared (they must agree within 1e-6), then
bench/results/features.json is written and a markdown table printed. Peak RSS is the process high
-water mark (VmHWM); on Linux it is also reset between phases to give each phase's own peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "features.json"
VARIANTS = ("project", "pandas", "duckdb_scan")
TARGETS = {"project_vs_scan_max": 3.0, "pandas_vs_project_min": 10.0, "peak_rss_max_mb": 2048.0}
TOLERANCE = 1e-6

# project column -> pandas column, compared within TOLERANCE (absolute, and relative for money).
PARITY = {
    "value__recency_days": "recency_days",
    "value__frequency": "frequency",
    "value__orders_lifetime": "orders_lifetime",
    "value__monetary_gross": "monetary_gross",
    "value__historic_value": "historic_value",
    "value__avg_order_value": "avg_order_value",
    "timing__days_since_last_event": "days_since_last_event",
    "timing__days_since_first_event": "days_since_first_event",
    "timing__days_since_last_purchase": "recency_days",
    "timing__share_night": "share_night",
    "timing__share_morning": "share_morning",
    "timing__share_afternoon": "share_afternoon",
    "timing__share_evening": "share_evening",
    "timing__weekend_share": "weekend_share",
    "timing__purchase_gap_mean_days": "purchase_gap_mean_days",
    "usage__events_365d": "events",
}


# --------------------------------------------------------------------------- memory


class PeakRss:
    """Peak resident memory per phase: VmHWM, reset after each phase where Linux allows it."""

    def __init__(self) -> None:
        self.resettable = self._reset()
        self.phases: dict[str, float] = {}

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM (Linux >= 4.0)
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status_kb(key: str) -> float | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return float(line.split()[1])
        except OSError:
            pass
        return None

    def current_mb(self) -> float:
        kb = self._status_kb("VmRSS")
        return round(kb / 1024, 1) if kb is not None else float("nan")

    def end_phase(self, name: str) -> float:
        """Records the peak since the last phase ended (or since start) and starts a new phase."""
        kb = self._status_kb("VmHWM")
        if kb is None:  # not Linux: ru_maxrss, cumulative (KiB on Linux, bytes on macOS)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kb = peak / 1024 if sys.platform == "darwin" else peak
        self.phases[name] = round(kb / 1024, 1)
        if self.resettable:
            self._reset()
        return self.phases[name]

    def peak_mb(self) -> float:
        return max(self.phases.values())


def _say(text: str) -> None:
    print(f"[bench]   {text}", file=sys.stderr, flush=True)


def _timed(fn: Any, repeat: int) -> tuple[Any, list[float], list[float]]:
    """Runs fn `repeat` times; returns the last result, every wall time and every CPU time in seconds.

    CPU time is this process's, summed over its threads (DuckDB's included): on a shared machine it
    moves much less with other work than wall time does.
    """
    seconds, cpu, out = [], [], None
    for _ in range(repeat):
        out = None
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds.append(round(time.perf_counter() - start, 3))
        cpu.append(round(time.process_time() - start_cpu, 3))
        _say(f"run {len(seconds)}/{repeat}: {seconds[-1]:.2f}s wall, {cpu[-1]:.2f}s CPU, load {os.getloadavg()[0]:.1f}")
    return out, seconds, cpu


# --------------------------------------------------------------------------- data


def dataset_dir(customers: int, days: int, seed: int) -> Path:
    return CACHE / f"sim-c{customers}-d{days}-s{seed}"


def run_simulate(folder: Path, customers: int, days: int, seed: int) -> dict[str, Any]:
    from pipeline.simulate import SimulateConfig, simulate, write_simulation

    start = time.perf_counter()
    sim = simulate(SimulateConfig(customers=customers, days=days, seed=seed))
    write_simulation(sim, folder)  # simulation.json last: its presence marks a complete folder
    return {"seconds": round(time.perf_counter() - start, 2), "events": len(sim.events)}


def cutoff_after(events: pd.DataFrame) -> pd.Timestamp:
    """The day after the last event (UTC midnight), as `python -m pipeline features` defaults to."""
    from pipeline.featurize import parse_cutoff

    return parse_cutoff(None, events)


# --------------------------------------------------------------------------- variants


def run_project(folder: Path, repeat: int, out_frame: Path) -> dict[str, Any]:
    from features.build import build_features
    from features.config import FeaturesConfig
    from pipeline.config import load_params
    from pipeline.data import load_dataset
    from pipeline.engine import connect, register, release_unused_memory

    rss = PeakRss()
    rss.end_phase("imports")
    params = load_params(None, [])  # cwd is the repo root: its params.yaml (default data settings)
    start = time.perf_counter()
    dataset = load_dataset(str(folder), params)
    load_seconds = round(time.perf_counter() - start, 3)
    rss.end_phase("load_dataset")
    _say(f"project: load_dataset {load_seconds:.1f}s")
    cutoff = cutoff_after(dataset.events)
    n_events, counts = len(dataset.events), dataset.report.counts()

    con = connect("duckdb")
    start = time.perf_counter()
    events = register(con, "events", dataset.events)
    customers = register(con, "customers", dataset.customers) if dataset.customers is not None else None
    catalog = register(con, "catalog", dataset.catalog) if dataset.catalog is not None else None
    register_seconds = round(time.perf_counter() - start, 3)
    # As `python -m pipeline features` does: DuckDB holds its own copy, so the pandas one is let go.
    del dataset
    release_unused_memory()
    rss.end_phase("register")
    rss_before_build = rss.current_mb()

    config = FeaturesConfig()
    result, seconds, cpu = _timed(
        lambda: build_features(events, cutoff, config, customers=customers, catalog=catalog), repeat
    )
    rss.end_phase("build_features")
    result.frame.reset_index().to_parquet(out_frame, index=False)
    # The same families as the pandas variant computes (timing and value), for a like-for-like time.
    subset = FeaturesConfig(enabled=["timing", "value"])
    _, subset_seconds, subset_cpu = _timed(
        lambda: build_features(events, cutoff, subset, customers=customers, catalog=catalog), repeat
    )
    rss.end_phase("build_features_timing_value_only")
    return {
        "events": n_events,
        "cutoff": cutoff.isoformat(),
        "seconds_all": seconds,
        "cpu_seconds_all": cpu,
        "load_dataset_seconds": load_seconds,
        "load_dataset_counts": counts,
        "register_seconds": register_seconds,
        "timing_value_only_seconds_all": subset_seconds,
        "timing_value_only_cpu_seconds_all": subset_cpu,
        "rows": len(result.frame),
        "columns": result.frame.shape[1],
        "skipped": result.skipped,
        "rss_before_build_mb": rss_before_build,
        "phase_peak_rss_mb": rss.phases,
        "phase_peaks_are_separate": rss.resettable,
        "peak_rss_mb": rss.peak_mb(),
    }


def pandas_features(ev: pd.DataFrame, cutoff: pd.Timestamp, rfm_days: int = 365) -> pd.DataFrame:
    """The hand-written version: recency/frequency/monetary plus timing habits, one groupby per table.

    Definitions follow the project's (features/value.py, features/timing.py): UTC hours and days,
    dayparts night 0-6, morning 6-12, afternoon 12-18, evening 18-24; orders are distinct order_id
    (purchase lines without one count one each); gaps are between distinct purchase days.
    """
    ev = ev[(ev["timestamp"] < cutoff) & ev["customer_id"].notna()]
    ts = ev["timestamp"]
    hour = ts.dt.hour
    habits = pd.DataFrame(
        {
            "customer_id": ev["customer_id"],
            "timestamp": ts,
            "night": hour < 6,
            "morning": (hour >= 6) & (hour < 12),
            "afternoon": (hour >= 12) & (hour < 18),
            "evening": hour >= 18,
            "weekend": ts.dt.day_of_week >= 5,
        }
    )
    per = habits.groupby("customer_id").agg(
        events=("timestamp", "size"),
        last_event=("timestamp", "max"),
        first_event=("timestamp", "min"),
        share_night=("night", "mean"),
        share_morning=("morning", "mean"),
        share_afternoon=("afternoon", "mean"),
        share_evening=("evening", "mean"),
        weekend_share=("weekend", "mean"),
    )

    buys = ev.loc[ev["event_type"] == "purchase", ["customer_id", "timestamp", "order_id", "revenue"]]
    buys = buys.assign(
        no_order=buys["order_id"].isna(),
        in_rfm=buys["timestamp"] >= cutoff - pd.Timedelta(days=rfm_days),
    )
    by = buys.groupby("customer_id")
    last_buy = by["timestamp"].max()
    orders_lifetime = by["order_id"].nunique() + by["no_order"].sum()
    gross = by["revenue"].sum()
    recent = buys[buys["in_rfm"]].groupby("customer_id")
    frequency = recent["order_id"].nunique() + recent["no_order"].sum()
    monetary = recent["revenue"].sum()
    returned = ev.loc[ev["event_type"] == "return"].groupby("customer_id")["revenue"].sum()

    days = buys[["customer_id"]].assign(day=(buys["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1))
    days = days.drop_duplicates().sort_values(["customer_id", "day"])
    gap_mean = days.assign(gap=days.groupby("customer_id")["day"].diff()).groupby("customer_id")["gap"].mean()

    def days_before(stamp: pd.Series) -> pd.Series:
        return (cutoff - stamp).dt.total_seconds() / 86400

    out = pd.DataFrame(index=per.index)
    out["recency_days"] = days_before(last_buy).reindex(out.index)
    out["frequency"] = frequency.reindex(out.index, fill_value=0)
    out["orders_lifetime"] = orders_lifetime.reindex(out.index, fill_value=0)
    out["monetary_gross"] = monetary.reindex(out.index, fill_value=0.0)
    out["historic_value"] = gross.reindex(out.index, fill_value=0.0) - returned.reindex(out.index, fill_value=0.0)
    out["avg_order_value"] = gross.reindex(out.index) / orders_lifetime.reindex(out.index)
    out["days_since_last_event"] = days_before(per["last_event"])
    out["days_since_first_event"] = days_before(per["first_event"])
    for col in ("share_night", "share_morning", "share_afternoon", "share_evening", "weekend_share", "events"):
        out[col] = per[col]
    out["purchase_gap_mean_days"] = gap_mean.reindex(out.index)
    return out


def run_pandas(folder: Path, repeat: int, out_frame: Path) -> dict[str, Any]:
    rss = PeakRss()
    rss.end_phase("imports")
    start = time.perf_counter()
    events = pd.read_parquet(folder / "events.parquet")
    read_seconds = round(time.perf_counter() - start, 3)
    rss.end_phase("read_parquet")
    cutoff = cutoff_after(events)
    frame, seconds, cpu = _timed(lambda: pandas_features(events, cutoff), repeat)
    rss.end_phase("features")
    frame.reset_index().to_parquet(out_frame, index=False)
    return {
        "events": len(events),
        "cutoff": cutoff.isoformat(),
        "seconds_all": seconds,
        "cpu_seconds_all": cpu,
        "read_parquet_seconds": read_seconds,
        "rows": len(frame),
        "columns": frame.shape[1],
        "phase_peak_rss_mb": rss.phases,
        "phase_peaks_are_separate": rss.resettable,
        "peak_rss_mb": rss.peak_mb(),
    }


def run_duckdb_scan(folder: Path, repeat: int) -> dict[str, Any]:
    import duckdb

    rss = PeakRss()
    rss.end_phase("imports")
    path = str(folder / "events.parquet")
    con = duckdb.connect()
    sql = (
        "SELECT customer_id, count(*) AS events, max(timestamp) AS last_event "
        "FROM read_parquet(?) GROUP BY customer_id"
    )
    frame, seconds, cpu = _timed(lambda: con.execute(sql, [path]).df(), repeat)
    rss.end_phase("scan")
    return {
        "events": int(frame["events"].sum()),
        "seconds_all": seconds,
        "cpu_seconds_all": cpu,
        "rows": len(frame),
        "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
        "phase_peak_rss_mb": rss.phases,
        "phase_peaks_are_separate": rss.resettable,
        "peak_rss_mb": rss.peak_mb(),
    }


def run_csv_load(folder: Path) -> dict[str, Any]:
    """Times load_dataset on a CSV export of the events: every timestamp and number is text to parse."""
    import duckdb

    from pipeline.config import load_params
    from pipeline.data import load_dataset

    csv_folder = folder / "csv"
    if not (csv_folder / "events.csv").is_file():
        csv_folder.mkdir(exist_ok=True)
        partial = csv_folder / "events.csv.partial"
        with duckdb.connect() as con:
            con.execute(f"COPY (FROM read_parquet('{folder / 'events.parquet'}')) TO '{partial}' (HEADER)")
        partial.rename(csv_folder / "events.csv")
    rss = PeakRss()
    rss.end_phase("imports")
    start = time.perf_counter()
    dataset = load_dataset(str(csv_folder / "events.csv"), load_params(None, []))
    seconds = round(time.perf_counter() - start, 3)
    rss.end_phase("load_dataset")
    return {
        "events": len(dataset.events),
        "csv_mb": round((csv_folder / "events.csv").stat().st_size / 2**20, 1),
        "load_dataset_seconds": seconds,
        "events_frame_mb": round(dataset.events.memory_usage(deep=True).sum() / 2**20, 1),
        "phase_peak_rss_mb": rss.phases,
        "peak_rss_mb": rss.peak_mb(),
    }


def _jvm_peak_mb() -> float | None:
    """The peak RSS of this process's Java descendants (Spark's driver JVM in local mode), in MB."""
    peaks, family, pending = [], [], [str(os.getpid())]
    while pending:
        children = subprocess.run(["pgrep", "-P", pending.pop()], capture_output=True, text=True, check=False)
        pending += children.stdout.split()
        family += children.stdout.split()
    for pid in family:
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next((float(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0.0)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"java" in f.read():
                    peaks.append(kb / 1024)
        except OSError:
            continue
    return round(max(peaks), 1) if peaks else None


def run_spark(folder: Path) -> dict[str, Any]:
    """Builds every feature on a local Spark session from the registered tables, as engine: spark does."""
    from features.build import build_features
    from features.config import FeaturesConfig
    from pipeline.config import load_params
    from pipeline.data import load_dataset
    from pipeline.engine import connect, register, release_unused_memory

    rss = PeakRss()
    params = load_params(None, ["run.engine=spark"])
    dataset = load_dataset(str(folder), params)
    cutoff = cutoff_after(dataset.events)
    n_events = len(dataset.events)
    rss.end_phase("load_dataset")
    start = time.perf_counter()
    con = connect("spark", params.run.spark_master, params.run.spark_conf)
    start_seconds = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    tables = {name: register(con, name, frame, params.run.spark_staging_dir)
              for name, frame in (("events", dataset.events), ("customers", dataset.customers),
                                  ("catalog", dataset.catalog)) if frame is not None}
    register_seconds = round(time.perf_counter() - start, 3)
    del dataset
    release_unused_memory()
    rss.end_phase("register")
    (result,), seconds, cpu = _timed(
        lambda: (build_features(tables["events"], cutoff, FeaturesConfig(), customers=tables.get("customers"),
                                catalog=tables.get("catalog")),), 1)
    rss.end_phase("build_features")
    duck = pd.read_parquet(folder / "bench_project_features.parquet").set_index("customer_id")
    frame = result.frame
    worst = 0.0
    for column in duck.columns:
        a, b = frame[column].reindex(duck.index), duck[column]
        if not pd.api.types.is_numeric_dtype(b):
            worst = max(worst, float(((a != b) & ~(a.isna() & b.isna())).any()))
            continue
        a, b = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b) / np.maximum(1.0, np.abs(np.nan_to_num(b))))
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return {
        "events": n_events,
        "master": params.run.spark_master,
        "session_start_seconds": start_seconds,
        "register_seconds": register_seconds,
        "seconds_all": seconds,
        "cpu_seconds_all": cpu,
        "rows": len(frame),
        "columns": frame.shape[1],
        "same_customers_as_duckdb": bool(frame.index.sort_values().equals(duck.index.sort_values())),
        "max_relative_difference_from_duckdb": worst,
        "phase_peak_rss_mb": rss.phases,
        "peak_rss_mb": rss.peak_mb(),
        "jvm_peak_rss_mb": _jvm_peak_mb(),
    }


def run_profile(folder: Path) -> dict[str, Any]:
    """Per family: time of its query alone (to Arrow) and of the Arrow -> pandas conversion; plus the rest."""
    from features.build import (
        build_context,
        build_features,
        events_before,
        family_catalog,
        utc_cutoff,
    )
    from features.config import FeaturesConfig
    from features.registry import FAMILIES
    from pipeline.engine import connect, register

    # In load_dataset's row order (by time), which lets DuckDB skip row groups outside a window.
    events_df = pd.read_parquet(folder / "events.parquet").sort_values(["timestamp", "customer_id"], kind="stable")
    cutoff = cutoff_after(events_df)
    con = connect("duckdb")
    events = register(con, "events", events_df)
    customers = register(con, "customers", pd.read_parquet(folder / "customers.parquet"))
    catalog = register(con, "catalog", pd.read_parquet(folder / "catalog.parquet"))
    del events_df
    gc.collect()
    config = FeaturesConfig()
    moment = utc_cutoff(cutoff)
    before = events_before(events, moment)
    start = time.perf_counter()
    ctx = build_context(before, moment, customers=customers, catalog=catalog)
    out: dict[str, Any] = {"context_query_seconds": round(time.perf_counter() - start, 3), "families": {}}
    for name, family in FAMILIES.items():
        section = config.section(name)
        if family.missing_inputs(ctx) is not None:
            continue
        expr = family.build(before, ctx, section)
        start, start_cpu = time.perf_counter(), time.process_time()
        arrow = con.to_pyarrow(expr)
        query, query_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        start = time.perf_counter()
        arrow.to_pandas()
        convert = time.perf_counter() - start
        out["families"][name] = {
            "query_seconds": round(query, 3),
            "query_cpu_seconds": round(query_cpu, 3),
            "to_pandas_seconds": round(convert, 3),
            "columns": len(family_catalog(family, section, ctx)),
        }
    start = time.perf_counter()
    build_features(events, cutoff, config, customers=customers, catalog=catalog)
    out["build_features_seconds"] = round(time.perf_counter() - start, 3)
    out["sum_of_family_queries_seconds"] = round(sum(f["query_seconds"] for f in out["families"].values()), 3)
    return out


# --------------------------------------------------------------------------- driver


def parity(project_frame: Path, pandas_frame: Path) -> dict[str, Any]:
    """Compares the columns both implementations make, customer by customer."""
    proj = pd.read_parquet(project_frame).set_index("customer_id")
    hand = pd.read_parquet(pandas_frame).set_index("customer_id")
    hand.index = hand.index.astype(str)
    same_population = bool(proj.index.sort_values().equals(hand.index.sort_values()))
    hand = hand.reindex(proj.index)
    columns: dict[str, Any] = {}
    for ours, theirs in PARITY.items():
        a = proj[ours].astype("float64").to_numpy()
        b = hand[theirs].astype("float64").to_numpy()
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)  # empty on one side only
        scale = np.maximum(1.0, np.abs(np.nan_to_num(b)))
        ok = bool((diff <= TOLERANCE * scale).all())
        columns[ours] = {"pandas_column": theirs, "max_abs_diff": float(diff.max()), "empty": int(both_nan.sum()),
                         "ok": ok}
    return {
        "tolerance": f"|project - pandas| <= {TOLERANCE} * max(1, |pandas|), empty on both sides counts as equal",
        "same_customers": same_population,
        "customers": len(proj),
        "columns": columns,
        "ok": same_population and all(c["ok"] for c in columns.values()),
    }


def _code_state() -> dict[str, Any]:
    """The commit measured and the files under features/ and pipeline/ changed on top of it (if git is there)."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    # Not stripped: a porcelain line starts with a status column that may be a space (" M path").
    changed = git("status", "--porcelain", "--", "features", "pipeline").splitlines()
    return {"commit": git("rev-parse", "HEAD").strip(), "uncommitted_changes": [line[3:] for line in changed]}


def _child(args: argparse.Namespace, variant: str, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--data", str(args.data),
               "--repeat", str(args.repeat), "--result", str(result), *extra]
        print(f"[bench] {variant} ...", file=sys.stderr, flush=True)
        before = [round(x, 2) for x in os.getloadavg()]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        out = json.loads(result.read_text(encoding="utf-8"))
        out["load_average_before"] = before  # 1, 5, 15 min: other work on the machine skews the times
        print(f"[bench] {variant} done in {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
        return out


def _summary(raw: dict[str, Any], events: int) -> dict[str, Any]:
    best = min(raw["seconds_all"])
    return {"seconds": best, "seconds_median": round(statistics.median(raw["seconds_all"]), 3),
            "cpu_seconds": min(raw["cpu_seconds_all"]), "events_per_second": round(events / best), **raw}


def markdown(result: dict[str, Any]) -> str:
    v, r, t = result["variants"], result["ratios"], result["targets"]
    rows = [
        ("project: build_features, all families (DuckDB)", v["project"]),
        ("pandas by hand: RFM + timing subset", v["pandas"]),
        ("bare DuckDB scan of the Parquet (count, max per customer)", v["duckdb_scan"]),
    ]
    d = result["dataset"]
    title = (
        f"Feature build, {d['events']:,} events, {d['customers']:,} customers ({d['active_customers']:,} with "
        f"events), cutoff {d['cutoff'][:10]}, best of {result['repeat']}"
    )
    lines = [title, "", "| variant | wall time (s) | CPU time (s) | events/s | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {name} | {x['seconds']:.2f} | {x['cpu_seconds']:.2f} | {x['events_per_second']:,} | {x['peak_rss_mb']:,.0f} |"
        for name, x in rows
    ]
    p = v["project"]
    like = (
        "Like for like: the project building only timing + value (the families the pandas variant mirrors) "
        f"takes {min(p['timing_value_only_seconds_all']):.2f} s ({min(p['timing_value_only_cpu_seconds_all']):.2f} s "
        f"CPU), pandas/project = {r['pandas_vs_project_timing_value_only']:.2f}x."
    )
    outside = (
        f"Project, outside the timed build: load_dataset {p['load_dataset_seconds']:.1f} s, register "
        f"{p['register_seconds']:.1f} s (end to end {r['project_end_to_end_seconds']:.1f} s); "
        f"phase peaks (MB) {p['phase_peak_rss_mb']}."
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    build_peak = p["phase_peak_rss_mb"]["build_features"]
    parity = result["parity"]
    lines += [
        "",
        like,
        "",
        outside,
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
    ]
    checks = [
        ("project within 3x of the bare scan", f"{r['project_vs_scan']:.1f}x",
         verdict(t["project_within_3x_of_scan"])),
        ("project at least 10x faster than pandas", f"{r['pandas_vs_project']:.2f}x",
         verdict(t["project_10x_faster_than_pandas"])),
        ("project peak RSS at most 2 GB (whole process: load + register + build)", f"{p['peak_rss_mb']:,.0f} MB",
         verdict(t["project_peak_rss_le_2gb"])),
        ("project peak RSS during build_features only", f"{build_peak:,.0f} MB",
         verdict(t["project_build_phase_rss_le_2gb"])),
        (f"project and pandas agree on {len(parity['columns'])} shared columns (1e-6)",
         f"{parity['customers']:,} customers", "yes" if parity["ok"] else "NO"),
    ]
    lines += [f"| {what} | {measured} | {outcome} |" for what, measured, outcome in checks]
    load = ", ".join(f"{name} {x['load_average_before'][0]:.1f}" for name, x in v.items())
    machine = (
        f"Machine: {result['machine']['cpus']} CPUs; 1-min load average before each variant: {load} "
        "(other work on the machine slows every variant)."
    )
    lines += ["", machine]
    if "csv_load" in result:
        c = result["csv_load"]
        csv_line = (f"load_dataset on a CSV export of the same events ({c['csv_mb']:,.0f} MB, every cell text): "
                    f"{c['load_dataset_seconds']:.1f} s, peak RSS {c['peak_rss_mb']:,.0f} MB; validated events "
                    f"frame {c['events_frame_mb']:,.0f} MB.")
        lines += ["", csv_line]
    if "spark" in result:
        k = result["spark"]
        spark_line = (f"Spark ({k['master']}, default settings, one run): hand-over {k['register_seconds']:.1f} s, "
                      f"build {min(k['seconds_all']):.1f} s ({min(k['cpu_seconds_all']):.1f} s CPU in Python); "
                      f"driver peak {k['peak_rss_mb']:,.0f} MB, JVM peak {k['jvm_peak_rss_mb'] or float('nan'):,.0f} MB; "
                      f"largest relative difference from DuckDB {k['max_relative_difference_from_duckdb']:.1e}.")
        lines += ["", spark_line]
    if "profile" in result:
        prof = result["profile"]
        lines += ["", "| family (profile, alone) | query (s) | query CPU (s) | to pandas (s) | columns |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {f['query_seconds']:.2f} | {f['query_cpu_seconds']:.2f} | {f['to_pandas_seconds']:.2f} | "
                  f"{f['columns']} |"
                  for n, f in sorted(prof["families"].items(), key=lambda kv: -kv[1]["query_seconds"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers to simulate (default 100000)")
    parser.add_argument("--days", type=int, default=365, help="days to simulate (default 365)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per variant; the best is reported (default 3)"
    )
    parser.add_argument("--profile", action="store_true", help="also time each feature family's query on its own")
    parser.add_argument("--csv", action="store_true", help="also time load_dataset on a CSV export of the events")
    parser.add_argument("--spark", action="store_true", help="also build the features on a local Spark session")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON result")
    parser.add_argument("--variant", choices=(*VARIANTS, "simulate", "profile", "csv_load", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.variant is not None:  # a child: run one variant, write its JSON
        folder = args.data
        if args.variant == "simulate":
            out = run_simulate(folder, args.customers, args.days, args.seed)
        elif args.variant == "project":
            out = run_project(folder, args.repeat, folder / "bench_project_features.parquet")
        elif args.variant == "pandas":
            out = run_pandas(folder, args.repeat, folder / "bench_pandas_features.parquet")
        elif args.variant == "duckdb_scan":
            out = run_duckdb_scan(folder, args.repeat)
        elif args.variant == "csv_load":
            out = run_csv_load(folder)
        elif args.variant == "spark":
            out = run_spark(folder)
        else:
            out = run_profile(folder)
        out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        args.result.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        return 0

    args.data = dataset_dir(args.customers, args.days, args.seed)
    simulated = None
    if not (args.data / "simulation.json").is_file():
        simulated = _child(args, "simulate", ["--customers", str(args.customers), "--days", str(args.days),
                                              "--seed", str(args.seed)])
    raw = {v: _child(args, v, []) for v in VARIANTS}
    events = raw["project"]["events"]
    if raw["pandas"]["events"] != events or raw["duckdb_scan"]["events"] != events:
        raise SystemExit(f"variants saw different event counts: { {v: r['events'] for v, r in raw.items()} }")
    variants = {v: _summary(r, events) for v, r in raw.items()}
    proj, hand, scan = variants["project"], variants["pandas"], variants["duckdb_scan"]
    ratios = {
        "project_vs_scan": round(proj["seconds"] / scan["seconds"], 2),
        "pandas_vs_project": round(hand["seconds"] / proj["seconds"], 2),
        "project_incl_register_vs_scan": round((proj["seconds"] + proj["register_seconds"]) / scan["seconds"], 2),
        "pandas_vs_project_timing_value_only": round(hand["seconds"] / min(proj["timing_value_only_seconds_all"]), 3),
        "project_end_to_end_seconds": round(proj["load_dataset_seconds"] + proj["register_seconds"] + proj["seconds"], 2),
    }
    targets = {
        "project_within_3x_of_scan": ratios["project_vs_scan"] <= TARGETS["project_vs_scan_max"],
        "project_10x_faster_than_pandas": ratios["pandas_vs_project"] >= TARGETS["pandas_vs_project_min"],
        "project_peak_rss_le_2gb": proj["peak_rss_mb"] <= TARGETS["peak_rss_max_mb"],
        "project_build_phase_rss_le_2gb": proj["phase_peak_rss_mb"]["build_features"] <= TARGETS["peak_rss_max_mb"],
    }
    import duckdb
    import ibis

    result: dict[str, Any] = {
        "dataset": {
            "customers": args.customers,
            "days": args.days,
            "seed": args.seed,
            "events": events,
            "active_customers": proj["rows"],
            "cutoff": proj["cutoff"],
            "events_parquet_mb": round((args.data / "events.parquet").stat().st_size / 2**20, 1),
            "cache": str(args.data.relative_to(ROOT)),
            "simulated_now": simulated,
        },
        "repeat": args.repeat,
        "timing": "wall seconds of the timed part, best of `repeat` runs; events/s = all events / best seconds",
        "variants": variants,
        "ratios": ratios,
        "target_limits": TARGETS,
        "targets": targets,
        "parity": parity(args.data / "bench_project_features.parquet", args.data / "bench_pandas_features.parquet"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "ibis": ibis.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "code": _code_state(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if args.profile:
        result["profile"] = _child(args, "profile", [])
    if args.csv:
        result["csv_load"] = _child(args, "csv_load", [])
    if args.spark:
        result["spark"] = _child(args, "spark", [])
    from pipeline.io import write_text_atomic

    write_text_atomic(json.dumps(result, indent=2) + "\n", args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
