"""Rule segments: hand-worked customers, rule boundaries and order, totality, missing inputs, plans, churn, config."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.segments import (
    LIFECYCLE_ORDER,
    LOYALTY_ORDER,
    SEGMENTS,
    RfmRule,
    SegmentsConfig,
    all_score_cells,
    assign_segments,
    default_rfm_rules,
    engagement_score,
    segment_definitions,
    segment_values,
)

NAN = math.nan

# Columns of the hand-made frames: the transaction families (value, timing, usage), then engagement.
CORE_COLUMNS = [
    "value__orders_lifetime",
    "value__recency_days",
    "timing__days_since_last_event",
    "timing__days_since_first_event",
    "timing__purchase_gap_mean_days",
    "timing__purchase_gap_std_days",
    "timing__overdue_ratio",
    "value__r_score",
    "value__f_score",
    "value__m_score",
    "usage__purchases_30d",
    "usage__active_days_30d",
    "usage__events_90d",
    "usage__events_pctile_90d",
]
ENGAGEMENT_COLUMNS = [
    "engagement__email_opens",
    "engagement__email_clicks",
    "engagement__reviews",
    "engagement__referrals",
    "engagement__complaints",
    "engagement__support_tickets",
    "engagement__return_rate",
    "engagement__avg_review_rating",
    "engagement__nps",
]
# fmt: off
CORE_ROWS = {
    #               orders recency last   tenure gap_mu gap_sd overdue r    f    m    buys30 act30 ev90 pctile
    "ghost_gina":   (0,     NAN,    60.0,  200.0, NAN,   NAN,   NAN,    NAN, NAN, NAN, 0,     0,    0,   0.0),
    "lead_leo":     (0,     NAN,    3.0,   40.0,  NAN,   NAN,   NAN,    NAN, NAN, NAN, 0,     4,    20,  0.5),
    "new_nina":     (1,     10.0,   2.0,   12.0,  NAN,   NAN,   NAN,    5,   1,   3,   1,     3,    5,   0.3),
    "hero_hugo":    (12,    5.0,    1.0,   300.0, 20.0,  4.0,   0.25,   5,   5,   5,   2,     12,   200, 0.95),
    "repeat_rita":  (4,     20.0,   15.0,  250.0, 30.0,  10.0,  0.667,  4,   4,   3,   1,     2,    40,  0.6),
    "pending_paul": (3,     50.0,   40.0,  200.0, 25.0,  5.0,   2.0,    3,   3,   2,   0,     0,    10,  0.4),
    "risky_rosa":   (5,     100.0,  90.0,  330.0, 20.0,  8.0,   5.0,    2,   4,   4,   0,     0,    0,   0.0),
    "lost_luke":    (2,     250.0,  250.0, 320.0, 40.0,  0.0,   6.25,   1,   2,   1,   0,     0,    0,   0.0),
    "olga_once":    (1,     120.0,  30.0,  200.0, NAN,   NAN,   NAN,    2,   1,   2,   0,     1,    8,   0.35),
}
ENGAGEMENT_ROWS = {
    #               opens clicks reviews referrals complaints tickets return_rate rating nps
    "ghost_gina":   (0,    0,     0,      0,        0,         0,      NAN,        NAN,   NAN),
    "lead_leo":     (6,    2,     0,      0,        0,         0,      NAN,        NAN,   NAN),
    "new_nina":     (0,    0,     1,      0,        0,         0,      0.0,        5.0,   NAN),
    "hero_hugo":    (24,   8,     3,      2,        0,         1,      0.0,        4.5,   100.0),
    "repeat_rita":  (3,    0,     0,      0,        0,         0,      0.0,        NAN,   0.0),
    "pending_paul": (0,    0,     0,      0,        0,         3,      0.0,        NAN,   NAN),
    "risky_rosa":   (12,   0,     0,      0,        2,         0,      0.2,        5.0,   NAN),
    "lost_luke":    (0,    0,     0,      0,        0,         0,      0.0,        NAN,   -100.0),
    "olga_once":    (1,    0,     0,      0,        0,         0,      0.0,        NAN,   NAN),
}
# fmt: on

# Worked out by hand with the default config (rule order in brackets, first match wins):
# lifecycle [Lead, Ghost, Lost, New, At-risk, Pending, Hero, Repeat, Occasional]
#   gina: never bought, last event 60 > 30 days -> Ghost.       leo: never bought, 3 days, 4 active days >= 2 -> Lead.
#   nina: 1 order, all in the last 30 days (p30 1 = orders) -> New.
#   hugo: overdue 0.25, M 5 >= 5, F 5 >= 4, recency 5 <= 30 -> Hero.
#   rita: M 3 < 5 (no Hero); 4 orders >= 3, recency 20 <= 90, gap cv 10/30 <= 1 -> Repeat.
#   paul: overdue 2.0 in (1.5, 3] -> Pending.                   rosa: overdue 5 > 3 -> At-risk.
#   luke: recency 250 > 180 -> Lost (before At-risk, overdue 6.25).
#   olga: one order 120 days ago, no gaps -> Occasional.
# user_status [defector (> 180 days), first-time buyer, regular, prospect, non-user] (no customers table):
#   gina: not engaged -> non-user; leo: 4 active days -> prospect; nina, olga: one order -> first-time buyer;
#   hugo, rita, paul, rosa: 2+ orders within 180 days -> regular; luke: 250 days -> defector.
# rfm_cell (default rules): nina 5-1-3 New customers; hugo 5-5-5 Champions; rita 4-4-3 Loyal; paul 3-3-2 Loyal;
#   rosa 2-4-4 Can't lose; luke 1-2-1 Hibernating (At risk needs M 2-5, Lost needs F 1); olga 2-1-2 Hibernating.
# usage_tier [none (no events in 90d), heavy >= 0.8, medium >= 0.4, light]:
#   gina, rosa, luke: 0 events -> none; leo 0.5 medium; nina 0.3 light; hugo 0.95 heavy; rita 0.6 medium;
#   paul 0.4 medium (at the cut); olga 0.35 light.
# engagement_level: mean of min(opens/12, 1), min(clicks/4, 1), min(reviews/2, 1), min(referrals/1, 1),
#   min(active/8, 1); high >= 0.5, medium >= 0.2:
#   gina 0 low; leo (0.5+0.5+0+0+0.5)/5 = 0.3 medium; nina (0+0+0.5+0+0.375)/5 = 0.175 low; hugo 1 high;
#   rita (0.25+0+0+0+0.25)/5 = 0.1 low; paul 0 low; rosa (1+0+0+0+0)/5 = 0.2 medium (at the cut);
#   luke 0 low; olga (1/12+0+0+0+1/8)/5 = 0.04 low.
# satisfaction [low: complaints >= 1, tickets >= 3, return rate >= 0.5, rating <= 2.5, NPS <= -50;
#   high: rating >= 4, NPS >= 50; else neutral]:
#   nina rating 5 -> high; hugo NPS 100 -> high; paul 3 tickets -> low; rosa 2 complaints -> low (beats rating 5);
#   luke NPS -100 -> low; rita NPS 0 -> neutral; gina, leo, olga: no signal -> neutral.
# loyalty [no purchase, new (tenure <= 90), switcher-risk (recency > 180, overdue > 2, cv > 1), loyal
#   (orders >= 3 or referrals >= 1), uncommitted]:
#   gina, leo -> no purchase; nina tenure 12 -> new; hugo, rita -> loyal; paul overdue 2.0 is not above 2 -> loyal;
#   rosa overdue 5 -> switcher-risk; luke recency 250 -> switcher-risk; olga one order, no signs -> uncommitted.
EXPECTED = pd.DataFrame.from_dict(
    {
        "ghost_gina": ("Ghost", "non-user", "No purchase", "none", "low", "neutral", "no purchase"),
        "lead_leo": ("Lead", "prospect", "No purchase", "medium", "medium", "neutral", "no purchase"),
        "new_nina": ("New", "first-time buyer", "New customers", "light", "low", "high", "new"),
        "hero_hugo": ("Hero", "regular", "Champions", "heavy", "high", "high", "loyal"),
        "repeat_rita": ("Repeat", "regular", "Loyal", "medium", "low", "neutral", "loyal"),
        "pending_paul": ("Pending", "regular", "Loyal", "medium", "low", "low", "loyal"),
        "risky_rosa": ("At-risk", "regular", "Can't lose", "none", "medium", "low", "switcher-risk"),
        "lost_luke": ("Lost", "defector", "Hibernating", "none", "low", "low", "switcher-risk"),
        "olga_once": ("Occasional", "first-time buyer", "Hibernating", "light", "low", "neutral", "uncommitted"),
    },
    orient="index",
    columns=list(SEGMENTS),
)
TRANSACTION_FAMILIES = ("usage__", "timing__", "value__")


def shop() -> pd.DataFrame:
    """Returns the hand-made feature frame, indexed by customer_id and typed like build_features' frame."""
    core = pd.DataFrame.from_dict(CORE_ROWS, orient="index", columns=CORE_COLUMNS)
    engagement = pd.DataFrame.from_dict(ENGAGEMENT_ROWS, orient="index", columns=ENGAGEMENT_COLUMNS)
    frame = core.join(engagement).rename_axis("customer_id")
    for col in frame.columns:
        frame[col] = frame[col].astype("int64" if col in COUNT_COLUMNS else "float64")
    return frame


