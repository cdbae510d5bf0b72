"""Journey signals: time-decayed activity per event type (recent and long horizon), funnel depth, stage and channel mix."""

from __future__ import annotations

import re
from datetime import timedelta

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.base import BuildContext, Feature, FeatureFamily, fixed_point
from features.schema import EVENT_TYPES, FUNNEL_STEPS

NAME = "journey"
PREFIX = f"{NAME}__"

DEFAULT_STAGE_GROUPS: dict[str, list[str]] = {
    "awareness": ["ad_click", "page_view"],
    "education": ["content_view", "search"],
    "consideration": ["product_view", "add_to_cart", "wishlist_add"],
    "purchase": ["checkout", "purchase"],
    "adoption": ["login", "subscription_start"],
    "retention": ["email_open", "email_click", "support_ticket"],
    "advocacy": ["review", "referral"],
}

DEFAULT_CHANNELS: tuple[str, ...] = ("web", "app", "email", "ads", "store", "support")

_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Fixed-point scale of the decayed counts (see features/base.py exact_sum): weights to 1e-9.
_SCALE = 1e9


def _slug(label: str) -> str:
    """Returns the column-name form of a configured label: lower case, runs of other characters as '_'."""
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")


class JourneyConfig(BaseModel):
    """Settings of the journey family (params.yaml: features.journey)."""

    model_config = ConfigDict(extra="forbid")

    lookback_days: int = Field(
        14, ge=1, description="Days before the cutoff whose events feed the decayed counts, funnel depth and mixes."
    )
    half_life_days: float = Field(
        7.0,
        gt=0,
        description="Age in days at which an event counts half in the decayed counts: weight "
        "0.5 ** (age / half_life_days).",
    )
    long_lookback_days: int = Field(
        90,
        ge=1,
        description="Days before the cutoff whose events feed the long-horizon decayed counts "
        "(journey__decayed_long_<event_type>). Stages such as retention, advocacy and lapsed last weeks to "
        "months while most customers have only a few events a month, so the recent counts alone often see "
        "nothing; the long horizon keeps the evidence of the last months.",
    )
    long_half_life_days: float = Field(
        30.0,
        gt=0,
        description="Half-life in days of the long-horizon decayed counts: weight 0.5 ** (age / long_half_life_days).",
    )
    stage_groups: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_STAGE_GROUPS.items()},
        description="Stage-indicative groups of canonical event types; each gives journey__<group>_share. "
        "A type may belong to one group only.",
    )
    channels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS),
        description="Channels reported as journey__channel_<channel>_share (matched case-insensitively).",
    )

    @field_validator("stage_groups")
    @classmethod
    def _groups_valid(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        owner: dict[str, str] = {}
        for group, types in groups.items():
            if not _GROUP_NAME.match(group):
                raise ValueError(
                    f"features.journey.stage_groups: group name {group!r} must be lower snake case "
                    "(letters, digits, '_', starting with a letter); rename it"
                )
            if not types:
                raise ValueError(
                    f"features.journey.stage_groups.{group}: lists no event type; add some or drop the group"
                )
            for event_type in types:
                if event_type not in EVENT_TYPES:
                    raise ValueError(
                        f"features.journey.stage_groups.{group}: {event_type!r} is not a canonical event type; "
                        f"use one of {sorted(EVENT_TYPES)}"
                    )
                if event_type in owner:
                    raise ValueError(
                        f"features.journey.stage_groups: {event_type!r} is in both {owner[event_type]!r} and "
                        f"{group!r}; keep it in one group so the shares add up to at most 1"
                    )
                owner[event_type] = group
        return groups

    @field_validator("channels")
    @classmethod
    def _channels_distinct(cls, channels: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for channel in channels:
            slug = _slug(channel)
            if not slug:
                raise ValueError(f"features.journey.channels: {channel!r} has no letter or digit; give it a name")
            if slug in seen:
                raise ValueError(
                    f"features.journey.channels: {seen[slug]!r} and {channel!r} both become column name part "
                    f"{slug!r}; keep one of them"
                )
            seen[slug] = channel
        return channels


def decayed_column(event_type: str) -> str:
    """Returns the column name of an event type's decayed count, as the journey-stage classifier reads it."""
    return f"{PREFIX}decayed_{event_type}"


def long_decayed_column(event_type: str) -> str:
    """Returns the column name of an event type's long-horizon decayed count (long_lookback_days, long_half_life_days)."""
    return f"{PREFIX}decayed_long_{event_type}"


def catalog(config: JourneyConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the journey columns: every one the config can give, or with `ctx` exactly those `build` makes.

    With `ctx`, decayed counts and stage shares of event types that never occur before the cutoff,
    the funnel depth when no funnel step occurs, and the channel mix without a channel column are
    omitted rather than filled with made-up zeros.
    """
    lookback = f"in the {config.lookback_days} days before the cutoff"
    present = (lambda types: True) if ctx is None else (lambda types: bool(ctx.event_types.intersection(types)))
    features = [
        Feature(
            decayed_column(event_type),
            f"{event_type} events {lookback}, each weighted 0.5 ** (age in days at the cutoff / "
            f"{config.half_life_days:g}).",
            "decayed count",
        )
        for event_type in EVENT_TYPES
        if present([event_type])
    ]
    long_lookback = f"in the {config.long_lookback_days} days before the cutoff"
    features += [
        Feature(
            long_decayed_column(event_type),
            f"{event_type} events {long_lookback}, each weighted 0.5 ** (age in days at the cutoff / "
            f"{config.long_half_life_days:g}): the long-horizon counterpart of {decayed_column(event_type)}.",
            "decayed count",
        )
        for event_type in EVENT_TYPES
        if present([event_type])
    ]
    if present(FUNNEL_STEPS):
        steps = ", ".join(f"{i} {step}" for i, step in enumerate(FUNNEL_STEPS, start=1))
        features.append(
            Feature(
                f"{PREFIX}deepest_funnel_step", f"Deepest funnel step reached {lookback}: 0 none, {steps}.", "step 0-4"
            )
        )
    features += [
        Feature(
            f"{PREFIX}{group}_share",
            f"Share of the customer's events {lookback} of type {', '.join(types)}; null without events.",
            "share 0-1",
        )
        for group, types in config.stage_groups.items()
        if present(types)
    ]
    if ctx is None or "channel" in ctx.columns:
        features += [
            Feature(
                f"{PREFIX}channel_{_slug(channel)}_share",
                f"Share of the customer's events with a channel {lookback} on channel {channel!r}; "
                "null when none has a channel.",
                "share 0-1",
            )
            for channel in config.channels
        ]
    features.append(
        Feature(
            f"{PREFIX}last_event_type",
            "Type of the customer's latest event before the cutoff (any age); on a tie in time the "
            "alphabetically last type.",
            "category",
        )
    )
    return features


def _epoch(ts: ir.TimestampValue) -> ir.FloatingValue:
    # Whole seconds: DuckDB keeps fractions where Spark truncates, so floor for engine parity.
    return ts.epoch_seconds().cast("float64").floor().cast("float64")


def build(events: ir.Table, ctx: BuildContext, config: JourneyConfig) -> ir.Table:
    """Builds one row per customer of decayed event counts, funnel depth, stage and channel mix, last event.

    Events are first reduced to one row per (customer, event type) with its recent count, summed
    fixed-point weights and latest time; the per-type columns are then read off that small table.
    Fixed-point sums are integers, so the two steps give exactly the numbers of one direct sum.
    """
    columns = [f.name for f in catalog(config, ctx)]
    cutoff = ctx.cutoff  # aware UTC: build_features normalises it
    recent = events.timestamp >= ibis.literal(cutoff - timedelta(days=config.lookback_days))
    in_long = events.timestamp >= ibis.literal(cutoff - timedelta(days=config.long_lookback_days))
    age_days = (cutoff.timestamp() - _epoch(events.timestamp)) / 86400.0
    etype = events.event_type

    def weight(inside: ir.BooleanValue, half_life: float) -> ir.IntegerValue:
        # A CASE rather than FILTER: DuckDB then computes the power only for the events inside the window.
        return ibis.ifelse(inside, fixed_point(ibis.literal(0.5) ** (age_days / half_life), _SCALE), ibis.null("int64"))

    per_type = events.group_by(["customer_id", "event_type"]).agg(
        _n_recent=etype.count(where=recent),
        _weight=weight(recent, config.half_life_days).sum(),
        _long_weight=weight(in_long, config.long_half_life_days).sum(),
        _last=events.timestamp.max(),
    )
    per_type = per_type.mutate(_latest=per_type._last.max().over(group_by=per_type.customer_id))
    ptype = per_type.event_type

    def decayed(weights: ir.IntegerColumn, event_type: str) -> ir.FloatingScalar:
        return (weights.sum(where=ptype == event_type).cast("float64") / _SCALE).fill_null(0.0)

    aggs: dict[str, ir.Scalar] = {}
    for event_type in EVENT_TYPES:
        if decayed_column(event_type) in columns:
            aggs[decayed_column(event_type)] = decayed(per_type._weight, event_type)
    for event_type in EVENT_TYPES:
        if long_decayed_column(event_type) in columns:
            aggs[long_decayed_column(event_type)] = decayed(per_type._long_weight, event_type)
    if f"{PREFIX}deepest_funnel_step" in columns:
        depth = ptype.cases(*[(step, i) for i, step in enumerate(FUNNEL_STEPS, start=1)], else_=0)
        aggs[f"{PREFIX}deepest_funnel_step"] = depth.max(where=per_type._n_recent > 0).fill_null(0)
    n_recent = per_type._n_recent.sum().nullif(0)
    for group, types in config.stage_groups.items():
        if f"{PREFIX}{group}_share" in columns:
            aggs[f"{PREFIX}{group}_share"] = per_type._n_recent.sum(where=ptype.isin(types)).fill_null(0) / n_recent
    # Deterministic on ties (several events at the latest instant): the alphabetically last type.
    aggs[f"{PREFIX}last_event_type"] = ptype.max(where=per_type._last == per_type._latest)
    out = per_type.group_by("customer_id").agg(**aggs)

    if "channel" in ctx.columns:
        # Only recent events carry a channel share, so they are read apart from the per-type table.
        # lower() only: ibis's strip() on Spark also trims the letters f and v (see features/benefits.py).
        near = events.filter(recent)
        channel = near.channel.lower()
        with_channel = near.event_type.count(where=channel.notnull()).nullif(0)
        shares = near.group_by(_cid=near.customer_id).agg(
            **{
                f"{PREFIX}channel_{_slug(label)}_share": near.event_type.count(where=channel == label.strip().lower())
                / with_channel
                for label in config.channels
            }
        )
        out = out.left_join(shares, out.customer_id == shares._cid).drop("_cid")
    return out.select("customer_id", **{name: _typed(out[name]) for name in columns})


def _typed(value: ir.Value) -> ir.Value:
    """Casts counts to int64 and other numbers to float64 (text stays) so every engine returns the same dtypes."""
    if value.type().is_string():
        return value
    return value.cast("int64") if value.type().is_integer() else value.cast("float64")


# Purchases and returns alone place a customer only on the purchase-or-lapsed axis that timing and
# value already measure, so the family needs at least one behavioural (non-transaction) event type.
_BEHAVIOURAL_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t not in ("purchase", "return"))

FAMILY = FeatureFamily(
    name=NAME,
    description="Journey position: time-decayed activity per event type (recent and long horizon), deepest funnel step, "
    "stage-group and channel mix, last event type.",
    build=build,
    catalog=catalog,
    requires_event_types=_BEHAVIOURAL_EVENT_TYPES,
)
