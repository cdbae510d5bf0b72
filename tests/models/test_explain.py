"""SHAP explanations: additivity, global importance, reason codes and their texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.explain import Explainer, format_numbers, humanise_feature, top_k_order
from models.propensity import PropensityModel

DAYS = "timing__days_since_last_purchase"
STAGE = "journey__stage"


def make_churn_data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Return features where churn depends on a strongly, on days since last purchase and b mildly, on c not at all."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
            DAYS: rng.integers(0, 121, size=n).astype(float),
            STAGE: rng.choice(["new", "active", "lapsed"], size=n),
        },
        index=pd.Index([f"cust{i:05d}" for i in range(n)], name="customer_id"),
    )
    logit = -0.3 + 3.0 * X["a"] + 0.4 * X["b"] + 0.02 * (X[DAYS] - 60) + 0.5 * (X[STAGE] == "lapsed")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_churn_data()


@pytest.fixture(scope="module")
def explainer(data: tuple[pd.DataFrame, np.ndarray]) -> Explainer:
    X, y = data
    # Calibrated on purpose: explanations must still refer to the uncalibrated booster's margin.
    model = PropensityModel(n_estimators=80, calibration="isotonic", random_state=0).fit(X, y, X_cal=X, y_cal=y)
    return Explainer(model, outcome="churn risk")


def test_shap_values_keep_the_index_and_columns_of_X(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    values = explainer.shap_values(X.head(50))
    assert values.index.equals(X.head(50).index)
    assert list(values.columns) == list(X.columns)
    reordered = X.head(50)[[STAGE, "c", DAYS, "b", "a"]]
    assert list(explainer.shap_values(reordered).columns) == [STAGE, "c", DAYS, "b", "a"]


def test_base_value_plus_shap_sum_equals_the_raw_margin_of_the_booster(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    values = explainer.shap_values(X)
    np.testing.assert_allclose(
        explainer.base_value + values.sum(axis=1).to_numpy(), explainer.model.predict_margin(X), atol=1e-9
    )


def test_global_importance_ranks_a_first_c_below_b_with_shares_summing_to_one(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    table = explainer.global_importance(X)
    assert list(table.columns) == ["feature", "mean_abs_shap", "share", "correlation", "direction"]
    assert table["feature"].iloc[0] == "a"
    ranks = {feature: rank for rank, feature in enumerate(table["feature"])}
    assert ranks["b"] < ranks["c"]
    assert table["share"].sum() == pytest.approx(1.0)
    direction = table.set_index("feature")["direction"]
    assert direction["a"] == 1.0 and direction[DAYS] == 1.0  # both raise churn in the generative rule
    assert np.isnan(direction[STAGE])  # categorical: no value order to correlate with


def test_reason_1_is_the_dominant_feature_for_most_customers(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    reasons = explainer.reason_codes(X, k=3)
    assert (reasons["reason_1_feature"] == "a").mean() > 0.6
    assert list(reasons.columns[:5]) == [
        "reason_1_feature",
        "reason_1_value",
        "reason_1_shap",
        "reason_1_direction",
        "reason_1_text",
    ]
    assert len(reasons.columns) == 15
    assert reasons.index.equals(X.index)


def test_reasons_are_ordered_by_absolute_shap_and_direction_matches_its_sign(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    reasons = explainer.reason_codes(X.head(300), k=3)
    magnitudes = reasons[["reason_1_shap", "reason_2_shap", "reason_3_shap"]].abs().to_numpy()
    assert (np.diff(magnitudes, axis=1) <= 0).all()
    values = explainer.shap_values(X.head(300))
    for slot in (1, 2, 3):
        features = reasons[f"reason_{slot}_feature"].to_numpy()
        looked_up = values.to_numpy()[np.arange(300), values.columns.get_indexer(features)]
        np.testing.assert_array_equal(reasons[f"reason_{slot}_shap"].to_numpy(), looked_up)
        expected = np.where(looked_up > 0, "raised", "lowered")
        assert (reasons[f"reason_{slot}_direction"].to_numpy() == expected).all()


def test_reason_text_reads_humanised_name_value_direction_and_outcome(explainer: Explainer) -> None:
    customer = pd.DataFrame(
        {"a": [0.0], "b": [0.0], "c": [0.0], DAYS: [110.0], STAGE: ["lapsed"]},
        index=pd.Index(["cust_x"], name="customer_id"),
    )
    reasons = explainer.reason_codes(customer, k=5)
    texts = {reasons[f"reason_{i}_feature"].iloc[0]: reasons[f"reason_{i}_text"].iloc[0] for i in range(1, 6)}
    assert texts[DAYS] == "days since last purchase = 110 raised churn risk"
    assert texts[STAGE] == "stage = lapsed raised churn risk"
    slot = next(i for i in range(1, 6) if reasons[f"reason_{i}_feature"].iloc[0] == DAYS)
    assert reasons[f"reason_{slot}_value"].iloc[0] == "110"


def test_reason_value_of_an_unseen_category_is_shown_as_given(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    unseen = X.head(5).assign(**{STAGE: "reactivated", DAYS: np.nan})
    reasons = explainer.reason_codes(unseen, k=5)
    shown = {
        reasons[f"reason_{i}_feature"].iloc[0]: reasons[f"reason_{i}_value"].iloc[0]
        for i in range(1, 6)
        if pd.notna(reasons[f"reason_{i}_feature"].iloc[0])
    }
    assert shown.get(STAGE, "reactivated") == "reactivated"
    assert shown.get(DAYS, "missing") == "missing"


def test_equal_absolute_shap_is_ordered_by_feature_name_and_zero_shap_is_no_reason(explainer: Explainer) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0], DAYS: [7.0, 8.0], STAGE: ["new", "new"]})
    fixed = pd.DataFrame(
        {"a": [0.5, 0.0], "b": [-0.5, 0.0], "c": [0.2, 0.0], DAYS: [0.5, 0.3], STAGE: [0.0, 0.0]}, index=X.index
    )
    stubbed = Explainer(explainer.model, outcome="churn risk")
    stubbed.shap_values = lambda frame: fixed  # type: ignore[method-assign]
    reasons = stubbed.reason_codes(X, k=4)
    # Row 0: |0.5| three times -> a, b, timing__... by name; then c.
    assert reasons.loc[
        0, ["reason_1_feature", "reason_2_feature", "reason_3_feature", "reason_4_feature"]
    ].tolist() == [
        "a",
        "b",
        DAYS,
        "c",
    ]
    assert reasons.loc[0, "reason_2_direction"] == "lowered"
    # Row 1: only the days feature contributes; the other slots stay empty.
    assert reasons.loc[1, "reason_1_feature"] == DAYS
    assert pd.isna(reasons.loc[1, "reason_2_feature"]) and np.isnan(reasons.loc[1, "reason_2_shap"])
    assert pd.isna(reasons.loc[1, "reason_2_text"]) and pd.isna(reasons.loc[1, "reason_4_direction"])


def test_k_above_the_number_of_features_is_capped(explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    reasons = explainer.reason_codes(X.head(3), k=10)
    assert "reason_5_text" in reasons.columns and "reason_6_text" not in reasons.columns
    with pytest.raises(ValueError, match="k must be >= 1"):
        explainer.reason_codes(X.head(3), k=0)


def test_explaining_does_not_modify_X(explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    before = X.copy()
    explainer.reason_codes(X.head(200))
    explainer.global_importance(X.head(200))
    pd.testing.assert_frame_equal(X, before)


def test_missing_feature_column_errors_naming_it(explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    with pytest.raises(ValueError, match=f"'{DAYS}'"):
        explainer.reason_codes(X.drop(columns=[DAYS]))


def test_numbers_are_formatted_compactly() -> None:
    values = np.array([45.0, 0.33333, 12.345, 1234.56, -0.25, 99.96, np.nan, 0.0])
    assert format_numbers(values).tolist() == ["45", "0.333", "12.3", "1235", "-0.25", "100", "missing", "0"]


def test_feature_names_are_humanised_without_family_prefix() -> None:
    assert humanise_feature("timing__days_since_last_purchase") == "days since last purchase"
    assert humanise_feature("journey__last_event_type") == "last event type"
    assert humanise_feature("a") == "a"


def test_shap_values_equal_shap_tree_explainers_and_do_not_depend_on_threads(
    explainer: Explainer, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import copy
    import warnings

    import shap

    X, _ = data
    sample = X.head(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = shap.TreeExplainer(explainer.model.booster_).shap_values(explainer.model.prepare_features(sample))
    reference = np.asarray(reference[-1] if isinstance(reference, list) else reference)
    ours = explainer.shap_values(sample)
    np.testing.assert_allclose(ours[list(explainer.model.prepare_features(sample).columns)].to_numpy(), reference,
                               rtol=0, atol=1e-9)
    threaded = copy.deepcopy(explainer.model)
    threaded.n_jobs = 2
    np.testing.assert_array_equal(Explainer(threaded).shap_values(sample).to_numpy(), ours.to_numpy())


def test_explaining_no_rows_gives_empty_reasons_not_an_error(explainer: Explainer, data) -> None:
    X, _ = data
    codes = explainer.reason_codes(X.iloc[:0], k=2)
    assert len(codes) == 0 and list(codes.columns)[:2] == ["reason_1_feature", "reason_1_value"]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_order_equals_a_stable_full_sort_wherever_the_value_is_not_zero(seed: int) -> None:
    # Few distinct values make ties everywhere, also at the k-th place and among zeros.
    rng = np.random.default_rng(seed)
    for _ in range(100):
        rows, columns, k = rng.integers(1, 40), rng.integers(1, 15), rng.integers(1, 17)
        magnitude = rng.integers(0, 4, size=(rows, columns)).astype(float)
        expected = np.argsort(-magnitude, axis=1, kind="stable")[:, :k]
        got = top_k_order(magnitude, k)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(np.take_along_axis(magnitude, got, 1), np.take_along_axis(magnitude, expected, 1))
        nonzero = np.take_along_axis(magnitude, expected, 1) > 0
        np.testing.assert_array_equal(got[nonzero], expected[nonzero])
