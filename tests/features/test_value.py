"""Value family: RFM, quintile scores, order value and customer value, checked against hand computation."""

from __future__ import annotations

import pandas as pd
from pandas.testing import assert_frame_equal

from features.build import build_features
from features.config import FeaturesConfig
from features.value import ValueConfig

NAN = float("nan")


def value(events, cutoff="2024-03-01", windows=(7, 30), **settings) -> pd.DataFrame:
    config = FeaturesConfig(windows_days=list(windows), enabled=["value"], value=ValueConfig(**settings))
    return build_features(events, cutoff, config).frame


def test_rfm_scores_order_value_revenue_and_historic_value_match_hand_computation(shop):
    # Cutoff 2024-03-01; RFM window 365 days holds every purchase. The order o5 at the cutoff is unseen.
    # alice: orders o1 (100 + 20, Jan 10), o2 (60, Feb 20), o4 (40, Feb 26 10:00) -> frequency 3, gross 220;
    #   return of 20 on Feb 27 -> net 200. Recency Feb 26 10:00 -> 14 h + 3 days = 43/12. AOV 220/3.
    #   revenue 7d [Feb 23, Mar 1): o4 = 40; 30d [Jan 31, Mar 1): o2 + o4 = 100. return rate 20/220.
    # carol: o9 (80, Nov 24 12:00) -> recency 97.5, frequency 1, gross = net = 80, AOV 80, nothing in 30d.
    # bob never bought: no recency, zero counts and money, no scores, no AOV, no return rate.
    # Scores among the n = 2 buyers: 1 + floor(5 * (rank - 1) / 2): lower -> 1 + 0 = 1, higher -> 1 + 2 = 3.
    #   R: carol older (1), alice newer (3); F: 1 vs 3 orders; M: 80 vs 200. RFM code 100R + 10F + M.
    expected = pd.DataFrame(
        {
            "value__recency_days": [43 / 12, NAN, 97.5],
            "value__frequency": [3, 0, 1],
            "value__orders_lifetime": [3, 0, 1],
            "value__monetary_gross": [220.0, 0.0, 80.0],
            "value__monetary_net": [200.0, 0.0, 80.0],
            "value__r_score": [3.0, NAN, 1.0],
            "value__f_score": [3.0, NAN, 1.0],
            "value__m_score": [3.0, NAN, 1.0],
            "value__rfm_score": [333.0, NAN, 111.0],
            "value__avg_order_value": [220 / 3, NAN, 80.0],
            "value__revenue_7d": [40.0, 0.0, 0.0],
            "value__revenue_30d": [100.0, 0.0, 0.0],
            "value__return_rate": [20 / 220, NAN, 0.0],
            "value__historic_value": [200.0, 0.0, 80.0],
        },
        index=pd.Index(["alice", "bob", "carol"], name="customer_id"),
    )
    assert_frame_equal(value(shop), expected)


# Transactions only (customer_id, timestamp, event_type=purchase, revenue, quantity): every row is an order.
# Cutoff 2024-07-01; the 365-day RFM window is [2023-07-02, 2024-07-01).
TRANSACTIONS = [
    ("c1", "2024-06-30 10:00", "purchase", 10.0, 1.0),
    ("c2", "2024-06-30 10:00", "purchase", 10.0, 1.0),  # c2 ties c1 on R, F and M
    ("c3", "2024-05-01 10:00", "purchase", 50.0, 1.0),
    ("c3", "2024-06-01 10:00", "purchase", 50.0, 1.0),
    ("c4", "2024-01-10 10:00", "purchase", 20.0, 1.0),
    ("c4", "2024-02-10 10:00", "purchase", 20.0, 1.0),
    ("c4", "2024-03-10 10:00", "purchase", 20.0, 1.0),
    ("c5", "2023-09-01 10:00", "purchase", 100.0, 1.0),
    ("c5", "2023-10-01 10:00", "purchase", 100.0, 1.0),
    ("c5", "2023-11-01 10:00", "purchase", 100.0, 1.0),
    ("c5", "2023-12-01 10:00", "purchase", 100.0, 1.0),
    ("c5", "2024-01-01 10:00", "purchase", 100.0, 1.0),
    ("c6", "2022-01-01 10:00", "purchase", 1000.0, 1.0),  # before the RFM window
]
TRANSACTION_FIELDS = ("customer_id", "timestamp", "event_type", "revenue", "quantity")
SIX = pd.Index(["c1", "c2", "c3", "c4", "c5", "c6"], name="customer_id")


