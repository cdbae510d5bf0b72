"""Turning scores into action: segment transitions between two scoring runs, and rule-defined audiences.

Both work on score frames (one row per customer, the columns `pipeline score` writes) and do no I/O.
A transition is a customer whose value in one dimension (lifecycle, persona, stage, buckets, RFM cell)
differs between the previous and the current scores; entering an at-risk state (params) puts the
customer's revenue "at risk" in the transition matrix. An audience is a named filter over score
columns (all conditions must hold), optionally ordered and capped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

NONE = "(none)"  # the "from" of a customer absent from the previous scores, the "to" of one absent now


class TransitionsConfig(BaseModel):
    """Which segment dimensions are compared between scoring runs, and which states mean risk."""

    model_config = ConfigDict(extra="forbid")

    dimensions: list[str] = Field(
        default_factory=lambda: ["lifecycle", "persona", "journey_stage", "purchase_bucket", "churn_bucket", "rfm_cell"],
        description="Score columns compared between the previous and the current run; absent ones are skipped and reported.")
    at_risk: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "lifecycle": ["At-risk", "Lost"],
            "churn_bucket": ["high"],
            "purchase_bucket": ["low"],
            "rfm_cell": ["About to sleep", "At risk", "Can't lose", "Hibernating", "Lost"],
        },
        description="Per dimension, the states whose entry puts a customer's revenue at risk.")
    revenue_column: str = Field(
        "value_365d", description="Score column with each customer's revenue, summed per transition cell.")


class Condition(BaseModel):
    """One condition on a score column: values in / not in a list, or a number within [min, max]."""

    model_config = ConfigDict(extra="forbid")

    one_of: list[Any] | None = Field(None, description="Keep rows whose value is one of these.")
    none_of: list[Any] | None = Field(None, description="Keep rows whose value is present and none of these.")
    min: float | None = Field(None, description="Keep rows whose value is at least this.")
    max: float | None = Field(None, description="Keep rows whose value is at most this.")

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if self.one_of is None and self.none_of is None and self.min is None and self.max is None:
            raise ValueError("a condition needs at least one of one_of, none_of, min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Audience(BaseModel):
    """A named list of customers for a campaign: rows of the scores meeting every condition."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", description="What the audience is for, written into the run's summary.")
    where: dict[str, Condition] = Field(description="Score column -> condition; all must hold.")
    order_by: str | None = Field(None, description="Score column to rank by, highest first (ties by customer_id).")
    limit: int | None = Field(None, ge=1, description="Keep at most this many customers (needs order_by).")
    columns: list[str] = Field(
        default_factory=list, description="Extra score columns written with customer_id and the filtered columns.")

    @model_validator(mode="after")
    def _limit_needs_order(self) -> Audience:
        if self.limit is not None and self.order_by is None:
            raise ValueError("limit needs order_by: say which column ranks the customers to keep")
        return self


def default_audiences() -> dict[str, Audience]:
    """The audiences written when params define none: likely purchasers, and valuable customers likely to churn."""
    return {
        "likely_purchasers": Audience(
            description="Top 20% purchase propensity on the training scale (percentile 81-100).",
            where={"purchase_percentile": Condition(min=81)}, columns=["purchase_probability", "persona"]),
        "high_value_churn_risk": Audience(
            description="High churn risk among valuable customers (RFM cells Champions, Loyal, Can't lose, At risk).",
            where={"churn_bucket": Condition(one_of=["high"]),
                   "rfm_cell": Condition(one_of=["Champions", "Loyal", "Can't lose", "At risk"])},
            order_by="churn_probability", columns=["value_365d"]),
    }


# --------------------------------------------------------------------------- audiences


def _mask(frame: pd.DataFrame, column: str, condition: Condition) -> np.ndarray:
    values = frame[column]
    keep = np.ones(len(frame), dtype=bool)
    if condition.one_of is not None:
        keep &= values.isin(condition.one_of).to_numpy()
    if condition.none_of is not None:
        keep &= (~values.isin(condition.none_of) & values.notna()).to_numpy()
    if condition.min is not None or condition.max is not None:
        if not pd.api.types.is_numeric_dtype(values):
            raise TypeError(f"audience condition on {column!r}: min/max need a numeric column, it holds {values.dtype}")
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        if condition.min is not None:
            keep &= numbers >= condition.min
        if condition.max is not None:
            keep &= numbers <= condition.max
    return keep


def audience_columns(name: str, audience: Audience, available: Sequence[str]) -> list[str]:
    """Returns the columns an audience file holds, or raises naming every column the scores lack."""
    wanted = list(dict.fromkeys(["customer_id", *audience.where, *([audience.order_by] if audience.order_by else []),
                                 *audience.columns]))
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(f"audience {name!r} uses {missing}, which the scores do not have; available columns: "
                       f"{sorted(available)} (fix scoring.audiences.{name} in params.yaml)")
    return wanted


