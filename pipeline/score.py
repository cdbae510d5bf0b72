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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.bundle import SegmentationBundle
from pipeline import tracking
from pipeline.config import Params
from pipeline.data import Dataset, load_dataset
from pipeline.featurize import features_for, parse_cutoff
from pipeline.io import write_atomic
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
    ordered = features.sort_index()
    for part in chunks(ordered, chunk_size):
        scored = bundle.score(part, customers=customers, cutoff=cutoff, reasons=reasons)
        scored["model_name"] = bundle.metadata.get("model_name")
        scored["model_version"] = bundle.metadata.get("model_version")
        yield scored.reset_index()


def write_scores(parts: Iterator[pd.DataFrame], out: Path, fmt: Literal["parquet", "csv"]) -> int:
    """Streams scored chunks into `out` atomically; returns the number of rows written."""
    written = 0

    def parquet(tmp: Path) -> None:
        nonlocal written
        writer = None
        try:
            for part in parts:
                table = pa.Table.from_pandas(part, preserve_index=False)
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


def score(params: Params, data_path: str | None, out: Path, model: str = "champion", cutoff: str | None = None,
          fmt: Literal["parquet", "csv"] = "parquet", reasons: int = 3, chunk_size: int = 50_000) -> dict[str, object]:
    """Runs a scoring job end to end and records it as an MLflow run; returns its summary."""
    started = time.perf_counter()
    tracking.configure(params.tracking)
    bundle = tracking.load_bundle(params.tracking.model_name, model)
    dataset: Dataset = load_dataset(data_path, params)
    moment = parse_cutoff(cutoff, dataset.events)
    scoring_params = params.model_copy(update={"features": bundle.features_config})  # features as trained
    features = features_for(dataset, moment, scoring_params).frame
    log.info("scoring %s customers at %s with %s version %s", f"{len(features):,}", moment.date(),
             params.tracking.model_name, bundle.metadata.get("model_version"))
    counts: dict[str, dict[str, int]] = {}

    def counted(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in parts:
            for column in ("persona", "lifecycle", "rfm_cell", "journey_stage", "purchase_bucket", "churn_bucket"):
                if column in part.columns:
                    for value, n in part[column].value_counts().items():
                        counts.setdefault(column, {})[str(value)] = counts.get(column, {}).get(str(value), 0) + int(n)
            yield part

    rows = write_scores(counted(score_frame(bundle, features, dataset.customers, moment, reasons, chunk_size)),
                        out, fmt)
    seconds = time.perf_counter() - started
    summary = {"rows": rows, "cutoff": str(moment), "model_version": bundle.metadata.get("model_version"),
               "seconds": seconds, "segments": counts, "out": str(out)}
    with tracking.run(params.tracking.score_experiment, run_name=f"score-{moment.date()}",
                      tags={"data_digest": data_digest(dataset.events), "model_name": params.tracking.model_name,
                            "model_version": str(bundle.metadata.get("model_version")), "output": str(out)}):
        tracking.log_params({"cutoff": str(moment), "model": model, "format": fmt, "reasons": reasons,
                             "chunk_size": chunk_size})
        tracking.log_metrics({"rows": rows, "seconds": seconds, "validation": dataset.report.counts(),
                              "segments": counts})
        tracking.log_text(dataset.report.to_text(), "validation_report.txt")
    return summary


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    params = _load(args)
    summary = score(params, args.data, Path(args.out), args.model, args.cutoff, args.format,
                    0 if args.no_reasons else args.reasons, args.chunk_size)
    print(f"scored {summary['rows']:,} customers at {summary['cutoff'][:10]} with model version "
          f"{summary['model_version']} in {summary['seconds']:.1f} s -> {summary['out']}")
    for column, values in summary["segments"].items():
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
        print(f"  {column}: {shown}")
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
    p.add_argument("--reasons", type=int, default=3, help="reason codes per propensity model (default: 3)")
    p.add_argument("--no-reasons", action="store_true", help="skip reason codes (much faster)")
    p.add_argument("--chunk-size", type=int, default=50_000, help="customers scored per chunk (bounds memory)")
    commands["score"] = cmd_score
