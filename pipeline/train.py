"""`python -m pipeline train`: snapshots -> features and labels -> every model -> one MLflow run and model version.

The run records what was trained on what: effective params, input digest and validation counts,
out-of-time metrics (overall, per persona, per journey stage), persona profiles, SHAP importance,
the journey model against the last-event heuristic, segment sizes, and the bundle registered as a
new version with the alias `candidate` (and `champion` when it is at least as good).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from features.build import build_features, skipped_families
from features.labels import LABEL_COLUMNS, make_training_frame, snapshot_cutoffs
from features.schema import JOURNEY_STAGES
from models.bundle import TARGETS, SegmentationBundle
from models.drift import build_reference, top_features
from models.journey import JourneyResult, decayed_columns, fit_journey_model, journey_input_columns, predict_stages
from models.personas import PersonaModel, bootstrap_stability, persona_profiles
from models.baselines import baseline_auc
from models.explain import Explainer, humanise_feature
from models.propensity import (
    BUCKETS,
    BucketCuts,
    NotEligibleError,
    PropensityResult,
    buckets,
    calibration_curve_table,
    check_eligibility,
    evaluate_by_group,
    gains_table,
    percentile_ranks,
    tune_and_fit,
)
from models.segments import SegmentResult, assign_segments
from pipeline import plots, tracking
from pipeline.config import Params
from pipeline.data import Dataset, load_dataset, read_source, resolve_sources
from pipeline.featurize import register_dataset

log = logging.getLogger(__name__)
CUTOFF = "cutoff"
DEPENDENCE_PLOTS = 3  # SHAP dependence plots per propensity model: its most important features
EXAMPLE_PERCENTILES = (99, 75, 50, 25, 1)  # example customers: one near each of these score percentiles
PERSONA_DRIVERS = 10  # features (most important first) whose mean SHAP per persona is recorded


@dataclass
class TrainOutcome:
    """What a training run produced (also what the CLI prints)."""

    run_id: str
    model_version: str | None
    promoted: bool
    metrics: dict[str, float]
    bundle: SegmentationBundle
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def data_digest(events: pd.DataFrame) -> str:
    """Returns a sha256 over the canonical events (order-independent), naming exactly what was trained on."""
    row_hashes = pd.util.hash_pandas_object(events, index=False).to_numpy()
    return hashlib.sha256(np.sort(row_hashes).tobytes()).hexdigest()


# --------------------------------------------------------------------------- stage labels


def find_stage_labels(data_path: str | None, params: Params, demo_folder: str | None) -> str | None:
    """Returns the stage-labels file to learn from: params, else the data folder's truth_stages.parquet."""
    if params.models.stage_labels:
        return params.models.stage_labels
    for folder in (data_path, demo_folder):
        if folder and Path(folder).is_dir() and (Path(folder) / "truth_stages.parquet").is_file():
            return str(Path(folder) / "truth_stages.parquet")
    return None


def stage_labels_at(path: str, cutoffs: list[pd.Timestamp], params: Params) -> pd.Series:
    """Reads stage labels and returns the stage per (customer_id, as_of) on the day before each cutoff.

    Accepts snapshot labels (customer_id, as_of, stage) or intervals (customer_id, stage, start,
    end exclusive). Stages must be canonical journey stages; others are an error naming them.
    """
    src = resolve_sources(path, params.data)["events"]
    raw = read_source(src, params.data)
    raw["customer_id"] = raw["customer_id"].astype("str")
    unknown = sorted(set(raw["stage"].dropna().astype("str")) - set(JOURNEY_STAGES))
    if unknown:
        raise ValueError(f"stage labels {path}: unknown stage(s) {unknown}; allowed: {list(JOURNEY_STAGES)}")
    parts = []
    for cutoff in cutoffs:
        day = (cutoff - pd.Timedelta(days=1)).tz_localize(None).normalize()
        if {"start", "end"} <= set(raw.columns):
            start = pd.to_datetime(raw["start"]).dt.tz_localize(None)
            end = pd.to_datetime(raw["end"]).dt.tz_localize(None)
            rows = raw[(start <= day) & (day < end)]
        elif "as_of" in raw.columns:
            rows = raw[pd.to_datetime(raw["as_of"]).dt.tz_localize(None).dt.normalize() == day]
        else:
            raise ValueError(
                f"stage labels {path}: need columns customer_id, as_of, stage or customer_id, stage, start, end; "
                f"found {list(raw.columns)}"
            )
        parts.append(pd.DataFrame({"customer_id": rows["customer_id"], "as_of": cutoff, "stage": rows["stage"]}))
    labels = pd.concat(parts).drop_duplicates(["customer_id", "as_of"])
    return labels.set_index(["customer_id", "as_of"])["stage"]


