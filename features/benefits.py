"""Benefits sought: the topics, categories, deals and buying aids a customer's behaviour points to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.base import BuildContext, Feature, FeatureFamily, exact_sum

NAME = "benefits"
PREFIX = f"{NAME}__"

DEFAULT_TOPICS: tuple[str, ...] = (
    "promo",
    "sale",
    "specs",
    "comparison",
    "returns_policy",
    "warranty",
    "faq",
    "shipping",
    "reviews",
    "bestsellers",
    "recommendations",
)

# Every event type some benefits column reads, named in the reason the family gives when it is skipped.
_EVENT_TYPES_USED: tuple[str, ...] = (
    "product_view",
    "add_to_cart",
    "wishlist_add",
    "purchase",
    "coupon_use",
    "recommendation_click",
)


def _slug(label: str) -> str:
    """Returns the column-name form of a configured label: lower case, runs of other characters as '_'."""
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")


def _check_labels(values: list[str], key: str) -> list[str]:
    """Rejects empty labels and labels that would give the same column name."""
    seen: dict[str, str] = {}
    for value in values:
        slug = _slug(value)
        if not slug:
            raise ValueError(f"features.benefits.{key}: {value!r} has no letter or digit; give it a name")
        if slug in seen:
            raise ValueError(
                f"features.benefits.{key}: {seen[slug]!r} and {value!r} both become column name part "
                f"{slug!r}; keep one of them"
            )
        seen[slug] = value
    return values


class BenefitsConfig(BaseModel):
    """Settings of the benefits-sought family (params.yaml: features.benefits)."""

    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(
        365, ge=1, description="Days before the cutoff whose events count; older events are ignored."
    )
    topics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TOPICS),
        description="Benefit tags / content topics reported as one share column each (matched case-insensitively "
        "against the event's topic, else the catalog topic of its product).",
    )
    categories: list[str] = Field(
        default_factory=list,
        description="Product categories reported as one share column each (matched case-insensitively); "
        "empty: no category columns. List your top categories to bound the column count.",
    )
    abandonment_hours: float = Field(
        24.0,
        gt=0,
        description="An add_to_cart not followed by a purchase of the customer within this many hours is "
        "abandoned; carts younger than this at the cutoff are not judged yet.",
    )

    @field_validator("topics")
    @classmethod
    def _topics_distinct(cls, values: list[str]) -> list[str]:
        return _check_labels(values, "topics")

    @field_validator("categories")
    @classmethod
    def _categories_distinct(cls, values: list[str]) -> list[str]:
        return _check_labels(values, "categories")


def _has_side_column(ctx: BuildContext, column: str) -> bool:
    """Tells whether the catalog can supply `column` to the events through product_id."""
    return ctx.catalog is not None and column in ctx.catalog.columns and "product_id" in ctx.columns


def _has_topic(ctx: BuildContext) -> bool:
    return "topic" in ctx.columns or _has_side_column(ctx, "topic")


def _has_category(ctx: BuildContext) -> bool:
    return "category" in ctx.columns or _has_side_column(ctx, "category")


def _has_types(*types: str) -> Callable[[BuildContext], bool]:
    return lambda ctx: set(types) <= ctx.event_types


@dataclass(frozen=True)
class _Column:
    """One catalog entry and the inputs it needs."""

    feature: Feature
    available: Callable[[BuildContext], bool]


def _columns(config: BenefitsConfig) -> list[_Column]:
    """Lists every column the family can make, in output order, with the inputs each one needs."""
    window = f"in the {config.window_days} days before the cutoff"
    cols = [
        _Column(
            Feature(
                f"{PREFIX}topic_{_slug(topic)}_share",
                f"Share of the customer's topic-tagged events {window} whose topic is {topic!r} "
                "(event topic, else the catalog topic of the product); null when none is tagged.",
                "share 0-1",
            ),
            _has_topic,
        )
        for topic in config.topics
    ]
    cols += [
        _Column(
            Feature(
                f"{PREFIX}category_{_slug(category)}_share",
                f"Share of the customer's events with a known category {window} in category {category!r}; "
                "null when none has a category.",
                "share 0-1",
            ),
            _has_category,
        )
        for category in config.categories
    ]
    cols += [
        _Column(
            Feature(
                f"{PREFIX}discounted_purchase_share",
                f"Share of the customer's orders {window} with a discount > 0 on any line; null without orders.",
                "share 0-1",
            ),
            lambda ctx: "discount" in ctx.columns and "purchase" in ctx.event_types,
        ),
        _Column(
            Feature(
                f"{PREFIX}avg_discount",
                f"Mean discount over the customer's discounted purchase lines {window}, in the unit of the "
                "discount column (amount, or 1 for a 0/1 flag); null without a discounted line.",
                "discount unit",
            ),
            lambda ctx: "discount" in ctx.columns and "purchase" in ctx.event_types,
        ),
        _Column(
            Feature(
                f"{PREFIX}coupon_uses_per_purchase",
                f"coupon_use events per order {window}; null without orders.",
                "coupons per order",
            ),
            _has_types("coupon_use", "purchase"),
        ),
        _Column(
            Feature(
                f"{PREFIX}recommendation_clicks_per_product_view",
                f"recommendation_click events per product_view event {window} (cross-sell click rate); "
                "null without product views.",
                "clicks per view",
            ),
            _has_types("recommendation_click", "product_view"),
        ),
        _Column(
            Feature(
                f"{PREFIX}cart_abandonment_rate",
                f"Share of the customer's add_to_cart events {window} and at least {config.abandonment_hours:g} "
                f"hours before the cutoff with no purchase by the customer within {config.abandonment_hours:g} "
                "hours after; null without such carts.",
                "share 0-1",
            ),
            _has_types("add_to_cart", "purchase"),
        ),
        _Column(
            Feature(f"{PREFIX}wishlist_adds", f"wishlist_add events {window}.", "count"),
            _has_types("wishlist_add"),
        ),
        _Column(
            Feature(
                f"{PREFIX}median_hours_view_to_purchase",
                f"Median over the products the customer viewed and then bought {window} of the hours from the "
                "first product_view of the product to its first purchase at or after that view; null when none.",
                "hours",
            ),
            lambda ctx: "product_id" in ctx.columns and {"product_view", "purchase"} <= ctx.event_types,
        ),
    ]
    return cols


def catalog(config: BenefitsConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the benefits columns: every one the config can give, or with `ctx` exactly those `build` makes.

    A column whose inputs (topic or category source, discount column, event types) are absent from
    `ctx` is omitted rather than filled with made-up zeros.
    """
    return [c.feature for c in _columns(config) if ctx is None or c.available(ctx)]


