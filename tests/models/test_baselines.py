"""Baselines: recency and RFM scores point the right way for each target, and AUC is computed on labelled rows."""

import numpy as np
import pandas as pd
import pytest

from models.baselines import baseline_auc, baseline_scores

FEATURES = pd.DataFrame(
    {"timing__days_since_last_event": [1.0, 5.0, 30.0, 90.0], "value__rfm_score": [555.0, 345.0, np.nan, 111.0]},
    index=pd.Index(["a", "b", "c", "d"], name="customer_id"),
)


def test_recent_customers_score_highest_for_purchase_and_lowest_for_churn():
    purchase = baseline_scores(FEATURES, "purchase")["recency"]
    churn = baseline_scores(FEATURES, "churn")["recency"]
    assert list(purchase.sort_values(ascending=False).index) == ["a", "b", "c", "d"]
    assert list(churn.sort_values(ascending=False).index) == ["d", "c", "b", "a"]


def test_non_buyers_are_the_least_likely_to_buy_and_the_most_likely_to_churn_on_the_rfm_baseline():
    # c has no RFM score (never bought): it counts as 0, below d's 111
    purchase = baseline_scores(FEATURES, "purchase")["rfm"]
    churn = baseline_scores(FEATURES, "churn")["rfm"]
    assert purchase.idxmin() == "c" and purchase["c"] == 0.0
    assert churn.idxmax() == "c"


def test_auc_uses_only_labelled_rows():
    y = pd.Series([1, 1, 0, pd.NA], index=FEATURES.index, dtype="Float64")
    # labelled a, b (positives) and c (negative): recency ranks a > b > c, so AUC = 1
    assert baseline_auc(FEATURES, y, "purchase")["recency"] == pytest.approx(1.0)


def test_a_missing_input_column_drops_that_baseline_only():
    assert set(baseline_scores(FEATURES[["value__rfm_score"]], "purchase")) == {"rfm"}
