"""`python -m pipeline score`: features at a cutoff -> the registered bundle -> one row per customer, written atomically.

Customers are scored in chunks (bounded memory for the models and SHAP) and streamed into a
temporary file that replaces the output only when complete, so a failure never leaves a
half-written file and the previous output stays intact. Rows are ordered by customer_id, so the
same inputs and model give byte-identical Parquet.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Literal

import pandas as pd
import pyarrow.parquet as pq

from models.activation import at_risk_summary, compare_scores, select_audience
from models.bundle import TARGETS, SegmentationBundle
from models.drift import DriftConfig, drift_table
from models.segments import SEGMENTS
from pipeline import tracking
from pipeline.config import Params
from pipeline.data import Dataset, load_dataset
from pipeline.featurize import features_for, parse_cutoff
from pipeline.io import arrow_table, write_atomic, write_parquet_atomic
from pipeline.train import data_digest

log = logging.getLogger(__name__)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy whose text cells starting with = + - @ (or tab / CR) are prefixed with ' for spreadsheets.

    Only text columns are touched: a negative number stays a number.
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_string_dtype(out[column]) or out[column].dtype == object:
            text = out[column]
            risky = text.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
            if risky.any():
                out[column] = text.where(~risky, "'" + text.astype("str"))
    return out


def chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """Yields consecutive row blocks of at most `size` rows."""
    for start in range(0, len(frame), size):
        yield frame.iloc[start:start + size]


def score_frame(bundle: SegmentationBundle, features: pd.DataFrame, customers: pd.DataFrame | None,
                cutoff: pd.Timestamp, reasons: int, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Yields scored chunks in customer_id order, each with the model name and version."""
    # Features come sorted from build_features; sorting again would copy a frame of a million rows.
    ordered = features if features.index.is_monotonic_increasing else features.sort_index()
    for part in chunks(ordered, chunk_size):
        yield with_model(bundle, bundle.score(part, customers=customers, cutoff=cutoff, reasons=reasons)).reset_index()


def with_model(bundle: SegmentationBundle, scored: pd.DataFrame) -> pd.DataFrame:
    """Adds the registered model's name and version to scored rows (in place; returns them)."""
    scored["model_name"] = bundle.metadata.get("model_name")
    scored["model_version"] = bundle.metadata.get("model_version")
    return scored


def write_scores(parts: Iterator[pd.DataFrame], out: Path, fmt: Literal["parquet", "csv"]) -> int:
    """Streams scored chunks into `out` atomically; returns the number of rows written."""
    written = 0

    def parquet(tmp: Path) -> None:
        nonlocal written
        writer = None
        try:
            for part in parts:
                table = arrow_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
                written += len(part)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError("no customers to score: the data has no customer with an event before the cutoff")

    def text(tmp: Path) -> None:
        nonlocal written
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            for i, part in enumerate(parts):
                neutralise_formulas(part).to_csv(handle, index=False, header=i == 0, quoting=csv.QUOTE_MINIMAL)
                written += len(part)

    write_atomic(out, parquet if fmt == "parquet" else text)
    return written


SEGMENT_COLUMNS = ("persona", *SEGMENTS, "journey_stage", *(f"{target}_bucket" for target in TARGETS))


def read_scores(path: Path) -> pd.DataFrame:
    """Reads a scores file written by `pipeline score` (Parquet, or CSV with --format csv)."""
    if not path.exists():
        raise FileNotFoundError(f"previous scores {path} do not exist; pass a file written by `pipeline score`")
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype={"customer_id": "string"}, keep_default_na=True)
    return pd.read_parquet(path)


def sibling(out: Path, suffix: str) -> Path:
    """Returns the path of a companion output next to `out`: scores.parquet -> scores.<suffix>."""
    return out.with_name(f"{out.stem}.{suffix}")