# --------------------------------------------------------------------------- training steps


def churn_population(params: Params) -> dict[str, Any]:
    """Returns how scoring tells who can churn: the timing feature matching the labels' notion of active."""
    column = ("timing__days_since_last_purchase" if params.labels.churn_definition == "no_purchase"
              else "timing__days_since_last_event")
    return {"column": column, "max_days": params.labels.active_lookback_days}


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Returns the model inputs of a training frame: every feature column, no label or key."""
    return [c for c in frame.columns if c not in LABEL_COLUMNS and c != CUTOFF]


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    cutoffs = frame.index.get_level_values(CUTOFF)
    return frame[cutoffs == cutoffs.max()].droplevel(CUTOFF)


def train_personas(latest: pd.DataFrame, params: Params, previous: PersonaModel | None) -> tuple[PersonaModel | None, dict[str, Any]]:
    """Fits personas on the latest snapshot; returns the model and its summary (or the reason it was skipped)."""
    try:
        model = PersonaModel.from_config(params.models.personas, random_state=params.run.seed)
        model.fit(latest, previous=previous)
    except ValueError as exc:  # no persona feature present (e.g. transactions-only data)
        log.info("personas skipped: %s", exc)
        return None, {"skipped": str(exc)}
    stability = bootstrap_stability(model, latest, seed=params.run.seed)
    return model, {"k": model.k_, "stability_ari": stability, "names": sorted(set(model.names_.values()))}


def train_journey(frame: pd.DataFrame, labels: pd.Series | None, params: Params) -> JourneyResult | None:
    """Fits the journey-stage model on every snapshot's journey inputs, with stage labels when there are any.

    The inputs are models.journey.journey_input_columns: recent and long-horizon decayed counts, the
    configured context features (models.journey.extra_features) and the last event type.
    """
    if not decayed_columns(frame):
        return None
    X = frame[journey_input_columns(frame, params.models.journey)].rename_axis(["customer_id", "as_of"])
    y = labels.reindex(X.index) if labels is not None else None
    return fit_journey_model(X, y, params.models.journey, seed=params.run.seed)


def _group_metrics(result: PropensityResult, groups: dict[str, pd.Series], params: Params) -> dict[str, pd.DataFrame]:
    preds = result.test_predictions
    out = {}
    for name, series in groups.items():
        aligned = series.reindex(preds.index.get_level_values(0)).to_numpy()
        out[name] = evaluate_by_group(preds[result.target].to_numpy(), preds["probability"].to_numpy(),
                                      pd.Series(aligned, index=preds.index), params.models.propensity)
    return out


def train(params: Params, data_path: str | None = None) -> TrainOutcome:
    """Runs the whole training job and records it in MLflow; returns what it produced."""
    started = time.perf_counter()
    dataset: Dataset = load_dataset(data_path, params)
    events = dataset.events
    first, last = events["timestamp"].min(), events["timestamp"].max()
    history_days = (last - first).total_seconds() / 86400
    cutoffs = snapshot_cutoffs(last, params.labels)
    window = params.labels.gap_days + params.labels.horizon_days
    if window > params.labels.snapshot_every_days:
        log.warning("labels: each snapshot's outcome window (gap + horizon = %d days) is longer than the %d days "
                    "between snapshots, so validation outcomes overlap the test snapshot's period and the "
                    "out-of-time test is optimistic; set labels.snapshot_every_days to at least %d",
                    window, params.labels.snapshot_every_days, window)
    log.info("training on %s events of %s customers; snapshots %s", f"{len(events):,}",
             f"{events['customer_id'].nunique():,}", [str(c.date()) for c in cutoffs])

    log.info("[1/6] building features and labels at %d snapshots", len(cutoffs))
    tables = register_dataset(dataset, params)
    ev, cu, ca = tables.events, tables.customers, tables.catalog
    frame = make_training_frame(ev, cutoffs, params.features, params.labels, customers=cu, catalog=ca)
    # Only the reasons are needed here: the features themselves are already in the training frame.
    skipped = skipped_families(ev, cutoffs[-1], params.features, customers=cu, catalog=ca)
    for family, reason in skipped.items():
        log.info("feature family %s skipped: %s", family, reason)
    inputs = feature_columns(frame)

    log.info("[2/6] personas")
    previous = _champion_bundle(params)
    latest_all = _latest(frame)
    latest = latest_all[inputs]
    persona_model, persona_summary = train_personas(
        latest, params, previous.personas if previous is not None else None)

    log.info("[3/6] journey stages")
    demo_folder = None if (data_path or params.data.path) else dataset.sources.get("events", "").rsplit("/", 1)[0]
    labels_path = find_stage_labels(data_path or params.data.path, params, demo_folder)
    stage_labels = stage_labels_at(labels_path, cutoffs, params) if labels_path else None
    journey = train_journey(frame, stage_labels, params)
    if journey is None:
        log.info("journey-stage model skipped: no journey__decayed_* feature (the journey feature family was skipped)")

    log.info("[4/6] purchase and churn propensity (%d Optuna trials each)", params.models.propensity.n_trials)
    results: dict[str, PropensityResult] = {}
    not_eligible: dict[str, str] = {}
    # Eligibility counts the snapshots the model learns from; the latest one is held out for the test.
    learned_from = frame[frame.index.get_level_values(CUTOFF) < max(cutoffs)]
    for target in TARGETS:
        try:
            check_eligibility(learned_from[target].dropna().astype(float), history_days, len(cutoffs),
                              params.models.propensity, target)
            results[target] = tune_and_fit(frame, target, inputs, params.models.propensity, params.run.seed)
        except NotEligibleError as exc:
            not_eligible[target] = str(exc)
            log.warning("%s model not trained: %s", target, exc)
    if not results:
        raise NotEligibleError("purchase and churn", list(not_eligible.values()))  # each names its target

    bundle = SegmentationBundle(
        features_config=params.features,
        propensity_config=params.models.propensity,
        segments_config=params.models.segments,
        personas=persona_model,
        propensity={t: r.model for t, r in results.items()},
        journey=journey.model if journey is not None else None,
        reference={t: np.sort(r.test_predictions["probability"].to_numpy()) for t, r in results.items()},
        metadata={"data_digest": data_digest(events), "cutoffs": [str(c) for c in cutoffs],
                  "first_event": str(first), "last_event": str(last), "feature_columns": inputs,
                  "churn_population": churn_population(params)},
    )

    drift = params.scoring.drift
    bundle.metadata["drift_reference"] = build_reference(
        latest, top_features([r.feature_importances for r in results.values()], drift.features),
        bundle.reference, drift.bins)

    # Out-of-time evaluation slices: persona and journey stage at the test snapshot.
    test_cutoff = max(cutoffs)
    test_features = latest
    groups: dict[str, pd.Series] = {}
    if persona_model is not None:
        groups["persona"] = pd.Series(persona_model.predict(test_features), index=test_features.index)
    if journey is not None:
        groups["journey_stage"] = predict_stages(journey.model, test_features)["stage"]
    # As scoring does: the At-risk rule may use churn propensity (of customers who can churn), so the
    # run's segment sizes are the scored ones.
    churn_probability = None
    if "churn" in results:
        churn_probability = pd.Series(results["churn"].model.predict_proba(test_features)[:, 1],
                                      index=test_features.index)
        eligible = bundle.churn_population(test_features)
        if eligible is not None:
            churn_probability = churn_probability.where(eligible)
    segments = assign_segments(test_features, params.models.segments, customers=dataset.customers,
                               churn_probability=churn_probability, cutoff=test_cutoff)

    sections: dict[str, Section] = {}
    data_section = Section({"events": len(events), "customers": int(events["customer_id"].nunique()),
                            "history_days": history_days, "snapshots": len(cutoffs),
                            "training_rows": len(frame), "features": len(inputs)})
    sections["data"] = data_section
    for target, result in results.items():
        log.info("[5/6] evaluating %s: metrics, baselines, SHAP", target)
        sections[target] = _propensity_section(result, bundle, latest_all, groups, params, learned_from[target])
    sections["personas"] = _persona_section(persona_model, persona_summary, latest_all, test_features)
    if journey is not None:
        sections["journey"] = _journey_section(journey)
    sections["segments"] = _segments_section(segments, groups, latest_all)

    champion_metrics = _champion_on_holdout(previous, ev, cu, ca, test_cutoff, latest_all, params)
    skipped_all = {**{f"features.{k}": v for k, v in skipped.items()},
                   **{f"segments.{k}": v for k, v in segments.skipped.items()},
                   **{f"models.{k}": v for k, v in not_eligible.items()},
                   **({"models.personas": persona_summary["skipped"]} if "skipped" in persona_summary else {})}
    log.info("[6/6] recording the run in MLflow")
    run_id, version, promoted, logged = _record(params, dataset, bundle, sections, champion_metrics,
                                               skipped_all, time.perf_counter() - started, test_features)
    return TrainOutcome(run_id, version, promoted, logged, bundle,
                        {f"{name}/{k}": v for name, sec in sections.items() for k, v in sec.tables.items()},
                        {**skipped, **not_eligible, **segments.skipped})


@dataclass
class Section:
    """What one part of training reports: metrics, tables (CSV artifacts) and figures (PNG artifacts)."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)  # JSON artifacts, e.g. the model card