def select_audience(scores: pd.DataFrame, name: str, audience: Audience) -> pd.DataFrame:
    """Returns the audience's rows (customer_id column, not index) in a stable order.

    Without order_by the rows are ordered by customer_id; with it, by that column descending
    then customer_id, so the same scores always give the same file.
    """
    frame = scores.reset_index() if "customer_id" not in scores.columns else scores
    columns = audience_columns(name, audience, list(frame.columns))
    keep = np.ones(len(frame), dtype=bool)
    for column, condition in audience.where.items():
        keep &= _mask(frame, column, condition)
    chosen = frame.loc[keep, columns]
    if audience.order_by is not None:
        chosen = chosen.sort_values([audience.order_by, "customer_id"], ascending=[False, True], na_position="last")
        if audience.limit is not None:
            chosen = chosen.head(audience.limit)
    else:
        chosen = chosen.sort_values("customer_id")
    return chosen.reset_index(drop=True)


# --------------------------------------------------------------------------- transitions


def _keyed(scores: pd.DataFrame, which: str) -> pd.DataFrame:
    frame = scores.reset_index() if "customer_id" not in scores.columns else scores
    if "customer_id" not in frame.columns:
        raise KeyError(f"{which} scores have no customer_id column; pass a file written by `pipeline score`")
    duplicated = frame["customer_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"{which} scores list customer_id {frame.loc[duplicated, 'customer_id'].iloc[0]!r} twice; "
                         "pass one row per customer (a file written by `pipeline score`)")
    return frame.set_index("customer_id")


@dataclass(frozen=True)
class Comparison:
    """Two scoring runs side by side.

    `moves`: one row per customer and changed dimension (customer_id, dimension, from, to, revenue,
    at_risk); a customer new to the scores comes from "(none)", one gone from them goes to "(none)";
    unchanged customers are not listed. Revenue is the current one (the previous one for customers
    gone). at_risk is True when the customer enters one of the dimension's at-risk states from a
    state that is not one.
    `matrix`: every (dimension, from, to) cell with customers, revenue and at_risk, unchanged
    customers included, long format so that one file holds every dimension.
    `skipped`: dimensions absent from either side, with the reason.
    """

    moves: pd.DataFrame
    matrix: pd.DataFrame
    skipped: dict[str, str]


def compare_scores(previous: pd.DataFrame, current: pd.DataFrame, config: TransitionsConfig) -> Comparison:
    """Compares two score frames (one row per customer, as `pipeline score` writes) dimension by dimension."""
    prev, curr = _keyed(previous, "previous"), _keyed(current, "current")
    ids = prev.index.union(curr.index)
    revenue = pd.Series(np.nan, index=ids, dtype="float64")
    for frame in (prev, curr):  # current wins where both have it; customers gone keep their previous revenue
        if config.revenue_column in frame.columns:
            revenue.loc[frame.index] = pd.to_numeric(frame[config.revenue_column], errors="coerce").to_numpy()
    skipped: dict[str, str] = {}
    moves, cells = [], []
    for dimension in config.dimensions:
        absent = [which for which, frame in (("previous", prev), ("current", curr)) if dimension not in frame.columns]
        if absent:
            skipped[dimension] = f"not in the {' and '.join(absent)} scores"
            continue
        risky = set(config.at_risk.get(dimension, []))
        states = pd.DataFrame({
            "customer_id": ids,
            "dimension": dimension,
            "from": prev[dimension].astype("string").reindex(ids).fillna(NONE).to_numpy(),
            "to": curr[dimension].astype("string").reindex(ids).fillna(NONE).to_numpy(),
            "revenue": revenue.to_numpy(),
        })
        states["at_risk"] = states["to"].isin(risky) & ~states["from"].isin(risky)
        moves.append(states[states["from"] != states["to"]])
        # sum() counts missing revenue as 0
        cell = states.groupby(["from", "to"], sort=True).agg(
            customers=("revenue", "size"), revenue=("revenue", "sum"), at_risk=("at_risk", "first"))
        cells.append(cell.reset_index().assign(dimension=dimension))

    columns = ["customer_id", "dimension", "from", "to", "revenue", "at_risk"]
    table = pd.concat(moves, ignore_index=True) if moves else pd.DataFrame(columns=columns)
    table = table.astype({"dimension": "string", "from": "string", "to": "string", "revenue": "float64",
                          "at_risk": "bool"})
    order = {d: i for i, d in enumerate(config.dimensions)}
    table = table.assign(_d=table["dimension"].map(order)).sort_values(["_d", "customer_id"]).drop(columns="_d")
    matrix_columns = ["dimension", "from", "to", "customers", "revenue", "at_risk"]
    matrix = pd.concat(cells, ignore_index=True)[matrix_columns] if cells else pd.DataFrame(columns=matrix_columns)
    return Comparison(table.reset_index(drop=True), matrix, skipped)


def at_risk_summary(matrix: pd.DataFrame) -> pd.DataFrame:
    """Returns customers and revenue entering an at-risk state, per dimension (zeros included)."""
    if matrix.empty:
        return pd.DataFrame(columns=["dimension", "customers", "revenue"])
    risky = matrix.assign(customers=matrix["customers"].where(matrix["at_risk"], 0),
                          revenue=matrix["revenue"].where(matrix["at_risk"], 0.0))
    return risky.groupby("dimension", sort=False)[["customers", "revenue"]].sum().reset_index()
