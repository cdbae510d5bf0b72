"""Value features: RFM (recency, frequency, monetary) with quintile scores, order value and customer value."""

from __future__ import annotations

from datetime import timedelta

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.base import BuildContext, Feature, FeatureFamily, epoch_seconds, exact_sum
from features.schema import PURCHASE, column_names
from features.usage import DEFAULT_WINDOWS_DAYS, check_windows, count_orders

PREFIX = "value__"
RETURN = "return"
SECONDS_PER_DAY = 86400
N_SCORES = 5  # quintiles


class ValueConfig(BaseModel):
    """Settings of the value family (features.value)."""

    model_config = ConfigDict(extra="forbid")

    windows_days: list[int] | None = Field(
        None, description="Windows (days before the cutoff) of value__revenue_<N>d; empty = features.windows_days."
    )
    rfm_window_days: int | None = Field(
        365,
        gt=0,
        description="Frequency and monetary count the orders and revenue of the last N days (the usual "
        "12-month RFM); empty = the whole history. Recency always looks at the whole history.",
    )

    @field_validator("windows_days")
    @classmethod
    def _valid_windows(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else check_windows(value, "features.value.windows_days")

    def windows(self) -> list[int]:
        """Returns the configured windows, or the default ones when the section was built on its own."""
        return list(self.windows_days or DEFAULT_WINDOWS_DAYS)


def catalog(config: ValueConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the value columns: every one the config can give, or with `ctx` exactly those `build` makes.

    Money columns (monetary, M score, RFM code, order value, revenue, return rate, historic value)
    need a revenue column; recency, frequency and their scores need only purchase events.
    """
    present = set(column_names("events") if ctx is None else ctx.columns)
    win = config.rfm_window_days
    span = f"in the last {win} days" if win else "over the whole history"
    money = "revenue" in present
    score_note = (
        "1-5 among customers with a purchase before the cutoff, empty for the others: "
        "1 + floor(5 * (rank - 1) / n) with rank the lowest rank of tied values, so ties share a score"
    )
    out = [
        Feature(f"{PREFIX}recency_days", "Days from the last purchase to the cutoff; empty without purchases.", "days"),
        Feature(f"{PREFIX}frequency", f"Orders {span}.", "orders"),
        Feature(f"{PREFIX}orders_lifetime", "Orders before the cutoff.", "orders"),
    ]
    if money:
        out += [
            Feature(f"{PREFIX}monetary_gross", f"Purchase revenue {span}.", "currency"),
            Feature(f"{PREFIX}monetary_net", f"Purchase revenue minus returned revenue {span}.", "currency"),
        ]
    out += [
        Feature(f"{PREFIX}r_score", f"Recency score, more recent = higher; {score_note}.", "score 1-5"),
        Feature(f"{PREFIX}f_score", f"Frequency score, more orders = higher; {score_note}.", "score 1-5"),
    ]
    if money:
        out += [
            Feature(f"{PREFIX}m_score", f"Monetary (net) score, more = higher; {score_note}.", "score 1-5"),
            Feature(f"{PREFIX}rfm_score", "100 * r_score + 10 * f_score + m_score, e.g. 545.", "code 111-555"),
            Feature(
                f"{PREFIX}avg_order_value", "Purchase revenue / orders before the cutoff; empty without orders.", "currency"
            ),
        ]
        out += [
            Feature(f"{PREFIX}revenue_{w}d", f"Purchase revenue (gross) in the last {w} days.", "currency")
            for w in config.windows()
        ]
        out += [
            Feature(
                f"{PREFIX}return_rate",
                "Returned revenue / purchase revenue before the cutoff; empty without purchase revenue.",
                "fraction",
            ),
            Feature(f"{PREFIX}historic_value", "Purchase revenue minus returns over the whole history.", "currency"),
        ]
    return out


def _score(value: ir.NumericValue, scored: ir.BooleanValue) -> ir.IntegerValue:
    """Scores a value 1-5 among the scored customers as 1 + floor(5 * r / n), r the 0-based lowest rank of ties.

    Ranking first and cutting the ranks into fifths (rather than ntile over rows) gives tied values the
    same score whatever the row order.
    """
    window = ibis.window(group_by=scored, order_by=value)
    rank0 = ibis.rank().over(window)  # 0-based, ties share the lowest rank
    n = value.count().over(ibis.window(group_by=scored))
    return ibis.ifelse(scored, 1 + (N_SCORES * rank0 / n).floor(), ibis.null("int64"))


def build(events: ir.Table, ctx: BuildContext, config: ValueConfig) -> ir.Table:
    """Computes recency, frequency and monetary value with quintile scores, order value and customer value.

    Monetary sums are kept gross (purchases) and net (minus returns); M is scored on net. Without a
    revenue column only recency, frequency and their scores are made.
    """
    wanted = [f.name for f in catalog(config, ctx)]
    present = ctx.columns
    win = config.rfm_window_days
    cutoff_epoch = int(ctx.cutoff.timestamp())
    # Only purchase and return lines carry value: aggregate those few, then give every customer a row.
    tx = events.filter(events.event_type.isin([PURCHASE, RETURN]))
    buy = tx.event_type == PURCHASE
    everything = ibis.literal(True)
    in_rfm = tx.timestamp >= ibis.literal(ctx.cutoff - timedelta(days=win)) if win else everything
    aggs: dict[str, ir.Value] = {
        "_last_buy_at": tx.timestamp.max(where=buy),
        "frequency": count_orders(tx, present, in_rfm),
        "orders_lifetime": count_orders(tx, present, everything),
    }
    zeros: dict[str, int | float] = {"frequency": 0, "orders_lifetime": 0}
    if "revenue" in present:
        ret = tx.event_type == RETURN

        def money(where: ir.BooleanValue) -> ir.FloatingValue:
            return exact_sum(tx.revenue, where=where).fill_null(0.0)

        aggs["monetary_gross"] = money(buy & in_rfm)
        aggs["_returns_rfm"] = money(ret & in_rfm)
        aggs["_gross"] = money(buy)
        aggs["_returns"] = money(ret)
        for w in config.windows():
            aggs[f"revenue_{w}d"] = money(buy & (tx.timestamp >= ibis.literal(ctx.cutoff - timedelta(days=w))))
        zeros.update({name: 0.0 for name in aggs if name not in zeros and name != "_last_buy_at"})
    money_per = tx.group_by(_cid=tx.customer_id).aggregate(**aggs)
    per = events.select("customer_id").distinct()
    per = per.left_join(money_per, per.customer_id == money_per._cid).drop("_cid")
    # Epoch seconds of the latest purchase only, not of every event: the same number, far fewer conversions.
    per = per.mutate(_last_buy=epoch_seconds(per._last_buy_at), **{k: per[k].fill_null(v) for k, v in zeros.items()})

    scored = per.orders_lifetime > 0
    derived: dict[str, ir.Value] = {
        "recency_days": (cutoff_epoch - per._last_buy) / SECONDS_PER_DAY,
        # A later last purchase is more recent, so R ranks on the time of the last purchase.
        "r_score": _score(per._last_buy, scored),
        "f_score": _score(per.frequency, scored),
    }
    if "revenue" in present:
        net = per.monetary_gross - per._returns_rfm
        derived["monetary_net"] = net
        derived["m_score"] = _score(net, scored)
        derived["avg_order_value"] = ibis.ifelse(scored, per._gross / per.orders_lifetime, ibis.null("float64"))
        derived["return_rate"] = ibis.ifelse(per._gross > 0, per._returns / per._gross, ibis.null("float64"))
        derived["historic_value"] = per._gross - per._returns
    per = per.mutate(**derived)
    if "revenue" in present:
        per = per.mutate(rfm_score=100 * per.r_score + 10 * per.f_score + per.m_score)

    def typed(name: str) -> ir.Value:
        col = per[name.removeprefix(PREFIX)]
        # Scores are float64, not int64: they are empty for customers without a purchase, and an
        # integer column with gaps would come back as int64 on one dataset and float64 on another.
        if name.endswith(("frequency", "orders_lifetime")):
            return col.cast("int64")
        return col.cast("float64")

    return per.select("customer_id", **{name: typed(name) for name in wanted})


FAMILY = FeatureFamily(
    name="value",
    description="RFM with quintile scores, average order value, revenue per window and historic value.",
    build=build,
    catalog=catalog,
    requires_event_types=(PURCHASE,),
)