def _propensity_section(result: PropensityResult, bundle: SegmentationBundle, latest: pd.DataFrame,
                        groups: dict[str, pd.Series], params: Params, labels: pd.Series) -> Section:
    """Metrics, tables and figures of one propensity model, plus what the stakeholder report needs.

    `labels` are the target over the snapshots the model learns from (what eligibility was checked
    on). Besides the evaluation tables this records the model card (data window, eligibility, split
    sizes), the actual rate per score bucket, SHAP dependence plots of the top features, mean SHAP
    per persona and a few example customers with their reason codes.
    """
    target = result.target
    preds = result.test_predictions
    y, p = preds[target], preds["probability"]
    features = latest[bundle.metadata["feature_columns"]]
    metrics = {"test": result.metrics, "validation": result.validation_metrics, "trials": result.n_trials_done,
               "baseline": {f"{name}_roc_auc": auc for name, auc in
                            baseline_auc(features, latest[target].astype("Float64"), target).items()},
               "calibration": result.calibration}
    tables = {"gains.csv": gains_table(y, p), "calibration.csv": calibration_curve_table(y, p),
              "feature_importance.csv": result.feature_importances,
              "buckets.csv": _bucket_table(y, p, params.models.propensity.bucket_cuts)}
    customers = preds.index.get_level_values(0)
    test_X = features.loc[features.index.intersection(customers)]
    sample = test_X.sample(min(len(test_X), 2000), random_state=params.run.seed) if len(test_X) else test_X
    explainer = bundle.explainer(target)
    shap_sample = explainer.shap_values(sample)
    tables["shap_importance.csv"] = explainer.global_importance(sample)
    for name, table in _group_metrics(result, groups, params).items():
        tables[f"metrics_by_{name}.csv"] = table
    top = tables["shap_importance.csv"]["feature"].astype(str).tolist()
    if "persona" in groups and len(sample):
        drivers = shap_sample[top[:PERSONA_DRIVERS]].groupby(groups["persona"].reindex(sample.index).to_numpy()).mean()
        tables["drivers_by_persona.csv"] = drivers.rename_axis("persona")
    tables["examples.csv"] = _example_customers(target, preds, test_X, explainer, groups)
    figures = {
        "calibration.png": plots.to_png(plots.calibration_plot(tables["calibration.csv"], f"{target}: calibration")),
        "gains.png": plots.to_png(plots.gains_plot(tables["gains.csv"], f"{target}: lift and capture by decile")),
        "shap_importance.png": plots.to_png(plots.importance_plot(tables["shap_importance.csv"],
                                                                  f"{target}: what drives the score")),
        "shap_beeswarm.png": plots.to_png(plots.beeswarm_plot(shap_sample, sample,
                                                              f"{target}: SHAP summary", seed=params.run.seed)),
    }
    for rank, feature in enumerate(top[:DEPENDENCE_PLOTS], start=1):
        figures[f"dependence_{rank}__{feature}.png"] = plots.to_png(plots.dependence_plot(
            shap_sample[feature], sample[feature], f"{target}: effect of {humanise_feature(feature)}"))
    known = labels.dropna().astype(float)
    card = {"target": target, "outcome": TARGETS[target],
            "labels": params.labels.model_dump(mode="json", include={"horizon_days", "gap_days", "churn_definition",
                                                                     "active_lookback_days"}),
            "training_snapshots": [str(c) for c in result.train_cutoffs],
            "validation_snapshot": str(result.valid_cutoff), "test_snapshot": str(result.test_cutoff),
            "validation_scheme": result.validation_scheme,
            "rows": {"training": result.train_size, "validation": result.valid_size, "test": result.test_size},
            "eligibility": {"labelled": len(known), "positives": int((known == 1).sum()),
                            "negatives": int((known == 0).sum()),
                            **params.models.propensity.model_dump(
                                include={"min_positives", "min_negatives", "min_history_days", "min_snapshots"})},
            "calibration": result.calibration, "trials": result.n_trials_done,
            "best_iteration": result.best_iteration, "best_params": result.best_params}
    return Section(metrics, tables, figures, {"model_card.json": card})


