"""Point-in-time training labels (will buy, will churn) and the snapshot cutoffs they are taken at.

At cutoff T the population is every customer with an event before T. Labels look only at the
horizon [T + gap, T + gap + horizon); eligibility for churn looks only at [T - lookback, T).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.build import CUSTOMER_KEY, build_features, feature_catalog, utc_cutoff
from features.config import FeaturesConfig
from features.schema import PURCHASE

LABEL_COLUMNS: tuple[str, ...] = ("purchase", "churn", "eligible_churn")


class LabelsConfig(BaseModel):
    """Settings of the training labels and of the snapshots they are taken at (params.yaml: labels)."""

    model_config = ConfigDict(extra="forbid")

    horizon_days: int = Field(30, gt=0, description="Length H of the window the labels look at.")
    gap_days: int = Field(
        0, ge=0, description="Days between the cutoff and the start of the label window (time to act on a score)."
    )
    churn_definition: Literal["no_activity", "no_purchase"] = Field(
        "no_activity",
        description="no_activity: churned = no event at all in the label window; no_purchase: no purchase in it. "
        "The same notion of 'active' decides churn eligibility over the lookback.",
    )
    active_lookback_days: int = Field(
        90,
        gt=0,
        description="A customer can churn only if active (per churn_definition) in the N days before the cutoff.",
    )
    snapshot_every_days: int = Field(30, gt=0, description="Days between two training snapshots.")
    n_snapshots: int = Field(6, ge=1, description="Number of training snapshots (cutoffs).")


def _day_after(moment: date | datetime | str | pd.Timestamp) -> datetime:
    """Returns 00:00 UTC of the day after the given moment: the end of the last complete day of data."""
    stamp = pd.Timestamp(utc_cutoff(moment))
    return (stamp.normalize() + pd.Timedelta(days=1)).to_pydatetime()


def snapshot_cutoffs(last_event_time: date | datetime | str | pd.Timestamp, config: LabelsConfig) -> list[pd.Timestamp]:
    """Returns n_snapshots cutoffs (00:00 UTC, oldest first), every snapshot_every_days days back.

    The newest is the latest midnight T whose whole label window ends by the day after the last
    event: T + gap + horizon <= that day, so no snapshot has a censored label window.
    """
    newest = _day_after(last_event_time) - timedelta(days=config.gap_days + config.horizon_days)
    return [
        pd.Timestamp(newest - timedelta(days=k * config.snapshot_every_days))
        for k in reversed(range(config.n_snapshots))
    ]


def make_labels(
    events: ir.Table,
    cutoff: date | datetime | str | pd.Timestamp,
    config: LabelsConfig,
    require_complete_horizon: bool = True,
) -> pd.DataFrame:
    """Labels each customer seen before the cutoff with purchase, churn and churn eligibility.

    purchase: any purchase in [T + gap, T + gap + H). eligible_churn: active in [T - lookback, T)
    (any event for no_activity, a purchase for no_purchase). churn: eligible and not active in the
    label window; NA when not eligible. With require_complete_horizon, a label window reaching past
    the day after the last event raises (its labels would be censored).
    """
    moment = utc_cutoff(cutoff)
    start = moment + timedelta(days=config.gap_days)
    end = start + timedelta(days=config.horizon_days)
    lookback = moment - timedelta(days=config.active_lookback_days)
    ev = events.filter(events[CUSTOMER_KEY].notnull())
    if require_complete_horizon:
        last = ev.timestamp.max().execute()
        if last is None or pd.isna(last) or end > _day_after(last):
            raise ValueError(
                f"labels at cutoff {moment:%Y-%m-%d %H:%M} need events until {end:%Y-%m-%d %H:%M} UTC "
                f"(gap {config.gap_days} + horizon {config.horizon_days} days) but the data ends at {last}; "
                "use an earlier cutoff (see snapshot_cutoffs) or require_complete_horizon=False"
            )

    ts = ev.timestamp
    before = ts < ibis.literal(moment)
    in_lookback = before & (ts >= ibis.literal(lookback))
    in_horizon = (ts >= ibis.literal(start)) & (ts < ibis.literal(end))
    buy = ev.event_type == PURCHASE
    active = buy if config.churn_definition == "no_purchase" else ibis.literal(True)
    per = ev.group_by(CUSTOMER_KEY).aggregate(
        _seen=ev.count(where=before),
        _buys=ev.count(where=in_horizon & buy),
        _active_after=ev.count(where=in_horizon & active),
        _active_before=ev.count(where=in_lookback & active),
    )
    per = per.filter(per._seen > 0)
    frame = per.execute()

    out = pd.DataFrame(index=pd.Index(frame[CUSTOMER_KEY].astype(str), name=CUSTOMER_KEY))
    out["purchase"] = (frame["_buys"] > 0).to_numpy()
    eligible = (frame["_active_before"] > 0).to_numpy()
    churned = (frame["_active_after"] == 0).to_numpy()
    churn = pd.array(churned, dtype="boolean")
    churn[~eligible] = pd.NA  # not active before T: cannot churn, so no label rather than False
    out["churn"] = churn
    out["eligible_churn"] = eligible
    return out.sort_index()


def make_training_frame(
    events: ir.Table,
    cutoffs: Sequence[date | datetime | str | pd.Timestamp],
    features_config: FeaturesConfig,
    labels_config: LabelsConfig,
    customers: ir.Table | None = None,
    catalog: ir.Table | None = None,
) -> pd.DataFrame:
    """Stacks features and labels of several cutoffs into one frame indexed by (customer_id, cutoff).

    Columns: the features (a family skipped at some cutoff leaves its columns empty there), then the
    label columns. Each snapshot's features see only events before its own cutoff.
    """
    if not cutoffs:
        raise ValueError("make_training_frame needs at least one cutoff; see snapshot_cutoffs()")
    parts: list[pd.DataFrame] = []
    made: set[str] = set()
    for cutoff in cutoffs:
        moment = pd.Timestamp(utc_cutoff(cutoff))
        result = build_features(events, moment, features_config, customers=customers, catalog=catalog)
        labels = make_labels(events, moment, labels_config)
        part = result.frame.join(labels, how="inner")
        part.insert(0, "cutoff", moment)
        parts.append(part.reset_index().set_index([CUSTOMER_KEY, "cutoff"]))
        made.update(result.frame.columns)
    stacked = pd.concat(parts)
    # Frame order is the full catalog's (registry, then catalog order), whichever cutoff made a column.
    order = {name: i for i, name in enumerate(feature_catalog(features_config)["name"])}
    feature_names = sorted(made, key=lambda n: (order.get(n, len(order)), n))
    return stacked[feature_names + list(LABEL_COLUMNS)]