COUNT_COLUMNS = {
    "value__orders_lifetime", "usage__purchases_30d", "usage__active_days_30d", "usage__events_90d",
    "engagement__email_opens", "engagement__email_clicks", "engagement__reviews", "engagement__referrals",
    "engagement__complaints", "engagement__support_tickets",
}  # fmt: skip

# A purchaser that matches only Occasional: two orders 60 days apart, last 60 days ago (overdue 1.0), low M.
BASE_BUYER: dict[str, float] = {
    "value__orders_lifetime": 2,
    "value__recency_days": 60.0,
    "timing__days_since_last_event": 10.0,
    "timing__days_since_first_event": 200.0,
    "timing__purchase_gap_mean_days": 60.0,
    "timing__purchase_gap_std_days": 0.0,
    "timing__overdue_ratio": 1.0,
    "value__r_score": 3,
    "value__f_score": 2,
    "value__m_score": 2,
    "usage__purchases_30d": 0,
    "usage__active_days_30d": 1,
    "usage__events_90d": 5,
    "usage__events_pctile_90d": 0.3,
}
BASE_VISITOR: dict[str, float] = {
    **BASE_BUYER,
    "value__orders_lifetime": 0,
    "value__recency_days": NAN,
    "timing__purchase_gap_mean_days": NAN,
    "timing__purchase_gap_std_days": NAN,
    "timing__overdue_ratio": NAN,
    "value__r_score": NAN,
    "value__f_score": NAN,
    "value__m_score": NAN,
}