def _bucket_table(y: pd.Series, p: pd.Series, cuts: BucketCuts) -> pd.DataFrame:
    """Returns per score bucket (high, medium, low) on the test snapshot: customers, mean predicted and actual rate."""
    labels = buckets(percentile_ranks(p.to_numpy(dtype="float64")), cuts)
    frame = pd.DataFrame({"bucket": labels, "y": y.to_numpy(dtype="float64"), "p": p.to_numpy(dtype="float64")})
    grouped = frame.groupby("bucket")
    table = pd.DataFrame({"customers": grouped.size(), "mean_predicted": grouped["p"].mean(),
                          "actual_rate": grouped["y"].mean()}).reindex(list(BUCKETS))
    table["customers"] = table["customers"].fillna(0).astype("int64")
    table["share"] = table["customers"] / max(len(frame), 1)
    bounds = {"high": (cuts.high, 100), "medium": (cuts.medium, cuts.high), "low": (0, cuts.medium)}
    table["percentile_above"] = [bounds[b][0] for b in table.index]
    table["percentile_up_to"] = [bounds[b][1] for b in table.index]
    return table.rename_axis("bucket")


def _example_customers(target: str, preds: pd.DataFrame, test_X: pd.DataFrame, explainer: Explainer,
                       groups: dict[str, pd.Series]) -> pd.DataFrame:
    """Returns a few test customers spread over the score range, with their outcome and top-3 reason codes."""
    scored = preds.loc[preds.index.intersection(test_X.index)]
    if scored.empty:
        return pd.DataFrame()
    percentile = pd.Series(percentile_ranks(scored["probability"].to_numpy(dtype="float64")), index=scored.index)
    picked: list[Any] = []
    for wanted in EXAMPLE_PERCENTILES:
        distance = (percentile - wanted).abs().sort_values(kind="stable")
        picked.append(next((c for c in distance.index if c not in picked), None))
    picked = [c for c in picked if c is not None]
    out = pd.DataFrame(index=pd.Index(picked, name="customer_id"))
    for name, series in groups.items():
        out[name] = series.reindex(picked).astype("object").to_numpy()
    out["probability"] = scored.loc[picked, "probability"].to_numpy()
    out["percentile"] = percentile.loc[picked].to_numpy()
    out["outcome"] = scored.loc[picked, target].astype("int64").to_numpy()
    reasons = explainer.reason_codes(test_X.loc[picked], k=3)
    return out.join(reasons[[c for c in reasons.columns if c.endswith("_text")]])


