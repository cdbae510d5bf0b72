"""Timing family: recency, tenure, purchase rhythm and time-of-day/week/holiday habits, checked by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from pydantic import ValidationError

from features.build import build_features
from features.config import FeaturesConfig
from features.timing import HolidayPeriod, TimingConfig

WHO = pd.Index(["alice", "bob", "carol"], name="customer_id")


def timing(events, cutoff="2024-03-01", **settings) -> pd.DataFrame:
    config = FeaturesConfig(enabled=["timing"], timing=TimingConfig(**settings))
    return build_features(events, cutoff, config).frame


def test_recency_rhythm_dayparts_weekdays_and_holidays_match_hand_computation(shop):
    # Cutoff Fri 2024-03-01 00:00 UTC; February 2024 has 29 days.
    # Last event: alice Feb 28 22:00 -> 2 h + 1 day (Feb 29) = 1 + 2/24; bob Feb 25 15:00 -> 9 h + 4 days;
    #   carol Dec 26 18:30 -> 5.5 h + 5 (Dec 27..31) + 31 + 29 days = 65 + 5.5/24.
    # First event: alice Jan 10 09:00 -> 15 h + 21 (Jan 11..31) + 29 = 50 + 15/24; bob Feb 10 13:00 -> 11 h + 19;
    #   carol Nov 24 12:00 -> 12 h + 6 (Nov 25..30) + 31 + 31 + 29 = 97.5.
    # Last purchase: alice Feb 26 10:00 -> 14 h + 3 days = 43/12; carol Nov 24 12:00 -> 97.5; bob none.
    # Purchase days: alice Jan 10, Feb 20, Feb 26 -> gaps 41, 6 -> mean 23.5, population std 17.5,
    #   overdue (43/12) / 23.5; carol has one purchase day -> empty.
    # Hours: alice 9,9,9,19,19,20,10,7,7,22 -> morning 6/10, evening 4/10, mode 9 (3 times);
    #   bob 13,13,3,15 -> night 1/4, afternoon 3/4, mode 13; carol 12, 18 -> afternoon, evening; tie -> 12.
    # Weekdays: alice Wed x4 (Jan 10 x3, Feb 28), Tue x5 (Feb 20 x3, Feb 27 x2), Mon x1 (Feb 26), no weekend;
    #   bob Sat x3 (Feb 10 x2, Feb 24), Sun x1 (Feb 25); carol Fri (Nov 24), Tue (Dec 26).
    # Holidays (Nov 22-30, December): only carol's Nov 24 and Dec 26 -> 1.
    expected = pd.DataFrame(
        {
            "timing__days_since_last_event": [1 + 2 / 24, 4 + 9 / 24, 65 + 5.5 / 24],
            "timing__days_since_first_event": [50 + 15 / 24, 19 + 11 / 24, 97.5],
            "timing__days_since_last_purchase": [43 / 12, None, 97.5],
            "timing__purchase_gap_mean_days": [23.5, None, None],
            "timing__purchase_gap_std_days": [17.5, None, None],
            "timing__overdue_ratio": [(43 / 12) / 23.5, None, None],
            "timing__share_night": [0.0, 0.25, 0.0],
            "timing__share_morning": [0.6, 0.0, 0.0],
            "timing__share_afternoon": [0.0, 0.75, 0.5],
            "timing__share_evening": [0.4, 0.0, 0.5],
            "timing__preferred_hour": [9, 13, 12],
            "timing__weekend_share": [0.0, 1.0, 0.0],
            "timing__dow_entropy": [
                -(0.4 * math.log(0.4) + 0.5 * math.log(0.5) + 0.1 * math.log(0.1)),
                -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)),
                math.log(2),
            ],
            "timing__holiday_share": [0.0, 0.0, 1.0],
        },
        index=WHO,
    ).astype({"timing__days_since_last_purchase": float, "timing__purchase_gap_mean_days": float,
              "timing__purchase_gap_std_days": float, "timing__overdue_ratio": float})
    assert_frame_equal(timing(shop), expected)


# One customer around the 2024 US daylight-saving switch (Sun Mar 10, 07:00 UTC: EST -5 -> EDT -4).
NEW_YORK_ROWS = [
    ("x", "2023-12-01 03:00", "page_view", "s1", None, "web", None, None, None, None),  # NY Thu Nov 30 22:00
    ("x", "2024-01-06 04:00", "purchase", "s2", "o1", "web", "p1", "c", 10.0, 1.0),  # NY Fri Jan 5 23:00
    ("x", "2024-01-06 06:00", "purchase", "s3", "o2", "web", "p1", "c", 10.0, 1.0),  # NY Sat Jan 6 01:00
    ("x", "2024-03-10 06:30", "page_view", "s4", None, "web", None, None, None, None),  # NY Sun 01:30 EST
    ("x", "2024-03-10 07:30", "page_view", "s5", None, "web", None, None, None, None),  # NY Sun 03:30 EDT
]


def test_hours_weekdays_holidays_and_purchase_days_are_read_in_the_configured_timezone(duck, table, to_frame):
    events = table(duck, to_frame(NEW_YORK_ROWS))
    december = [HolidayPeriod(name="december", start="12-01", end="12-31")]
    local = timing(events, "2024-03-11", timezone="America/New_York", holiday_periods=december).loc["x"]
    utc = timing(events, "2024-03-11", timezone="UTC", holiday_periods=december).loc["x"]
    # New York hours 22, 23, 1, 1, 3 -> night 3/5, evening 2/5, mode 1; UTC hours 3, 4, 6, 6, 7 -> night 2/5,
    # morning 3/5, mode 6 (the DST jump shows: 06:30 and 07:30 UTC are 01:30 and 03:30 local).
    assert (local["timing__share_night"], local["timing__share_evening"], local["timing__preferred_hour"]) == (0.6, 0.4, 1)
    assert (utc["timing__share_night"], utc["timing__share_morning"], utc["timing__preferred_hour"]) == (0.4, 0.6, 6)
    # Weekend: local Sat Jan 6, Sun x2 = 3/5; UTC Sat Jan 6 x2, Sun x2 = 4/5.
    assert (local["timing__weekend_share"], utc["timing__weekend_share"]) == (0.6, 0.8)
    # December: the first event is Nov 30 in New York, Dec 1 in UTC.
    assert (local["timing__holiday_share"], utc["timing__holiday_share"]) == (0.0, 0.2)
    # Purchase days: Jan 5 and Jan 6 in New York (one gap of 1 day); one single day (Jan 6) in UTC.
    assert (local["timing__purchase_gap_mean_days"], local["timing__purchase_gap_std_days"]) == (1.0, 0.0)
    assert math.isnan(utc["timing__purchase_gap_mean_days"])
    # Weekdays: NY Thu, Fri, Sat, Sun x2; UTC Fri, Sat x2, Sun x2.
    assert local["timing__dow_entropy"] == pytest.approx(-(3 * 0.2 * math.log(0.2) + 0.4 * math.log(0.4)), abs=1e-12)
    assert utc["timing__dow_entropy"] == pytest.approx(-(0.2 * math.log(0.2) + 2 * 0.4 * math.log(0.4)), abs=1e-12)
    # Instants do not depend on the timezone: last event Mar 10 07:30 -> Mar 11 00:00 = 16.5 h.
    assert local["timing__days_since_last_event"] == utc["timing__days_since_last_event"] == 16.5 / 24


def test_dayparts_follow_configured_start_hours_and_the_last_part_wraps_over_midnight(shop):
    got = timing(shop, daypart_start_hours={"night": 20, "day": 8})
    # day = 08:00-20:00, night = 20:00-08:00. alice 9,9,9,19,19,10 day; 20,22,7,7 night -> 0.6 / 0.4.
    # bob 13,13,15 day, 3 night -> 0.75 / 0.25. carol 12, 18 day -> 1 / 0. Columns follow the start hour.
    assert list(got.columns[6:8]) == ["timing__share_day", "timing__share_night"]
    assert got["timing__share_day"].tolist() == [0.6, 0.75, 1.0]
    assert got["timing__share_night"].tolist() == [0.4, 0.25, 0.0]


def test_a_holiday_period_may_wrap_over_new_year(shop):
    # Dec 20 - Jan 10 holds carol's Dec 26 (1 of 2) and alice's three Jan 10 events (3 of 10).
    got = timing(shop, holiday_periods=[HolidayPeriod(name="winter", start="12-20", end="01-10")])
    assert got["timing__holiday_share"].tolist() == [0.3, 0.0, 0.5]


def test_overdue_ratio_is_empty_with_fewer_than_two_purchase_days_even_with_several_orders(duck, table, to_frame):
    rows = [
        ("y", "2024-02-01 09:00", "purchase", "s1", "o1", "web", "p1", "c", 10.0, 1.0),
        ("y", "2024-02-01 17:00", "purchase", "s2", "o2", "web", "p1", "c", 10.0, 1.0),
    ]
    got = timing(table(duck, to_frame(rows))).loc["y"]
    # Two orders on one day are one purchase day: no gap yet.
    assert got[["timing__purchase_gap_mean_days", "timing__overdue_ratio"]].isna().all()
    # Last purchase Feb 1 17:00 -> Mar 1 00:00 = 7 h + 28 days (Feb 2..29).
    assert got["timing__days_since_last_purchase"] == 28 + 7 / 24


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown; use an IANA name"),
        ({"daypart_start_hours": {"night": 0, "late": 24}}, "within 0-23"),
        ({"daypart_start_hours": {"a": 6, "b": 6}}, "start at the same hour"),
        ({"daypart_start_hours": {"Night Owl": 0}}, "lower-case identifiers"),
        ({"holiday_periods": [{"name": "x", "start": "02-30", "end": "03-01"}]}, "'02-30' is not a calendar day"),
    ],
)
def test_bad_timing_settings_are_rejected_with_the_key_and_the_fix(settings, message):
    with pytest.raises(ValidationError, match=message):
        TimingConfig(**settings)