def one(base: dict[str, float], **changes: float) -> pd.DataFrame:
    """Returns a one-customer frame: `base` with the changed columns (short names: the part after '__')."""
    row = dict(base)
    for short, value in changes.items():
        matches = [c for c in row if c.split("__", 1)[1] == short]
        assert len(matches) == 1, f"unknown or ambiguous column {short}"
        row[matches[0]] = value
    return pd.DataFrame([row], index=pd.Index(["c1"], name="customer_id"))


def segment_of(
    frame: pd.DataFrame, segment: str = "lifecycle", config: SegmentsConfig | None = None, **kw: object
) -> str:
    """Returns the single customer's value of one segment."""
    return assign_segments(frame, config or SegmentsConfig(), **kw).frame[segment].iloc[0]


# --- hand-worked customers -------------------------------------------------------------------------------


def test_hand_made_customers_get_the_segments_worked_out_by_hand() -> None:
    result = assign_segments(shop(), SegmentsConfig())
    got = result.frame.astype(object)
    pd.testing.assert_frame_equal(got, EXPECTED.astype(object).rename_axis("customer_id"), check_names=False)
    assert result.skipped == {}


def test_result_keeps_the_feature_index_and_gives_category_columns_in_rule_order() -> None:
    features = shop()
    frame = assign_segments(features, SegmentsConfig()).frame
    assert frame.index.equals(features.index)
    assert list(frame.columns) == list(SEGMENTS)
    values = segment_values(SegmentsConfig())
    for segment in SEGMENTS:
        assert isinstance(frame[segment].dtype, pd.CategoricalDtype)
        assert list(frame[segment].cat.categories) == values[segment]
    assert values["lifecycle"] == list(LIFECYCLE_ORDER)


def test_engagement_score_is_the_weighted_mean_of_capped_inputs() -> None:
    score = engagement_score(shop())
    assert score["lead_leo"] == pytest.approx(0.3)
    assert score["new_nina"] == pytest.approx(0.175)
    assert score["hero_hugo"] == pytest.approx(1.0)
    assert score["olga_once"] == pytest.approx((1 / 12 + 1 / 8) / 5)


# --- lifecycle boundaries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recency", "expected"),
    [(179.9, "Occasional"), (180.0, "Occasional"), (180.1, "Lost")],
)
def test_lost_starts_just_above_lost_after_days(recency: float, expected: str) -> None:
    # Overdue ratio kept at 1 so that only the recency moves.
    assert segment_of(one(BASE_BUYER, recency_days=recency)) == expected


@pytest.mark.parametrize(
    ("overdue", "expected"),
    [(1.49, "Occasional"), (1.5, "Occasional"), (1.51, "Pending"), (3.0, "Pending"), (3.01, "At-risk")],
)
def test_pending_is_above_the_pending_ratio_up_to_the_at_risk_ratio_and_at_risk_above(
    overdue: float, expected: str
) -> None:
    assert segment_of(one(BASE_BUYER, overdue_ratio=overdue)) == expected