def _persona_section(model: PersonaModel | None, summary: dict[str, Any], latest: pd.DataFrame,
                     features: pd.DataFrame) -> Section:
    if model is None:
        return Section(summary)
    profiles = persona_profiles(model, features, latest[["purchase", "churn"]], features.get("value__revenue_365d"))
    sizes = {"size": profiles["size"].to_dict()} if "size" in profiles.columns else {}
    return Section({**summary, **sizes}, {"profiles.csv": profiles})


def _revenue_column(columns: Any) -> str | None:
    """Returns the revenue feature segment summaries sum: value__revenue_365d, else the longest window, else gross."""
    windows = sorted((int(c[len("value__revenue_"):-1]), c) for c in columns
                     if c.startswith("value__revenue_") and c.endswith("d") and c[len("value__revenue_"):-1].isdigit())
    if "value__revenue_365d" in columns:
        return "value__revenue_365d"
    if windows:
        return windows[-1][1]
    return "value__monetary_gross" if "value__monetary_gross" in columns else None


def _segments_section(segments: SegmentResult, groups: dict[str, pd.Series], latest: pd.DataFrame) -> Section:
    """Segment sizes per dimension at the test snapshot: customers, share, revenue, and the rates that followed.

    Dimensions are every rule segment plus persona and journey stage when they were fitted. Revenue
    is the revenue feature named in segment_summary.json (before the snapshot); purchase and churn
    rates are the labelled outcomes in the horizon after it.
    """
    dimensions = {col: segments.frame[col] for col in segments.frame.columns if segments.frame[col].notna().any()}
    dimensions.update(groups)
    revenue_column = _revenue_column(latest.columns)
    revenue = (pd.to_numeric(latest[revenue_column], errors="coerce").fillna(0.0) if revenue_column
               else pd.Series(np.nan, index=latest.index))
    rows = []
    for dimension, values in dimensions.items():
        frame = pd.DataFrame({"segment": values.reindex(latest.index).astype("object"), "revenue": revenue,
                              "purchase": latest["purchase"].astype("Float64"),
                              "churn": latest["churn"].astype("Float64")}).dropna(subset=["segment"])
        grouped = frame.groupby("segment", sort=False)
        summary = pd.DataFrame({"customers": grouped.size(), "revenue": grouped["revenue"].sum(min_count=1),
                                "purchase_rate": grouped["purchase"].mean(), "churn_rate": grouped["churn"].mean()})
        summary["share"] = summary["customers"] / len(latest) if len(latest) else np.nan
        total = frame["revenue"].sum()
        summary["revenue_share"] = summary["revenue"] / total if revenue_column and total else np.nan
        order = (list(values.cat.categories) if isinstance(values.dtype, pd.CategoricalDtype)
                 else list(JOURNEY_STAGES) if dimension == "journey_stage" else None)
        summary = summary.reindex([s for s in order if s in summary.index]) if order else summary.sort_values(
            "customers", ascending=False)
        rows.append(summary.reset_index().assign(dimension=dimension))
    table = (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["segment"]))
    columns = ["dimension", "segment", "customers", "share", "revenue", "revenue_share", "purchase_rate", "churn_rate"]
    table = table.reindex(columns=columns)
    notes = {"revenue_feature": revenue_column, "customers": len(latest), "skipped": segments.skipped,
             "notes": segments.notes}
    return Section({col: segments.frame[col].value_counts().to_dict() for col in segments.frame.columns},
                   {"definitions.csv": segments.definitions, "segment_summary.csv": table},
                   documents={"segment_summary.json": notes})