def _epoch(ts: ir.TimestampValue) -> ir.FloatingValue:
    # Whole seconds: DuckDB keeps fractions where Spark truncates, so floor for engine parity.
    return ts.epoch_seconds().cast("float64").floor().cast("float64")


def _orders(t: ir.Table, ctx: BuildContext, where: ir.BooleanValue) -> ir.IntegerScalar:
    """Counts orders among the rows matching `where`: distinct order_id, each row without one on its own."""
    if "order_id" not in ctx.columns:
        return t.event_type.count(where=where)
    return t.order_id.nunique(where=where) + t.event_type.count(where=where & t.order_id.isnull())


def _with_side_columns(events: ir.Table, ctx: BuildContext, needed: list[str]) -> ir.Table:
    """Adds `_topic` / `_category`: the event's own value, else the catalog's for its product (not lower-cased)."""
    out = events
    from_catalog = [c for c in needed if _has_side_column(ctx, c)]
    side = ctx.catalog
    if from_catalog and side is not None:
        # One row per product, so the join never multiplies events; max() picks deterministically.
        lookup = side.group_by(_pid=side.product_id).agg(
            **{f"_catalog_{c}": side[c].cast("string").max() for c in from_catalog}
        )
        out = out.left_join(lookup, out.product_id == lookup._pid).drop("_pid")
    values = {}
    for col in needed:
        sources = [out[col]] if col in ctx.columns else []
        sources += [out[f"_catalog_{col}"]] if col in from_catalog else []
        values[f"_{col}"] = ibis.coalesce(*sources) if len(sources) > 1 else sources[0]
    return out.mutate(**values)


