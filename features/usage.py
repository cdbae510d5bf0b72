"""Usage features: how much and how often a customer uses the product, and how broad and deep that use is."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.base import BuildContext, Feature, FeatureFamily, exact_sum
from features.schema import EVENT_TYPES, PURCHASE, column_names

PREFIX = "usage__"
RETURN = "return"
DEFAULT_WINDOWS_DAYS: tuple[int, ...] = (7, 30, 90, 365)


def check_windows(value: list[int], key: str) -> list[int]:
    """Returns the windows sorted; rejects an empty list, non-positive and repeated values, naming the key."""
    if not value:
        raise ValueError(f"{key} is empty; give at least one window in days, e.g. [30]")
    bad = [w for w in value if w <= 0]
    if bad:
        raise ValueError(f"{key} has non-positive window(s) {bad}; windows are days > 0, e.g. [7, 30, 90]")
    repeated = sorted({w for w in value if value.count(w) > 1})
    if repeated:
        raise ValueError(f"{key} lists {repeated} more than once; give each window once")
    return sorted(value)


class UsageConfig(BaseModel):
    """Settings of the usage family (features.usage)."""

    model_config = ConfigDict(extra="forbid")

    windows_days: list[int] | None = Field(
        None,
        description="Windows (days before the cutoff) of the per-window counts; empty = features.windows_days.",
    )
    main_window_days: int = Field(
        90,
        gt=0,
        description="Window whose event count is percentile-ranked within the population "
        "(usage__events_pctile_<N>d, the input to heavy/medium/light usage tiers).",
    )
    trend_window_days: int = Field(
        30,
        gt=0,
        description="The trend compares events in the last N days with events in the N days before.",
    )
    key_actions: list[str] = Field(
        default_factory=lambda: ["add_to_cart", "checkout", "purchase"],
        description="Event types counted as key actions in usage__key_action_share.",
    )

    @field_validator("windows_days")
    @classmethod
    def _valid_windows(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else check_windows(value, "features.usage.windows_days")

    @field_validator("key_actions")
    @classmethod
    def _known_event_types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("features.usage.key_actions is empty; list at least one event type, e.g. [purchase]")
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(
                f"features.usage.key_actions has unknown event type(s) {unknown}; allowed: {list(EVENT_TYPES)}"
            )
        return list(dict.fromkeys(value))

    def windows(self) -> list[int]:
        """Returns the configured windows, or the default ones when the section was built on its own."""
        return list(self.windows_days or DEFAULT_WINDOWS_DAYS)


# Lifetime breadth counts that need one optional column each: (column, feature suffix, description).
_BREADTH: tuple[tuple[str, str, str], ...] = (
    ("category", "distinct_categories", "Distinct product categories touched before the cutoff."),
    ("product_id", "distinct_products", "Distinct products touched before the cutoff."),
    ("channel", "distinct_channels", "Distinct channels used before the cutoff."),
)


def catalog(config: UsageConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the usage columns: every one the config can give, or with `ctx` exactly those `build` makes.

    Availability depends only on which event columns exist (category, product_id, channel, revenue,
    session_id), never on the cutoff, so every snapshot of the same data has the same columns.
    """
    present = set(column_names("events") if ctx is None else ctx.columns)
    out: list[Feature] = []
    session_note = "distinct session_id" if "session_id" in present else "distinct active days (no session_id)"
    for w in config.windows():
        out += [
            Feature(f"{PREFIX}events_{w}d", f"Events in the {w} days before the cutoff.", "events"),
            Feature(f"{PREFIX}sessions_{w}d", f"Sessions in the last {w} days: {session_note}.", "sessions"),
            Feature(f"{PREFIX}active_days_{w}d", f"Distinct UTC calendar days with an event in the last {w} days.", "days"),
            Feature(f"{PREFIX}purchases_{w}d", f"Purchases (orders) in the last {w} days.", "orders"),
            Feature(f"{PREFIX}events_per_week_{w}d", f"Events in the last {w} days divided by {w}/7 weeks.", "events/week"),
            Feature(
                f"{PREFIX}sessions_per_week_{w}d", f"Sessions in the last {w} days divided by {w}/7 weeks.", "sessions/week"
            ),
            Feature(
                f"{PREFIX}purchases_per_week_{w}d", f"Purchases in the last {w} days divided by {w}/7 weeks.", "orders/week"
            ),
        ]
    m, t = config.main_window_days, config.trend_window_days
    out += [
        Feature(
            f"{PREFIX}events_pctile_{m}d",
            f"Percentile rank (0-1, ties share the lowest) of events in the last {m} days among the customers "
            f"with at least one event in them; empty for the others.",
            "fraction",
        ),
        Feature(
            f"{PREFIX}events_trend_{t}d",
            f"(recent - previous) / (recent + previous) with recent = events in the last {t} days, previous = "
            f"events in the {t} days before; 0 when both are 0. -1 = stopped, +1 = all new.",
            "index -1..1",
        ),
        Feature(
            f"{PREFIX}events_ratio_{t}d",
            f"(recent + 1) / (previous + 1), the add-one smoothed ratio of the same two {t}-day windows; "
            "1 when both are 0, never infinite.",
            "ratio",
        ),
        Feature(f"{PREFIX}distinct_event_types", "Distinct event types done before the cutoff.", "types"),
    ]
    out += [Feature(f"{PREFIX}{name}", desc, "count") for col, name, desc in _BREADTH if col in present]
    out += [
        Feature(
            f"{PREFIX}events_per_session",
            f"Events per session over the whole history before the cutoff (sessions: {session_note}).",
            "events/session",
        ),
        Feature(
            f"{PREFIX}key_action_share",
            f"Share of events before the cutoff that are key actions {config.key_actions}.",
            "fraction",
        ),
    ]
    if "revenue" in present:
        out.append(
            Feature(
                f"{PREFIX}revenue_per_active_day",
                "Net revenue (purchases minus returns) before the cutoff per active day.",
                "currency/day",
            )
        )
    return out


