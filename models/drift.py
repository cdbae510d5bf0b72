"""Population stability index (PSI): how far a scored population has moved from the training one.

Training stores a reference per column (bin edges from the training distribution and the share of
customers in each bin, plus the share of missing values); scoring bins its own values with the same
edges and compares. PSI = sum over bins of (actual - expected) * ln(actual / expected). The usual
reading: below 0.1 stable, 0.1 to 0.25 a moderate shift worth a look, above 0.25 a major shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

# A bin that is empty on one side would make ln(actual / expected) infinite; the usual fix is a floor.
SHARE_FLOOR = 1e-4


class DriftConfig(BaseModel):
    """What drift is measured on and when it is worth a warning."""

    model_config = ConfigDict(extra="forbid")

    features: int = Field(10, ge=0, description=(
        "Top features by importance (per propensity model, union) whose distribution is compared "
        "with training at scoring time; 0 checks the scores only."))
    bins: int = Field(10, ge=2, le=100, description="Quantile bins of the training distribution used for PSI.")
    warning_psi: float = Field(0.25, gt=0, description=(
        "A PSI above this logs a warning (0.1-0.25 is usually read as a moderate shift, above 0.25 as major)."))


@dataclass(frozen=True)
class Reference:
    """One column's training distribution: bins, share per bin and share missing.

    Numbers are binned by `edges`; text columns (a last event type, a channel) by `categories`,
    with one more bin for values training never saw.
    """

    edges: tuple[float, ...]
    expected: tuple[float, ...]
    missing: float
    n: int
    categories: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"edges": list(self.edges), "expected": list(self.expected), "missing": self.missing, "n": self.n}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Reference:
        categories = raw.get("categories")
        return cls(tuple(float(e) for e in raw["edges"]), tuple(float(s) for s in raw["expected"]),
                   float(raw["missing"]), int(raw["n"]), None if categories is None else tuple(categories))


def _is_text(values: pd.Series | np.ndarray) -> bool:
    series = pd.Series(values)
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _numeric(values: pd.Series | np.ndarray, name: str) -> np.ndarray:
    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series):
        series = series.astype("Float64")
    if not pd.api.types.is_numeric_dtype(series):
        raise TypeError(f"drift: column {name!r} is not numeric ({series.dtype}) but the training reference is; "
                        "score with the features the model was trained with")
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _text(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (the values as text, where they are missing)."""
    series = pd.Series(values)
    missing = series.isna().to_numpy()
    return series.astype("object").where(~missing, None).astype(str).to_numpy(), missing


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the non-missing values in each bin (-inf, e1], (e1, e2], ..., (ek, +inf)."""
    present = values[~np.isnan(values)]
    if not len(present):
        return np.zeros(len(edges) + 1)
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return counts / len(present)


def _category_shares(text: np.ndarray, missing: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Share of the non-missing values per category, plus a last bin for values not among them."""
    present = text[~missing]
    if not len(present):
        return np.zeros(len(categories) + 1)
    counts = pd.Series(present).value_counts()
    known = np.array([counts.get(c, 0) for c in categories], dtype="float64")
    return np.append(known, len(present) - known.sum()) / len(present)


def reference(values: pd.Series | np.ndarray, bins: int = 10, name: str = "value") -> Reference:
    """Returns the reference of one column: edges at its quantiles (ties merged), shares and missing share.

    Bins are (-inf, e1], (e1, e2], ..., (ek, +inf). A column with few distinct values (a flag, a
    count of 0-3) gets fewer bins: edges are the distinct quantiles, so nothing is split arbitrarily.
    A text column gets one bin per category seen in training (sorted) and one for unseen values.
    """
    if _is_text(values):
        text, absent = _text(values)
        categories = tuple(sorted(set(text[~absent].tolist())))
        missing = float(absent.mean()) if len(text) else 0.0
        shares = _category_shares(text, absent, categories)
        return Reference((), tuple(float(v) for v in shares), missing, len(text), categories)
    x = _numeric(values, name)
    present = x[~np.isnan(x)]
    missing = float(np.isnan(x).mean()) if len(x) else 0.0
    if len(present):
        # method="lower" keeps edges on observed values, so a tie at an edge falls in one bin. The
        # outer edges fence off values below the training minimum and above its maximum: empty bins
        # in training, so a population moving out of the trained range shows (even for a constant).
        inner = np.quantile(present, np.arange(1, bins) / bins, method="lower")
        low, high = present.min(), present.max()
        edges = np.unique(np.concatenate([[np.nextafter(low, -np.inf)], inner, [high]]))
    else:
        edges = np.array([], dtype="float64")
    return Reference(tuple(float(e) for e in edges), tuple(float(s) for s in _bin_shares(x, edges)), missing, len(x))