def _journey_section(journey: JourneyResult) -> Section:
    section = Section({"kind": journey.kind, "n_train": journey.n_train, "n_test": journey.n_test})
    if journey.metrics is not None:
        section.metrics["model"] = {"accuracy": journey.metrics.accuracy, "macro_f1": journey.metrics.macro_f1}
        section.metrics["heuristic"] = {"accuracy": journey.heuristic_metrics.accuracy,
                                        "macro_f1": journey.heuristic_metrics.macro_f1}
        section.tables["confusion_model.csv"] = journey.metrics.confusion
        section.tables["confusion_heuristic.csv"] = journey.heuristic_metrics.confusion
        section.figures["confusion_model.png"] = plots.to_png(
            plots.confusion_plot(journey.metrics.confusion, "journey stage: model"))
        section.figures["confusion_heuristic.png"] = plots.to_png(
            plots.confusion_plot(journey.heuristic_metrics.confusion, "journey stage: last-event heuristic"))
    if hasattr(journey.model, "weights_"):
        section.tables["weights.csv"] = journey.model.weights_
    return section


def _champion_on_holdout(previous: SegmentationBundle | None, ev: Any, cu: Any, ca: Any, cutoff: pd.Timestamp,
                         latest: pd.DataFrame, params: Params) -> dict[str, float]:
    """Scores the current champion on this run's out-of-time snapshot, so both are compared on the same holdout."""
    if previous is None:
        return {}
    try:
        features = build_features(ev, cutoff, previous.features_config, customers=cu, catalog=ca).frame
        scores = previous.score(features, reasons=0)
    except (KeyError, ValueError) as exc:  # the champion needs inputs this data no longer has
        log.warning("the champion cannot score this run's holdout (%s); it will be replaced", exc)
        return {}
    out: dict[str, float] = {}
    for target in previous.propensity:
        y = latest[target].dropna().astype(float)
        p = scores[f"{target}_probability"].reindex(y.index)
        keep = p.notna()
        if keep.sum() and y[keep].nunique() == 2:
            from sklearn.metrics import roc_auc_score

            out[f"{target}.test.roc_auc"] = float(roc_auc_score(y[keep], p[keep]))
    return out


