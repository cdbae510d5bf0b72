"""Measures every model on simulated ground truth and writes bench/results/models.json.

For each seed: simulate customers (cached under bench/.cache/), build the stacked training frame the
way `python -m pipeline train` does (load_dataset -> make_training_frame at snapshot_cutoffs), then

- journey: held-out accuracy and macro-F1 of the learned stage model against the last-event
  heuristic on the same rows (time split: the latest snapshots), labels = the simulator's true stage
  on the day before each cutoff (pipeline.train.stage_labels_at). Three variants: `original` (the
  model before the long-horizon counts and context features: recent decayed counts, balanced class
  weights), `train_py` (pipeline.train.train_journey exactly as it selects columns today) and `model`
  (fit_journey_model on journey_input_columns: recent and long-horizon decayed counts plus
  models.journey.extra_features);
- personas: adjusted Rand index and purity of the persona model fitted on the latest snapshot (as
  pipeline.train.train_personas fits it) against the true personas, ghosts and mixed customers
  excluded (they have no persona to recover), plus the share of customers whose persona name is
  their true persona;
- propensity: out-of-time test AUC and Brier of the tuned, calibrated models
  (models.propensity.tune_and_fit, few trials) against, on the same test customers, recency-only
  baselines (models.baselines: days since the last event; for purchase also days since the last
  purchase, a customer who never bought ranking lowest), the RFM-score baseline (models.baselines:
  value__rfm_score, non-buyers lowest), each turned into probabilities by a one-input logistic
  regression fitted on the earlier snapshots, and the oracle (the simulator's exact propensities at the test
  cutoff: p_purchase for purchase, 1 - p_active for churn).

Usage: python bench/bench_models.py [--customers 3000] [--days 365] [--seeds 42 7 11] [--trials 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from features.labels import make_training_frame, snapshot_cutoffs
from models.baselines import baseline_scores
from models.journey import JourneyResult, fit_journey_model, journey_input_columns
from models.personas import PersonaModel, bootstrap_stability
from models.propensity import NotEligibleError, brier, tune_and_fit
from pipeline.config import Params
from pipeline.io import write_atomic, write_text_atomic
from pipeline.data import load_dataset
from pipeline.engine import connect, register
from pipeline.simulate import SimulateConfig, read_simulation, simulate, write_simulation
from pipeline.train import CUTOFF, feature_columns, stage_labels_at, train_journey

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "models.json"
DEFAULT_SEEDS = (42, 7, 11)
NO_PERSONA = ("ghost", "mixed")
# Source files whose change invalidates a cached training frame.
FRAME_SOURCES = ("features", "pipeline/data.py", "pipeline/engine.py")


# --------------------------------------------------------------------------- data


def simulation_folder(customers: int, days: int, seed: int) -> Path:
    """Returns the cached simulation folder, simulating it once."""
    folder = CACHE / f"sim-c{customers}-d{days}-s{seed}"
    if not (folder / ".complete").is_file():
        write_simulation(simulate(SimulateConfig(customers=customers, days=days, seed=seed)), folder)
        (folder / ".complete").write_text("ok\n")
    return folder


def _source_digest() -> str:
    digest = hashlib.sha256()
    for entry in FRAME_SOURCES:
        path = ROOT / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(ROOT).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def training_frame(folder: Path, params: Params) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """Returns the stacked (customer_id, cutoff) frame and its cutoffs, as pipeline.train builds them (cached)."""
    config = json.dumps([params.features.model_dump(mode="json"), params.labels.model_dump(mode="json")],
                        sort_keys=True)
    key = hashlib.sha256(f"{config}|{_source_digest()}".encode()).hexdigest()[:16]
    path = folder / f"frame-{key}.parquet"
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        dataset = load_dataset(str(folder), params)
        con = connect(params.run.engine, params.run.spark_master)
        ev = register(con, "events", dataset.events)
        cu = register(con, "customers", dataset.customers) if dataset.customers is not None else None
        ca = register(con, "catalog", dataset.catalog) if dataset.catalog is not None else None
        cutoffs = snapshot_cutoffs(dataset.events["timestamp"].max(), params.labels)
        frame = make_training_frame(ev, cutoffs, params.features, params.labels, customers=cu, catalog=ca)
        write_atomic(path, frame.to_parquet)
    cutoffs = sorted(pd.unique(frame.index.get_level_values(CUTOFF)))
    return frame, [pd.Timestamp(c) for c in cutoffs]


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    cutoffs = frame.index.get_level_values(CUTOFF)
    return frame[cutoffs == cutoffs.max()].droplevel(CUTOFF)


def _r(value: float, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# --------------------------------------------------------------------------- journey


def _journey_summary(result: JourneyResult) -> dict[str, Any]:
    model, heuristic = result.metrics, result.heuristic_metrics
    return {
        "kind": result.kind,
        "split": result.split,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "inputs": int(result.model.n_features_in_),
        "accuracy": _r(model.accuracy),
        "macro_f1": _r(model.macro_f1),
        "heuristic_accuracy": _r(heuristic.accuracy),
        "heuristic_macro_f1": _r(heuristic.macro_f1),
        "accuracy_margin_points": _r(100 * (model.accuracy - heuristic.accuracy), 2),
        "per_stage_f1": {s: _r(v, 3) for s, v in model.per_stage["f1"].items()},
    }


def bench_journey(frame: pd.DataFrame, labels: pd.Series, params: Params) -> dict[str, Any]:
    """Returns the held-out journey metrics of each variant against the last-event heuristic."""
    config = params.models.journey
    seed = params.run.seed
    out: dict[str, Any] = {"support": {}}
    original = config.model_copy(update={"class_weight": "balanced", "extra_features": []})
    recent = [c for c in journey_input_columns(frame, original) if "__decayed_long_" not in c]
    X = frame[recent].rename_axis(["customer_id", "as_of"])
    out["original"] = _journey_summary(fit_journey_model(X, labels.reindex(X.index), original, seed=seed))
    out["train_py"] = _journey_summary(train_journey(frame, labels, params))
    X = frame[journey_input_columns(frame, config)].rename_axis(["customer_id", "as_of"])
    result = fit_journey_model(X, labels.reindex(X.index), config, seed=seed)
    out["model"] = _journey_summary(result)
    out["support"] = {s: int(v) for s, v in result.support.items()}
    return out


# --------------------------------------------------------------------------- personas


def bench_personas(latest: pd.DataFrame, truth: pd.Series, params: Params, stability: bool) -> dict[str, Any]:
    """Returns ARI, purity and naming accuracy of the persona model against the true personas.

    `ari_everyone` is the same model with core_min_events=0 (every customer shapes the personas,
    as before the core was introduced), for comparison.
    """
    started = time.perf_counter()
    config = params.models.personas
    model = PersonaModel.from_config(config, random_state=params.run.seed).fit(latest)
    predicted = pd.Series(model.predict(latest), index=latest.index)
    true = truth.reindex(latest.index).astype(str)
    pure = ~true.isin(NO_PERSONA).to_numpy()
    t, p = true[pure].to_numpy(), predicted[pure].to_numpy()
    table = pd.crosstab(p, t)
    everyone = PersonaModel.from_config(config.model_copy(update={"core_min_events": 0.0}),
                                        random_state=params.run.seed).fit(latest)
    out: dict[str, Any] = {
        "k": int(model.k_),
        "customers": int(len(latest)),
        "scored": int(pure.sum()),
        "ari": _r(adjusted_rand_score(t, p)),
        "purity": _r(table.max(axis=1).sum() / len(t)),
        "named_right": _r(float(np.mean(t == p))),
        "ari_with_ghost_mixed": _r(adjusted_rand_score(true.to_numpy(), predicted.to_numpy())),
        "ari_everyone": _r(adjusted_rand_score(t, everyone.predict(latest)[pure])),
        "k_everyone": int(everyone.k_),
        "clusters": {
            str(name): {"size": int(row.sum()), "majority": str(row.idxmax()),
                        "majority_share": _r(row.max() / row.sum(), 3)}
            for name, row in table.iterrows()
        },
    }
    if hasattr(model, "core_share_"):
        out["core_share"] = _r(model.core_share_, 3)
    if stability:
        out["stability_ari"] = _r(bootstrap_stability(model, latest, seed=params.run.seed))
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


# --------------------------------------------------------------------------- propensity


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return _r(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def _baseline_scores(features: pd.DataFrame, target: str) -> dict[str, np.ndarray]:
    """Returns baseline scores (higher = more likely the outcome) of a snapshot's customers.

    recency and rfm are models.baselines (what `pipeline train` reports next to each model); for
    purchase also recency_purchase: fewer days since the last purchase, a customer who never bought
    ranking lowest.
    """
    out = {name: score.to_numpy(dtype=float) for name, score in baseline_scores(features, target).items()}
    if target == "purchase":
        since = -pd.to_numeric(features["timing__days_since_last_purchase"], errors="coerce")
        out["recency_purchase"] = since.fillna(since.min() - 1 if since.notna().any() else 0.0).to_numpy(dtype=float)
    return out


def _baseline_brier(train_score: np.ndarray, train_y: np.ndarray, test_score: np.ndarray, test_y: np.ndarray) -> float:
    """Brier of a one-input logistic regression of the outcome on the baseline score (fitted on earlier snapshots)."""
    fit = LogisticRegression().fit(train_score[:, None], train_y)
    return brier(test_y, fit.predict_proba(test_score[:, None])[:, 1])


def bench_propensity(frame: pd.DataFrame, inputs: list[str], sim: Any, params: Params, trials: int) -> dict[str, Any]:
    """Returns test AUC/Brier of each propensity model, its baselines and the oracle, on the same customers."""
    config = params.models.propensity.model_copy(update={"n_trials": trials, "min_positives": 50, "min_negatives": 50})
    out: dict[str, Any] = {}
    for target in ("purchase", "churn"):
        started = time.perf_counter()
        try:
            result = tune_and_fit(frame, target, inputs, config, params.run.seed)
        except NotEligibleError as exc:
            out[target] = {"skipped": str(exc)}
            continue
        preds = result.test_predictions
        y = preds[target].to_numpy(dtype=float)
        ids = preds.index
        test_cutoff = pd.Timestamp(result.test_cutoff)
        test_features = frame.xs(test_cutoff, level=CUTOFF).loc[ids]
        row: dict[str, Any] = {
            "test_cutoff": str(test_cutoff.date()),
            "n_test": int(len(y)),
            "base_rate": _r(float(y.mean())),
            "trials": result.n_trials_done,
            "calibration": result.calibration,
            "model": {"auc": _r(result.metrics["roc_auc"]), "brier": _r(result.metrics["brier"]),
                      "brier_uncalibrated": _r(result.metrics["brier_uncalibrated"])},
        }
        earlier = frame[frame.index.get_level_values(CUTOFF) < test_cutoff]
        earlier = earlier[earlier[target].notna()]
        earlier_y = earlier[target].astype(float).to_numpy()
        train_scores = _baseline_scores(earlier, target)
        for name, score in _baseline_scores(test_features, target).items():
            row[name] = {"auc": _auc(y, score),
                         "brier": _r(_baseline_brier(train_scores[name], earlier_y, score, y))}
        horizon = params.labels.horizon_days
        start = test_cutoff + pd.Timedelta(days=params.labels.gap_days)
        oracle = sim.true_propensities(start, horizon).reindex(ids)
        p_true = oracle["p_purchase"] if target == "purchase" else 1.0 - oracle["p_active"]
        known = p_true.notna().to_numpy()
        row["oracle"] = {"auc": _auc(y[known], p_true.to_numpy()[known]),
                         "brier": _r(brier(y[known], p_true.to_numpy()[known])), "n": int(known.sum())}
        row["seconds"] = round(time.perf_counter() - started, 1)
        out[target] = row
    return out


# --------------------------------------------------------------------------- report


def run_seed(customers: int, days: int, seed: int, trials: int, skip: set[str], stability: bool) -> dict[str, Any]:
    started = time.perf_counter()
    params = Params()
    folder = simulation_folder(customers, days, seed)
    frame, cutoffs = training_frame(folder, params)
    inputs = feature_columns(frame)
    out: dict[str, Any] = {"rows": int(len(frame)), "snapshots": len(cutoffs), "features": len(inputs)}
    sim = read_simulation(folder)
    if "journey" not in skip:
        labels = stage_labels_at(str(folder / "truth_stages.parquet"), cutoffs, params)
        out["journey"] = bench_journey(frame, labels, params)
    if "personas" not in skip:
        truth = sim.personas.set_index("customer_id")["persona"]
        out["personas"] = bench_personas(_latest(frame)[inputs], truth, params, stability)
    if "propensity" not in skip:
        out["propensity"] = bench_propensity(frame, inputs, sim, params, trials)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return _r(float(np.mean(kept))) if kept else None


def summarise(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    runs = list(seeds.values())
    out: dict[str, Any] = {}
    if all("journey" in r for r in runs):
        for variant in ("original", "train_py", "model"):
            out[f"journey_{variant}"] = {
                key: _mean([r["journey"][variant][key] for r in runs])
                for key in ("accuracy", "heuristic_accuracy", "accuracy_margin_points", "macro_f1",
                            "heuristic_macro_f1")
            }
        margins = [r["journey"]["model"]["accuracy_margin_points"] for r in runs]
        out["journey_model"]["min_accuracy_margin_points"] = min(margins)
    if all("personas" in r for r in runs):
        out["personas"] = {key: _mean([r["personas"][key] for r in runs])
                           for key in ("ari", "purity", "named_right", "ari_everyone")}
        out["personas"]["min_ari"] = min(r["personas"]["ari"] for r in runs)
    if all("propensity" in r for r in runs):
        for target in ("purchase", "churn"):
            rows = [r["propensity"][target] for r in runs if "model" in r["propensity"].get(target, {})]
            names = [k for k in rows[0] if isinstance(rows[0][k], dict)] if rows else []
            out[target] = {name: {m: _mean([row[name][m] for row in rows]) for m in ("auc", "brier")} for name in names}
    return out


def markdown(result: dict[str, Any]) -> str:
    lines: list[str] = []
    seeds = result["seeds"]
    if all("journey" in r for r in seeds.values()):
        lines += ["| seed | journey variant | inputs | accuracy | heuristic | margin (pts) | macro-F1 | heuristic F1 |",
                  "|---|---|---|---|---|---|---|---|"]
        for seed, r in seeds.items():
            for variant in ("original", "train_py", "model"):
                j = r["journey"][variant]
                lines.append(f"| {seed} | {variant} | {j['inputs']} | {j['accuracy']:.3f} | "
                             f"{j['heuristic_accuracy']:.3f} | {j['accuracy_margin_points']:+.1f} | "
                             f"{j['macro_f1']:.3f} | {j['heuristic_macro_f1']:.3f} |")
        lines.append("")
    if all("personas" in r for r in seeds.values()):
        lines += ["| seed | personas k | ARI (excl. ghost/mixed) | purity | named right | ARI incl. ghost/mixed | "
                  "core share | ARI without core (k) |",
                  "|---|---|---|---|---|---|---|---|"]
        for seed, r in seeds.items():
            p = r["personas"]
            lines.append(f"| {seed} | {p['k']} | {p['ari']:.3f} | {p['purity']:.3f} | {p['named_right']:.3f} | "
                         f"{p['ari_with_ghost_mixed']:.3f} | {p.get('core_share', 1.0):.2f} | "
                         f"{p['ari_everyone']:.3f} ({p['k_everyone']}) |")
        lines.append("")
    if all("propensity" in r for r in seeds.values()):
        lines += ["| seed | target | model AUC / Brier | recency (last event) | recency (last purchase) | RFM | "
                  "oracle |",
                  "|---|---|---|---|---|---|---|"]
        for seed, r in seeds.items():
            for target in ("purchase", "churn"):
                row = r["propensity"].get(target, {})
                if "model" not in row:
                    lines.append(f"| {seed} | {target} | skipped | | | | |")
                    continue
                cells = [row["model"], row["recency"], row.get("recency_purchase"), row["rfm"], row["oracle"]]
                text = " | ".join(f"{c['auc']:.3f} / {c['brier']:.4f}" if c else "-" for c in cells)
                lines.append(f"| {seed} | {target} | {text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=3000, help="customers to simulate per seed (default 3000)")
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="simulation seeds")
    parser.add_argument("--trials", type=int, default=5, help="Optuna trials per propensity target (default 5)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["journey", "personas", "propensity"],
                        help="parts to leave out")
    parser.add_argument("--stability", action="store_true", help="also measure persona bootstrap stability (slow)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON result")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    started = time.perf_counter()
    seeds = {}
    for seed in args.seeds:
        seeds[str(seed)] = run_seed(args.customers, args.days, seed, args.trials, set(args.skip), args.stability)
        print(f"seed {seed}: {seeds[str(seed)]['seconds']} s", file=sys.stderr, flush=True)
    result = {
        "customers": args.customers,
        "days": args.days,
        "seeds_run": args.seeds,
        "trials": args.trials,
        "summary": summarise(seeds),
        "seeds": seeds,
        "seconds": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "sklearn": sklearn.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(json.dumps(result, indent=2) + "\n", args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
