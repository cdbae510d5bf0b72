"""Edge cases across every family: one-event customers, empty windows, empty input, transactions-only data.

Every expectation is worked out by hand from the column definitions in features/; the arithmetic is
in the comments. The cutoff is Friday 2024-03-01 00:00 UTC (2024 is a leap year: Feb has 29 days).
Default windows: usage/value 7, 30, 90, 365 days -> starts Feb 23, Jan 31, Dec 2 2023, Mar 2 2023;
usage trend 30 days (recent [Jan 31, Mar 1), previous [Jan 1, Jan 31)); benefits and engagement
365 days; journey lookback 14 days [Feb 16, Mar 1) with half-life 7, long lookback 90 days with
half-life 30.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from _tables import expected, frame
from pandas.testing import assert_frame_equal

from features.benefits import DEFAULT_TOPICS
from features.build import build_features
from features.config import FeaturesConfig
from features.journey import DEFAULT_CHANNELS, DEFAULT_STAGE_GROUPS
from features.registry import FAMILIES
from features.schema import EVENT_TYPES, column_names

CUTOFF = "2024-03-01"
NAN = float("nan")
EVENT_COLUMNS = tuple(column_names("events"))
WINDOWS = (7, 30, 90, 365)


def event(customer: str, at: str, event_type: str, **values: Any) -> tuple[Any, ...]:
    """Returns one events row in canonical column order; columns not given are empty."""
    values = {"customer_id": customer, "timestamp": at, "event_type": event_type, **values}
    return tuple(values.get(c) for c in EVENT_COLUMNS)


def family_columns(df: pd.DataFrame, family: str) -> list[str]:
    return [c for c in df.columns if c.startswith(f"{family}__")]


# --------------------------------------------------------------------------- one event

# solo: exactly one event, a purchase on Wed Feb 28 18:00, 1.25 days (30 h) before the cutoff.
# glance: exactly one event, a page view on Sat Feb 3 06:00, 26.75 days (26 d 18 h) before the cutoff.
# other: one event of every other canonical type on Mon Jan 15 from 10:00, so that every family runs
#   and makes its full catalog (every event type occurs); only solo and glance are checked.
ONE_EVENT: list[tuple[Any, ...]] = [
    event(
        "solo", "2024-02-28 18:00", "purchase", session_id="s1", order_id="o1", channel="web", device="mobile",
        revenue=50.0, quantity=2.0, unit_price=25.0, product_id="p1", category="shoes", discount=5.0, topic="promo",
    ),
    event("glance", "2024-02-03 06:00", "page_view", session_id="s2", channel="ads", device="desktop"),
] + [
    event(
        "other", f"2024-01-15 10:{i:02d}", event_type, session_id="s3", channel="app", product_id="p2",
        category="hats", topic="specs",
        revenue=10.0 if event_type == "return" else None,
        quantity=1.0 if event_type == "return" else None,
        rating={"review": 4.0, "survey": 9.0}.get(event_type),
    )
    for i, event_type in enumerate(t for t in EVENT_TYPES if t != "purchase")
]
WHO = ["solo", "glance"]


@pytest.fixture(scope="module")
def one_event(duck: Any, table: Any) -> pd.DataFrame:
    result = build_features(table(duck, frame(EVENT_COLUMNS, ONE_EVENT)), CUTOFF, FeaturesConfig())
    assert result.skipped == {}  # every family runs: every event type and column is present
    return result.frame


def test_one_event_customers_usage_by_hand(one_event: pd.DataFrame) -> None:
    # solo: its one event is in every window: 1 event, 1 session (s1), 1 day, 1 order (o1) per window;
    #   per week = 1 * 7 / w. glance's Feb 3 is outside 7d only; it is no purchase.
    # events_pctile_90d: events in 90 days solo 1, glance 1, other 23 -> solo and glance tie on the lowest
    #   rank: (1 - 1) / (3 - 1) = 0.
    # trend 30d: both have recent 1 (in [Jan 31, Mar 1)) and previous 0 -> (1 - 0) / (1 + 0) = 1; ratio 2/1.
    # Breadth: solo 1 type, category shoes, product p1, channel web; glance has no category or product.
    # events/session 1/1; key actions (cart, checkout, purchase): solo 1/1, glance 0/1.
    # revenue per active day: solo 50 / 1, glance 0 / 1.
    cols: dict[str, list[Any]] = {}
    for w in WINDOWS:
        in_window = 0 if w == 7 else 1  # glance
        cols |= {
            f"usage__events_{w}d": [1, in_window],
            f"usage__sessions_{w}d": [1, in_window],
            f"usage__active_days_{w}d": [1, in_window],
            f"usage__purchases_{w}d": [1, 0],
            f"usage__events_per_week_{w}d": [7 / w, in_window * 7 / w],
            f"usage__sessions_per_week_{w}d": [7 / w, in_window * 7 / w],
            f"usage__purchases_per_week_{w}d": [7 / w, 0.0],
        }
    cols |= {
        "usage__events_pctile_90d": [0.0, 0.0],
        "usage__events_trend_30d": [1.0, 1.0],
        "usage__events_ratio_30d": [2.0, 2.0],
        "usage__distinct_event_types": [1, 1],
        "usage__distinct_categories": [1, 0],
        "usage__distinct_products": [1, 0],
        "usage__distinct_channels": [1, 1],
        "usage__events_per_session": [1.0, 1.0],
        "usage__key_action_share": [1.0, 0.0],
        "usage__revenue_per_active_day": [50.0, 0.0],
    }
    want = expected(WHO, cols)
    assert family_columns(one_event, "usage") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


def test_one_event_customers_timing_by_hand(one_event: pd.DataFrame) -> None:
    # solo: first = last event = last purchase = Feb 28 18:00 -> 1.25 days. One purchase day: no gap,
    #   so gap mean, gap std and overdue ratio are empty. 18:00 is evening; Wednesday is no weekend day.
    # glance: Feb 3 06:00 -> 26.75 days; no purchase; 06:00 starts the morning; Saturday is weekend.
    # One event -> one weekday -> entropy -(1 ln 1) = 0. Neither day is in Nov 22-30 or December.
    want = expected(
        WHO,
        {
            "timing__days_since_last_event": [1.25, 26.75],
            "timing__days_since_first_event": [1.25, 26.75],
            "timing__days_since_last_purchase": [1.25, NAN],
            "timing__purchase_gap_mean_days": [NAN, NAN],
            "timing__purchase_gap_std_days": [NAN, NAN],
            "timing__overdue_ratio": [NAN, NAN],
            "timing__share_night": [0.0, 0.0],
            "timing__share_morning": [0.0, 1.0],
            "timing__share_afternoon": [0.0, 0.0],
            "timing__share_evening": [1.0, 0.0],
            "timing__preferred_hour": [18, 6],
            "timing__weekend_share": [0.0, 1.0],
            "timing__dow_entropy": [0.0, 0.0],
            "timing__holiday_share": [0.0, 0.0],
        },
    )
    assert family_columns(one_event, "timing") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


def test_one_event_customers_value_by_hand(one_event: pd.DataFrame) -> None:
    # solo: one order o1 of 50 on Feb 28 18:00, inside every window -> recency 1.25, frequency 1,
    #   gross = net = 50 (no return), AOV 50 / 1, return rate 0 / 50 = 0, historic value 50.
    #   solo is the only customer with a purchase (n = 1): every score is 1 + floor(5 * 0 / 1) = 1 -> 111.
    # glance never bought: empty recency, zero counts and money, no scores, AOV or return rate
    #   (0 purchase revenue), historic value 0.
    cols: dict[str, list[Any]] = {
        "value__recency_days": [1.25, NAN],
        "value__frequency": [1, 0],
        "value__orders_lifetime": [1, 0],
        "value__monetary_gross": [50.0, 0.0],
        "value__monetary_net": [50.0, 0.0],
        "value__r_score": [1.0, NAN],
        "value__f_score": [1.0, NAN],
        "value__m_score": [1.0, NAN],
        "value__rfm_score": [111.0, NAN],
        "value__avg_order_value": [50.0, NAN],
    }
    cols |= {f"value__revenue_{w}d": [50.0, 0.0] for w in WINDOWS}
    cols |= {"value__return_rate": [0.0, NAN], "value__historic_value": [50.0, 0.0]}
    want = expected(WHO, cols)
    assert family_columns(one_event, "value") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


def test_one_event_customers_benefits_by_hand(one_event: pd.DataFrame) -> None:
    # solo: its one tagged event has topic promo -> promo 1/1, every other topic 0/1. One order, with a
    #   discount of 5 -> discounted share 1/1, mean discount 5; coupons 0 per 1 order = 0. No product
    #   view -> clicks per view and view-to-purchase hours are empty; no cart -> no abandonment rate.
    # glance: no topic, no order, no view, no cart -> every ratio empty (never 0/0 = NaN by accident
    #   or inf); wishlist adds is a count: 0.
    cols: dict[str, list[Any]] = {
        f"benefits__topic_{topic}_share": [1.0 if topic == "promo" else 0.0, NAN] for topic in DEFAULT_TOPICS
    }
    cols |= {
        "benefits__discounted_purchase_share": [1.0, NAN],
        "benefits__avg_discount": [5.0, NAN],
        "benefits__coupon_uses_per_purchase": [0.0, NAN],
        "benefits__recommendation_clicks_per_product_view": [NAN, NAN],
        "benefits__cart_abandonment_rate": [NAN, NAN],
        "benefits__wishlist_adds": [0, 0],
        "benefits__median_hours_view_to_purchase": [NAN, NAN],
    }
    want = expected(WHO, cols)
    assert family_columns(one_event, "benefits") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


def test_one_event_customers_journey_by_hand(one_event: pd.DataFrame) -> None:
    # solo: the purchase is 1.25 days old: decayed 0.5 ** (1.25 / 7), long-horizon 0.5 ** (1.25 / 30);
    #   deepest funnel step purchase = 4; it is the only recent event -> purchase group 1/1, the other
    #   groups 0/1; channel web 1/1, the others 0/1.
    # glance: 26.75 days old: outside the 14-day lookback (every recent decayed count 0, funnel step 0,
    #   shares empty: no recent event) but inside the 90-day one: long page_view 0.5 ** (26.75 / 30).
    # last_event_type is the type of the one event, whatever its age.
    cols: dict[str, list[Any]] = {f"journey__decayed_{t}": [0.0, 0.0] for t in EVENT_TYPES}
    cols["journey__decayed_purchase"] = [0.5 ** (1.25 / 7), 0.0]
    long = {f"journey__decayed_long_{t}": [0.0, 0.0] for t in EVENT_TYPES}
    long["journey__decayed_long_purchase"] = [0.5 ** (1.25 / 30), 0.0]
    long["journey__decayed_long_page_view"] = [0.0, 0.5 ** (26.75 / 30)]
    cols |= long
    cols["journey__deepest_funnel_step"] = [4, 0]
    cols |= {f"journey__{group}_share": [1.0 if group == "purchase" else 0.0, NAN] for group in DEFAULT_STAGE_GROUPS}
    cols |= {f"journey__channel_{ch}_share": [1.0 if ch == "web" else 0.0, NAN] for ch in DEFAULT_CHANNELS}
    cols["journey__last_event_type"] = ["purchase", "page_view"]
    want = expected(WHO, cols)
    assert family_columns(one_event, "journey") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


def test_one_event_customers_engagement_by_hand(one_event: pd.DataFrame) -> None:
    # Neither has an email, review, referral, ticket, complaint, return or survey: every count is 0 and
    # every rate with an empty denominator is empty (click-to-open, review stars, NPS, latest score).
    # solo's return rate is 0 returned orders / 1 purchased order = 0; glance bought nothing -> empty.
    want = expected(
        WHO,
        {
            "engagement__email_opens": [0, 0],
            "engagement__email_clicks": [0, 0],
            "engagement__email_click_to_open_rate": [NAN, NAN],
            "engagement__reviews": [0, 0],
            "engagement__avg_review_rating": [NAN, NAN],
            "engagement__referrals": [0, 0],
            "engagement__support_tickets": [0, 0],
            "engagement__complaints": [0, 0],
            "engagement__returns": [0, 0],
            "engagement__return_rate": [0.0, NAN],
            "engagement__surveys": [0, 0],
            "engagement__nps": [NAN, NAN],
            "engagement__survey_latest_score": [NAN, NAN],
        },
    )
    assert family_columns(one_event, "engagement") == list(want.columns)
    assert_frame_equal(one_event.loc[WHO, list(want.columns)], want)


# --------------------------------------------------------------------------- empty windows

# old: a full history, all of it on Tue 2023-01-10, 416 days before the cutoff: before every window
# (the longest, 365 days, starts 2023-03-02) and before both journey lookbacks.
OLD: list[tuple[Any, ...]] = [
    event("old", "2023-01-10 09:00", "product_view", session_id="s1", channel="web", product_id="p1", topic="promo"),
    event("old", "2023-01-10 09:05", "add_to_cart", session_id="s1", channel="web", product_id="p1"),
    event("old", "2023-01-10 09:06", "recommendation_click", session_id="s1", channel="web", product_id="p2"),
    event("old", "2023-01-10 09:07", "wishlist_add", session_id="s1", channel="web", product_id="p2"),
    event("old", "2023-01-10 09:08", "coupon_use", session_id="s1", channel="web"),
    event(
        "old", "2023-01-10 09:10", "purchase", session_id="s1", order_id="o1", channel="web", product_id="p1",
        revenue=30.0, quantity=1.0, discount=3.0, topic="promo",
    ),
    event("old", "2023-01-10 12:00", "email_open", channel="email"),
    event("old", "2023-01-10 12:01", "email_click", channel="email"),
    event("old", "2023-01-10 13:00", "review", product_id="p1", rating=5.0),
    event("old", "2023-01-10 14:00", "survey", rating=10.0),
    event("old", "2023-01-10 15:00", "support_ticket", channel="support"),
    event("old", "2023-01-10 15:30", "complaint", channel="support"),
    event("old", "2023-01-10 15:45", "referral"),
    event("old", "2023-01-10 16:00", "return", order_id="o1", product_id="p1", revenue=10.0, quantity=1.0),
]


def test_a_customer_without_events_in_any_window_gets_zero_counts_and_empty_ratios_never_inf(
    duck: Any, table: Any
) -> None:
    result = build_features(table(duck, frame(EVENT_COLUMNS, OLD)), CUTOFF, FeaturesConfig())
    got = result.frame
    assert list(got.index) == ["old"]
    row = got.loc["old"]

    # Window counts are 0 and per-week rates 0/w = 0; the trend of two empty windows is 0 by definition
    # and the smoothed ratio (0 + 1) / (0 + 1) = 1. No event in the 90-day window: no usage percentile
    # (it ranks only the customers active in the window).
    usage = {f"usage__{what}_{w}d": 0 for w in WINDOWS for what in ("events", "sessions", "active_days", "purchases")}
    usage |= {f"usage__{what}_per_week_{w}d": 0.0 for w in WINDOWS for what in ("events", "sessions", "purchases")}
    usage |= {"usage__events_trend_30d": 0.0, "usage__events_ratio_30d": 1.0, "usage__events_pctile_90d": np.nan}
    # RFM counts the 365-day window: no order and no money in it (the order o1 is older); recency looks at
    # the whole history: Jan 10 09:10 2023 -> Mar 1 2024 = 416 days - 9 h 10 min.
    value = {"value__frequency": 0, "value__monetary_gross": 0.0, "value__monetary_net": 0.0}
    value |= {f"value__revenue_{w}d": 0.0 for w in WINDOWS}
    value["value__recency_days"] = 416 - (9 + 10 / 60) / 24
    value["value__orders_lifetime"] = 1
    # benefits and engagement see 365 days only: every share or per-order/per-view/per-open rate has an
    # empty denominator -> empty; counts are 0.
    benefits = {name: NAN for name in family_columns(got, "benefits")} | {"benefits__wishlist_adds": 0}
    engagement = {name: NAN for name in family_columns(got, "engagement")}
    engagement |= {
        f"engagement__{name}": 0
        for name in ("email_opens", "email_clicks", "reviews", "referrals", "support_tickets", "complaints",
                     "returns", "surveys")
    }
    # journey: nothing in either lookback -> decayed counts 0, funnel step 0, shares empty; the last event
    # type looks at any age: the return at 16:00.
    journey = {name: NAN for name in family_columns(got, "journey")}
    journey |= {name: 0.0 for name in journey if name.startswith("journey__decayed_")}
    journey |= {"journey__deepest_funnel_step": 0, "journey__last_event_type": "return"}

    # Every benefits, engagement and journey column is checked: all but last_event_type look at a window only.
    want = usage | value | benefits | engagement | journey
    for name, value_ in want.items():
        if isinstance(value_, float) and np.isnan(value_):
            assert pd.isna(row[name]), f"{name} = {row[name]!r}, expected empty"
        else:
            assert row[name] == pytest.approx(value_) if isinstance(value_, float) else row[name] == value_, name
    numeric = got.select_dtypes("number").to_numpy(dtype="float64")
    assert not np.isinf(numeric).any(), "an empty window gave an infinite value"


# --------------------------------------------------------------------------- empty input


def _empty_events() -> pd.DataFrame:
    return frame(EVENT_COLUMNS, [])


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(_empty_events, id="no rows at all"),
        # Every event at or after the cutoff: the cutoff is exclusive, so nothing is before it.
        pytest.param(lambda: frame(EVENT_COLUMNS, ONE_EVENT[:2] + OLD).assign(
            timestamp=lambda df: pd.Timestamp(CUTOFF, tz="UTC") + pd.to_timedelta(range(len(df)), unit="h")
        ), id="every event at or after the cutoff"),
    ],
)
def test_no_event_before_the_cutoff_gives_an_empty_frame_with_the_catalog_columns_and_reasons(
    duck: Any, table: Any, events: Any
) -> None:
    # Documented behaviour of build_features: one row per customer seen before the cutoff -> no row.
    # Families needing an event type before the cutoff are skipped with that reason; the others
    # (usage, timing, and benefits, which a topic or discount column is enough for) give their columns.
    result = build_features(table(duck, events()), CUTOFF, FeaturesConfig())
    got = result.frame
    assert got.empty
    assert got.index.name == "customer_id"
    assert list(got.columns) == [f.name for f in result.catalog]
    assert {name.split("__")[0] for name in got.columns} == {"usage", "timing", "benefits"}
    assert set(result.skipped) == {"value", "journey", "engagement"}
    for name, reason in result.skipped.items():
        assert reason.startswith(f"{name}: needs at least one event of type"), reason
        assert "before the cutoff, none found" in reason
    # Typed like a non-empty frame (counts int64, everything else float64), so it concatenates cleanly.
    assert set(got.dtypes.astype(str)) <= {"int64", "float64"}


def test_an_empty_frame_has_the_same_dtypes_as_a_built_one(duck: Any, table: Any, one_event: pd.DataFrame) -> None:
    empty = build_features(table(duck, _empty_events()), CUTOFF, FeaturesConfig()).frame
    assert_frame_equal(empty.dtypes.to_frame(), one_event.dtypes[empty.columns].to_frame())


# --------------------------------------------------------------------------- transactions only

# A bare transactions export: customer_id, timestamp, event_type = purchase, revenue, quantity.
# t1 buys on Sat Feb 10 10:00 (20) and 15:00 (10) and on Sun Feb 25 09:00 (30); no order_id, so
# every row is one order; no session_id, so sessions are active days.
TRANSACTION_FIELDS = ("customer_id", "timestamp", "event_type", "revenue", "quantity")
TRANSACTIONS = [
    ("t1", "2024-02-10 10:00", "purchase", 20.0, 1.0),
    ("t1", "2024-02-10 15:00", "purchase", 10.0, 2.0),
    ("t1", "2024-02-25 09:00", "purchase", 30.0, 1.0),
    ("t2", "2023-12-01 12:00", "purchase", 5.0, 1.0),
]


def test_transactions_only_input_builds_usage_timing_value_by_hand_and_names_what_the_others_need(
    duck: Any, table: Any
) -> None:
    result = build_features(table(duck, frame(TRANSACTION_FIELDS, TRANSACTIONS)), CUTOFF, FeaturesConfig())
    got = result.frame

    # Exactly the three families, and within them only the columns these five inputs allow:
    # no breadth counts (no category, product or channel column).
    assert {name.split("__")[0] for name in got.columns} == {"usage", "timing", "value"}
    assert list(got.columns) == [f.name for f in result.catalog]
    assert not {"usage__distinct_categories", "usage__distinct_products", "usage__distinct_channels"} & set(got.columns)

    # The others are skipped, each naming the input it lacks.
    assert set(result.skipped) == set(FAMILIES) - {"usage", "timing", "value"}
    assert "needs a topic, category or discount column" in result.skipped["benefits"]
    assert "'page_view'" in result.skipped["journey"] and "before the cutoff" in result.skipped["journey"]
    assert "'email_open'" in result.skipped["engagement"] and "'return'" in result.skipped["engagement"]

    # t1 by hand. 7d [Feb 23, Mar 1): the Feb 25 order -> 1 event, 1 session (day), 1 order.
    # 30d [Jan 31, Mar 1): 3 rows = 3 orders on 2 days -> 2 sessions. Lifetime: 3 events / 2 sessions = 1.5;
    # every event is a purchase (a key action) -> 1; revenue 60 over 2 active days = 30.
    # Purchase days Feb 10 and Feb 25: one gap of 15 days (mean 15, population std 0); last purchase
    # Feb 25 09:00 -> 4 days 15 h = 4.625 days; overdue 4.625 / 15. Saturday and Sunday only -> weekend 1.
    # RFM: 3 orders, 60 gross, AOV 20; revenue 7d = 30, 30d = 60.
    want = expected(
        ["t1"],
        {
            "usage__events_7d": [1],
            "usage__sessions_7d": [1],
            "usage__purchases_7d": [1],
            "usage__events_30d": [3],
            "usage__sessions_30d": [2],
            "usage__active_days_30d": [2],
            "usage__purchases_30d": [3],
            "usage__events_per_session": [1.5],
            "usage__key_action_share": [1.0],
            "usage__revenue_per_active_day": [30.0],
            "timing__days_since_last_purchase": [4.625],
            "timing__purchase_gap_mean_days": [15.0],
            "timing__purchase_gap_std_days": [0.0],
            "timing__overdue_ratio": [4.625 / 15],
            "timing__weekend_share": [1.0],
            "value__recency_days": [4.625],
            "value__frequency": [3],
            "value__monetary_gross": [60.0],
            "value__avg_order_value": [20.0],
            "value__revenue_7d": [30.0],
            "value__revenue_30d": [60.0],
        },
    )
    assert_frame_equal(got.loc[["t1"], list(want.columns)], want)