@pytest.mark.parametrize(
    ("orders", "in_window", "expected"),
    [(2, 2, "New"), (2, 1, "Occasional"), (1, 1, "New"), (1, 0, "Occasional")],
)
def test_new_means_every_order_falls_in_the_new_window(orders: int, in_window: int, expected: str) -> None:
    frame = one(BASE_BUYER, orders_lifetime=orders, purchases_30d=in_window, recency_days=20.0)
    assert segment_of(frame) == expected


@pytest.mark.parametrize(("recency", "expected"), [(29.9, "New"), (30.0, "New"), (30.1, "Occasional")])
def test_new_without_the_window_column_is_one_order_within_new_within_days(recency: float, expected: str) -> None:
    frame = one(BASE_BUYER, orders_lifetime=1, recency_days=recency, overdue_ratio=NAN).drop(
        columns="usage__purchases_30d"
    )
    result = assign_segments(frame, SegmentsConfig())
    assert result.frame["lifecycle"].iloc[0] == expected
    assert any("usage__purchases_30d absent" in n for n in result.notes["lifecycle"])


@pytest.mark.parametrize(
    ("last_event", "active_days", "expected"),
    [(30.0, 2, "Lead"), (30.01, 2, "Ghost"), (30.0, 1, "Ghost"), (5.0, 3, "Lead")],
)
def test_lead_is_a_recent_engaged_non_buyer_and_ghost_the_rest(
    last_event: float, active_days: int, expected: str
) -> None:
    frame = one(BASE_VISITOR, days_since_last_event=last_event, active_days_30d=active_days)
    assert segment_of(frame) == expected


@pytest.mark.parametrize(
    ("m", "f", "recency", "expected"),
    [(5, 4, 30.0, "Hero"), (4, 4, 30.0, "Occasional"), (5, 3, 30.0, "Occasional"), (5, 4, 30.1, "Occasional")],
)
def test_hero_needs_top_m_frequent_f_and_a_recent_purchase(m: int, f: int, recency: float, expected: str) -> None:
    frame = one(BASE_BUYER, m_score=m, f_score=f, recency_days=recency, overdue_ratio=0.5)
    assert segment_of(frame) == expected


@pytest.mark.parametrize(
    ("orders", "recency", "gap_std", "expected"),
    [
        (3, 90.0, 60.0, "Repeat"),  # cv = 60 / 60 = 1.0, at the cap
        (2, 90.0, 0.0, "Occasional"),  # one order short
        (3, 90.1, 0.0, "Occasional"),  # not recent enough
        (3, 60.0, 60.6, "Occasional"),  # cv 1.01: irregular
    ],
)
def test_repeat_needs_enough_recent_regular_orders(orders: int, recency: float, gap_std: float, expected: str) -> None:
    frame = one(
        BASE_BUYER, orders_lifetime=orders, recency_days=recency, purchase_gap_std_days=gap_std, overdue_ratio=1.0
    )
    assert segment_of(frame) == expected


def test_repeat_ignores_regularity_when_its_cap_is_empty() -> None:
    frame = one(BASE_BUYER, orders_lifetime=3, purchase_gap_std_days=200.0)
    config = SegmentsConfig.model_validate({"lifecycle": {"repeat_max_gap_cv": None}})
    assert segment_of(frame) == "Occasional"
    assert segment_of(frame, config=config) == "Repeat"


# --- lifecycle rule order -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected", "also_matches"),
    [
        ({"recency_days": 200.0, "overdue_ratio": 5.0}, "Lost", "At-risk"),
        ({"purchases_30d": 2, "recency_days": 20.0, "overdue_ratio": 5.0}, "New", "At-risk"),
        ({"m_score": 5, "f_score": 5, "recency_days": 20.0, "overdue_ratio": 3.5}, "At-risk", "Hero"),
        ({"m_score": 5, "f_score": 5, "recency_days": 20.0, "overdue_ratio": 2.0}, "Pending", "Hero"),
        (
            {"m_score": 5, "f_score": 5, "orders_lifetime": 5, "recency_days": 20.0, "overdue_ratio": 0.5},
            "Hero",
            "Repeat",
        ),
        ({"orders_lifetime": 3, "overdue_ratio": 2.0}, "Pending", "Repeat"),
    ],
)
def test_a_customer_matching_two_lifecycle_rules_gets_the_first(
    changes: dict[str, float], expected: str, also_matches: str
) -> None:
    assert LIFECYCLE_ORDER.index(expected) < LIFECYCLE_ORDER.index(also_matches)
    assert segment_of(one(BASE_BUYER, **changes)) == expected