def psi(ref: Reference, values: pd.Series | np.ndarray, name: str = "value") -> float:
    """Returns the PSI of `values` against the reference, over its bins plus a bin for missing values."""
    if not len(values):
        raise ValueError(f"drift: no values of {name!r} to compare with the training distribution")
    if ref.categories is not None:
        text, absent = _text(values)
        missing = float(absent.mean())
        shares = _category_shares(text, absent, ref.categories)
    else:
        x = _numeric(values, name)
        missing = float(np.isnan(x).mean())
        shares = _bin_shares(x, np.asarray(ref.edges, dtype="float64"))
    actual = np.append(shares * (1 - missing), missing)
    expected = np.append(np.asarray(ref.expected) * (1 - ref.missing), ref.missing)
    keep = (actual > 0) | (expected > 0)  # a bin empty on both sides carries no information
    a = np.maximum(actual[keep], SHARE_FLOOR)
    e = np.maximum(expected[keep], SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float) -> str:
    """Names a PSI the way practitioners read it."""
    return "stable" if value < 0.1 else "moderate" if value < 0.25 else "major"


def top_features(importances: Iterable[pd.DataFrame], n: int) -> list[str]:
    """Returns the union of each model's `n` most important features, in order of first appearance."""
    chosen: list[str] = []
    for table in importances:
        for feature in table.sort_values(["gain", "feature"], ascending=[False, True])["feature"].head(n):
            if feature not in chosen:
                chosen.append(str(feature))
    return chosen


def build_reference(features: pd.DataFrame, columns: Iterable[str], scores: Mapping[str, np.ndarray],
                    bins: int) -> dict[str, dict[str, Any]]:
    """Returns the serialisable references of the chosen feature columns and of each score.

    Scores are keyed by the name of the score column they describe (`purchase_probability`).
    """
    out: dict[str, dict[str, Any]] = {}
    for column in columns:
        if column not in features.columns:
            raise KeyError(f"drift: feature {column!r} is not in the training features")
        out[column] = {"kind": "feature", **reference(features[column], bins, column).to_dict()}
    for target, values in scores.items():
        name = f"{target}_probability"
        out[name] = {"kind": "score", **reference(np.asarray(values, dtype="float64"), bins, name).to_dict()}
    return out


def drift_table(references: Mapping[str, Mapping[str, Any]], current: pd.DataFrame, warning_psi: float) -> pd.DataFrame:
    """Returns one row per referenced column: kind, PSI, level and whether it passes the warning threshold.

    A referenced column absent from `current` (the feature was not built this time), or a score no
    customer got, is reported with an empty PSI and level "absent" rather than silently left out.
    """
    rows = []
    for name, raw in references.items():
        ref = Reference.from_dict(raw)
        kind = raw.get("kind", "feature")
        values = current[name] if name in current.columns else pd.Series(dtype="float64")
        if kind == "score":  # a score is compared over the customers who get one (churn: those who can churn)
            values = values.dropna()
        if len(values):
            value = psi(ref, values, name)
            rows.append((name, kind, value, level(value), value > warning_psi, ref.n, int(values.notna().sum())))
        else:
            rows.append((name, kind, np.nan, "absent", False, ref.n, 0))
    table = pd.DataFrame(rows, columns=["column", "kind", "psi", "level", "warning", "n_reference", "n_current"])
    return table.sort_values(["psi", "column"], ascending=[False, True], na_position="last", ignore_index=True)