def write_table(frame: pd.DataFrame, path: Path, fmt: Literal["parquet", "csv"]) -> None:
    """Writes a small companion table atomically in the run's format (CSV cells escaped like the scores)."""
    if fmt == "csv":
        write_atomic(path, lambda tmp: neutralise_formulas(frame).to_csv(tmp, index=False))
    else:
        write_parquet_atomic(frame, path)


class _Keep:
    """Keeps the few columns drift, transitions and audiences need while the scores stream to disk."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.parts: list[pd.DataFrame] = []

    def watch(self, parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            self.parts.append(compact(part[[c for c in self.columns if c in part.columns]]))
            yield part

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=["customer_id"])


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns the frame with text columns (customer_id aside) as categories: a million customers' segments
    then take a few MB instead of hundreds."""
    return frame.astype({c: "category" for c in frame.columns
                         if c != "customer_id" and not pd.api.types.is_numeric_dtype(frame[c])})


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Undoes `compact`: categories back to their values, for files users read."""
    return frame.astype({c: frame[c].cat.categories.dtype for c in frame.columns
                         if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def segment_counts(kept: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Returns customers per value of every segment column, empty values counted as "(empty)"."""
    counts: dict[str, dict[str, int]] = {}
    for column in SEGMENT_COLUMNS:
        if column in kept.columns:
            values = kept[column].astype("object").where(kept[column].notna(), "(empty)")
            counts[column] = {str(k): int(n) for k, n in values.value_counts().items()}
    return counts


def drift_check(bundle: SegmentationBundle, features: pd.DataFrame, scores: pd.DataFrame,
                config: DriftConfig) -> pd.DataFrame | None:
    """Returns the PSI table of this population against training, or None for bundles without a reference."""
    references = bundle.metadata.get("drift_reference")
    if not references:
        log.warning("model version %s has no drift reference (trained before drift tracking); retrain to get drift",
                    bundle.metadata.get("model_version"))
        return None
    # Only the referenced columns: PSI compares distributions, so rows need no alignment, and joining
    # the whole feature frame would copy every feature of every customer.
    of_features = [c for c in references if c in features.columns]
    of_scores = [c for c in references if c in scores.columns and c not in of_features]
    current = pd.concat([features[of_features].reset_index(drop=True), scores[of_scores].reset_index(drop=True)],
                        axis=1)
    table = drift_table(references, current, config.warning_psi)
    for row in table.itertuples():
        if row.warning:
            log.warning("drift: %s %s has PSI %.3f against training (warning above %.2f): %s shift", row.kind,
                        row.column, row.psi, config.warning_psi, row.level)
    return table