lifecycle_rows = st.fixed_dictionaries(
    {
        "value__orders_lifetime": st.integers(0, 50),
        "value__recency_days": st.one_of(st.just(NAN), st.floats(0, 2000)),
        "timing__days_since_last_event": st.floats(0, 2000),
        "timing__days_since_first_event": st.floats(0, 2000),
        "timing__purchase_gap_mean_days": st.one_of(st.just(NAN), st.floats(1, 500)),
        "timing__purchase_gap_std_days": st.one_of(st.just(NAN), st.floats(0, 500)),
        "timing__overdue_ratio": st.one_of(st.just(NAN), st.floats(0, 100)),
        "value__r_score": st.one_of(st.just(NAN), st.integers(1, 5).map(float)),
        "value__f_score": st.one_of(st.just(NAN), st.integers(1, 5).map(float)),
        "value__m_score": st.one_of(st.just(NAN), st.integers(1, 5).map(float)),
        "usage__purchases_30d": st.integers(0, 50),
        "usage__active_days_30d": st.integers(0, 30),
        "usage__events_90d": st.integers(0, 500),
        "usage__events_pctile_90d": st.floats(0, 1),
    }
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(lifecycle_rows, min_size=1, max_size=8), churn=st.one_of(st.none(), st.floats(0, 1)))
def test_any_feature_row_gets_exactly_one_lifecycle_user_status_and_loyalty(
    rows: list[dict[str, float]], churn: float | None
) -> None:
    frame = pd.DataFrame(rows, index=pd.Index([f"c{i}" for i in range(len(rows))], name="customer_id"))
    probability = None if churn is None else pd.Series(churn, index=frame.index)
    result = assign_segments(frame, SegmentsConfig(), churn_probability=probability)
    for segment in ("lifecycle", "user_status", "loyalty", "usage_tier"):
        column = result.frame[segment]
        assert column.notna().all(), segment
        assert set(column) <= set(segment_values(SegmentsConfig())[segment])
    assert set(result.frame["loyalty"]) <= set(LOYALTY_ORDER)


# --- RFM cells ------------------------------------------------------------------------------------------


def test_default_rfm_rules_name_every_one_of_the_125_score_cells() -> None:
    rules = default_rfm_rules()
    cells = all_score_cells()
    assert len(cells) == 125
    for cell in cells:
        assert any(rule.matches(*cell) for rule in rules), cell
    r, f, m = (np.array(v, dtype=float) for v in zip(*cells))
    frame = pd.DataFrame(
        {"value__orders_lifetime": 1, "value__r_score": r, "value__f_score": f, "value__m_score": m},
        index=pd.Index([f"{a}{b}{c}" for a, b, c in cells], name="customer_id"),
    )
    named = assign_segments(frame, SegmentsConfig()).frame["rfm_cell"]
    assert named.notna().all()
    # First match wins: each cell carries the name of the first rule holding it, one name per cell.
    for (a, b, c), name in zip(cells, named):
        assert name == next(rule.name for rule in rules if rule.matches(a, b, c))
    # Every standard name is reachable, and the anchors of the map are where the literature puts them.
    assert set(named) == {rule.name for rule in rules}
    anchors = {"555": "Champions", "111": "Lost", "155": "Can't lose", "511": "New customers", "411": "Promising",
               "333": "Loyal", "521": "Potential loyalist", "313": "Need attention", "311": "About to sleep",
               "233": "At risk", "211": "Hibernating"}  # fmt: skip
    assert {k: named[k] for k in anchors} == anchors


def test_customers_without_a_purchase_are_in_the_no_purchase_cell() -> None:
    frame = shop()
    cells = assign_segments(frame, SegmentsConfig()).frame["rfm_cell"]
    assert list(cells[frame["value__orders_lifetime"] == 0]) == ["No purchase", "No purchase"]


def test_rfm_without_m_score_matches_on_r_and_f_only_and_says_so() -> None:
    frame = shop().drop(columns="value__m_score")
    result = assign_segments(frame, SegmentsConfig())
    # rita 4-4 matches Champions once M is not checked; luke 1-2 matches At risk.
    assert result.frame.loc["repeat_rita", "rfm_cell"] == "Champions"
    assert result.frame.loc["lost_luke", "rfm_cell"] == "At risk"
    assert any("value__m_score absent" in n for n in result.notes["rfm_cell"])
    assert result.frame.loc["hero_hugo", "lifecycle"] == "Repeat"  # Hero needs M, so the next rule holds


