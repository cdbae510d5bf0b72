"""Journey family: decayed counts, funnel depth, stage and channel mix, last event type, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from _tables import build_one, expected, frame
from pydantic import ValidationError

from features.base import BuildContext
from features.journey import FAMILY, JourneyConfig, catalog, decayed_column, long_decayed_column
from features.schema import EVENT_TYPES

COLUMNS = ("customer_id", "timestamp", "event_type", "channel")
# Cutoff Friday 2024-03-01 00:00 UTC; default lookback 14 days = [Feb 16, Mar 1), half-life 7 days.
CUTOFF = "2024-03-01"
EVENTS: list[tuple[Any, ...]] = [
    ("ann", "2024-02-10 00:00", "purchase", "web"),  # 20 days old: before the lookback
    ("ann", "2024-02-16 00:00", "product_view", "web"),  # 14 days: first instant of the lookback
    ("ann", "2024-02-23 00:00", "page_view", "ads"),  # exactly one half-life old
    ("ann", "2024-02-26 12:00", "product_view", "web"),  # 3.5 days
    ("ann", "2024-02-26 12:00", "add_to_cart", "Web"),  # same instant; channel in another case
    ("ben", "2024-01-01 00:00", "review", "web"),  # before the lookback
    ("ben", "2024-02-22 00:00", "checkout", None),  # 8 days, no channel
    ("ben", "2024-02-29 00:00", "email_open", "email"),  # 1 day
    ("ben", "2024-02-29 00:00", "email_click", "email"),  # same instant as the open
    ("cat", "2024-01-05 00:00", "purchase", "store"),  # only old events
    ("cat", "2024-01-06 00:00", "referral", None),
    ("dan", "2024-02-28 00:00", "purchase", "app"),  # 2 days
    ("dan", "2024-02-28 00:00", "review", "app"),
    ("dan", "2024-02-29 12:00", "referral", "app"),  # 0.5 days
]
CUSTOMERS = ["ann", "ben", "cat", "dan"]


@pytest.fixture(scope="module")
def built(duck: Any) -> pd.DataFrame:
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "journey")
    return result.frame


def test_decayed_counts_weight_each_lookback_event_by_one_half_to_the_power_of_its_age_in_half_lives(
    built: pd.DataFrame,
) -> None:
    want = expected(
        CUSTOMERS,
        {
            "journey__decayed_page_view": [0.5, 0.0, 0.0, 0.0],  # ann: age 7 = one half-life
            # ann: 0.5 ** (14 / 7) for the view on the lookback's first day + 0.5 ** (3.5 / 7)
            "journey__decayed_product_view": [0.25 + 0.5**0.5, 0.0, 0.0, 0.0],
            "journey__decayed_add_to_cart": [0.5**0.5, 0.0, 0.0, 0.0],
            "journey__decayed_checkout": [0.0, 0.5 ** (8 / 7), 0.0, 0.0],
            # ann's and cat's purchases are older than 14 days; dan's is 2 days old
            "journey__decayed_purchase": [0.0, 0.0, 0.0, 0.5 ** (2 / 7)],
            "journey__decayed_email_open": [0.0, 0.5 ** (1 / 7), 0.0, 0.0],
            "journey__decayed_email_click": [0.0, 0.5 ** (1 / 7), 0.0, 0.0],
            "journey__decayed_review": [0.0, 0.0, 0.0, 0.5 ** (2 / 7)],  # ben's review is too old
            "journey__decayed_referral": [0.0, 0.0, 0.0, 0.5 ** (0.5 / 7)],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_an_event_exactly_one_half_life_before_the_cutoff_counts_one_half(duck: Any) -> None:
    events = frame(COLUMNS, [("zoe", "2024-02-23 00:00", "login", "app")])  # 7 days before Mar 1
    result = build_one(duck, events, CUTOFF, "journey")
    assert result.frame.loc["zoe", "journey__decayed_login"] == 0.5


def test_half_life_and_lookback_come_from_the_config(duck: Any) -> None:
    config = JourneyConfig(half_life_days=14, lookback_days=7)
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "journey", config)
    want = expected(
        CUSTOMERS,
        {
            # ann: 7-day lookback = [Feb 23, Mar 1): the page view (age 7) and the 3.5-day view only
            "journey__decayed_page_view": [0.5 ** (7 / 14), 0.0, 0.0, 0.0],
            "journey__decayed_product_view": [0.5 ** (3.5 / 14), 0.0, 0.0, 0.0],
            "journey__decayed_checkout": [0.0, 0.0, 0.0, 0.0],  # ben's checkout is 8 days old
        },
    )
    pd.testing.assert_frame_equal(result.frame[list(want.columns)], want)


def test_long_decayed_counts_weight_each_event_of_the_long_lookback_by_its_age_in_long_half_lives(
    built: pd.DataFrame,
) -> None:
    # Default long horizon: 90 days = [Dec 2, Mar 1), half-life 30 days. Every event of the example
    # is in it; ages in days at the cutoff as in EVENTS.
    want = expected(
        CUSTOMERS,
        {
            "journey__decayed_long_page_view": [0.5 ** (7 / 30), 0.0, 0.0, 0.0],
            "journey__decayed_long_product_view": [0.5 ** (14 / 30) + 0.5 ** (3.5 / 30), 0.0, 0.0, 0.0],
            # ann's purchase (20 days) is before the 14-day lookback but inside the long one;
            # cat's is 56 days old (Jan 5 -> Mar 1, 2024 is a leap year); dan's 2 days
            "journey__decayed_long_purchase": [0.5 ** (20 / 30), 0.0, 0.5 ** (56 / 30), 0.5 ** (2 / 30)],
            "journey__decayed_long_checkout": [0.0, 0.5 ** (8 / 30), 0.0, 0.0],
            # ben's review: Jan 1 -> Mar 1 = 60 days, exactly two long half-lives
            "journey__decayed_long_review": [0.0, 0.25, 0.0, 0.5 ** (2 / 30)],
            "journey__decayed_long_referral": [0.0, 0.0, 0.5 ** (55 / 30), 0.5 ** (0.5 / 30)],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_long_lookback_and_half_life_come_from_the_config_and_leave_the_recent_counts_alone(duck: Any) -> None:
    config = JourneyConfig(long_lookback_days=20, long_half_life_days=10)
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "journey", config)
    want = expected(
        CUSTOMERS,
        {
            # 20-day long lookback = [Feb 10, Mar 1): ann's purchase on Feb 10 is its first instant
            "journey__decayed_long_purchase": [0.25, 0.0, 0.0, 0.5 ** (2 / 10)],
            "journey__decayed_long_review": [0.0, 0.0, 0.0, 0.5 ** (2 / 10)],  # ben's is 60 days old
            "journey__decayed_purchase": [0.0, 0.0, 0.0, 0.5 ** (2 / 7)],  # recent: still 14 days, 7-day half-life
        },
    )
    pd.testing.assert_frame_equal(result.frame[list(want.columns)], want)


def test_deepest_funnel_step_counts_only_lookback_events(built: pd.DataFrame) -> None:
    # ann: add_to_cart = 2 (her purchase is before the lookback); ben: checkout = 3; cat: nothing
    # recent = 0; dan: purchase = 4.
    want = expected(CUSTOMERS, {"journey__deepest_funnel_step": [2, 3, 0, 4]})
    pd.testing.assert_frame_equal(built[["journey__deepest_funnel_step"]], want)


def test_stage_shares_divide_each_group_by_all_lookback_events_and_are_empty_without_any(
    built: pd.DataFrame,
) -> None:
    # ann: page_view, product_view x2, add_to_cart = 4 events; ben: checkout, email_open,
    # email_click = 3; cat: none in the lookback; dan: purchase, review, referral = 3.
    nan = float("nan")
    want = expected(
        CUSTOMERS,
        {
            "journey__awareness_share": [1 / 4, 0.0, nan, 0.0],
            "journey__consideration_share": [3 / 4, 0.0, nan, 0.0],
            "journey__purchase_share": [0.0, 1 / 3, nan, 1 / 3],
            "journey__retention_share": [0.0, 2 / 3, nan, 0.0],
            "journey__advocacy_share": [0.0, 0.0, nan, 2 / 3],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_channel_shares_match_channels_case_insensitively_among_lookback_events_with_a_channel(
    built: pd.DataFrame,
) -> None:
    # ann: web, ads, web, Web = 4 with a channel; ben: email x2 (his checkout has none); cat: no
    # recent event; dan: app x3.
    nan = float("nan")
    want = expected(
        CUSTOMERS,
        {
            "journey__channel_web_share": [3 / 4, 0.0, nan, 0.0],
            "journey__channel_app_share": [0.0, 0.0, nan, 1.0],
            "journey__channel_email_share": [0.0, 1.0, nan, 0.0],
            "journey__channel_ads_share": [1 / 4, 0.0, nan, 0.0],
            "journey__channel_store_share": [0.0, 0.0, nan, 0.0],
            "journey__channel_support_share": [0.0, 0.0, nan, 0.0],
        },
    )
    pd.testing.assert_frame_equal(built[list(want.columns)], want)


def test_last_event_type_is_the_latest_of_any_age_and_the_alphabetically_last_on_a_tie(built: pd.DataFrame) -> None:
    # ann: product_view and add_to_cart at Feb 26 12:00 -> product_view; ben: email_open and
    # email_click at Feb 29 -> email_open; cat: referral, older than the lookback; dan: referral.
    want = expected(CUSTOMERS, {"journey__last_event_type": ["product_view", "email_open", "referral", "referral"]})
    pd.testing.assert_frame_equal(built[["journey__last_event_type"]], want)


def test_columns_of_event_types_and_stage_groups_absent_from_the_data_are_omitted(duck: Any) -> None:
    result = build_one(duck, frame(COLUMNS, EVENTS), CUTOFF, "journey")
    present = [  # in canonical order
        "page_view", "product_view", "add_to_cart", "checkout", "purchase", "email_open", "email_click", "review",
        "referral",
    ]
    channels = ["web", "app", "email", "ads", "store", "support"]
    assert list(result.frame.columns) == [
        *[f"journey__decayed_{t}" for t in present],
        *[f"journey__decayed_long_{t}" for t in present],
        "journey__deepest_funnel_step",
        # education (content_view, search) and adoption (login, subscription_start) never occur
        *[f"journey__{g}_share" for g in ["awareness", "consideration", "purchase", "retention", "advocacy"]],
        *[f"journey__channel_{c}_share" for c in channels],
        "journey__last_event_type",
    ]
    assert [f.name for f in result.catalog] == list(result.frame.columns)


def test_without_a_channel_column_the_channel_shares_are_omitted(duck: Any) -> None:
    events = frame(COLUMNS, EVENTS).drop(columns="channel")
    result = build_one(duck, events, CUTOFF, "journey")
    assert not [c for c in result.frame.columns if c.startswith("journey__channel_")]
    assert "journey__decayed_page_view" in result.frame.columns


def test_without_any_funnel_event_there_is_no_funnel_depth(duck: Any) -> None:
    events = frame(COLUMNS, [("zoe", "2024-02-20 00:00", "email_open", "email")])
    result = build_one(duck, events, CUTOFF, "journey")
    assert "journey__deepest_funnel_step" not in result.frame.columns
    channels = ["web", "app", "email", "ads", "store", "support"]
    assert list(result.frame.columns) == [
        "journey__decayed_email_open",
        "journey__decayed_long_email_open",
        "journey__retention_share",
        *[f"journey__channel_{c}_share" for c in channels],
        "journey__last_event_type",
    ]


def test_events_at_or_after_the_cutoff_change_nothing(duck: Any, built: pd.DataFrame) -> None:
    later = [
        ("ann", "2024-03-01 00:00", "purchase", "web"),  # at the cutoff
        ("ben", "2024-03-02 00:00", "subscription_start", "app"),  # a type unseen before the cutoff
        ("cat", "2024-06-01 00:00", "page_view", "web"),
        ("eve", "2024-03-01 00:00", "page_view", "web"),  # a customer first seen at the cutoff
    ]
    result = build_one(duck, frame(COLUMNS, EVENTS + later), CUTOFF, "journey")
    pd.testing.assert_frame_equal(result.frame, built)


def test_the_full_catalog_lists_a_decayed_count_for_every_canonical_event_type() -> None:
    names = [f.name for f in catalog(JourneyConfig())]
    assert [n for n in names if "__decayed_" in n] == [
        *[decayed_column(t) for t in EVENT_TYPES],
        *[long_decayed_column(t) for t in EVENT_TYPES],
    ]
    assert names[-1] == "journey__last_event_type"


def test_one_behavioural_event_type_is_enough_to_build_the_family() -> None:
    ctx = BuildContext(
        cutoff=datetime(2024, 3, 1, tzinfo=UTC),
        columns=frozenset({"customer_id", "timestamp", "event_type"}),
        event_types=frozenset({"login", "purchase"}),
    )
    assert FAMILY.missing_inputs(ctx) is None


def test_transactions_only_data_skips_the_family_with_a_reason(duck: Any) -> None:
    events = frame(
        COLUMNS, [("zoe", "2024-02-20 00:00", "purchase", "web"), ("zoe", "2024-02-21 00:00", "return", None)]
    )
    result = build_one(duck, events, CUTOFF, "journey")
    assert result.frame.shape == (1, 0)
    assert result.skipped["journey"].startswith("journey: needs at least one event of type ['page_view'")


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"awareness": ["page_view", "tv_spot"]}, r"'tv_spot' is not a canonical event type"),
        ({"a": ["page_view"], "b": ["page_view"]}, r"'page_view' is in both 'a' and 'b'"),
        ({"Awareness Stage": ["page_view"]}, r"group name 'Awareness Stage' must be lower snake case"),
        ({"awareness": []}, r"stage_groups.awareness: lists no event type"),
    ],
    ids=["unknown-event-type", "type-in-two-groups", "bad-group-name", "empty-group"],
)
def test_stage_groups_are_validated_with_a_message_naming_the_key(groups: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JourneyConfig(stage_groups=groups)


def test_channels_that_give_the_same_column_name_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"'Web' and 'web' both become column name part 'web'"):
        JourneyConfig(channels=["Web", "web"])


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="half_life"):
        JourneyConfig(half_life=7)  # type: ignore[call-arg]
