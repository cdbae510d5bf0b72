"""Engagement and satisfaction: email response, voice-of-the-customer events, returns, ratings, NPS or CSAT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.base import BuildContext, Feature, FeatureFamily, exact_sum

NAME = "engagement"
PREFIX = f"{NAME}__"

# Each of these types alone gives at least one column, so the family is skipped only without all of them.
_EVENT_TYPES_USED: tuple[str, ...] = (
    "email_open",
    "email_click",
    "review",
    "referral",
    "support_ticket",
    "complaint",
    "return",
    "survey",
)


class EngagementConfig(BaseModel):
    """Settings of the engagement family (params.yaml: features.engagement)."""

    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(365, ge=1, description="Days before the cutoff whose events count.")
    survey_scale: Literal["nps", "csat"] = Field(
        "nps",
        description="How survey ratings read: 'nps' (0-10, gives engagement__nps) or 'csat' (e.g. 1-5, gives "
        "engagement__csat).",
    )
    nps_promoter_min: float = Field(9.0, description="NPS answers at or above this score are promoters.")
    nps_detractor_max: float = Field(6.0, description="NPS answers at or below this score are detractors.")
    csat_satisfied_min: float = Field(4.0, description="CSAT answers at or above this score count as satisfied.")

    @model_validator(mode="after")
    def _nps_bands_apart(self) -> EngagementConfig:
        if self.nps_detractor_max >= self.nps_promoter_min:
            raise ValueError(
                f"features.engagement: nps_detractor_max ({self.nps_detractor_max:g}) must be below "
                f"nps_promoter_min ({self.nps_promoter_min:g}); the usual bands are 6 and 9"
            )
        return self


def _has(*types: str, column: str | None = None) -> Callable[[BuildContext], bool]:
    return lambda ctx: set(types) <= ctx.event_types and (column is None or column in ctx.columns)


@dataclass(frozen=True)
class _Column:
    """One catalog entry and the inputs it needs."""

    feature: Feature
    available: Callable[[BuildContext], bool]


def _columns(config: EngagementConfig) -> list[_Column]:
    """Lists every column the family can make, in output order, with the inputs each one needs."""
    window = f"in the {config.window_days} days before the cutoff"
    if config.survey_scale == "nps":
        score = Feature(
            f"{PREFIX}nps",
            f"Net promoter score of the customer's rated survey answers {window}: 100 x (share of answers >= "
            f"{config.nps_promoter_min:g} minus share <= {config.nps_detractor_max:g}); null without answers.",
            "NPS points -100..100",
        )
    else:
        score = Feature(
            f"{PREFIX}csat",
            f"100 x share of the customer's rated survey answers {window} scoring >= {config.csat_satisfied_min:g}; "
            "null without answers.",
            "percent 0-100",
        )
    return [
        _Column(Feature(f"{PREFIX}email_opens", f"email_open events {window}.", "count"), _has("email_open")),
        _Column(Feature(f"{PREFIX}email_clicks", f"email_click events {window}.", "count"), _has("email_click")),
        _Column(
            Feature(
                f"{PREFIX}email_click_to_open_rate",
                f"email_click events per email_open event {window} (emails sent are rarely in the data, so "
                "this replaces open and click rates; above 1 when clicks outnumber tracked opens); null without opens.",
                "clicks per open",
            ),
            _has("email_open", "email_click"),
        ),
        _Column(Feature(f"{PREFIX}reviews", f"review events {window}.", "count"), _has("review")),
        _Column(
            Feature(
                f"{PREFIX}avg_review_rating",
                f"Mean rating (stars) of the customer's rated reviews {window}; null without one.",
                "rating",
            ),
            _has("review", column="rating"),
        ),
        _Column(Feature(f"{PREFIX}referrals", f"referral events {window}.", "count"), _has("referral")),
        _Column(
            Feature(f"{PREFIX}support_tickets", f"support_ticket events {window}.", "count"), _has("support_ticket")
        ),
        _Column(Feature(f"{PREFIX}complaints", f"complaint events {window}.", "count"), _has("complaint")),
        _Column(
            Feature(
                f"{PREFIX}returns",
                f"Returned orders {window}: distinct order_id of return events, each return without one on its own.",
                "count",
            ),
            _has("return"),
        ),
        _Column(
            Feature(
                f"{PREFIX}return_rate",
                f"Returned orders / purchased orders {window} (orders counted as in engagement__returns; above 1 "
                "when returns refer to orders bought before the window; the revenue-based rate is "
                "value__return_rate); null without purchases.",
                "returns per order",
            ),
            _has("return", "purchase"),
        ),
        _Column(Feature(f"{PREFIX}surveys", f"survey events {window}.", "count"), _has("survey")),
        _Column(score, _has("survey", column="rating")),
        _Column(
            Feature(
                f"{PREFIX}survey_latest_score",
                f"Rating of the customer's latest rated survey answer {window} (the highest on a tie in time); "
                "null without one.",
                "survey score",
            ),
            _has("survey", column="rating"),
        ),
    ]


def catalog(config: EngagementConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the engagement columns: every one the config can give, or with `ctx` exactly those `build` makes.

    A column whose event types or rating/revenue column are absent from `ctx` is omitted rather than
    filled with made-up zeros.
    """
    return [c.feature for c in _columns(config) if ctx is None or c.available(ctx)]