def test_custom_rfm_rules_are_used_in_their_order() -> None:
    config = SegmentsConfig.model_validate(
        {"rfm_cell": {"rules": [{"name": "Top", "r": [5, 5]}, {"name": "Rest"}], "no_purchase_label": "Prospect"}}
    )
    cells = assign_segments(shop(), config).frame["rfm_cell"]
    assert cells["hero_hugo"] == "Top" and cells["new_nina"] == "Top"
    assert cells["repeat_rita"] == "Rest" and cells["ghost_gina"] == "Prospect"


def test_rfm_rules_that_leave_cells_unnamed_are_rejected_naming_the_key_and_a_cell() -> None:
    with pytest.raises(ValidationError, match=r"models\.segments\.rfm_cell\.rules leave 25 .*\(1, 1, 1\)"):
        SegmentsConfig.model_validate({"rfm_cell": {"rules": [{"name": "Recent", "r": [2, 5]}]}})


# --- missing inputs -------------------------------------------------------------------------------------


def test_transactions_only_frame_computes_four_segments_and_skips_engagement_and_satisfaction_with_a_reason() -> None:
    frame = shop()[CORE_COLUMNS]
    assert all(c.startswith(TRANSACTION_FAMILIES) for c in frame.columns)
    result = assign_segments(frame, SegmentsConfig())
    computed = ["lifecycle", "user_status", "rfm_cell", "usage_tier"]
    assert result.frame[computed].notna().all().all()
    assert set(result.skipped) == {"engagement_level", "satisfaction"}
    assert "engagement__email_opens" in result.skipped["engagement_level"]
    assert "transactions only" in result.skipped["engagement_level"]
    assert "engagement__complaints" in result.skipped["satisfaction"]
    assert result.frame[["engagement_level", "satisfaction"]].isna().all().all()
    # Without engagement columns the hand-worked segments stay: leo is still engaged through his active days.
    for segment in computed:
        assert list(result.frame[segment]) == list(EXPECTED[segment]), segment
    described = result.describe()
    assert described.loc[described["segment"] == "satisfaction", "rule"].str.startswith("not computed").all()


def test_engagement_level_uses_the_inputs_present_with_renormalised_weights() -> None:
    frame = shop().drop(columns=["engagement__reviews", "engagement__referrals"])
    result = assign_segments(frame, SegmentsConfig())
    # nina: (opens 0 + clicks 0 + active 3/8) / 3 = 0.125 -> low; leo: (0.5 + 0.5 + 0.5) / 3 = 0.5 -> high.
    assert engagement_score(frame)["new_nina"] == pytest.approx(0.125)
    assert result.frame.loc["lead_leo", "engagement_level"] == "high"
    assert any("renormalised" in n for n in result.notes["engagement_level"])


def test_satisfaction_reads_whichever_voice_of_customer_columns_exist() -> None:
    frame = shop()[["value__orders_lifetime", "engagement__complaints"]]
    result = assign_segments(frame, SegmentsConfig())
    assert "satisfaction" not in result.skipped
    assert list(result.frame["satisfaction"][result.frame["satisfaction"] == "low"].index) == ["risky_rosa"]
    assert (result.frame["satisfaction"].drop("risky_rosa") == "neutral").all()


def test_segments_whose_core_columns_are_absent_are_skipped_naming_the_columns() -> None:
    frame = shop()[["usage__events_90d", "usage__events_pctile_90d"]]
    result = assign_segments(frame, SegmentsConfig())
    assert "value__orders_lifetime" in result.skipped["lifecycle"]
    assert "value__r_score" in result.skipped["rfm_cell"]
    assert "usage_tier" not in result.skipped
    assert result.frame["lifecycle"].isna().all()


# --- customers table and churn --------------------------------------------------------------------------


def test_plans_from_the_customers_table_win_over_behaviour_and_other_plans_fall_through() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["hero_hugo", "ghost_gina", "lost_luke", "new_nina", "someone_else"],
            "plan": ["Paid", " trial ", "freemium", "free", "paid"],
        }
    )
    status = assign_segments(shop(), SegmentsConfig(), customers=customers).frame["user_status"]
    assert status["hero_hugo"] == "paid user"
    assert status["ghost_gina"] == "trial user"
    assert status["lost_luke"] == "freemium user"
    assert status["new_nina"] == "first-time buyer"  # free is not a plan status
    assert status["olga_once"] == "first-time buyer"  # not in the customers table