# --------------------------------------------------------------------------- MLflow


def _champion_bundle(params: Params) -> SegmentationBundle | None:
    """Returns the current champion's bundle (for stable persona names and the promotion gate), or None."""
    tracking.configure(params.tracking)
    try:
        return tracking.load_bundle(params.tracking.model_name, "champion")
    except LookupError:
        return None


def _record(params: Params, dataset: Dataset, bundle: SegmentationBundle, sections: dict[str, Section],
            champion_metrics: dict[str, float], skipped: dict[str, str], seconds: float,
            holdout_features: pd.DataFrame) -> tuple[str, str | None, bool, dict[str, float]]:
    """Writes one parent run (params, data, validation, bundle) with one child run per model."""
    from pipeline.config import params_to_yaml

    tracking.configure(params.tracking)
    meta = bundle.metadata
    tags = {"data_digest": meta["data_digest"], "data_source": ", ".join(dataset.sources.values()),
            "data_first_event": meta["first_event"], "data_last_event": meta["last_event"]}
    with tracking.run(params.tracking.train_experiment, run_name=f"train-{meta['cutoffs'][-1][:10]}",
                      tags=tags) as parent:
        tracking.log_params(params)
        tracking.log_dataset(dataset.events, meta["data_digest"], tags["data_source"])
        logged = tracking.log_metrics({"validation": dataset.report.counts(), "seconds": seconds})
        for name, section in sections.items():
            logged.update(tracking.log_metrics(section.metrics, prefix=name))
            with tracking.child_run(name):
                tracking.log_metrics(section.metrics)
                for file, table in section.tables.items():
                    tracking.log_frame(table, file)
                for file, png in section.figures.items():
                    tracking.log_bytes(png, file)
                for file, document in section.documents.items():
                    tracking.log_json(document, file)
        tracking.log_text(params_to_yaml(params), "params.yaml")
        tracking.log_text(dataset.report.to_text(), "validation_report.txt")
        tracking.log_json({"skipped": skipped, "metadata": meta, "champion_on_holdout": champion_metrics},
                          "summary.json")
        example = holdout_features.head(3).reset_index()  # real rows: the signature and a valid serving example
        version = tracking.register_bundle(bundle, params.tracking.model_name, input_example=example)
        promoted, reason = tracking.should_promote(logged, champion_metrics, params.tracking.promotion_tolerance)
        if champion_metrics:
            tracking.log_metrics({"champion_on_holdout": champion_metrics})
        if promoted and params.tracking.promote:
            tracking.set_alias(params.tracking.model_name, "champion", version)
        else:
            promoted = False
        tracking.set_tags({"promotion": reason})
        log.info("promotion: %s", reason)
        return parent.info.run_id, version, promoted, logged


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    params = _load(args)
    outcome = train(params, args.data)
    m = outcome.metrics
    print(f"MLflow run {outcome.run_id}: model {params.tracking.model_name} version {outcome.model_version}"
          f" ({'champion' if outcome.promoted else 'candidate'})")
    rows = [("model", "ROC-AUC", "recency", "RFM", "PR-AUC", "Brier", "top-10% lift")]
    for target in TARGETS:
        if f"{target}.test.roc_auc" in m:
            rows.append((target, *(f"{m.get(k, float('nan')):.3f}" for k in (
                f"{target}.test.roc_auc", f"{target}.baseline.recency_roc_auc", f"{target}.baseline.rfm_roc_auc",
                f"{target}.test.pr_auc", f"{target}.test.brier", f"{target}.test.top_decile_lift"))))
    print("  out-of-time test on the latest complete snapshot (baselines: ROC-AUC of recency rank and RFM score)")
    for row in rows:
        print("  " + "".join(f"{cell:>13}" if i else f"{cell:<9}" for i, cell in enumerate(row)))
    profiles = outcome.tables.get("personas/profiles.csv")
    sizes = profiles["size"].to_dict() if profiles is not None and "size" in profiles.columns else {}
    if sizes:
        print("  personas: " + ", ".join(f"{name} {n:,}" for name, n in sorted(sizes.items(), key=lambda kv: -kv[1])))
    if "journey.model.accuracy" in m:
        print(f"  journey  accuracy {m['journey.model.accuracy']:.3f} (last-event heuristic "
              f"{m['journey.heuristic.accuracy']:.3f}), macro-F1 {m['journey.model.macro_f1']:.3f} "
              f"(heuristic {m['journey.heuristic.macro_f1']:.3f})")
    if "personas.k" in m:
        print(f"  personas k={int(m['personas.k'])}, bootstrap stability ARI {m['personas.stability_ari']:.2f}")
    for key, reason in outcome.skipped.items():
        print(f"  skipped {key}: {reason}")
    print(f"  see it with: mlflow ui --backend-store-uri {tracking.configure(params.tracking)}")
    return 0


def register_command(sub: argparse._SubParsersAction, common: Callable[..., None],
                     commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    p = sub.add_parser(
        "train", help="train personas, propensity, journey and segment models; record an MLflow run",
        description="Build features and labels at several snapshot cutoffs, train every model, evaluate out of "
        "time on the latest complete snapshot, and register the bundle in MLflow (alias candidate; champion "
        "when at least as good as the current one).",
    )
    common(p)
    commands["train"] = cmd_train
