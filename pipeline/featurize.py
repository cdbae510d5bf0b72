"""`python -m pipeline features`: builds the feature frame at a cutoff, or lists the feature catalog."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import ibis.expr.types as ir
import pandas as pd

from features.build import FeatureResult, build_features, feature_catalog
from pipeline.config import Params
from pipeline.data import Dataset, load_dataset
from pipeline.engine import connect, register, release_unused_memory
from pipeline.io import write_parquet_atomic

log = logging.getLogger(__name__)


def parse_cutoff(text: str | None, events: pd.DataFrame) -> pd.Timestamp:
    """Returns the cutoff as UTC midnight; default: the day after the last event."""
    if text is None:
        last = events["timestamp"].max()
        return (last.tz_convert("UTC").normalize() + timedelta(days=1))
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"--cutoff {text!r} is not a date; write YYYY-MM-DD") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass(frozen=True)
class EngineTables:
    """A dataset's tables inside the engine: events, and customers and catalog when the dataset has them."""

    events: ir.Table
    customers: ir.Table | None
    catalog: ir.Table | None


def register_dataset(dataset: Dataset, params: Params) -> EngineTables:
    """Opens the configured engine and puts the dataset's tables into it.

    The engine holds its own copy afterwards, so a caller that keeps no other use for the pandas
    frames can drop the dataset and roughly halve the memory the feature build needs.
    """
    con = connect(params.run.engine, params.run.spark_master, params.run.spark_conf)
    staging = params.run.spark_staging_dir
    return EngineTables(
        events=register(con, "events", dataset.events, staging),
        customers=register(con, "customers", dataset.customers, staging) if dataset.customers is not None else None,
        catalog=register(con, "catalog", dataset.catalog, staging) if dataset.catalog is not None else None,
    )


def features_from(tables: EngineTables, cutoff: pd.Timestamp, params: Params) -> FeatureResult:
    """Builds features from tables already in the engine."""
    result = build_features(tables.events, cutoff, params.features, customers=tables.customers, catalog=tables.catalog)
    for family, reason in result.skipped.items():
        log.info("skipped feature family %s: %s", family, reason)
    return result


def features_for(dataset: Dataset, cutoff: pd.Timestamp, params: Params) -> FeatureResult:
    """Builds features for a loaded dataset on the configured engine."""
    return features_from(register_dataset(dataset, params), cutoff, params)


def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    params = _load(args)
    if args.list:
        with pd.option_context("display.max_rows", None, "display.max_colwidth", 90, "display.width", 200):
            print(feature_catalog(params.features).to_string(index=False))
        return 0
    dataset = load_dataset(args.data, params)
    print(dataset.report.to_text())
    cutoff = parse_cutoff(args.cutoff, dataset.events)
    tables = register_dataset(dataset, params)
    del dataset  # the engine has its own copy; keeping the pandas one would double the peak memory
    release_unused_memory()
    result = features_from(tables, cutoff, params)
    frame = result.frame
    write_parquet_atomic(frame.reset_index(), Path(args.out))
    print(f"wrote {len(frame):,} customers x {frame.shape[1]} features at cutoff {cutoff.date()} to {args.out}")
    for family, reason in result.skipped.items():
        print(f"  skipped {reason}")
    return 0


def register_command(sub: argparse._SubParsersAction, common: Callable[..., None],
                     commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    p = sub.add_parser(
        "features", help="build the per-customer feature frame at a cutoff (or --list the catalog)",
        description="Build one row per customer from the events strictly before the cutoff and write it "
        "as Parquet. Families whose inputs are absent are skipped with the reason printed.",
    )
    common(p)
    p.add_argument("--cutoff", metavar="YYYY-MM-DD", default=None,
                   help="features see only events before this date (UTC); default: the day after the last event")
    p.add_argument("--out", metavar="FILE", default="features.parquet", help="output Parquet file (default: features.parquet)")
    p.add_argument("--list", action="store_true", help="print the feature catalog (name, family, description, unit) and exit")
    commands["features"] = cmd_features