def test_a_signup_makes_a_non_buyer_a_prospect_and_a_recent_one_a_lead_unless_after_the_cutoff() -> None:
    frame = one(BASE_VISITOR, active_days_30d=0, days_since_last_event=5.0)
    customers = pd.DataFrame({"customer_id": ["c1"], "signup_at": [pd.Timestamp("2024-02-01", tz="UTC")]})
    assert segment_of(frame, "user_status") == "non-user"
    assert segment_of(frame, "user_status", customers=customers) == "prospect"
    assert segment_of(frame, "lifecycle", customers=customers) == "Lead"
    assert segment_of(frame, "user_status", customers=customers, cutoff="2024-03-01") == "prospect"
    assert segment_of(frame, "user_status", customers=customers, cutoff="2024-02-01") == "non-user"


@pytest.mark.parametrize(("probability", "expected"), [(0.5, "Occasional"), (0.51, "At-risk"), (NAN, "Occasional")])
def test_churn_probability_above_the_threshold_makes_a_purchaser_at_risk(probability: float, expected: str) -> None:
    churn = pd.Series([probability], index=pd.Index(["c1"], name="customer_id"))
    assert segment_of(one(BASE_BUYER), churn_probability=churn) == expected


def test_churn_probability_does_not_touch_non_buyers_new_or_lost_customers() -> None:
    churn = pd.Series(0.99, index=shop().index)
    got = assign_segments(shop(), SegmentsConfig(), churn_probability=churn).frame["lifecycle"]
    assert list(got[["ghost_gina", "lead_leo", "new_nina", "lost_luke"]]) == ["Ghost", "Lead", "New", "Lost"]
    assert (got[["hero_hugo", "repeat_rita", "pending_paul", "olga_once"]] == "At-risk").all()
    missing = pd.Series({"olga_once": 0.9})
    partial = assign_segments(shop(), SegmentsConfig(), churn_probability=missing).frame["lifecycle"]
    assert partial["olga_once"] == "At-risk" and partial["hero_hugo"] == "Hero"


# --- config really used ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "customer", "segment", "before", "after"),
    [
        ({"lifecycle": {"lost_after_days": 300}}, "lost_luke", "lifecycle", "Lost", "At-risk"),
        ({"lifecycle": {"at_risk_overdue_ratio": 10}}, "risky_rosa", "lifecycle", "At-risk", "Pending"),
        ({"lifecycle": {"hero_min_m_score": 3}}, "repeat_rita", "lifecycle", "Repeat", "Hero"),
        ({"lifecycle": {"new_within_days": 7}}, "new_nina", "lifecycle", "New", "Occasional"),
        ({"engaged_visitor": {"min_active_days": 5, "min_email_clicks": 3}}, "lead_leo", "lifecycle", "Lead", "Ghost"),
        ({"user_status": {"active_within_days": 90}}, "risky_rosa", "user_status", "regular", "defector"),
        ({"usage_tier": {"heavy_min_pctile": 0.6}}, "repeat_rita", "usage_tier", "medium", "heavy"),
        ({"engagement_level": {"medium_min_score": 0.09}}, "repeat_rita", "engagement_level", "low", "medium"),
        ({"satisfaction": {"high_min_nps": 0}}, "repeat_rita", "satisfaction", "neutral", "high"),
        ({"satisfaction": {"low_min_support_tickets": None}}, "pending_paul", "satisfaction", "low", "neutral"),
        ({"loyalty": {"loyal_min_orders": 5}}, "repeat_rita", "loyalty", "loyal", "uncommitted"),
        ({"loyalty": {"new_max_tenure_days": 5}}, "new_nina", "loyalty", "new", "uncommitted"),
        # No usage__active_days_7d column: leo's 4 active days in 30 no longer count, his 2 clicks are below 3.
        (
            {"activity_window_days": 7, "engaged_visitor": {"min_email_clicks": 3}},
            "lead_leo",
            "lifecycle",
            "Lead",
            "Ghost",
        ),
    ],
)
def test_changing_a_threshold_moves_the_customer_to_another_segment(
    params: dict[str, object], customer: str, segment: str, before: str, after: str
) -> None:
    default = assign_segments(shop(), SegmentsConfig()).frame.loc[customer, segment]
    changed = assign_segments(shop(), SegmentsConfig.model_validate(params)).frame.loc[customer, segment]
    assert (default, changed) == (before, after)


def test_definitions_are_written_from_the_config_and_cover_every_value() -> None:
    config = SegmentsConfig.model_validate({"lifecycle": {"lost_after_days": 365}})
    table = segment_definitions(config)
    assert list(table.columns) == ["segment", "order", "value", "rule"]
    lost = table[(table["segment"] == "lifecycle") & (table["value"] == "Lost")]["rule"].item()
    assert "365 days" in lost
    for segment, values in segment_values(config).items():
        assert set(values) == set(table.loc[table["segment"] == segment, "value"]), segment
    assert list(table.loc[table["segment"] == "lifecycle", "value"]) == list(LIFECYCLE_ORDER)


