"""The bundle's own rules: who gets a churn score."""

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from models.bundle import SegmentationBundle
from models.propensity import PropensityConfig
from models.segments import SegmentsConfig


def bundle(metadata: dict) -> SegmentationBundle:
    return SegmentationBundle(FeaturesConfig(), PropensityConfig(), SegmentsConfig(), personas=None, propensity={},
                              journey=None, reference={}, metadata=metadata)


FEATURES = pd.DataFrame(
    {"timing__days_since_last_event": [0.5, 90.0, 90.01, np.nan],
     "timing__days_since_last_purchase": [np.nan, 10.0, 200.0, np.nan]},
    index=pd.Index(["a", "b", "c", "d"], name="customer_id"))


def test_only_customers_active_in_the_lookback_can_churn():
    population = {"column": "timing__days_since_last_event", "max_days": 90}
    # active at most 90 days before the cutoff, as the labels define it; never active: no
    assert bundle({"churn_population": population}).churn_population(FEATURES).tolist() == [True, True, False, False]


def test_with_the_no_purchase_definition_active_means_buying():
    population = {"column": "timing__days_since_last_purchase", "max_days": 90}
    assert bundle({"churn_population": population}).churn_population(FEATURES).tolist() == [False, True, False, False]


def test_older_bundles_and_absent_timing_features_score_everyone():
    assert bundle({}).churn_population(FEATURES) is None
    population = {"column": "timing__days_since_last_event", "max_days": 90}
    assert bundle({"churn_population": population}).churn_population(FEATURES.drop(
        columns="timing__days_since_last_event")) is None


def test_lapsed_customers_get_no_churn_score_and_no_churn_reasons():
    from models.propensity import PropensityModel

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"timing__days_since_last_event": rng.uniform(0, 200, n), "x": rng.normal(size=n)},
                     index=pd.Index([f"c{i:03d}" for i in range(n)], name="customer_id"))
    y = (X["x"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    model = PropensityModel(n_estimators=20, calibration="none").fit(X, y)
    b = SegmentationBundle(FeaturesConfig(), PropensityConfig(), SegmentsConfig(), personas=None,
                           propensity={"churn": model}, journey=None, reference={"churn": np.linspace(0, 1, 11)},
                           metadata={"churn_population": {"column": "timing__days_since_last_event", "max_days": 90}})
    scored = b.score(X, reasons=2)
    lapsed = X["timing__days_since_last_event"] > 90
    assert scored.loc[lapsed, "churn_probability"].isna().all()
    assert scored.loc[~lapsed, "churn_probability"].notna().all()
    assert scored.loc[lapsed, "churn_reason_1_text"].isna().all()
    assert scored.loc[~lapsed, "churn_reason_1_text"].notna().all()
    # the scored customers' reasons are those of explaining them alone
    alone = b.explainer("churn").reason_codes(X[~lapsed], k=2)
    assert scored.loc[~lapsed, "churn_reason_1_text"].tolist() == alone["reason_1_text"].tolist()
    everyone_lapsed = b.score(X[lapsed].head(5), reasons=2)  # a chunk with nobody to explain
    assert everyone_lapsed["churn_reason_1_text"].isna().all()