def count_orders(events: ir.Table, present: Collection[str], where: ir.BooleanValue) -> ir.IntegerValue:
    """Counts purchases: distinct order_id when the column exists (lines without one count singly)."""
    is_purchase = (events.event_type == PURCHASE) & where
    if "order_id" in present:
        return events.order_id.nunique(where=is_purchase) + events.count(where=is_purchase & events.order_id.isnull())
    return events.count(where=is_purchase)


def build(events: ir.Table, ctx: BuildContext, config: UsageConfig) -> ir.Table:
    """Counts events, sessions, active days and purchases per window and measures breadth and depth of use.

    Windows are [cutoff - w days, cutoff). Active days are UTC calendar days. Quality features
    (breadth, events per session, key-action share, revenue per active day) use the whole history
    before the cutoff. Distinct sessions, days and orders are counted in two steps (one row per
    session / day / order with its latest event, then counts per window): the same numbers as
    COUNT(DISTINCT ...) FILTER per window, about 3x faster on DuckDB at 10M events.
    """
    present = ctx.columns
    wanted = [f.name for f in catalog(config, ctx)]
    windows = config.windows()
    m, t = config.main_window_days, config.trend_window_days
    starts = {w: ibis.literal(ctx.cutoff - timedelta(days=w)) for w in sorted({*windows, m, t, 2 * t})}

    def with_day(table: ir.Table) -> ir.Table:
        # UTC day number from the epoch (cheap on DuckDB, unlike CAST(timestamptz AS DATE)); same days as
        # .date() in UTC. Added only where needed: a column shared by every step made DuckDB materialise
        # a copy of all events (about 1 GB at 10M events).
        return table.mutate(_day=(table.timestamp.epoch_seconds() / 86400).floor().cast("int64"))

    # Level 1: one row per (customer, session), (customer, day) and (customer, order) with its latest event;
    # a session / day / order is in a window when its latest event is.
    def latest(table: ir.Table, keys: list[str]) -> ir.Table:
        return table.group_by(["customer_id", *keys]).aggregate(_last=table.timestamp.max())

    days = latest(with_day(events), ["_day"])
    if "session_id" in present:
        sessions = latest(events.filter(events.session_id.notnull()), ["session_id"]).select("customer_id", "_last")
        sessions = sessions.union(
            latest(with_day(events.filter(events.session_id.isnull())), ["_day"]).select("customer_id", "_last")
        )
    else:
        sessions = days.select("customer_id", "_last")
    buys = events.filter(events.event_type == PURCHASE)
    if "order_id" in present:
        orders = latest(buys.filter(buys.order_id.notnull()), ["order_id"]).select("customer_id", "_last").union(
            buys.filter(buys.order_id.isnull()).select("customer_id", _last=buys.timestamp)
        )
    else:
        orders = buys.select("customer_id", _last=buys.timestamp)

    def per_window(table: ir.Table, what: str, lifetime: str | None = None) -> ir.Table:
        aggs = {f"{what}_{w}d": table.count(where=table._last >= starts[w]) for w in windows}
        if lifetime:
            aggs[lifetime] = table.count()
        return table.group_by("customer_id").aggregate(**aggs)

    aggs: dict[str, ir.Value] = {}
    for w in windows:
        aggs[f"events_{w}d"] = events.count(where=events.timestamp >= starts[w])
    aggs["_main"] = events.count(where=events.timestamp >= starts[m])
    aggs["_recent"] = events.count(where=events.timestamp >= starts[t])
    aggs["_previous"] = events.count(where=(events.timestamp >= starts[2 * t]) & (events.timestamp < starts[t]))
    aggs["_events"] = events.count()
    aggs["_key"] = events.count(where=events.event_type.isin(config.key_actions))
    aggs["distinct_event_types"] = events.event_type.nunique()
    for col, name, _ in _BREADTH:
        if col in present:
            aggs[name] = events[col].nunique()
    if "revenue" in present:
        signed = ibis.cases(
            (events.event_type == PURCHASE, events.revenue),
            (events.event_type == RETURN, -events.revenue),
            else_=ibis.literal(0.0),
        )
        aggs["_net_revenue"] = exact_sum(signed).fill_null(0.0)
    per = events.group_by("customer_id").aggregate(**aggs)
    for part in (per_window(sessions, "sessions", "_sessions"), per_window(days, "active_days", "_active_days"),
                 per_window(orders, "purchases")):
        part = part.rename(_cid="customer_id")
        per = per.left_join(part, per.customer_id == part._cid).drop("_cid")
    per = per.mutate(**{f"purchases_{w}d": per[f"purchases_{w}d"].fill_null(0) for w in windows})

    derived: dict[str, ir.Value] = {}
    for w in windows:
        for what in ("events", "sessions", "purchases"):
            derived[f"{what}_per_week_{w}d"] = per[f"{what}_{w}d"].cast("float64") * 7 / w
    # Ranked among the customers active in the window: with the inactive ones included (often the
    # majority), every active customer would sit above their share and "light" would hardly exist.
    active = per["_main"] > 0
    derived[f"events_pctile_{m}d"] = ibis.cases(
        (active, ibis.percent_rank().over(group_by=active, order_by=per["_main"])), else_=ibis.null("float64"))
    recent, previous = per["_recent"].cast("float64"), per["_previous"].cast("float64")
    total = recent + previous
    derived[f"events_trend_{t}d"] = ibis.cases((total == 0, 0.0), else_=(recent - previous) / total)
    derived[f"events_ratio_{t}d"] = (recent + 1.0) / (previous + 1.0)
    derived["events_per_session"] = per["_events"] / per["_sessions"]
    derived["key_action_share"] = per["_key"] / per["_events"]
    if "revenue" in present:
        derived["revenue_per_active_day"] = per["_net_revenue"] / per["_active_days"]
    per = per.mutate(**derived)
    names = [k for k in per.columns if not k.startswith("_") and k != "customer_id"]
    named = {f"{PREFIX}{k}": per[k] for k in names}
    return per.select("customer_id", **{name: _typed(named[name]) for name in wanted})


def _typed(value: ir.Value) -> ir.Value:
    """Casts counts to int64 and everything else to float64 so both engines return the same dtypes."""
    return value.cast("int64") if value.type().is_integer() else value.cast("float64")


FAMILY = FeatureFamily(
    name="usage",
    description="Quantity, frequency, trend and quality (breadth, depth, value per use) of use.",
    build=build,
    catalog=catalog,
)
