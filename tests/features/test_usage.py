"""Usage family: counts, rates, percentile, trend and quality, checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal
from pydantic import ValidationError

from features.build import build_features
from features.config import FeaturesConfig
from features.usage import UsageConfig

# Shared example (tests/features/conftest.py, SHOP_EVENTS), cutoff Fri 2024-03-01 00:00 UTC.
# Windows: 7d = [Feb 23, Mar 1), 30d = [Jan 31, Mar 1); trend: recent [Feb 23, Mar 1), previous [Feb 16, Feb 23).
CONFIG = FeaturesConfig(
    windows_days=[7, 30], enabled=["usage"], usage=UsageConfig(main_window_days=30, trend_window_days=7)
)
WHO = pd.Index(["alice", "bob", "carol"], name="customer_id")


def usage(events, cutoff="2024-03-01", config=CONFIG) -> pd.DataFrame:
    return build_features(events, cutoff, config).frame


def test_counts_rates_percentile_trend_and_quality_match_hand_computation(shop):
    # alice before the cutoff: 10 events (a1..a10), sessions s1..s5, orders o1 (2 lines), o2, o4.
    #   7d: Feb 26 purchase o4 (s3), Feb 27 login + return (s4), Feb 28 page_view (s5) -> 4 events, 3 sessions,
    #       3 days, 1 purchase; 30d adds Feb 20 (s2: view, cart, purchase o2) -> 7 events, 4 sessions, 4 days, 2 orders.
    #   per week: 7d = count / 1; 30d = count * 7 / 30 -> 49/30, 28/30, 14/30.
    #   trend: recent 4, previous 3 (Feb 20) -> (4-3)/(4+3) = 1/7; ratio (4+1)/(3+1) = 1.25.
    #   types: product_view, purchase, add_to_cart, login, return, page_view = 6; categories shoes, socks, hats = 3;
    #   products p1..p4 = 4; channels web, app = 2; events/session 10/5 = 2; key actions 1 cart + 4 purchase
    #   lines = 5/10; net revenue 100+20+60+40-20 = 200 over 5 active days (Jan 10, Feb 20, 26, 27, 28) = 40.
    # bob: 4 events, all in 30d (Feb 10 x2 in s10, Feb 24 s11, Feb 25 s12); 7d: Feb 24, 25 -> 2 events, 2 sessions.
    #   30d per week: 4*7/30 = 28/30, 3*7/30 = 0.7. trend: recent 2, previous 0 -> 2/2 = 1; ratio 3/1 = 3.
    #   types page_view, product_view, search = 3; shoes, socks = 2; p1, p2 = 2; web = 1; 4 events / 3 sessions;
    #   no key action; no revenue over 3 active days = 0.
    # carol: nothing since Jan 31 -> zeros; trend 0 and ratio (0+1)/(0+1) = 1 when both windows are empty.
    #   No session_id on her rows, so her 2 active days (Nov 24, Dec 26) are her 2 sessions: 2/2 = 1.
    #   types purchase, content_view = 2; category shoes = 1; product p1 = 1; web, email = 2; key 1/2;
    #   80 revenue / 2 days = 40.
    # events_30d = alice 7, bob 4, carol 0 -> percent_rank = (rank-1)/(n-1) among the active ones (alice,
    #   bob): bob 0, alice 1; carol, inactive in the window, has none.
    expected = pd.DataFrame(
        {
            "usage__events_7d": [4, 2, 0],
            "usage__sessions_7d": [3, 2, 0],
            "usage__active_days_7d": [3, 2, 0],
            "usage__purchases_7d": [1, 0, 0],
            "usage__events_per_week_7d": [4.0, 2.0, 0.0],
            "usage__sessions_per_week_7d": [3.0, 2.0, 0.0],
            "usage__purchases_per_week_7d": [1.0, 0.0, 0.0],
            "usage__events_30d": [7, 4, 0],
            "usage__sessions_30d": [4, 3, 0],
            "usage__active_days_30d": [4, 3, 0],
            "usage__purchases_30d": [2, 0, 0],
            "usage__events_per_week_30d": [49 / 30, 28 / 30, 0.0],
            "usage__sessions_per_week_30d": [28 / 30, 0.7, 0.0],
            "usage__purchases_per_week_30d": [14 / 30, 0.0, 0.0],
            "usage__events_pctile_30d": [1.0, 0.0, np.nan],
            "usage__events_trend_7d": [1 / 7, 1.0, 0.0],
            "usage__events_ratio_7d": [1.25, 3.0, 1.0],
            "usage__distinct_event_types": [6, 3, 2],
            "usage__distinct_categories": [3, 2, 1],
            "usage__distinct_products": [4, 2, 1],
            "usage__distinct_channels": [2, 1, 2],
            "usage__events_per_session": [2.0, 4 / 3, 1.0],
            "usage__key_action_share": [0.5, 0.0, 0.5],
            "usage__revenue_per_active_day": [40.0, 0.0, 40.0],
        },
        index=WHO,
    )
    assert_frame_equal(usage(shop), expected)


def test_sessions_fall_back_to_distinct_active_days_without_a_session_column(shop_frame, duck, table):
    events = table(duck, shop_frame.drop(columns=["session_id"]))
    got = usage(events)
    # alice 7d: days Feb 26, 27, 28 = 3 sessions; 30d adds Feb 20 = 4; lifetime 10 events / 5 days = 2.
    # bob 7d: Feb 24, 25 = 2; 30d: Feb 10, 24, 25 = 3; lifetime 4 / 3. carol: 2 events / 2 days = 1.
    assert got["usage__sessions_7d"].tolist() == [3, 2, 0]
    assert got["usage__sessions_30d"].tolist() == [4, 3, 0]
    assert_series_equal(
        got["usage__events_per_session"], pd.Series([2.0, 4 / 3, 1.0], index=WHO, name="usage__events_per_session")
    )


def test_purchases_count_distinct_orders_and_fall_back_to_purchase_rows_without_order_id(shop_frame, duck, table):
    config = FeaturesConfig(windows_days=[90], enabled=["usage"])
    # 90d = [Dec 2 2023, Mar 1): alice has orders o1 (2 lines, Jan 10), o2, o4 = 3 orders but 4 purchase rows.
    with_orders = usage(table(duck, shop_frame), config=config)
    without_orders = usage(table(duck, shop_frame.drop(columns=["order_id"])), config=config)
    assert with_orders["usage__purchases_90d"].tolist() == [3, 0, 0]
    assert without_orders["usage__purchases_90d"].tolist() == [4, 0, 0]


def test_purchase_lines_without_an_order_id_count_one_order_each(duck, table, to_frame):
    rows = [
        ("x", "2024-02-01 10:00", "purchase", "s1", "o1", "web", "p1", "c", 5.0, 1.0),
        ("x", "2024-02-01 10:00", "purchase", "s1", "o1", "web", "p2", "c", 5.0, 1.0),
        ("x", "2024-02-02 10:00", "purchase", "s2", None, "web", "p1", "c", 5.0, 1.0),
        ("x", "2024-02-03 10:00", "purchase", "s3", None, "web", "p1", "c", 5.0, 1.0),
    ]
    got = usage(table(duck, to_frame(rows)), config=FeaturesConfig(windows_days=[30], enabled=["usage"]))
    # o1 once + two lines without an order = 3.
    assert got.loc["x", "usage__purchases_30d"] == 3


def test_window_starts_are_inclusive_and_the_cutoff_is_exclusive(duck, table, to_frame):
    rows = [
        ("x", "2024-02-23 00:00", "page_view", "s1", None, "web", None, None, None, None),  # exactly T - 7 days
        ("x", "2024-02-22 23:59", "page_view", "s1", None, "web", None, None, None, None),  # one minute earlier
        ("x", "2024-03-01 00:00", "page_view", "s2", None, "web", None, None, None, None),  # exactly T
    ]
    got = usage(table(duck, to_frame(rows)), config=FeaturesConfig(windows_days=[7], enabled=["usage"]))
    assert got.loc["x", "usage__events_7d"] == 1


def test_percentile_rank_gives_tied_customers_the_same_lowest_value(duck, table, to_frame):
    day = "2024-02-20 12:00"
    rows = [("p", day, "page_view", "s", None, "web", None, None, None, None)]
    rows += [("q", day, "page_view", "s", None, "web", None, None, None, None)]
    rows += [("r", day, "page_view", "s", None, "web", None, None, None, None)] * 2
    rows += [("s", day, "page_view", "s", None, "web", None, None, None, None)] * 5
    got = usage(table(duck, to_frame(rows)), config=FeaturesConfig(windows_days=[30], enabled=["usage"]))
    # events 1, 1, 2, 5 -> min ranks 1, 1, 3, 4 -> (rank-1)/(4-1) = 0, 0, 2/3, 1.
    assert_series_equal(
        got["usage__events_pctile_90d"],
        pd.Series([0.0, 0.0, 2 / 3, 1.0], index=pd.Index(list("pqrs"), name="customer_id"), name="usage__events_pctile_90d"),
    )


def test_columns_whose_input_column_is_absent_are_not_made_and_not_catalogued(shop_frame, duck, table):
    events = table(duck, shop_frame.drop(columns=["category", "product_id", "channel", "revenue"]))
    result = build_features(events, "2024-03-01", CONFIG)
    gone = {
        "usage__distinct_categories",
        "usage__distinct_products",
        "usage__distinct_channels",
        "usage__revenue_per_active_day",
    }
    assert gone.isdisjoint(result.frame.columns)
    assert [f.name for f in result.catalog] == list(result.frame.columns)
    assert "usage__distinct_event_types" in result.frame.columns


def test_key_actions_are_configurable(shop):
    config = CONFIG.model_copy(update={"usage": UsageConfig(main_window_days=30, trend_window_days=7, key_actions=["login"])})
    # alice: 1 login out of 10 events; bob and carol none.
    assert usage(shop, config=config)["usage__key_action_share"].tolist() == [0.1, 0.0, 0.0]


def test_unknown_key_action_is_rejected_naming_the_allowed_event_types():
    with pytest.raises(ValidationError, match=r"unknown event type\(s\) \['buy'\]; allowed: \[.*'purchase'"):
        UsageConfig(key_actions=["buy"])


def test_percentile_ranks_only_customers_active_in_the_window(duck, table, to_frame):
    recent, old = "2024-02-20 12:00", "2023-06-01 12:00"  # cutoff 2024-03-01: old is outside the 90 days
    rows = [("p", recent, "page_view", "s", None, "web", None, None, None, None)]
    rows += [("q", recent, "page_view", "s", None, "web", None, None, None, None)] * 3
    rows += [("z1", old, "page_view", "s", None, "web", None, None, None, None)]
    rows += [("z2", old, "page_view", "s", None, "web", None, None, None, None)]
    got = usage(table(duck, to_frame(rows)), config=FeaturesConfig(windows_days=[30], enabled=["usage"]))
    # Active in 90 days: p (1 event), q (3) -> ranks 1, 2 -> 0, 1. z1 and z2: no rank, not the bottom of it.
    assert_series_equal(
        got["usage__events_pctile_90d"],
        pd.Series([0.0, 1.0, np.nan, np.nan], index=pd.Index(["p", "q", "z1", "z2"], name="customer_id"),
                  name="usage__events_pctile_90d"),
    )