def _orders(t: ir.Table, ctx: BuildContext, where: ir.BooleanValue) -> ir.IntegerScalar:
    """Counts orders among the rows matching `where`: distinct order_id, each row without one on its own."""
    if "order_id" not in ctx.columns:
        return t.event_type.count(where=where)
    return t.order_id.nunique(where=where) + t.event_type.count(where=where & t.order_id.isnull())


def _attach(base: ir.Table, extra: ir.Table) -> ir.Table:
    """Left-joins a per-customer table (keyed `_cid`) onto the base."""
    return base.left_join(extra, base.customer_id == extra._cid).drop("_cid")


def build(events: ir.Table, ctx: BuildContext, config: EngagementConfig) -> ir.Table:
    """Builds one row per customer of email response, voice-of-the-customer counts, returns and satisfaction.

    Event counts are taken per (customer, event type) first and read off that small table; orders
    and ratings come from the few purchase, return, review and survey rows alone.
    """
    columns = [f.name for f in catalog(config, ctx)]
    since = ibis.literal(ctx.cutoff - timedelta(days=config.window_days))
    # Every event (not only recent ones) is grouped, which keeps a row, with zero counts, for each customer.
    per = events.group_by(["customer_id", "event_type"]).agg(
        _n=events.event_type.count(where=events.timestamp >= since)
    )

    def n(event_type: str) -> ir.IntegerScalar:
        return per._n.sum(where=per.event_type == event_type).fill_null(0)

    aggs: dict[str, ir.Scalar] = {
        f"{PREFIX}email_opens": n("email_open"),
        f"{PREFIX}email_clicks": n("email_click"),
        f"{PREFIX}email_click_to_open_rate": n("email_click") / n("email_open").nullif(0),
        f"{PREFIX}reviews": n("review"),
        f"{PREFIX}referrals": n("referral"),
        f"{PREFIX}support_tickets": n("support_ticket"),
        f"{PREFIX}complaints": n("complaint"),
        f"{PREFIX}surveys": n("survey"),
    }
    out = per.group_by("customer_id").agg(**{name: value for name, value in aggs.items() if name in columns})

    recent = events.filter(events.timestamp >= since)
    tx = recent.filter(recent.event_type.isin(["purchase", "return"]))
    out = _attach(
        out,
        tx.group_by(_cid=tx.customer_id).agg(
            _returned=_orders(tx, ctx, tx.event_type == "return"), _bought=_orders(tx, ctx, tx.event_type == "purchase")
        ),
    )
    returned = out._returned.fill_null(0)
    derived: dict[str, ir.Value] = {
        f"{PREFIX}returns": returned,
        f"{PREFIX}return_rate": returned / out._bought.nullif(0),  # null also without any recent order
    }
    if "rating" in ctx.columns:
        rated = recent.filter(recent.event_type.isin(["review", "survey"]) & recent.rating.notnull())
        etype = rated.event_type
        answered = etype == "survey"
        # The latest answer's score; max() settles answers given at the same instant. A conditional
        # value rather than FILTER: Spark rejects FILTER on window aggregates.
        latest_at = ibis.ifelse(answered, rated.timestamp, ibis.null()).max().over(group_by=rated.customer_id)
        rated = rated.mutate(
            _latest_score=ibis.ifelse(answered & (rated.timestamp == latest_at), rated.rating, ibis.null("float64"))
        )
        etype, answered = rated.event_type, rated.event_type == "survey"
        answers = etype.count(where=answered).nullif(0)
        scores: dict[str, ir.Scalar] = {
            # exact_sum / count, not mean(): a float mean's last bits depend on the engine's row order.
            f"{PREFIX}avg_review_rating": exact_sum(rated.rating, where=etype == "review")
            / etype.count(where=etype == "review").nullif(0),
            f"{PREFIX}survey_latest_score": rated._latest_score.max(),
        }
        if config.survey_scale == "nps":
            promoters = etype.count(where=answered & (rated.rating >= config.nps_promoter_min))
            detractors = etype.count(where=answered & (rated.rating <= config.nps_detractor_max))
            scores[f"{PREFIX}nps"] = 100.0 * (promoters - detractors) / answers
        else:
            satisfied = etype.count(where=answered & (rated.rating >= config.csat_satisfied_min))
            scores[f"{PREFIX}csat"] = 100.0 * satisfied / answers
        out = _attach(out, rated.group_by(_cid=rated.customer_id).agg(**scores))
    out = out.mutate(**derived)
    return out.select("customer_id", **{name: _typed(out[name]) for name in columns})


def _typed(value: ir.Value) -> ir.Value:
    """Casts counts to int64 and everything else to float64 so every engine returns the same dtypes."""
    return value.cast("int64") if value.type().is_integer() else value.cast("float64")


FAMILY = FeatureFamily(
    name=NAME,
    description="Engagement and satisfaction: email response, reviews, referrals, support tickets, complaints, "
    "returns, review ratings and NPS or CSAT.",
    build=build,
    catalog=catalog,
    requires_event_types=_EVENT_TYPES_USED,
)
