"""Labels: purchase and churn look only at [T+gap, T+gap+H); the population is who was seen before T."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from features.build import build_features
from features.config import FeaturesConfig
from features.labels import (
    LabelsConfig,
    make_labels,
    make_training_frame,
    snapshot_cutoffs,
)

FIELDS = ("customer_id", "timestamp", "event_type", "revenue")
# Cutoff T = 2024-03-01 00:00 UTC. Default labels: horizon [Mar 1, Mar 31), churn lookback [Dec 2 2023, Mar 1).
ROWS = [
    ("u1", "2024-02-10 10:00", "page_view", None),
    ("u1", "2024-03-01 00:00", "purchase", 10.0),  # exactly at T: inside the horizon
    ("u1", "2024-03-10 10:00", "purchase", 10.0),
    ("u2", "2024-02-01 10:00", "purchase", 30.0),  # then silent
    ("u3", "2023-10-01 10:00", "page_view", None),  # active only before the lookback
    ("u3", "2024-03-05 10:00", "page_view", None),
    ("u4", "2024-03-02 10:00", "purchase", 10.0),  # first seen after T: not in snapshot T
    ("u5", "2024-02-20 10:00", "purchase", 10.0),
    ("u5", "2024-03-15 10:00", "page_view", None),
    ("u5", "2024-03-31 00:00", "purchase", 10.0),  # exactly at T + H: outside the horizon
    ("u5", "2024-04-15 10:00", "page_view", None),  # the data ends Apr 15
    ("u6", "2024-03-01 00:00", "purchase", 10.0),  # first seen exactly at T: not in snapshot T
]
WHO = pd.Index(["u1", "u2", "u3", "u5"], name="customer_id")


@pytest.fixture(scope="module")
def events(duck, table, to_frame):
    return table(duck, to_frame(ROWS, FIELDS))


def labels_frame(purchase, churn, eligible) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "purchase": pd.Series(purchase, dtype=bool).to_numpy(),
            "churn": pd.array(churn, dtype="boolean"),
            "eligible_churn": pd.Series(eligible, dtype=bool).to_numpy(),
        },
        index=WHO,
    )


def test_labels_follow_the_horizon_and_eligibility_rules_worked_out_by_hand(events):
    # u1: purchases at T and Mar 10 -> purchase; active Feb 10 -> eligible; active after -> no churn.
    # u2: purchased Feb 1, nothing after -> no purchase, eligible, churned.
    # u3: last seen before Dec 2 -> not eligible, churn NA; its Mar 5 view is not a purchase.
    # u5: Mar 31 00:00 is T + 30 days, outside [T, T+30) -> no purchase; the Mar 15 view -> not churned.
    # u4 and u6 are first seen at or after T: not in the population.
    expected = labels_frame([True, False, False, False], [False, True, pd.NA, False], [True, True, False, True])
    assert_frame_equal(make_labels(events, "2024-03-01", LabelsConfig()), expected)


def test_no_purchase_churn_needs_a_purchase_in_the_lookback_and_none_in_the_horizon(events):
    got = make_labels(events, "2024-03-01", LabelsConfig(churn_definition="no_purchase"))
    # Eligible = bought in [Dec 2, Mar 1): u2 (Feb 1), u5 (Feb 20); u1 only viewed, u3 nothing.
    # u2 bought nothing after -> churned; u5's only horizon activity is a view (Mar 31 is outside) -> churned.
    expected = labels_frame([True, False, False, False], [pd.NA, True, pd.NA, True], [False, True, False, True])
    assert_frame_equal(got, expected)


def test_gap_moves_the_label_window_later(events):
    got = make_labels(events, "2024-03-01", LabelsConfig(gap_days=10))
    # Window [Mar 11, Apr 10): u1's purchases (Mar 1, Mar 10) fall before it; u5 buys Mar 31 and views Mar 15.
    # u1 has no event at all in it -> churned; u3's Mar 5 view is before it -> (not eligible anyway).
    expected = labels_frame([False, False, False, True], [True, True, pd.NA, False], [True, True, False, True])
    assert_frame_equal(got, expected)


def test_events_outside_the_label_window_and_lookback_change_no_label(duck, table, to_frame, events):
    base = make_labels(events, "2024-03-01", LabelsConfig())
    noise = [
        ("u2", "2024-03-31 00:00", "purchase", 99.0),  # at T + H: excluded
        ("u2", "2024-04-12 10:00", "purchase", 99.0),  # well after the window
        ("u3", "2023-11-30 10:00", "purchase", 99.0),  # before the lookback starts (Dec 2)
    ]
    noisy = table(duck, to_frame(ROWS + noise, FIELDS))
    assert_frame_equal(make_labels(noisy, "2024-03-01", LabelsConfig()), base)


def test_a_label_window_past_the_end_of_the_data_is_refused(events):
    # The data ends Apr 15, so complete 30-day windows must end by Apr 16: T = Mar 20 needs Apr 19.
    with pytest.raises(ValueError, match="need events until 2024-04-19 00:00 UTC"):
        make_labels(events, "2024-03-20", LabelsConfig())
    # Without the check the labels are made (censored): u4 and u6 are seen before Mar 20 too.
    assert len(make_labels(events, "2024-03-20", LabelsConfig(), require_complete_horizon=False)) == 6


def test_snapshot_cutoffs_step_back_from_the_last_complete_horizon_oldest_first():
    # Last event Apr 15 13:00 -> data complete until Apr 16 00:00 -> newest T = Apr 16 - 30 days = Mar 17;
    # then every 30 days back: Feb 16 (Feb has 29 days), Jan 17.
    got = snapshot_cutoffs(pd.Timestamp("2024-04-15 13:00", tz="UTC"), LabelsConfig(n_snapshots=3))
    assert got == [pd.Timestamp(d, tz="UTC") for d in ("2024-01-17", "2024-02-16", "2024-03-17")]
    # A 5-day gap moves everything 5 days earlier; naive times are UTC.
    gap = snapshot_cutoffs("2024-04-15 13:00", LabelsConfig(n_snapshots=1, gap_days=5))
    assert gap == [pd.Timestamp("2024-03-12", tz="UTC")]


def test_training_frame_stacks_features_and_labels_per_cutoff(events):
    cutoffs = ["2024-02-15", "2024-03-01"]
    config = FeaturesConfig(enabled=["usage", "value"], windows_days=[30])
    got = make_training_frame(events, cutoffs, config, LabelsConfig(horizon_days=14))
    # Feb 15: seen before are u1 (Feb 10), u2 (Feb 1), u3 (2023); Mar 1 adds u5 (Feb 20).
    assert list(got.index.names) == ["customer_id", "cutoff"]
    t1, t2 = pd.Timestamp("2024-02-15", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
    assert list(got.index) == [("u1", t1), ("u2", t1), ("u3", t1), ("u1", t2), ("u2", t2), ("u3", t2), ("u5", t2)]
    assert list(got.columns[-3:]) == ["purchase", "churn", "eligible_churn"]
    # At Feb 15 the horizon is [Feb 15, Feb 29): u5's Feb 20 purchase is in nobody's population yet,
    # u2's Feb 1 purchase is history -> nobody buys. At Mar 1 the horizon [Mar 1, Mar 15): u1 buys.
    assert got["purchase"].tolist() == [False, False, False, True, False, False, False]
    # u2 bought Feb 1: 1 order in the 30 days before Feb 15 and before Mar 1 ([Jan 31, Mar 1)).
    assert got.loc[("u2", t1), "usage__purchases_30d"] == 1
    assert got.loc[("u2", t2), "usage__purchases_30d"] == 1
    each = build_features(events, "2024-03-01", config).frame
    assert list(got.columns[:-3]) == list(each.columns)
