"""Segment transitions and audiences on hand-made score frames."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.activation import (
    NONE,
    Audience,
    Condition,
    TransitionsConfig,
    at_risk_summary,
    default_audiences,
    select_audience,
    compare_scores,
)

CONFIG = TransitionsConfig(dimensions=["lifecycle", "churn_bucket"],
                           at_risk={"lifecycle": ["At-risk", "Lost"], "churn_bucket": ["high"]})


def previous() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "lifecycle": ["Hero", "Repeat", "At-risk", "New"],
        "churn_bucket": ["low", "low", "high", "medium"],
        "value_365d": [100.0, 50.0, 30.0, 5.0],
    })


def current() -> pd.DataFrame:
    # a: Hero -> At-risk (enters risk), churn low -> high (enters risk)
    # b: unchanged
    # c: At-risk -> Lost (already at risk: a move, not an entry); churn stays high
    # d: gone; e: new, Lead, churn medium
    return pd.DataFrame({
        "customer_id": ["e", "c", "b", "a"],  # any order
        "lifecycle": ["Lead", "Lost", "Repeat", "At-risk"],
        "churn_bucket": ["medium", "high", "low", "high"],
        "value_365d": [0.0, 20.0, 60.0, 90.0],
    })


def test_transitions_list_only_changes_with_new_and_gone_customers_and_flag_entries_into_risk():
    comparison = compare_scores(previous(), current(), CONFIG)
    moves, skipped = comparison.moves, comparison.skipped
    assert skipped == {}
    expected = pd.DataFrame({
        "customer_id": ["a", "c", "d", "e", "a", "d", "e"],
        "dimension": ["lifecycle"] * 4 + ["churn_bucket"] * 3,
        "from": ["Hero", "At-risk", "New", NONE, "low", "medium", NONE],
        "to": ["At-risk", "Lost", NONE, "Lead", "high", NONE, "medium"],
        "revenue": [90.0, 20.0, 5.0, 0.0, 90.0, 5.0, 0.0],  # current revenue; the previous one for d (gone)
        "at_risk": [True, False, False, False, True, False, False],
    }).astype({"dimension": "string", "from": "string", "to": "string"})
    pd.testing.assert_frame_equal(moves, expected)


def test_transitions_skip_a_dimension_missing_on_either_side_and_say_which():
    config = TransitionsConfig(dimensions=["lifecycle", "persona"], at_risk={})
    comparison = compare_scores(previous(), current(), config)
    moves, skipped = comparison.moves, comparison.skipped
    assert skipped == {"persona": "not in the previous and current scores"}
    assert set(moves["dimension"]) == {"lifecycle"}


def test_transitions_do_not_depend_on_row_order():
    shuffled = current().sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(compare_scores(previous(), shuffled, CONFIG).moves,
                                  compare_scores(previous(), current(), CONFIG).moves)


def test_matrix_counts_every_customer_once_per_dimension_with_revenue_and_at_risk_cells():
    matrix = compare_scores(previous(), current(), CONFIG).matrix
    life = matrix[matrix["dimension"] == "lifecycle"].set_index(["from", "to"])
    assert life["customers"].sum() == 5  # a, b, c, d, e
    assert life.loc[("Hero", "At-risk"), "customers"] == 1
    assert life.loc[("Hero", "At-risk"), "revenue"] == 90.0
    assert life.loc[("Repeat", "Repeat"), "revenue"] == 60.0
    assert bool(life.loc[("Hero", "At-risk"), "at_risk"])
    assert not bool(life.loc[("At-risk", "Lost"), "at_risk"])
    summary = at_risk_summary(matrix).set_index("dimension")
    assert summary.loc["lifecycle", "customers"] == 1 and summary.loc["lifecycle", "revenue"] == 90.0
    assert summary.loc["churn_bucket", "customers"] == 1 and summary.loc["churn_bucket", "revenue"] == 90.0


def test_duplicate_customers_in_scores_are_refused_by_id():
    twice = pd.concat([current(), current().head(1)])
    with pytest.raises(ValueError, match="customer_id 'e' twice"):
        compare_scores(previous(), twice, CONFIG)


SCORES = pd.DataFrame({
    "customer_id": ["a", "b", "c", "d", "e"],
    "purchase_percentile": [95, 81, 80, 10, 99],
    "churn_probability": [0.1, 0.7, 0.9, 0.7, np.nan],
    "churn_bucket": ["low", "high", "high", "high", None],
    "rfm_cell": ["Champions", "Loyal", "Lost", "Can't lose", "Champions"],
})


def test_audience_keeps_rows_meeting_every_condition_in_customer_order():
    audience = Audience(where={"purchase_percentile": Condition(min=81)})
    got = select_audience(SCORES, "buyers", audience)
    assert list(got["customer_id"]) == ["a", "b", "e"]
    assert list(got.columns) == ["customer_id", "purchase_percentile"]
    both = Audience(where={"churn_bucket": Condition(one_of=["high"]),
                           "rfm_cell": Condition(none_of=["Lost"])}, columns=["churn_probability"])
    assert list(select_audience(SCORES, "x", both)["customer_id"]) == ["b", "d"]


def test_ordered_limited_audience_breaks_ties_by_customer_id():
    audience = Audience(where={"churn_probability": Condition(min=0.5)}, order_by="churn_probability", limit=2)
    assert list(select_audience(SCORES, "risk", audience)["customer_id"]) == ["c", "b"]  # 0.9, then 0.7 b before d


def test_bad_audiences_are_refused_with_the_fix():
    with pytest.raises(KeyError, match=r"audience 'x' uses \['nope'\].*scoring.audiences.x"):
        select_audience(SCORES, "x", Audience(where={"nope": Condition(min=1)}))
    with pytest.raises(TypeError, match="'rfm_cell': min/max need a numeric column"):
        select_audience(SCORES, "x", Audience(where={"rfm_cell": Condition(min=1)}))
    with pytest.raises(ValidationError, match="limit needs order_by"):
        Audience(where={"rfm_cell": Condition(one_of=["Lost"])}, limit=3)
    with pytest.raises(ValidationError, match="at least one of one_of, none_of, min, max"):
        Condition()
    with pytest.raises(ValidationError, match=r"min \(2.0\) is greater than max \(1.0\)"):
        Condition(min=2, max=1)


def test_default_audiences_select_from_scores_with_the_columns_score_writes():
    scores = SCORES.assign(purchase_probability=0.5, persona="smart", value_365d=10.0)
    got = {name: select_audience(scores, name, a) for name, a in default_audiences().items()}
    assert list(got["likely_purchasers"]["customer_id"]) == ["a", "b", "e"]
    assert list(got["high_value_churn_risk"]["customer_id"]) == ["b", "d"]  # high churn, valuable cells; c is Lost