def _attach(base: ir.Table, extra: ir.Table) -> ir.Table:
    """Left-joins a per-customer table onto the base without duplicating the key column."""
    extra = extra.rename(_cid="customer_id")
    return base.left_join(extra, base.customer_id == extra._cid).drop("_cid")


def build(events: ir.Table, ctx: BuildContext, config: BenefitsConfig) -> ir.Table:
    """Builds one row per customer of topic and category shares, deal use, buying aids and purchase speed.

    The counts are taken in two steps: recent events per (customer, counted event type, topic,
    category), then per customer from that much smaller table; orders and discounts come from the
    purchase lines alone. Both give the same integers as counting the events directly.
    """
    columns = [f.name for f in catalog(config, ctx)]
    cutoff = ctx.cutoff  # aware UTC: build_features normalises it
    since = ibis.literal(cutoff - timedelta(days=config.window_days))
    wanted = (("topic", _has_topic, config.topics), ("category", _has_category, config.categories))
    side = [c for c, has, labels in wanted if labels and has(ctx)]
    t = _with_side_columns(events, ctx, side) if side else events
    # Only the types counted below keep their name in the grouping key: fewer, larger groups.
    counted = ["coupon_use", "recommendation_click", "product_view", "wishlist_add"]
    kind = ibis.ifelse(t.event_type.isin(counted), t.event_type, ibis.null("string"))
    side_keys = [f"_{c}" for c in side]
    # Every event (not only recent ones) is grouped, which keeps a row, with zero counts, for each customer.
    per = t.group_by(["customer_id", kind.name("event_type"), *side_keys]).agg(
        _n=t.event_type.count(where=t.timestamp >= since)
    )
    # No strip(): ibis renders it on Spark as TRIM(' \t\n\r\v\f' ...), and Spark reads '\f' and
    # '\v' as the letters f and v ("faq" -> "aq"). The data loader strips text already.
    lowered = {k: per[k].lower() for k in side_keys}

    def n(where: ir.BooleanValue) -> ir.IntegerScalar:
        return per._n.sum(where=where).fill_null(0)

    aggs: dict[str, ir.Scalar] = {}
    if "_topic" in lowered:
        for topic in config.topics:
            aggs[f"{PREFIX}topic_{_slug(topic)}_share"] = (
                n(lowered["_topic"] == topic.strip().lower()) / n(lowered["_topic"].notnull()).nullif(0)
            )
    if "_category" in lowered:
        for category in config.categories:
            aggs[f"{PREFIX}category_{_slug(category)}_share"] = (
                n(lowered["_category"] == category.strip().lower()) / n(lowered["_category"].notnull()).nullif(0)
            )
    etype = per.event_type
    aggs["_coupons"] = n(etype == "coupon_use")
    aggs[f"{PREFIX}recommendation_clicks_per_product_view"] = (
        n(etype == "recommendation_click") / n(etype == "product_view").nullif(0)
    )
    aggs[f"{PREFIX}wishlist_adds"] = n(etype == "wishlist_add")
    out = per.group_by("customer_id").agg(**aggs)

    near = events.filter(events.timestamp >= since)
    buys = near.filter(near.event_type == "purchase")
    every = ibis.literal(True)
    deals: dict[str, ir.Scalar] = {"_orders": _orders(buys, ctx, every)}
    if "discount" in ctx.columns:
        discounted = buys.discount > 0
        deals["_discounted_orders"] = _orders(buys, ctx, discounted)
        deals["_discount_sum"] = exact_sum(buys.discount, where=discounted)
        deals["_discounted_lines"] = buys.discount.count(where=discounted)
    out = _attach(out, buys.group_by("customer_id").agg(**deals))
    orders = out._orders.nullif(0)  # null also for customers without a recent purchase line
    derived: dict[str, ir.Value] = {f"{PREFIX}coupon_uses_per_purchase": out._coupons / orders}
    if "discount" in ctx.columns:
        derived[f"{PREFIX}discounted_purchase_share"] = out._discounted_orders / orders
        derived[f"{PREFIX}avg_discount"] = out._discount_sum / out._discounted_lines.nullif(0)
    out = out.mutate(**derived)
    if f"{PREFIX}cart_abandonment_rate" in columns:
        out = _attach(out, _cart_abandonment(near, cutoff, config.abandonment_hours))
    if f"{PREFIX}median_hours_view_to_purchase" in columns:
        out = _attach(out, _view_to_purchase(near))
    return out.select("customer_id", **{name: _typed(out[name]) for name in columns})