def score(params: Params, data_path: str | None, out: Path, model: str = "champion", cutoff: str | None = None,
          fmt: Literal["parquet", "csv"] = "parquet", reasons: int | None = None, chunk_size: int | None = None,
          previous: Path | None = None, audiences_dir: Path | None = None) -> dict[str, Any]:
    """Runs a scoring job end to end and records it as an MLflow run; returns its summary.

    Besides the scores: drift against training (always, when the model has a reference), segment
    transitions against `previous` scores, and one file per params audience in `audiences_dir`.
    """
    started = time.perf_counter()
    config = params.scoring
    reasons = config.reasons if reasons is None else reasons
    chunk_size = config.chunk_size if chunk_size is None else chunk_size
    tracking.configure(params.tracking)
    bundle = tracking.load_bundle(params.tracking.model_name, model)
    bundle.use_threads(config.threads or os.cpu_count() or 1)
    old = read_scores(previous) if previous is not None else None  # fail before the long part
    if params.run.engine == "spark" and fmt != "parquet":
        raise ValueError("engine spark writes Parquet partitions; drop --format csv or set run.engine=duckdb")
    if audiences_dir is not None and not config.audiences:
        raise ValueError("--audiences: params.yaml defines no audience under scoring.audiences")
    dataset: Dataset = load_dataset(data_path, params)
    moment = parse_cutoff(cutoff, dataset.events)
    scoring_params = params.model_copy(update={"features": bundle.features_config})  # features as trained
    features = features_for(dataset, moment, scoring_params).frame
    log.info("scoring %s customers at %s with %s version %s", f"{len(features):,}", moment.date(),
             params.tracking.model_name, bundle.metadata.get("model_version"))
    keep = ["customer_id", *[f"{t}_probability" for t in bundle.propensity], *SEGMENT_COLUMNS,
            config.transitions.revenue_column]
    if audiences_dir is not None:
        keep += [c for a in config.audiences.values() for c in [*a.where, *([a.order_by] if a.order_by else []),
                                                                *a.columns]]
    keep = list(dict.fromkeys(keep))
    if params.run.engine == "spark":
        from pipeline.score_spark import score_on_spark

        rows, kept = score_on_spark(bundle, features, dataset.customers, moment, reasons, out, keep, params,
                                    config.spark_partitions)
    else:
        keeper = _Keep(keep)
        rows = write_scores(keeper.watch(score_frame(bundle, features, dataset.customers, moment, reasons,
                                                     chunk_size)), out, fmt)
        kept = keeper.frame()
    counts = segment_counts(kept)
    drift = drift_check(bundle, features, kept, config.drift)

    outputs: dict[str, str] = {"scores": str(out)}
    at_risk = None
    matrix = None
    skipped: dict[str, str] = {}
    if old is not None:
        comparison = compare_scores(old, kept, config.transitions)
        moves, matrix, skipped = comparison.moves, comparison.matrix, comparison.skipped
        at_risk = at_risk_summary(matrix)
        write_table(moves, sibling(out, f"transitions.{fmt}"), fmt)
        write_atomic(sibling(out, "transition_matrix.csv"), lambda tmp: matrix.to_csv(tmp, index=False))
        outputs["transitions"] = str(sibling(out, f"transitions.{fmt}"))
        outputs["transition_matrix"] = str(sibling(out, "transition_matrix.csv"))
        for dimension, reason in skipped.items():
            log.info("transitions: %s skipped (%s)", dimension, reason)
    audience_sizes: dict[str, int] = {}
    if audiences_dir is not None:
        for name, audience in config.audiences.items():
            members = plain(select_audience(kept, name, audience))
            path = audiences_dir / f"{name}.{fmt}"
            write_table(members, path, fmt)
            audience_sizes[name] = len(members)
            outputs[f"audience.{name}"] = str(path)

    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "rows": rows, "cutoff": str(moment), "model_version": bundle.metadata.get("model_version"),
        "seconds": seconds, "segments": counts, "out": str(out), "outputs": outputs,
        "drift": drift, "at_risk": at_risk, "audiences": audience_sizes, "transitions_skipped": skipped,
    }
    with tracking.run(params.tracking.score_experiment, run_name=f"score-{moment.date()}",
                      tags={"data_digest": data_digest(dataset.events), "model_name": params.tracking.model_name,
                            "model_version": str(bundle.metadata.get("model_version")), "output": str(out)}):
        tracking.log_params({"cutoff": str(moment), "model": model, "format": fmt, "reasons": reasons,
                             "chunk_size": chunk_size, "previous": str(previous) if previous else "",
                             "audiences": ", ".join(config.audiences) if audiences_dir is not None else ""})
        tracking.log_metrics({"rows": rows, "seconds": seconds, "validation": dataset.report.counts(),
                              "segments": counts, "audiences": audience_sizes})
        tracking.log_text(dataset.report.to_text(), "validation_report.txt")
        if drift is not None:
            tracking.log_metrics({"drift": {"psi": dict(zip(drift["column"], drift["psi"].fillna(-1.0))),
                                            "warnings": int(drift["warning"].sum())}})
            tracking.log_frame(drift, "drift.csv")
        if matrix is not None and at_risk is not None:
            tracking.log_frame(matrix, "transition_matrix.csv")
            tracking.log_metrics({"at_risk": {row.dimension: {"customers": row.customers, "revenue": row.revenue}
                                              for row in at_risk.itertuples()}})
        tracking.log_json({"outputs": outputs, "audiences": {n: a.model_dump(mode="json") for n, a in
                                                             config.audiences.items()} if audience_sizes else {},
                           "transitions_skipped": skipped}, "outputs.json")
    return summary


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    params = _load(args)
    out = Path(args.out)
    audiences = None
    if args.audiences is not None:
        audiences = Path(args.audiences) if args.audiences else sibling(out, "audiences")
    summary = score(params, args.data, out, args.model, args.cutoff, args.format,
                    0 if args.no_reasons else args.reasons, args.chunk_size,
                    Path(args.previous) if args.previous else None, audiences)
    print(f"scored {summary['rows']:,} customers at {summary['cutoff'][:10]} with model version "
          f"{summary['model_version']} in {summary['seconds']:.1f} s -> {summary['out']}")
    for column, values in summary["segments"].items():
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
        print(f"  {column}: {shown}")
    drift = summary["drift"]
    if drift is not None:
        flagged = drift[drift["warning"]]
        worst = drift.iloc[0] if len(drift) else None
        if len(flagged):
            print(f"  DRIFT WARNING: {len(flagged)} of {len(drift)} columns shifted beyond PSI "
                  f"{params.scoring.drift.warning_psi}: " + ", ".join(
                      f"{r.column} {r.psi:.2f}" for r in flagged.itertuples()))
        elif worst is not None:
            print(f"  drift: all {len(drift)} checked columns stable enough (largest PSI {worst['psi']:.3f}, "
                  f"{worst['column']})")
    if summary["at_risk"] is not None:
        risky = params.scoring.transitions.at_risk  # dimensions without at-risk states have nothing to say
        for row in summary["at_risk"].itertuples():
            if not risky.get(row.dimension):
                continue
            print(f"  entering at-risk {row.dimension}: {int(row.customers):,} customers, revenue {row.revenue:,.2f}")
    for name, size in summary["audiences"].items():
        print(f"  audience {name}: {size:,} customers -> {summary['outputs'][f'audience.{name}']}")
    for name in ("transitions", "transition_matrix"):
        if name in summary["outputs"]:
            print(f"  {name.replace('_', ' ')} -> {summary['outputs'][name]}")
    return 0