def test_describe_counts_every_customer_once_per_segment() -> None:
    result = assign_segments(shop(), SegmentsConfig())
    described = result.describe()
    assert (described.groupby("segment")["customers"].sum() == len(shop())).all()
    row = described[(described["segment"] == "lifecycle") & (described["value"] == "Ghost")]
    assert row["customers"].item() == 1


# --- inputs and errors ----------------------------------------------------------------------------------


def test_inputs_are_not_modified() -> None:
    features = shop()
    customers = pd.DataFrame({"customer_id": ["hero_hugo"], "plan": ["Paid"], "signup_at": ["2023-01-01"]})
    churn = pd.Series({"olga_once": 0.9, "hero_hugo": 0.1})
    copies = features.copy(deep=True), customers.copy(deep=True), churn.copy(deep=True)
    assign_segments(features, SegmentsConfig(), customers=customers, churn_probability=churn, cutoff="2024-01-01")
    pd.testing.assert_frame_equal(features, copies[0])
    pd.testing.assert_frame_equal(customers, copies[1])
    pd.testing.assert_series_equal(churn, copies[2])


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"lifecycle": {"pending_overdue_ratio": 4}}, "lifecycle.pending_overdue_ratio"),
        ({"lifecycle": {"lost_after_dayz": 10}}, "lifecycle.lost_after_dayz"),
        ({"lifecycle": {"churn_at_risk_probability": 1.5}}, "lifecycle.churn_at_risk_probability"),
        ({"usage_tier": {"heavy_min_pctile": 0.3}}, "usage_tier.medium_min_pctile"),
        ({"engagement_level": {"high_min_score": 0.1}}, "engagement_level.medium_min_score"),
        ({"satisfaction": {"low_max_nps": 60}}, "satisfaction.low_max_nps"),
        ({"rfm_cell": {"rules": [{"name": "All", "r": [0, 5]}]}}, "rfm_cell.rules.0.r"),
        ({"user_status": {"plan_statuses": {"Paid": "a", "paid": "b"}}}, "user_status.plan_statuses"),
        ({"loyalty": {"loyal_min_orders": 1}}, "loyalty.loyal_min_orders"),
    ],
)
def test_config_validation_errors_name_the_key(params: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        SegmentsConfig.model_validate(params)
    assert key in str(info.value)


def test_rfm_rule_ranges_describe_themselves() -> None:
    assert RfmRule(name="x", r=(4, 5), f=(1, 1)).describe() == "R 4-5, F 1, M any"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: assign_segments(f, churn_probability=pd.Series({"lead_leo": 1.2})), "outside 0-1"),
        (lambda f: assign_segments(f, customers=pd.DataFrame({"id": ["a"]})), "no customer_id column"),
        (
            lambda f: assign_segments(f, customers=pd.DataFrame({"customer_id": ["a", "a"], "plan": ["x", "y"]})),
            r"duplicated customer_id values \['a'\]",
        ),
        (lambda f: assign_segments(f.assign(value__r_score=7.0)), "'value__r_score' has values \\[7.0\\]"),
        (lambda f: assign_segments(pd.concat([f, f])), "duplicated customer_id"),
        (lambda f: assign_segments(f.assign(value__orders_lifetime="many")), "'value__orders_lifetime' is not numeric"),
    ],
)
def test_bad_inputs_fail_naming_the_value_and_the_fix(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(shop())  # type: ignore[operator]


@pytest.mark.parametrize(
    ("overdue", "expected"),
    [(0.3, "loyal"), (1.0, "loyal"), (1.2, "switcher-risk")],
    ids=["bought-recently", "on-schedule", "past-their-usual-gap"],
)
def test_irregular_gaps_mean_switching_only_once_the_buyer_is_past_their_usual_gap(overdue, expected) -> None:
    # 4 orders, gaps averaging 20 days with std 30 (cv 1.5 > 1): a buyer in bursts.
    bursty = one(BASE_BUYER, orders_lifetime=4, recency_days=overdue * 20, purchase_gap_mean_days=20.0,
                 purchase_gap_std_days=30.0, overdue_ratio=overdue)
    assert segment_of(bursty, "loyalty") == expected
    # with the guard off, irregular gaps alone flag the customer, as before
    config = SegmentsConfig.model_validate({"loyalty": {"switcher_gap_cv_min_overdue_ratio": 0}})
    assert segment_of(bursty, "loyalty", config) == "switcher-risk"