def test_quintile_scores_spread_one_to_five_and_tied_customers_share_the_lowest_score(duck, table, to_frame):
    got = value(table(duck, to_frame(TRANSACTIONS, TRANSACTION_FIELDS)), "2024-07-01")
    # n = 6 buyers; score = 1 + floor(5 * r / 6) for 0-based min-rank r: r 0..5 -> 1, 1, 2, 3, 4, 5.
    # R by last purchase, oldest first: c6 (r0), c5 (r1), c4 (r2), c3 (r3), c1 = c2 (both r4) -> 1, 1, 2, 3, 4, 4.
    # F (orders in window): c6 0 (r0), c1 = c2 1 (r1), c3 2 (r3), c4 3 (r4), c5 5 (r5) -> 1, 1, 1, 3, 4, 5.
    # M (net in window): c6 0 (r0), c1 = c2 10 (r1), c4 60 (r3), c3 100 (r4), c5 500 (r5) -> 1, 1, 1, 3, 4, 5.
    expected = pd.DataFrame(
        {
            "value__r_score": [4.0, 4.0, 3.0, 2.0, 1.0, 1.0],
            "value__f_score": [1.0, 1.0, 3.0, 4.0, 5.0, 1.0],
            "value__m_score": [1.0, 1.0, 4.0, 3.0, 5.0, 1.0],
            "value__rfm_score": [411.0, 411.0, 334.0, 243.0, 155.0, 111.0],
        },
        index=SIX,
    )
    assert_frame_equal(got[expected.columns], expected)
    # Without order_id each purchase row is an order; c6's only order is outside the window.
    assert got["value__frequency"].tolist() == [1, 1, 2, 3, 5, 0]
    assert got["value__orders_lifetime"].tolist() == [1, 1, 2, 3, 5, 1]
    assert got["value__historic_value"].tolist() == [10.0, 10.0, 100.0, 60.0, 500.0, 1000.0]


def test_rfm_over_the_whole_history_when_the_window_is_empty(duck, table, to_frame):
    got = value(table(duck, to_frame(TRANSACTIONS, TRANSACTION_FIELDS)), "2024-07-01", rfm_window_days=None)
    # c6's 2022 order now counts: frequency 1, monetary 1000 (the largest -> M 5, c5 drops to r4 -> 4).
    assert got.loc["c6", ["value__frequency", "value__monetary_gross"]].tolist() == [1, 1000.0]
    assert got["value__m_score"].tolist() == [1.0, 1.0, 3.0, 2.0, 4.0, 5.0]


def test_without_a_revenue_column_only_recency_frequency_and_their_scores_are_made(duck, table, to_frame):
    rows = [r[:3] for r in TRANSACTIONS]
    result = build_features(
        table(duck, to_frame(rows, ("customer_id", "timestamp", "event_type"))),
        "2024-07-01",
        FeaturesConfig(enabled=["value"]),
    )
    assert list(result.frame.columns) == [
        "value__recency_days",
        "value__frequency",
        "value__orders_lifetime",
        "value__r_score",
        "value__f_score",
    ]
    assert [f.name for f in result.catalog] == list(result.frame.columns)
    # c1 bought Jun 30 10:00 -> Jul 1 00:00 = 14 h.
    assert result.frame.loc["c1", "value__recency_days"] == 14 / 24


def test_value_is_skipped_with_a_reason_when_nobody_purchased_before_the_cutoff(duck, table, to_frame):
    rows = [
        ("v", "2024-01-05 10:00", "page_view", None, None),
        ("v", "2024-02-05 10:00", "purchase", 5.0, 1.0),  # after the cutoff: must not make value run
    ]
    result = build_features(
        table(duck, to_frame(rows, TRANSACTION_FIELDS)), "2024-02-01", FeaturesConfig(enabled=["value"])
    )
    assert list(result.frame.columns) == []
    assert list(result.frame.index) == ["v"]
    assert "purchase" in result.skipped["value"]
