"""Benefits family: topic and category mix, deals, buying aids and purchase speed, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd
import pytest
from _tables import build_one, expected, frame
from pydantic import ValidationError

from features.base import BuildContext
from features.benefits import DEFAULT_TOPICS, FAMILY, BenefitsConfig, catalog

COLUMNS = ("customer_id", "timestamp", "event_type", "order_id", "product_id", "topic", "discount")
# Cutoff 2024-03-01 00:00 UTC; the default 365-day window starts 2023-03-02 00:00 (2024 is a leap year).
# Carts are judged 24 hours after they are made.
CUTOFF = "2024-03-01"
EVENTS: list[tuple[Any, ...]] = [
    ("amy", "2024-02-01 10:00", "content_view", None, None, "promo", None),
    ("amy", "2024-02-01 11:00", "content_view", None, None, "Specs", None),  # topics match case-insensitively
    ("amy", "2024-02-01 12:00", "product_view", None, "p1", None, None),  # first view of p1
    ("amy", "2024-02-01 12:30", "add_to_cart", None, "p1", None, None),  # bought 11.5 h later: kept
    ("amy", "2024-02-02 00:00", "product_view", None, "p1", None, None),  # a later view of p1
    ("amy", "2024-02-02 00:00", "purchase", "o1", "p1", None, 5.0),  # p1: 12 h after its first view
    ("amy", "2024-02-02 00:00", "purchase", "o1", "p2", None, 0.0),  # second line of order o1
    ("amy", "2024-02-03 00:00", "purchase", "o3", "p7", None, None),  # p7 bought before it was viewed
    ("amy", "2024-02-04 00:00", "product_view", None, "p7", None, None),
    ("amy", "2024-02-09 00:00", "product_view", None, "p3", None, None),
    ("amy", "2024-02-09 01:00", "recommendation_click", None, "p4", None, None),
    ("amy", "2024-02-09 02:00", "wishlist_add", None, "p4", None, None),
    ("amy", "2024-02-10 00:00", "coupon_use", None, None, None, None),
    ("amy", "2024-02-10 00:00", "purchase", "o2", "p3", None, 0.0),  # p3: 24 h after its first view
    ("amy", "2024-02-20 00:00", "add_to_cart", None, "p5", None, None),  # never bought: abandoned
    ("amy", "2024-02-29 12:00", "add_to_cart", None, "p6", None, None),  # 12 h before the cutoff: not judged
    ("bob", "2023-03-01 00:00", "content_view", None, None, "promo", None),  # a day before the window
    ("bob", "2023-03-02 00:00", "content_view", None, None, "warranty", None),  # first instant of the window
    ("bob", "2024-01-11 00:00", "content_view", None, None, "returns_policy", None),
    ("bob", "2024-01-12 00:00", "content_view", None, None, "unboxing", None),  # tagged, not a configured topic
    ("bob", "2024-01-12 00:00", "purchase", None, "p8", None, None),  # no order_id: an order on its own
    ("bob", "2024-01-13 00:00", "add_to_cart", None, "p9", None, None),  # bought at the same instant: kept
    ("bob", "2024-01-13 00:00", "purchase", None, "p9", None, 10.0),
    ("cyd", "2022-06-01 00:00", "wishlist_add", None, "p1", None, None),  # only an event before the window
]
CUSTOMERS = ["amy", "bob", "cyd"]
NAN = float("nan")


@pytest.fixture(scope="module")
def built(duck: Any) -> pd.DataFrame:
    return build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "benefits").frame


def test_topic_shares_divide_each_topic_by_the_tagged_events_in_the_window(built: pd.DataFrame) -> None:
    # amy: promo, specs = 2 tagged. bob: warranty, returns_policy, unboxing = 3 tagged (his promo view
    # is a day older than the window). cyd: nothing tagged in the window -> empty.
    shares = {f"benefits__topic_{t}_share": [0.0, 0.0, NAN] for t in DEFAULT_TOPICS}
    shares["benefits__topic_promo_share"] = [1 / 2, 0.0, NAN]
    shares["benefits__topic_specs_share"] = [1 / 2, 0.0, NAN]
    shares["benefits__topic_warranty_share"] = [0.0, 1 / 3, NAN]
    shares["benefits__topic_returns_policy_share"] = [0.0, 1 / 3, NAN]
    want = expected(CUSTOMERS, shares)
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_discount_and_coupon_rates_count_orders_not_order_lines(built: pd.DataFrame) -> None:
    # amy: orders o1 (lines 5.0 and 0.0 -> discounted), o2 (0.0), o3 (no discount) = 1 of 3 discounted;
    # one coupon_use over 3 orders. bob: two purchases without order_id = 2 orders, one with 10.0.
    want = expected(
        CUSTOMERS,
        {
            "benefits__discounted_purchase_share": [1 / 3, 1 / 2, NAN],
            "benefits__avg_discount": [5.0, 10.0, NAN],  # mean over discounted lines only
            "benefits__coupon_uses_per_purchase": [1 / 3, 0 / 2, NAN],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_a_cart_is_abandoned_without_a_purchase_within_the_horizon_and_young_carts_are_not_judged(
    built: pd.DataFrame,
) -> None:
    # amy: Feb 1 cart bought 11.5 h later (kept), Feb 20 cart never bought (abandoned), Feb 29 12:00
    # cart younger than 24 h (not judged) -> 1 / 2. bob: cart and purchase at the same instant -> 0 / 1.
    want = expected(CUSTOMERS, {"benefits__cart_abandonment_rate": [1 / 2, 0 / 1, NAN]})
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_recommendation_clicks_are_per_product_view_and_wishlist_saves_are_counted(built: pd.DataFrame) -> None:
    # amy: 1 recommendation_click over 4 product views (p1 twice, p7, p3); bob has no product view;
    # cyd's wishlist save is before the window.
    want = expected(
        CUSTOMERS,
        {
            "benefits__recommendation_clicks_per_product_view": [1 / 4, NAN, NAN],
            "benefits__wishlist_adds": [1, 0, 0],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_median_hours_from_first_view_to_purchase_skips_products_bought_before_being_viewed(
    built: pd.DataFrame,
) -> None:
    # amy: p1 12 h, p3 24 h, p7 bought before its view -> median(12, 24) = 18. bob viewed nothing.
    want = expected(CUSTOMERS, {"benefits__median_hours_view_to_purchase": [18.0, NAN, NAN]})
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_output_columns_follow_the_catalog_in_order(duck: Any) -> None:
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "benefits")
    assert list(result.frame.columns) == [f.name for f in result.catalog]
    assert [f.name for f in result.catalog] == [f.name for f in catalog(BenefitsConfig())]


CATALOG_TOPICS = frame(
    ("product_id", "topic", "category"),
    [("p1", "Promo", "Shoes"), ("p2", "eco", "socks"), ("p3", None, "shoes")],
)


def test_topic_and_category_come_from_the_catalog_when_the_event_has_none(duck: Any) -> None:
    columns = ("customer_id", "timestamp", "event_type", "product_id", "topic")
    events = frame(
        columns,
        [
            ("kim", "2024-02-01 00:00", "product_view", "p1", None),  # catalog: promo, shoes
            ("kim", "2024-02-02 00:00", "product_view", "p2", "specs"),  # own topic wins over eco
            ("kim", "2024-02-03 00:00", "product_view", "p3", None),  # no topic anywhere, category shoes
            ("kim", "2024-02-04 00:00", "page_view", None, None),  # neither
        ],
    )
    config = BenefitsConfig(topics=["promo", "specs", "eco"], categories=["shoes", "socks"])
    result = build_one(duck, events, CUTOFF, "benefits", config, catalog=CATALOG_TOPICS)
    # topics: promo (catalog), specs (event) = 2 tagged; categories: shoes, socks, shoes = 3 known.
    want = expected(
        ["kim"],
        {
            "benefits__topic_promo_share": [1 / 2],
            "benefits__topic_specs_share": [1 / 2],
            "benefits__topic_eco_share": [0.0],
            "benefits__category_shoes_share": [2 / 3],
            "benefits__category_socks_share": [1 / 3],
        },
    )
    pd.testing.assert_frame_equal(result.frame[list(want.columns)], want)


def test_without_topic_discount_or_product_columns_their_columns_are_omitted(duck: Any) -> None:
    events = frame(COLUMNS, EVENTS).drop(columns=["topic", "discount", "product_id"])
    result = build_one(duck, events, CUTOFF, "benefits")
    assert list(result.frame.columns) == [
        "benefits__coupon_uses_per_purchase",
        "benefits__recommendation_clicks_per_product_view",
        "benefits__cart_abandonment_rate",
        "benefits__wishlist_adds",
    ]


def test_rate_columns_need_both_their_event_types(duck: Any) -> None:
    # coupon_use without any purchase, and no product view for the recommendation click
    columns = ("customer_id", "timestamp", "event_type")
    events = frame(
        columns,
        [
            ("kim", "2024-02-01 00:00", "coupon_use"),
            ("kim", "2024-02-02 00:00", "wishlist_add"),
            ("kim", "2024-02-03 00:00", "recommendation_click"),
        ],
    )
    result = build_one(duck, events, CUTOFF, "benefits")
    pd.testing.assert_frame_equal(result.frame, expected(["kim"], {"benefits__wishlist_adds": [1]}))


def test_the_family_is_skipped_with_a_reason_when_none_of_its_inputs_exist(duck: Any) -> None:
    columns = ("customer_id", "timestamp", "event_type", "order_id")
    events = frame(columns, [("kim", "2024-02-01 00:00", "purchase", "o1"), ("kim", "2024-02-02 00:00", "login", None)])
    result = build_one(duck, events, CUTOFF, "benefits")
    assert result.frame.shape == (1, 0)
    assert "benefits: needs a topic, category or discount column" in result.skipped["benefits"]


def test_a_catalog_without_product_ids_in_the_events_supplies_no_topic() -> None:
    ctx = BuildContext(
        cutoff=datetime(2024, 3, 1, tzinfo=UTC),
        columns=frozenset({"customer_id", "timestamp", "event_type"}),
        event_types=frozenset({"page_view"}),
        catalog=ibis.memtable(CATALOG_TOPICS),
    )
    assert catalog(BenefitsConfig(), ctx) == []
    assert FAMILY.missing_inputs(ctx) is not None


def test_events_at_or_after_the_cutoff_change_nothing(duck: Any, built: pd.DataFrame) -> None:
    later = [
        ("amy", "2024-03-01 00:00", "purchase", "o9", "p6", None, 50.0),  # would rescue the young cart
        ("bob", "2024-03-01 00:00", "content_view", None, None, "promo", None),
        ("cyd", "2024-03-02 00:00", "wishlist_add", None, "p1", None, None),
        ("eve", "2024-03-01 00:00", "product_view", None, "p1", "sale", None),
    ]
    result = build_one(duck, frame(COLUMNS, EVENTS + later), CUTOFF, "benefits")
    pd.testing.assert_frame_equal(result.frame, built)


def test_window_and_abandonment_horizon_come_from_the_config(duck: Any) -> None:
    config = BenefitsConfig(window_days=20, abandonment_hours=6)
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "benefits", config)
    # 20-day window = [Feb 10, Mar 1). amy: the Feb 20 cart is abandoned, the Feb 29 12:00 cart is
    # 12 h old and judged with a 6 h horizon: abandoned too -> 2 / 2; one order (o2) with 0.0.
    # bob and cyd have no event in the window.
    want = expected(
        CUSTOMERS,
        {
            "benefits__cart_abandonment_rate": [2 / 2, NAN, NAN],
            "benefits__discounted_purchase_share": [0 / 1, NAN, NAN],
            "benefits__wishlist_adds": [0, 0, 0],
        },
    )
    pd.testing.assert_frame_equal(result.frame[list(want.columns)], want)


def test_labels_giving_the_same_column_name_are_rejected_naming_the_key() -> None:
    with pytest.raises(ValidationError, match=r"benefits.topics: 'Returns Policy' and 'returns_policy' both"):
        BenefitsConfig(topics=["Returns Policy", "returns_policy"])
    with pytest.raises(ValidationError, match=r"benefits.categories: '\?\?' has no letter or digit"):
        BenefitsConfig(categories=["??"])


def test_the_full_catalog_has_one_share_per_configured_topic_and_category() -> None:
    names = [f.name for f in catalog(BenefitsConfig(topics=["promo"], categories=["Home & Garden"]))]
    assert names == [
        "benefits__topic_promo_share",
        "benefits__category_home_garden_share",
        "benefits__discounted_purchase_share",
        "benefits__avg_discount",
        "benefits__coupon_uses_per_purchase",
        "benefits__recommendation_clicks_per_product_view",
        "benefits__cart_abandonment_rate",
        "benefits__wishlist_adds",
        "benefits__median_hours_view_to_purchase",
    ]