def _typed(value: ir.Value) -> ir.Value:
    """Casts counts to int64 and everything else to float64 so every engine returns the same dtypes."""
    return value.cast("int64") if value.type().is_integer() else value.cast("float64")


def _cart_abandonment(t: ir.Table, cutoff: datetime, hours: float) -> ir.Table:
    """Computes per customer the share of judged carts with no purchase within `hours` after them."""
    horizon = hours * 3600.0
    cp = t.filter(t.event_type.isin(["add_to_cart", "purchase"]))
    is_purchase = cp.event_type == "purchase"
    seconds = _epoch(cp.timestamp)
    # Ordered so that a purchase at the same instant as a cart counts as following it.
    following = ibis.window(
        group_by=cp.customer_id, order_by=[cp.timestamp, is_purchase.cast("int8")], preceding=0, following=None
    )
    cp = cp.mutate(
        _seconds=seconds,
        _next_purchase=ibis.ifelse(is_purchase, seconds, ibis.null("float64")).min().over(following),
    )
    judged = (cp.event_type == "add_to_cart") & (cp._seconds <= cutoff.timestamp() - horizon)
    abandoned = judged & (cp._next_purchase.isnull() | (cp._next_purchase - cp._seconds > horizon))
    return cp.group_by("customer_id").agg(
        **{
            f"{PREFIX}cart_abandonment_rate": cp.event_type.count(where=abandoned)
            / cp.event_type.count(where=judged).nullif(0)
        }
    )


def _view_to_purchase(t: ir.Table) -> ir.Table:
    """Computes per customer the median hours from a product's first view to its first purchase after it."""
    views = (
        t.filter((t.event_type == "product_view") & t.product_id.notnull())
        .group_by(["customer_id", "product_id"])
        .agg(_first_view=ibis._.timestamp.min())
    )
    buys = t.filter((t.event_type == "purchase") & t.product_id.notnull()).select(
        _cid="customer_id", _pid="product_id", _bought=t.timestamp
    )
    pairs = views.join(
        buys,
        [views.customer_id == buys._cid, views.product_id == buys._pid, buys._bought >= views._first_view],
    )
    per_product = pairs.group_by(["customer_id", "product_id"]).agg(
        _hours=(_epoch(pairs._bought.min()) - _epoch(pairs._first_view.min())) / 3600.0
    )
    return per_product.group_by("customer_id").agg(
        **{f"{PREFIX}median_hours_view_to_purchase": per_product._hours.median()}
    )


class _BenefitsFamily(FeatureFamily):
    """The benefits family, skipped when not one of its columns has its inputs."""

    def missing_inputs(self, ctx: BuildContext) -> str | None:
        """Returns why no benefits column can be made from these inputs, or None when some can."""
        reason = super().missing_inputs(ctx)
        if reason is not None:
            return reason
        # One configured category, so that a category input alone also counts as something to build on.
        if any(c.available(ctx) for c in _columns(BenefitsConfig(categories=["any"]))):
            return None
        return (
            f"{self.name}: needs a topic, category or discount column, or events of type "
            f"{list(_EVENT_TYPES_USED)} in the combinations its columns use (e.g. add_to_cart with purchase); "
            "none found (map them in data.events)"
        )


FAMILY: FeatureFamily = _BenefitsFamily(
    name=NAME,
    description="Benefits sought: topic and category mix, discount and coupon use, cross-sell clicks, "
    "cart abandonment, wishlist saves and time from first view to purchase.",
    build=build,
    catalog=catalog,
)
