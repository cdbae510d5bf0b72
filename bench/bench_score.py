"""Times batch scoring (features -> scores file) at a million customers, with and without reason codes.

    python bench/bench_score.py                     # 1M customers without reasons; ~90k distinct ones with
    python bench/bench_score.py --customers 20000 --out /tmp/score.json   # quicker

What is measured: the scoring stage of `pipeline score`, i.e. pipeline.score.score_frame (persona,
purchase and churn propensity with percentiles and buckets, journey stage, rule segments, reason
codes) streamed through pipeline.score.write_scores into one Parquet file, in chunks of
scoring.chunk_size customers. Feature building is benchmarked apart (bench_features.py).

How: a bundle is trained once on 3,000 simulated customers x 365 days (the product's own `train`,
small tuning, into a throwaway MLflow store under bench/.cache/) and the features of those customers
at the day after the last event are cached. Each variant runs in its own subprocess (so its peak RSS
is its own): it loads the bundle, builds its input frame and scores it.

- Without reason codes, the input is the cached feature rows resampled with replacement to N
  customers with new ids (a real feature distribution, at any N).
- With reason codes, the input is every customer of a separate 100,000-customer simulation (same
  settings, another seed), each once: reason codes come from models.treeshap, which explains each
  tree once per distinct decision pattern, so rows resampled from 3,000 customers would flatter it.
  Scoring runs in chunks of scoring.chunk_size customers, so the rate holds at larger N.

Peak RSS is the process high-water mark (VmHWM) while scoring, reset once the input frame is built,
so it holds the bundle, the input frame (whose own size is reported next to it) and the scoring;
the setup's peak (reading and resampling) is reported apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
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

from bench.bench_features import PeakRss

CACHE = ROOT / "bench" / ".cache" / "score"
RESULTS = ROOT / "bench" / "results" / "score.json"
TARGETS = {"no_reasons_per_s_min": 50_000, "reasons_per_s_min": 10_000, "peak_rss_mb_max_at_1m": 4096}
TRAIN_SETTINGS = [
    "models.propensity.n_trials=5",
    "models.propensity.min_positives=100",
    "models.propensity.min_negatives=100",
    "models.personas.bootstrap_resamples=2",
    "run.reference_time=2030-01-01",
]


DISTINCT = {"customers": 100_000, "days": 365, "seed": 6}


def prepare() -> tuple[str, Path]:
    """Trains the bundle and caches the base features once; returns (tracking URI, features file)."""
    from pipeline.config import load_params
    from pipeline.data import load_dataset
    from pipeline.featurize import features_for, parse_cutoff
    from pipeline.simulate import SimulateConfig, simulate, write_simulation
    from pipeline.train import train

    CACHE.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{CACHE / 'mlflow.db'}"
    data = CACHE / "sim"
    features_file = CACHE / "features.parquet"
    done = CACHE / ".complete"
    if done.is_file():
        return uri, features_file
    if not (data / "events.parquet").is_file():
        write_simulation(simulate(SimulateConfig(customers=3000, days=365, seed=5)), data)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    params = load_params(None, TRAIN_SETTINGS)
    previous = Path.cwd()
    os.chdir(CACHE)  # MLflow artifacts land next to the store
    try:
        train(params, str(data))
    finally:
        os.chdir(previous)
    dataset = load_dataset(str(data), params)
    features = features_for(dataset, parse_cutoff(None, dataset.events), params).frame
    features.reset_index().to_parquet(features_file)
    done.write_text("ok\n")
    return uri, features_file


def prepare_distinct() -> Path:
    """Caches the features of a separate, larger simulation (every customer distinct); returns the file."""
    from pipeline.config import load_params
    from pipeline.data import load_dataset
    from pipeline.featurize import features_for, parse_cutoff
    from pipeline.simulate import SimulateConfig, simulate, write_simulation

    name = "distinct-c{customers}-d{days}-s{seed}".format(**DISTINCT)
    features_file = CACHE / f"{name}.parquet"
    if features_file.is_file():
        return features_file
    data = CACHE / name
    if not (data / "events.parquet").is_file():
        write_simulation(simulate(SimulateConfig(**DISTINCT)), data)
    params = load_params(None, TRAIN_SETTINGS)
    dataset = load_dataset(str(data), params)
    features = features_for(dataset, parse_cutoff(None, dataset.events), params).frame
    features.reset_index().to_parquet(features_file.with_suffix(".tmp"))
    features_file.with_suffix(".tmp").replace(features_file)
    return features_file


def variant(customers: int, reasons: int, chunk_size: int, uri: str, features_file: Path,
            shap_method: str = "grouped") -> dict[str, Any]:
    """Scores in this process: `customers` resampled rows without reasons, the distinct population with them."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from pipeline import tracking
    from pipeline.config import load_params
    from pipeline.score import score_frame, write_scores

    memory = PeakRss()
    params = load_params(None, TRAIN_SETTINGS)
    tracking.configure(params.tracking)
    started = time.perf_counter()
    bundle = tracking.load_bundle(params.tracking.model_name, "champion")
    bundle.use_threads(os.cpu_count() or 1)  # as `pipeline score` does by default
    if shap_method != "grouped":  # the comparison run: LightGBM's row-by-row pred_contrib
        from models.bundle import TARGETS
        from models.explain import Explainer

        for target, model in bundle.propensity.items():
            bundle._explainers[target] = Explainer(model, outcome=TARGETS[target], method=shap_method)
    load_seconds = time.perf_counter() - started

    if reasons:
        features = pd.read_parquet(prepare_distinct()).set_index("customer_id")
        customers = len(features)
    else:
        base = pd.read_parquet(features_file).set_index("customer_id")
        rng = np.random.default_rng(11)
        rows = rng.integers(0, len(base), size=customers)
        features = base.iloc[rows]  # iloc already copies
        features.index = pd.Index([f"b{i:08d}" for i in range(customers)], name="customer_id")
        del base, rows
    input_mb = features.memory_usage(deep=True).sum() / 2**20
    cutoff = pd.Timestamp("2030-01-01", tz="UTC")
    setup_peak = memory.end_phase("setup")  # from here on the high-water mark is the scoring's own

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.parquet"
        started = time.perf_counter()
        written = write_scores(score_frame(bundle, features, None, cutoff, reasons, chunk_size), out, "parquet")
        seconds = time.perf_counter() - started
        size_mb = out.stat().st_size / 2**20
    assert written == customers, (written, customers)
    patterns = _patterns_per_tree(bundle, features.iloc[:chunk_size]) if reasons and shap_method == "grouped" else None
    return {
        "customers": customers, "reasons": reasons, "chunk_size": chunk_size, "features": features.shape[1],
        "seconds": round(seconds, 2), "customers_per_s": round(customers / seconds),
        "peak_rss_mb": memory.end_phase("scoring") if memory.resettable else None, "setup_peak_rss_mb": setup_peak,
        "input_frame_mb": round(input_mb, 1),
        "output_mb": round(size_mb, 1), "bundle_load_seconds": round(load_seconds, 2),
        # TreeSHAP costs about trees x leaves x depth^2 per customer: the reason codes' price.
        "trees": {t: m.booster_.num_trees() for t, m in bundle.propensity.items()},
        "leaves": {t: int(m.num_leaves) for t, m in bundle.propensity.items()},
        "threads": os.cpu_count(),
        "shap_method": shap_method,
        "input": "distinct customers of a {customers:,}-customer simulation".format(**DISTINCT) if reasons
                 else "rows resampled from 3,000 simulated customers",
        # What grouped TreeSHAP saves: rows per chunk against distinct decision patterns per tree.
        "shap_patterns_per_tree_in_first_chunk": patterns,
    }


