"""Helpers of the benefits, journey and engagement tests: literal event tables and one framework build."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
from pydantic import BaseModel

from features.build import FeatureResult, build_features
from features.config import FeaturesConfig
from pipeline.engine import register

_names = itertools.count()


def frame(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Returns a frame from literal rows; a `timestamp` column is read as UTC text."""
    df = pd.DataFrame(rows, columns=list(columns))
    if "timestamp" in df.columns:
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    return df


def build_one(
    con: Any,
    events: pd.DataFrame,
    cutoff: str,
    family: str,
    section: BaseModel | None = None,
    catalog: pd.DataFrame | None = None,
) -> FeatureResult:
    """Builds only `family` through the framework's build_features, with its section if given."""
    sections = {} if section is None else {family: section}
    config = FeaturesConfig(enabled=[family], **sections)
    table = register(con, f"events_{next(_names)}", events)
    side = None if catalog is None else register(con, f"catalog_{next(_names)}", catalog)
    return build_features(table, cutoff, config, catalog=side)


def expected(index: list[str], columns: dict[str, list[Any]]) -> pd.DataFrame:
    """Returns a hand-computed feature frame indexed by customer_id like build_features' frame."""
    return pd.DataFrame(columns, index=pd.Index(index, name="customer_id"))
