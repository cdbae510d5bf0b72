"""Measures purchase and churn propensity on real data out of time and writes bench/results/<dataset>.json.

For each real dataset present in ../shared/data that has a params file under examples/, the
product runs as `python -m pipeline train --params examples/<dataset>.yaml` does, with the same
functions: load_dataset -> snapshot_cutoffs -> make_training_frame (features see only events
before each cutoff, labels only the horizon after it) -> check_eligibility -> tune_and_fit (the
latest snapshot is the out-of-time test, the one before it validation). On the same test customers
it reports ROC-AUC, Brier and top-decile lift of the tuned, calibrated model and of two baselines
from models.baselines: the recency rank (days since the last event) and the RFM score. A baseline
is a score, not a probability: for its Brier and lift it is turned into one by a one-input logistic
regression fitted on the earlier snapshots (monotone, so its AUC is the rank's AUC).

With --origins N the test is repeated at the N latest snapshots (rolling origin: for each, the later
snapshots are dropped), so one lucky cutoff does not make the result.

Usage: python bench/bench_real.py [--data-dir ../shared/data] [--datasets online_retail] [--trials 25] [--origins 2]
A dataset whose file is absent is skipped with a message; with none present the script exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import lightgbm
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.labels import make_training_frame, snapshot_cutoffs
from models.baselines import baseline_scores
from models.bundle import TARGETS
from models.propensity import NotEligibleError, check_eligibility, evaluate, tune_and_fit
from pipeline.config import Params, load_params
from pipeline.data import load_dataset
from pipeline.engine import connect, register
from pipeline.io import write_text_atomic
from pipeline.train import CUTOFF, feature_columns

DATA_DIR = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
# dataset name -> (file in the data folder, params file of its example)
DATASETS: dict[str, tuple[str, Path]] = {
    "online_retail": ("online_retail.csv.gz", ROOT / "examples" / "online_retail.yaml"),
}
METRICS = ("roc_auc", "brier", "top_decile_lift")
log = logging.getLogger("bench_real")


def _r(value: Any, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), digits)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def baseline_probabilities(earlier: pd.DataFrame, test: pd.DataFrame, target: str) -> dict[str, dict[str, Any]]:
    """Returns each baseline's test probabilities from a logistic regression on its score in `earlier`.

    `earlier` holds the labelled rows of the snapshots before the test one, `test` the test customers'
    features; both carry the baseline input columns. The slope is kept to show the score's direction
    held (a positive slope keeps the rank, so the AUC is the score's own).
    """
    train_scores = baseline_scores(earlier, target)
    y_train = earlier[target].astype(float).to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for name, score in baseline_scores(test, target).items():
        fit = LogisticRegression().fit(train_scores[name].to_numpy(dtype=float)[:, None], y_train)
        p = fit.predict_proba(score.to_numpy(dtype=float)[:, None])[:, 1]
        out[name] = {"p": p, "slope": float(fit.coef_[0, 0])}
    return out


def evaluate_origin(frame: pd.DataFrame, inputs: list[str], params: Params, history_days: float) -> dict[str, Any]:
    """Tunes and tests both targets on a stacked frame whose latest snapshot is the test; returns metrics."""
    config = params.models.propensity
    snapshots = sorted(pd.unique(frame.index.get_level_values(CUTOFF)))
    out: dict[str, Any] = {}
    for target in TARGETS:
        started = time.perf_counter()
        try:  # the same gate as pipeline.train
            check_eligibility(frame[target].dropna().astype(float), history_days, len(snapshots), config, target)
            result = tune_and_fit(frame, target, inputs, config, params.run.seed)
        except NotEligibleError as exc:
            out[target] = {"skipped": str(exc)}
            _say(f"  {target}: skipped: {exc}")
            continue
        preds = result.test_predictions
        y = preds[target].to_numpy(dtype=float)
        test_cutoff = pd.Timestamp(result.test_cutoff)
        test = frame.xs(test_cutoff, level=CUTOFF).loc[preds.index]
        earlier = frame[frame.index.get_level_values(CUTOFF) < test_cutoff]
        earlier = earlier[earlier[target].notna()]
        row: dict[str, Any] = {
            "test_cutoff": str(test_cutoff.date()),
            "train_cutoffs": [str(pd.Timestamp(c).date()) for c in result.train_cutoffs],
            "valid_cutoff": str(pd.Timestamp(result.valid_cutoff).date()),
            "n_train": result.train_size,
            "n_valid": result.valid_size,
            "n_test": result.test_size,
            "base_rate": _r(y.mean()),
            "trials": result.n_trials_done,
            "calibration": result.calibration,
            "model": {m: _r(result.metrics[m]) for m in METRICS}
            | {"brier_uncalibrated": _r(result.metrics["brier_uncalibrated"]), "pr_auc": _r(result.metrics["pr_auc"])},
            # Brier of predicting the test base rate to everyone: what any probability must beat.
            "base_rate_brier": _r(y.mean() * (1 - y.mean())),
        }
        for name, base in baseline_probabilities(earlier, test, target).items():
            metrics = evaluate(y, base["p"], config=config)
            row[name] = {m: _r(metrics[m]) for m in METRICS} | {"slope": _r(base["slope"], 6)}
        row["seconds"] = round(time.perf_counter() - started, 1)
        out[target] = row
        _say(f"  {target} @ {row['test_cutoff']}: model AUC {row['model']['roc_auc']}, recency "
             f"{row.get('recency', {}).get('roc_auc')}, RFM {row.get('rfm', {}).get('roc_auc')} ({row['seconds']} s)")
    return out


def run_dataset(name: str, data_path: Path, params: Params, origins: int) -> dict[str, Any]:
    """Runs the product on one dataset and returns its out-of-time results at each origin."""
    started = time.perf_counter()
    dataset = load_dataset(str(data_path), params)
    events = dataset.events
    first, last = events["timestamp"].min(), events["timestamp"].max()
    history_days = (last - first).total_seconds() / 86400
    cutoffs = snapshot_cutoffs(last, params.labels)
    load_seconds = round(time.perf_counter() - started, 1)
    _say(f"{name}: {len(events):,} events of {events['customer_id'].nunique():,} customers "
         f"(loaded in {load_seconds} s); cutoffs {[str(c.date()) for c in cutoffs]}")

    t0 = time.perf_counter()
    con = connect(params.run.engine, params.run.spark_master)
    ev = register(con, "events", events)
    cu = register(con, "customers", dataset.customers) if dataset.customers is not None else None
    ca = register(con, "catalog", dataset.catalog) if dataset.catalog is not None else None
    frame = make_training_frame(ev, cutoffs, params.features, params.labels, customers=cu, catalog=ca)
    inputs = feature_columns(frame)
    frame_seconds = round(time.perf_counter() - t0, 1)

    results: dict[str, Any] = {}
    for k in range(origins):
        kept = cutoffs[: len(cutoffs) - k]
        if len(kept) < params.models.propensity.min_snapshots:
            _say(f"  origin {k + 1}: only {len(kept)} snapshot(s) left, stopping")
            break
        sub = frame[frame.index.get_level_values(CUTOFF).isin(kept)]
        results[str(kept[-1].date())] = evaluate_origin(sub, inputs, params, history_days)
    return {
        "data_file": str(data_path.name),
        "params_file": str(DATASETS[name][1].relative_to(ROOT)),
        "validation": dataset.report.counts(),
        "events": int(len(events)),
        "customers": int(events["customer_id"].nunique()),
        "first_event": str(first),
        "last_event": str(last),
        "labels": params.labels.model_dump(mode="json"),
        "cutoffs": [str(c.date()) for c in cutoffs],
        "features": len(inputs),
        "training_rows": int(len(frame)),
        "load_seconds": load_seconds,
        "frame_seconds": frame_seconds,
        "origins": results,
        "summary": summarise(results),
        "seconds": round(time.perf_counter() - started, 1),
    }


def summarise(origins: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Returns each target's metrics (model and baselines) averaged over the test origins."""
    out: dict[str, Any] = {}
    for target in TARGETS:
        rows = [o[target] for o in origins.values() if "model" in o.get(target, {})]
        if not rows:
            continue
        out[target] = {
            who: {m: _r(np.mean([row[who][m] for row in rows if row[who][m] is not None])) for m in METRICS}
            for who in ("model", "recency", "rfm") if all(who in row for row in rows)
        }
        out[target]["origins"] = len(rows)
    return out


def markdown(name: str, result: dict[str, Any]) -> str:
    lines = [f"{name}: {result['events']:,} events, {result['customers']:,} customers, test cutoffs "
             f"{', '.join(result['origins'])}", "",
             "| test cutoff | target | base rate | model AUC / Brier / lift | recency rank | RFM score |",
             "|---|---|---:|---:|---:|---:|"]
    for origin, targets in result["origins"].items():
        for target in TARGETS:
            row = targets.get(target, {})
            if "model" not in row:
                lines.append(f"| {origin} | {target} | skipped | | | |")
                continue
            cells = " | ".join(
                f"{row[who]['roc_auc']:.3f} / {row[who]['brier']:.3f} / {row[who]['top_decile_lift']:.2f}"
                for who in ("model", "recency", "rfm"))
            lines.append(f"| {origin} | {target} | {row['base_rate']:.3f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"folder of the real datasets (default {DATA_DIR})")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS), help="which datasets")
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials per target (default: the example's)")
    parser.add_argument("--origins", type=int, default=2, help="test at this many latest snapshots (default 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the example's params (repeatable), as with the CLI")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where to write <dataset>.json")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ran = 0
    for name in args.datasets:
        file, params_file = DATASETS[name]
        data_path = args.data_dir / file
        if not data_path.is_file():
            _say(f"{name}: skipped, {data_path} is absent (see the data folder's README for what it should hold)")
            continue
        overrides = list(args.overrides) + ([f"models.propensity.n_trials={args.trials}"] if args.trials else [])
        params = load_params(params_file, overrides)
        load_before = _load()
        result = run_dataset(name, data_path, params, args.origins)
        result.update({
            "overrides": overrides,
            "load_average_1m": {"start": load_before, "end": _load()},
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "lightgbm": lightgbm.__version__,
            "pandas": pd.__version__,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })
        write_text_atomic(json.dumps(result, indent=2) + "\n", args.out_dir / f"{name}.json")
        print(markdown(name, result))
        ran += 1
    if not ran:
        _say(f"no real dataset found under {args.data_dir}: nothing measured")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
