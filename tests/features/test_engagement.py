"""Engagement family: email response, voice-of-the-customer counts, returns, ratings, NPS/CSAT, checked by hand."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _tables import build_one, expected, frame
from pydantic import ValidationError

from features.engagement import EngagementConfig, catalog

COLUMNS = ("customer_id", "timestamp", "event_type", "order_id", "rating")
# Cutoff 2024-03-01 00:00 UTC; the default 365-day window starts 2023-03-02 00:00 (2024 is a leap year).
CUTOFF = "2024-03-01"
EVENTS: list[tuple[Any, ...]] = [
    ("ada", "2024-01-01 00:00", "email_open", None, None),
    ("ada", "2024-01-08 00:00", "email_open", None, None),
    ("ada", "2024-01-08 00:05", "email_click", None, None),
    ("ada", "2024-01-15 00:00", "email_open", None, None),
    ("ada", "2024-01-22 00:00", "email_open", None, None),
    ("ada", "2024-02-01 00:00", "review", None, 5.0),
    ("ada", "2024-02-02 00:00", "review", None, 4.0),
    ("ada", "2024-02-03 00:00", "review", None, None),  # a review without stars
    ("ada", "2024-02-05 00:00", "referral", None, None),
    ("bo", "2024-01-02 00:00", "support_ticket", None, None),
    ("bo", "2024-01-03 00:00", "support_ticket", None, None),
    ("bo", "2024-01-04 00:00", "complaint", None, None),
    ("bo", "2024-01-10 00:00", "purchase", "o1", None),
    ("bo", "2024-01-10 00:00", "purchase", "o1", None),  # second line of order o1
    ("bo", "2024-01-20 00:00", "purchase", "o2", None),
    ("bo", "2024-01-25 00:00", "return", "o1", None),
    ("bo", "2024-01-01 00:00", "survey", None, 10.0),  # promoter
    ("bo", "2024-02-01 00:00", "survey", None, 3.0),  # detractor
    ("bo", "2024-02-15 00:00", "survey", None, 9.0),  # promoter, the latest rated answer
    ("bo", "2024-02-20 00:00", "survey", None, None),  # answered without a score
    ("cy", "2023-03-01 00:00", "email_open", None, None),  # a day before the window
    ("cy", "2024-01-05 00:00", "return", None, None),  # returns without order_id: one order each
    ("cy", "2024-01-06 00:00", "return", None, None),
    ("cy", "2024-02-10 00:00", "survey", None, 7.0),  # passive
    ("cy", "2024-02-10 00:00", "survey", None, 8.0),  # passive, same instant
]
CUSTOMERS = ["ada", "bo", "cy"]
NAN = float("nan")


@pytest.fixture(scope="module")
def built(duck: Any) -> pd.DataFrame:
    return build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "engagement").frame


def test_email_opens_clicks_and_click_to_open_rate_count_the_window_only(built: pd.DataFrame) -> None:
    # ada: 4 opens, 1 click -> 1 / 4. cy's only open is a day older than the window.
    want = expected(
        CUSTOMERS,
        {
            "engagement__email_opens": [4, 0, 0],
            "engagement__email_clicks": [1, 0, 0],
            "engagement__email_click_to_open_rate": [1 / 4, NAN, NAN],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_voice_of_the_customer_counts_and_the_average_stars_of_rated_reviews(built: pd.DataFrame) -> None:
    # ada: 3 reviews, two rated (5 + 4) / 2 = 4.5. bo: 2 tickets, 1 complaint.
    want = expected(
        CUSTOMERS,
        {
            "engagement__reviews": [3, 0, 0],
            "engagement__avg_review_rating": [4.5, NAN, NAN],
            "engagement__referrals": [1, 0, 0],
            "engagement__support_tickets": [0, 2, 0],
            "engagement__complaints": [0, 1, 0],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_returns_count_returned_orders_and_the_rate_divides_by_purchased_orders(built: pd.DataFrame) -> None:
    # bo: returned o1 / bought o1 (two lines) and o2 = 1 / 2. cy: two returns without order_id, no
    # purchase -> no rate. ada bought nothing.
    want = expected(CUSTOMERS, {"engagement__returns": [0, 1, 2], "engagement__return_rate": [NAN, 1 / 2, NAN]})
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_nps_is_promoters_minus_detractors_in_percent_and_the_latest_score_skips_unrated_answers(
    built: pd.DataFrame,
) -> None:
    # bo: 4 surveys, 3 rated: 10 and 9 promoters, 3 detractor -> 100 * (2 - 1) / 3; latest rated: 9.
    # cy: 7 and 8 are passives -> 100 * (0 - 0) / 2 = 0; both at one instant -> the higher, 8.
    want = expected(
        CUSTOMERS,
        {
            "engagement__surveys": [0, 4, 2],
            "engagement__nps": [NAN, 100 * (2 - 1) / 3, 0.0],
            "engagement__survey_latest_score": [NAN, 9.0, 8.0],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_columns_follow_the_catalog_in_order(duck: Any) -> None:
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "engagement")
    assert list(result.frame.columns) == [f.name for f in result.catalog]
    assert list(result.frame.columns) == [f.name for f in catalog(EngagementConfig())]


def test_the_csat_scale_reports_the_percent_of_satisfied_answers_instead_of_nps(duck: Any) -> None:
    events = frame(
        COLUMNS,
        [
            ("di", "2024-01-01 00:00", "survey", None, 5.0),
            ("di", "2024-01-02 00:00", "survey", None, 4.0),
            ("di", "2024-01-03 00:00", "survey", None, 2.0),
            ("di", "2024-01-04 00:00", "survey", None, 3.0),
        ],
    )
    result = build_one(duck, events, CUTOFF, "engagement", EngagementConfig(survey_scale="csat"))
    # 5 and 4 are >= 4: 100 * 2 / 4 = 50; latest: 3.
    want = expected(
        ["di"], {"engagement__surveys": [4], "engagement__csat": [50.0], "engagement__survey_latest_score": [3.0]}
    )
    pd.testing.assert_frame_equal(result.frame, want)


def test_nps_bands_come_from_the_config(duck: Any) -> None:
    config = EngagementConfig(nps_promoter_min=8, nps_detractor_max=7)
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "engagement", config)
    # bo: 10, 9 promoters, 3 detractor -> 100 / 3 as before; cy: 8 promoter, 7 detractor -> 0.
    want = expected(CUSTOMERS, {"engagement__nps": [NAN, 100 * (2 - 1) / 3, 100 * (1 - 1) / 2]})
    pd.testing.assert_frame_equal(result.frame[["engagement__nps"]], want)


def test_without_a_rating_column_the_rating_columns_are_omitted(duck: Any) -> None:
    result = build_one(duck, frame(COLUMNS, EVENTS).drop(columns="rating"), CUTOFF, "engagement")
    assert list(result.frame.columns) == [
        "engagement__email_opens",
        "engagement__email_clicks",
        "engagement__email_click_to_open_rate",
        "engagement__reviews",
        "engagement__referrals",
        "engagement__support_tickets",
        "engagement__complaints",
        "engagement__returns",
        "engagement__return_rate",
        "engagement__surveys",
    ]


def test_only_the_event_types_present_give_columns(duck: Any) -> None:
    events = frame(
        COLUMNS, [("di", "2024-01-01 00:00", "complaint", None, None), ("di", "2024-01-02 00:00", "return", None, None)]
    )
    result = build_one(duck, events, CUTOFF, "engagement")
    # no purchase event: returns are counted but no rate is made
    want = expected(["di"], {"engagement__complaints": [1], "engagement__returns": [1]})
    pd.testing.assert_frame_equal(result.frame, want)


def test_the_family_is_skipped_with_a_reason_on_transactions_only_data(duck: Any) -> None:
    events = frame(COLUMNS, [("di", "2024-01-01 00:00", "purchase", "o1", None)])
    result = build_one(duck, events, CUTOFF, "engagement")
    assert result.frame.shape == (1, 0)
    assert result.skipped["engagement"].startswith("engagement: needs at least one event of type ['email_open'")


def test_events_at_or_after_the_cutoff_change_nothing(duck: Any, built: pd.DataFrame) -> None:
    later = [
        ("ada", "2024-03-01 00:00", "email_click", None, None),  # at the cutoff
        ("bo", "2024-03-01 00:00", "survey", None, 0.0),  # would be his latest score
        ("bo", "2024-03-05 00:00", "return", "o2", None),
        ("cy", "2024-04-01 00:00", "purchase", "o7", None),
        ("eve", "2024-03-01 00:00", "review", None, 1.0),
    ]
    result = build_one(duck, frame(COLUMNS, EVENTS + later), CUTOFF, "engagement")
    pd.testing.assert_frame_equal(result.frame, built)


def test_overlapping_nps_bands_are_rejected_naming_both_keys() -> None:
    with pytest.raises(ValidationError, match=r"nps_detractor_max \(9\) must be below nps_promoter_min \(9\)"):
        EngagementConfig(nps_detractor_max=9)
    with pytest.raises(ValidationError, match="survey_scale"):
        EngagementConfig(survey_scale="ces")  # type: ignore[arg-type]
