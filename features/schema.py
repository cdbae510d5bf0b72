"""The canonical data contract: table columns and event types every part of the product speaks.

pipeline/data maps a user's export onto these names; features/ and models/ only ever see them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, logical type, whether it is required and what it means."""

    name: str
    dtype: str  # "string" | "timestamp" | "float"
    required: bool
    description: str


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("customer_id", "string", True, "Who did it. Events without one are dropped and counted."),
    Column("timestamp", "timestamp", True, "When it happened; normalised to UTC."),
    Column("event_type", "string", True, "What happened, one of EVENT_TYPES after mapping."),
    Column("session_id", "string", False, "Visit or session the event belongs to."),
    Column("order_id", "string", False, "Order or invoice; several purchase lines of one order count as one purchase."),
    Column("channel", "string", False, "web, app, email, ads, store, support, ..."),
    Column("device", "string", False, "desktop, mobile, tablet, ..."),
    Column("revenue", "float", False, "Money on a purchase or return line (derived from unit_price x quantity when absent)."),
    Column("quantity", "float", False, "Units on a purchase or return line."),
    Column("unit_price", "float", False, "Price per unit; only used to derive revenue when revenue is absent."),
    Column("product_id", "string", False, "Product the event concerns."),
    Column("category", "string", False, "Product category (filled from the catalog when absent)."),
    Column("discount", "float", False, "Discount amount, or a 0/1 flag, on the event."),
    Column("topic", "string", False, "Benefit tag or content topic (e.g. promo, specs, returns_policy, reviews)."),
    Column("rating", "float", False, "A rating or score the customer gave (review stars, NPS 0-10, CSAT)."),
)

CUSTOMER_COLUMNS: tuple[Column, ...] = (
    Column("customer_id", "string", True, "Customer key, the same as in events."),
    Column("signup_at", "timestamp", False, "When the customer signed up or was first known."),
    Column("plan", "string", False, "Subscription plan: free, trial, paid, ..."),
    Column("acquisition_channel", "string", False, "Channel the customer was acquired through."),
)

CATALOG_COLUMNS: tuple[Column, ...] = (
    Column("product_id", "string", True, "Product key, the same as in events."),
    Column("category", "string", False, "Product category."),
    Column("topic", "string", False, "Benefit tag of the product (e.g. premium, budget, eco)."),
    Column("price", "float", False, "List price."),
)

TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "events": EVENT_COLUMNS,
    "customers": CUSTOMER_COLUMNS,
    "catalog": CATALOG_COLUMNS,
}

# Canonical column name -> dtype, over every canonical table (a name has one dtype everywhere).
COLUMN_DTYPES: dict[str, str] = {c.name: c.dtype for cols in TABLE_COLUMNS.values() for c in cols}

# Canonical event types, grouped by what they tell about a customer. Feature families look for
# these names; a user's own names are mapped onto them in params.yaml (data.events.event_types).
EVENT_TYPES: dict[str, str] = {
    # browsing and research
    "page_view": "Viewed a page that is not a product (home, category, landing).",
    "product_view": "Viewed a product detail page.",
    "search": "Ran a site search.",
    "content_view": "Read content: guides, specs, comparisons, FAQ, policies, reviews, promotions (topic says which).",
    # buying funnel
    "add_to_cart": "Put a product in the cart.",
    "remove_from_cart": "Took a product out of the cart.",
    "wishlist_add": "Saved a product for later.",
    "checkout": "Started checkout.",
    "purchase": "Bought: one row per order or order line, with revenue and quantity.",
    "return": "Returned a purchase (revenue and quantity are positive amounts returned).",
    "coupon_use": "Applied a coupon or voucher.",
    "recommendation_click": "Clicked a recommendation or cross-sell suggestion.",
    # marketing
    "email_open": "Opened a marketing email.",
    "email_click": "Clicked a link in a marketing email.",
    "ad_click": "Clicked an ad.",
    # account and subscription
    "signup": "Created an account.",
    "login": "Logged in or opened the app.",
    "subscription_start": "Started or upgraded a paid plan.",
    "subscription_cancel": "Cancelled a plan.",
    # voice of the customer
    "support_ticket": "Contacted support.",
    "complaint": "Complained.",
    "review": "Wrote a product review (rating holds the stars).",
    "survey": "Answered an NPS or CSAT survey (rating holds the score).",
    "referral": "Referred someone.",
}

PURCHASE = "purchase"

# The funnel, shallowest to deepest, used for "deepest step reached".
FUNNEL_STEPS: tuple[str, ...] = ("product_view", "add_to_cart", "checkout", "purchase")

# Journey stages, in the usual order of a customer's relationship with a brand.
JOURNEY_STAGES: tuple[str, ...] = (
    "awareness",
    "education",
    "consideration",
    "purchase",
    "adoption",
    "retention",
    "advocacy",
    "lapsed",
)

# Seed personas of implicit digital behaviour.
PERSONAS: tuple[str, ...] = (
    "price_conscious",
    "smart",
    "risk_averse",
    "need_proof",
    "get_it_later",
    "persuadable",
)


def required_columns(table: str) -> list[str]:
    """Returns the names of the required canonical columns of a table."""
    return [c.name for c in TABLE_COLUMNS[table] if c.required]


def column_names(table: str) -> list[str]:
    """Returns every canonical column name of a table, in contract order."""
    return [c.name for c in TABLE_COLUMNS[table]]


def check_timezone(value: str, key: str) -> str:
    """Returns an IANA timezone name unchanged, or raises naming the params key and an example."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{key} {value!r} is unknown; use an IANA name such as UTC or Europe/London") from None
    return value