def _patterns_per_tree(bundle: Any, features: pd.DataFrame) -> dict[str, Any]:
    """Counts the distinct decision patterns each tree explains in one chunk (mean and max over trees)."""
    from models.explain import booster_matrix
    from models.treeshap import GroupedTreeShap

    counts: dict[str, Any] = {}
    for target, model in bundle.propensity.items():
        rows = features
        if target == "churn":
            eligible = bundle.churn_population(features)
            rows = features if eligible is None else features[eligible]
        per_tree = GroupedTreeShap(model.booster_).pattern_counts(booster_matrix(model.prepare_features(rows)))
        counts[target] = {"rows": len(rows), "mean": round(float(np.mean(per_tree))), "max": max(per_tree)}
    return counts


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_variant(customers: int, reasons: int, chunk_size: int, shap_method: str = "grouped") -> dict[str, Any]:
    """Runs one variant in a fresh interpreter so that its peak RSS is its own."""
    load_before = _load_average()
    result = subprocess.run(
        [sys.executable, __file__, "--variant", "--customers", str(customers), "--reasons", str(reasons),
         "--chunk-size", str(chunk_size), "--shap-method", shap_method], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"variant failed:\n{result.stderr[-4000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["load_average_1m_before"] = load_before
    measured["load_average_1m_after"] = _load_average()
    return measured


def markdown(result: dict[str, Any]) -> str:
    lines = ["| run | customers | reason codes | seconds | customers/s | target | peak RSS scoring (MB) | input frame (MB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in result["variants"].items():
        target = TARGETS["reasons_per_s_min"] if row["reasons"] else TARGETS["no_reasons_per_s_min"]
        lines.append(f"| {name} | {row['customers']:,} | {row['reasons']} | {row['seconds']:.1f} | "
                     f"{row['customers_per_s']:,} | >= {target:,} | {row['peak_rss_mb']:,.0f} | "
                     f"{row['input_frame_mb']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers scored without reason codes")
    parser.add_argument("--reasons", type=int, default=3, help="reason codes per model in the reasons run")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="customers per chunk (scoring.chunk_size)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default: bench/results/score.json)")
    parser.add_argument("--variant", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shap-method", default="grouped", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    uri, features_file = prepare()
    if not args.variant:
        prepare_distinct()  # outside the timed subprocesses
    if args.variant:
        print(json.dumps(variant(args.customers, args.reasons, args.chunk_size, uri, features_file, args.shap_method)))
        return 0

    from pipeline.io import write_text_atomic

    variants = {
        "without reasons": run_variant(args.customers, 0, args.chunk_size),
        "with reasons": run_variant(0, args.reasons, args.chunk_size),
        "with reasons, row-by-row TreeSHAP (method=direct)": run_variant(0, args.reasons, args.chunk_size, "direct"),
    }
    result = {
        "benchmark": "score", "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "what": "pipeline.score.score_frame + write_scores (Parquet); without reasons on resampled feature rows, "
                "with reasons on distinct simulated customers; bundle trained on 3,000 simulated customers",
        "targets": TARGETS, "variants": variants,
    }
    write_text_atomic(json.dumps(result, indent=2) + "\n", args.out)
    print(markdown(result))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