def register_command(sub: argparse._SubParsersAction, common: Callable[..., None],
                     commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    p = sub.add_parser(
        "score", help="score every customer with a registered model: persona, propensities, stage, segments, reasons",
        description="Build features at the cutoff with the model's own feature settings, score every customer in "
        "chunks, and write one row per customer atomically (the previous file stays intact on failure).",
    )
    common(p)
    p.add_argument("--model", default="champion",
                   help="registered version to use: an alias (champion, candidate) or a version number (default: champion)")
    p.add_argument("--cutoff", metavar="YYYY-MM-DD", default=None,
                   help="score as of this date, from events strictly before it (default: the day after the last event)")
    p.add_argument("--out", metavar="FILE", default="scores.parquet", help="output file (default: scores.parquet)")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet",
                   help="output format; csv escapes cells that a spreadsheet would run as formulas")
    p.add_argument("--reasons", type=int, default=None,
                   help="reason codes per propensity model (default: scoring.reasons in params, 3)")
    p.add_argument("--no-reasons", action="store_true", help="skip reason codes (much faster)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="customers scored per chunk, bounds memory (default: scoring.chunk_size in params)")
    p.add_argument("--previous", metavar="OLD_SCORES", default=None,
                   help="an earlier scores file: also write <out>.transitions.<format> (customers who changed "
                   "segment) and <out>.transition_matrix.csv (customers and revenue per move, at-risk entries flagged)")
    p.add_argument("--audiences", metavar="DIR", nargs="?", const="", default=None,
                   help="write one file per audience of scoring.audiences in params into DIR "
                   "(default when given without DIR: <out>.audiences/ next to the scores)")
    commands["score"] = cmd_score
