"""Propensity models: config, eligibility, estimator contract, out-of-time tuning, scoring and evaluation."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError

from models.propensity import (
    BucketCuts,
    NotEligibleError,
    PropensityConfig,
    PropensityModel,
    PropensityResult,
    buckets,
    calibration_curve_table,
    check_eligibility,
    evaluate,
    evaluate_by_group,
    gains_table,
    percentile_ranks,
    score,
    tune_and_fit,
)

CUTOFFS = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])
FEATURES = ["a", "b", "c", "journey__stage"]
STAGES = ["new", "active", "lapsed"]
SMALL = {"n_trials": 4, "min_positives": 100, "min_negatives": 100}


def make_snapshots(
    n: int = 1500,
    cutoffs: pd.DatetimeIndex = CUTOFFS,
    intercepts: tuple[float, ...] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Return a stacked (customer_id, cutoff) frame where purchase depends on a strongly, b weakly, c not at all.

    churn depends on -a and is missing for a fifth of customers (not eligible), like the labels builder.
    """
    rng = np.random.default_rng(seed)
    intercepts = intercepts or tuple(-0.5 for _ in cutoffs)
    parts = []
    for cutoff, intercept in zip(cutoffs, intercepts):
        a, b, c = rng.normal(size=(3, n))
        stage = rng.choice(STAGES, size=n)
        purchase = rng.random(n) < 1 / (1 + np.exp(-(intercept + 2.0 * a + 0.5 * b)))
        churn = pd.array(rng.random(n) < 1 / (1 + np.exp(-(-0.5 - 1.5 * a))), dtype="boolean")
        churn[rng.random(n) < 0.2] = pd.NA
        index = pd.MultiIndex.from_arrays(
            [[f"cust{i:05d}" for i in range(n)], [cutoff] * n], names=["customer_id", "cutoff"]
        )
        parts.append(
            pd.DataFrame(
                {"a": a, "b": b, "c": c, "journey__stage": stage, "purchase": purchase.astype(int), "churn": churn},
                index=index,
            )
        )
    return pd.concat(parts)


def single_frame(n: int = 2000, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Return one snapshot's features and purchase labels from the same generative rule."""
    frame = make_snapshots(n=n, cutoffs=CUTOFFS[:1], seed=seed)
    return frame[FEATURES].droplevel("cutoff"), frame["purchase"].to_numpy()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_snapshots()


@pytest.fixture(scope="module")
def result(frame: pd.DataFrame) -> PropensityResult:
    return tune_and_fit(frame, "purchase", FEATURES, PropensityConfig(**SMALL), seed=7)


@pytest.fixture(scope="module")
def fitted() -> tuple[PropensityModel, pd.DataFrame, np.ndarray]:
    X, y = single_frame()
    return PropensityModel(n_estimators=60, random_state=3).fit(X, y), X, y


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def test_config_defaults_follow_vendor_minimums_and_every_field_is_described() -> None:
    config = PropensityConfig()
    assert (config.min_positives, config.min_negatives) == (1000, 1000)
    assert (config.min_history_days, config.min_snapshots) == (90, 2)
    assert (config.n_trials, config.timeout_seconds, config.calibration) == (25, 300, "auto")
    assert (config.bucket_cuts.high, config.bucket_cuts.medium) == (80, 50)
    for model in (PropensityConfig, BucketCuts, type(config.search)):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_bucket_cuts_require_high_above_medium_and_name_both_keys() -> None:
    with pytest.raises(ValidationError, match=r"bucket_cuts.high \(50\) must be greater than .*bucket_cuts.medium"):
        PropensityConfig(bucket_cuts={"high": 50, "medium": 50})
    with pytest.raises(ValidationError):
        BucketCuts(high=101, medium=50)


def test_config_rejects_unknown_keys_and_inverted_search_bounds() -> None:
    with pytest.raises(ValidationError, match="n_trails"):
        PropensityConfig(n_trails=3)
    with pytest.raises(ValidationError, match=r"propensity.search.num_leaves: lower bound 64 is above upper bound 8"):
        PropensityConfig(search={"num_leaves": [64, 8]})


# ---------------------------------------------------------------------------------------------
# Eligibility
# ---------------------------------------------------------------------------------------------


def test_eligibility_error_says_how_many_positives_and_which_params_key_to_lower() -> None:
    y = np.array([1] * 312 + [0] * 5000)
    with pytest.raises(NotEligibleError) as raised:
        check_eligibility(y, history_days=400, n_snapshots=4, config=PropensityConfig(), target="purchase")
    assert str(raised.value) == (
        "purchase: 312 positives in the training snapshots, params require models.propensity.min_positives=1000; "
        "lower it for small data or add history"
    )


def test_eligibility_error_lists_every_shortfall() -> None:
    y = pd.Series([1.0] * 2000 + [0.0] * 10 + [np.nan] * 5000)  # missing labels are not negatives
    with pytest.raises(NotEligibleError) as raised:
        check_eligibility(y, history_days=30, n_snapshots=1, config=PropensityConfig(), target="churn")
    problems = raised.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("churn: 10 negatives in the training snapshots")
    assert "propensity.min_negatives=1000" in problems[0]
    assert "30 days of event history" in problems[1] and "propensity.min_history_days=90" in problems[1]
    assert "1 labelled snapshot(s)" in problems[2] and "propensity.min_snapshots=2" in problems[2]
    assert raised.value.target == "churn"


def test_eligibility_accepts_labels_by_snapshot_and_passes_when_minimums_are_met() -> None:
    by_snapshot = {
        "2024-01-01": pd.Series([1] * 600 + [0] * 600),
        "2024-02-01": pd.array([1] * 500 + [0] * 500 + [None] * 50, dtype="Int64"),
    }
    check_eligibility(by_snapshot, history_days=120, n_snapshots=3, config=PropensityConfig(), target="purchase")
    check_eligibility(by_snapshot, history_days=None, n_snapshots=3, config=PropensityConfig(), target="purchase")


def test_tune_and_fit_refuses_a_single_snapshot_naming_min_snapshots(frame: pd.DataFrame) -> None:
    latest = frame[frame.index.get_level_values("cutoff") == CUTOFFS[-1]]
    with pytest.raises(NotEligibleError, match=r"propensity.min_snapshots=2"):
        tune_and_fit(latest, "purchase", FEATURES, PropensityConfig(**SMALL), seed=0)


def test_tune_and_fit_counts_positives_in_training_snapshots_only(frame: pd.DataFrame) -> None:
    # Two training snapshots of 1500 customers each hold ~1100 positives in all; 5000 are required.
    with pytest.raises(
        NotEligibleError,
        match=r"purchase: \d+ positives in the training snapshots, "
        r"params require models\.propensity\.min_positives=5000",
    ):
        tune_and_fit(
            frame, "purchase", FEATURES, PropensityConfig(n_trials=1, min_positives=5000, min_negatives=1), seed=0
        )


# ---------------------------------------------------------------------------------------------
# Estimator contract
# ---------------------------------------------------------------------------------------------


def test_model_is_a_classifier_and_clone_round_trips_get_params() -> None:
    model = PropensityModel(num_leaves=15, learning_rate=0.1, calibration="isotonic", random_state=5)
    assert is_classifier(model)
    copy = clone(model)
    assert copy is not model
    assert copy.get_params() == model.get_params()
    assert PropensityModel(**model.get_params()).get_params() == model.get_params()
    assert copy.set_params(num_leaves=7).num_leaves == 7


def test_hyperparameters_are_stored_as_given_and_validated_in_fit() -> None:
    model = PropensityModel(num_leaves=1, feature_fraction=1.5)
    assert (model.num_leaves, model.feature_fraction) == (1, 1.5)
    X, y = single_frame(n=200)
    with pytest.raises(ValueError, match="num_leaves must be an integer >= 2, got 1"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="calibration must be one of"):
        PropensityModel(calibration="platt").fit(X, y)


def test_predict_proba_before_fit_raises_not_fitted() -> None:
    X, _ = single_frame(n=50)
    with pytest.raises(NotFittedError):
        PropensityModel().predict_proba(X)


def test_fit_returns_self_with_learned_attributes(fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    assert list(model.feature_names_in_) == FEATURES
    assert model.n_features_in_ == 4
    assert list(model.classes_) == [0, 1]
    assert model.categories_ == {"journey__stage": sorted(STAGES)}
    assert model.calibration_ == "none"
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(model.predict(X))) <= {0, 1}


def test_fit_rejects_labels_with_a_single_class() -> None:
    X, _ = single_frame(n=100)
    with pytest.raises(ValueError, match="exactly two classes"):
        PropensityModel().fit(X, np.zeros(len(X), dtype=int))


def test_same_seed_gives_identical_probabilities() -> None:
    X, y = single_frame()
    params = {"n_estimators": 40, "feature_fraction": 0.7, "bagging_fraction": 0.7, "random_state": 11}
    first = PropensityModel(**params).fit(X, y).predict_proba(X)
    second = PropensityModel(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_unseen_category_at_predict_is_treated_as_missing_not_an_error(
    fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray],
) -> None:
    model, X, _ = fitted
    unseen = X.head(20).copy()
    unseen["journey__stage"] = "reactivated"
    missing = X.head(20).copy()
    missing["journey__stage"] = None
    np.testing.assert_array_equal(model.predict_proba(unseen), model.predict_proba(missing))


def test_missing_column_at_predict_errors_naming_it(fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    with pytest.raises(ValueError, match=r"missing 1 feature column\(s\) the model was trained on: 'b'"):
        model.predict_proba(X.drop(columns=["b"]))


def test_extra_and_reordered_columns_at_predict_are_ignored(
    fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray],
) -> None:
    model, X, _ = fitted
    shuffled = X[["journey__stage", "c", "a", "b"]].assign(unrelated=1.0)
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(X))


def test_fit_and_predict_do_not_modify_input_frames() -> None:
    X, y = single_frame(n=500)
    X_before, y_before = X.copy(), y.copy()
    model = PropensityModel(n_estimators=20, calibration="sigmoid").fit(X, y, X_cal=X, y_cal=y, X_valid=X, y_valid=y)
    model.predict_proba(X)
    pd.testing.assert_frame_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_a_pickled_model_predicts_the_same(fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray]) -> None:
    model, X, _ = fitted
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_requested_calibration_without_a_calibration_set_leaves_the_model_uncalibrated() -> None:
    X, y = single_frame(n=500)
    model = PropensityModel(n_estimators=20, calibration="isotonic").fit(X, y)
    assert model.calibration_ == "none" and model.calibrator_ is None
    calibrated = clone(model).fit(X, y, X_cal=X, y_cal=y)
    assert calibrated.calibration_ == "isotonic"


# ---------------------------------------------------------------------------------------------
# Out-of-time tuning
# ---------------------------------------------------------------------------------------------


def test_out_of_time_auc_is_well_above_chance_and_a_outranks_c(result: PropensityResult) -> None:
    # The generative rule gives an AUC around 0.87; 0.8 leaves room for sampling noise.
    assert result.metrics["roc_auc"] > 0.8
    importance = result.feature_importances.set_index("feature")["gain"]
    assert importance["a"] > importance["b"] > importance["c"]
    assert result.feature_importances["feature"].iloc[0] == "a"


def test_latest_snapshot_is_test_previous_is_validation_older_are_training(result: PropensityResult) -> None:
    assert result.test_cutoff == CUTOFFS[2]
    assert result.valid_cutoff == CUTOFFS[1]
    assert result.train_cutoffs == [CUTOFFS[0]]
    assert (result.train_size, result.valid_size, result.test_size) == (1500, 1500, 1500)
    assert result.validation_scheme == "out-of-time: validation on snapshot 2024-02-01"
    assert len(result.test_predictions) == 1500
    assert result.test_predictions.index.name == "customer_id"


def test_result_reports_trials_params_calibration_and_test_metrics(result: PropensityResult) -> None:
    assert result.n_trials_done == 4
    assert set(result.best_params) == {
        "num_leaves",
        "learning_rate",
        "min_child_samples",
        "feature_fraction",
        "bagging_fraction",
        "lambda_l1",
        "lambda_l2",
    }
    assert result.calibration in {"none", "sigmoid", "isotonic"}
    assert result.calibration == result.model.calibration_
    # 'auto' picks the lowest cross-validated Brier score (ties go to the simpler method).
    assert result.calibration_brier[result.calibration] == min(result.calibration_brier.values())
    assert {"roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift", "brier_uncalibrated"} <= set(
        result.metrics
    )
    assert result.validation_metrics["n"] == 1500
    assert 0 < result.best_iteration <= PropensityConfig().n_estimators


def test_tuning_with_the_same_seed_is_reproducible(frame: pd.DataFrame, result: PropensityResult) -> None:
    again = tune_and_fit(frame, "purchase", FEATURES, PropensityConfig(**SMALL), seed=7)
    assert again.best_params == result.best_params
    pd.testing.assert_frame_equal(again.test_predictions, result.test_predictions)


def test_rows_with_missing_target_are_excluded(frame: pd.DataFrame) -> None:
    churn = tune_and_fit(frame, "churn", FEATURES, PropensityConfig(**{**SMALL, "n_trials": 2}), seed=1)
    eligible = frame["churn"].notna().groupby(level="cutoff").sum()
    assert churn.test_size == eligible[CUTOFFS[2]]
    assert churn.valid_size == eligible[CUTOFFS[1]]
    assert churn.train_size == eligible[CUTOFFS[0]]
    assert churn.metrics["n"] == churn.test_size
    assert churn.metrics["roc_auc"] > 0.75


def test_two_snapshots_validate_on_a_customer_holdout_and_test_out_of_time(frame: pd.DataFrame) -> None:
    recent = frame[frame.index.get_level_values("cutoff") >= CUTOFFS[1]]
    config = PropensityConfig(**{**SMALL, "n_trials": 2})
    two = tune_and_fit(recent, "purchase", FEATURES, config, seed=1)
    assert two.validation_scheme.startswith("customer holdout")
    assert (two.train_size, two.valid_size, two.test_size) == (1125, 375, 1500)
    assert two.test_cutoff == CUTOFFS[2]
    assert two.metrics["roc_auc"] > 0.8


def test_calibration_improves_brier_on_a_deliberately_miscalibrated_setup() -> None:
    # Training base rate ~12%, validation and test ~60%: the booster learns the wrong prior and
    # calibration on the validation snapshot has to correct it.
    shifted = make_snapshots(n=1500, intercepts=(-2.5, 0.5, 0.5), seed=3)
    for method in ("auto", "sigmoid", "isotonic"):
        config = PropensityConfig(**{**SMALL, "n_trials": 2, "calibration": method})
        fitted = tune_and_fit(shifted, "purchase", FEATURES, config, seed=2)
        assert fitted.calibration != "none"
        assert fitted.metrics["brier"] < fitted.metrics["brier_uncalibrated"] - 0.01, method


def test_tune_and_fit_does_not_modify_the_frame(frame: pd.DataFrame, result: PropensityResult) -> None:
    assert frame.equals(make_snapshots())


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300))
def test_percentiles_are_integers_1_to_100_and_monotone_in_probability(probabilities: list[float]) -> None:
    p = np.array(probabilities)
    percentile = percentile_ranks(p)
    assert percentile.dtype.kind == "i"
    assert percentile.min() >= 1 and percentile.max() == 100
    order = np.argsort(p, kind="stable")
    assert (np.diff(percentile[order]) >= 0).all()
    assert (percentile[p == p.max()] == 100).all()


def test_tied_probabilities_share_the_highest_percentile_of_their_group() -> None:
    # Scores at or below each: 1, 3, 3, 4 of 4 -> ceil(100 * k / 4) = 25, 75, 75, 100.
    assert percentile_ranks(np.array([0.1, 0.2, 0.2, 0.9])).tolist() == [25, 75, 75, 100]


def test_buckets_follow_cuts_exactly_on_a_hand_made_vector() -> None:
    p = np.array([0.02, 0.11, 0.12, 0.32, 0.35, 0.55, 0.71, 0.72, 0.91, 0.92])
    # Ten distinct scores: percentile = 10 x rank = 10, 20, ..., 100.
    percentile = percentile_ranks(p)
    assert percentile.tolist() == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    # high: above 80 -> 90, 100; medium: above 50 up to 80 -> 60, 70, 80; low: 10..50.
    assert buckets(percentile, BucketCuts(high=80, medium=50)).tolist() == ["low"] * 5 + ["medium"] * 3 + ["high"] * 2
    assert buckets(percentile, BucketCuts(high=90, medium=10)).tolist() == ["low"] + ["medium"] * 8 + ["high"]


def test_score_returns_probability_percentile_and_bucket_indexed_like_X(
    fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray],
) -> None:
    model, X, _ = fitted
    scored = score(model, X, PropensityConfig())
    assert list(scored.columns) == ["probability", "percentile", "bucket"]
    assert scored.index.equals(X.index)
    np.testing.assert_array_equal(scored["probability"], model.predict_proba(X)[:, 1])
    assert set(scored["bucket"]) == {"high", "medium", "low"}
    assert (scored.groupby("bucket")["percentile"].min()["high"]) > 80


def test_score_with_a_reference_ranks_chunks_on_one_scale(
    fitted: tuple[PropensityModel, pd.DataFrame, np.ndarray],
) -> None:
    model, X, _ = fitted
    whole = score(model, X)
    reference = whole["probability"].to_numpy()
    chunks = pd.concat(
        [score(model, X.iloc[:700], reference=reference), score(model, X.iloc[700:], reference=reference)]
    )
    pd.testing.assert_frame_equal(chunks, whole)


# ---------------------------------------------------------------------------------------------
# Evaluation on a hand-made vector
# ---------------------------------------------------------------------------------------------

# Ten customers, 4 positives (base rate 0.4); percentiles 10, 20, ..., 100 as in the bucket test.
P = np.array([0.92, 0.91, 0.72, 0.71, 0.55, 0.35, 0.32, 0.12, 0.11, 0.02])
Y = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0])


def test_evaluate_matches_hand_computed_values() -> None:
    metrics = evaluate(Y, P, config=PropensityConfig())
    assert (metrics["n"], metrics["positives"]) == (10, 4)
    assert metrics["base_rate"] == pytest.approx(0.4)
    # AUC: 24 positive-negative pairs; 0.92, 0.91, 0.72 beat all 6 negatives, 0.35 beats 4 -> 22/24.
    assert metrics["roc_auc"] == pytest.approx(22 / 24)
    # Average precision: positives at ranks 1, 2, 3, 6 -> precisions 1, 1, 1, 4/6 -> mean 11/12.
    assert metrics["pr_auc"] == pytest.approx(11 / 12)
    # Brier: (.08² + .09² + .28² + .71² + .55² + .65² + .32² + .12² + .11² + .02²) / 10 = 1.4513 / 10.
    assert metrics["brier"] == pytest.approx(0.14513)
    expected_log_loss = (
        -sum(math.log(q) for q in (0.92, 0.91, 0.72, 1 - 0.71, 1 - 0.55, 0.35, 1 - 0.32, 1 - 0.12, 1 - 0.11, 1 - 0.02))
        / 10
    )
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    # Top decile = percentile above 90 = the 0.92 customer (a positive): rate 1 / base 0.4 = 2.5,
    # and it holds 1 of the 4 positives.
    assert metrics["top_decile_lift"] == pytest.approx(2.5)
    assert metrics["top_decile_capture"] == pytest.approx(0.25)
    # ECE over equal-width bins, weight = customers / 10:
    #   [0.9,1): .92 .91 mean .915 rate 1   -> .2 x .085 = .017
    #   [0.7,.8): .72 .71 mean .715 rate .5 -> .2 x .215 = .043
    #   [0.5,.6): .55 rate 0                -> .1 x .55  = .055
    #   [0.3,.4): .35 .32 mean .335 rate .5 -> .2 x .165 = .033
    #   [0.1,.2): .12 .11 mean .115 rate 0  -> .2 x .115 = .023
    #   [0.0,.1): .02 rate 0                -> .1 x .02  = .002     sum = .173
    assert metrics["ece"] == pytest.approx(0.173)
    # Buckets (80/50): high = .92 .91 (2 positives of 2), medium = .72 .71 .55 (1 of 3),
    # low = .35 .32 .12 .11 .02 (1 of 5).
    assert (metrics["n_high"], metrics["n_medium"], metrics["n_low"]) == (2, 3, 5)
    assert metrics["rate_high"] == pytest.approx(1.0)
    assert metrics["rate_medium"] == pytest.approx(1 / 3)
    assert metrics["rate_low"] == pytest.approx(0.2)


def test_evaluate_per_group_keeps_population_deciles_and_gives_nan_auc_for_single_class_groups() -> None:
    groups = pd.Series(["x"] * 5 + ["y"] * 5, name="persona")
    metrics = evaluate(Y, P, groups=groups)
    x, y = metrics["by_group"]["x"], metrics["by_group"]["y"]
    # Group x = first five: y 1 1 1 0 0; its top-decile customer (0.92) holds 1 of its 3 positives.
    assert x["base_rate"] == pytest.approx(0.6)
    assert x["top_decile_capture"] == pytest.approx(1 / 3)
    assert x["rate_high"] == pytest.approx(1.0) and x["n_high"] == 2
    # Group y = last five: y 1 0 0 0 0 and no customer in the overall top decile or high bucket.
    assert math.isnan(y["top_decile_lift"])  # nobody in the top decile
    assert y["n_high"] == 0 and math.isnan(y["rate_high"])
    single_class = evaluate(Y, P, groups=np.array(["neg" if v == 0 else "pos" for v in Y]))["by_group"]
    assert math.isnan(single_class["neg"]["roc_auc"]) and math.isnan(single_class["pos"]["roc_auc"])
    assert math.isnan(single_class["pos"]["pr_auc"])
    assert math.isnan(single_class["neg"]["top_decile_capture"])  # no positives to capture

    table = evaluate_by_group(Y, P, groups)
    assert table.index.name == "persona"
    assert table.index.tolist() == ["x", "y"]
    assert table.loc["x", "base_rate"] == pytest.approx(0.6)


def test_evaluate_reports_missing_group_labels_and_rejects_missing_outcomes() -> None:
    groups = np.array(["x"] * 9 + [None], dtype=object)
    assert set(evaluate(Y, P, groups=groups)["by_group"]) == {"x", "(missing)"}
    with pytest.raises(ValueError, match="y_true has 1 missing labels; drop non-eligible rows first"):
        evaluate(np.array([1.0, np.nan]), np.array([0.2, 0.3]))


def test_gains_table_matches_hand_computed_deciles() -> None:
    table = gains_table(Y, P)
    # One customer per decile, top first: outcomes 1 1 1 0 0 1 0 0 0 0.
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["customers"].tolist() == [1] * 10
    assert table["positives"].tolist() == [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    # lift = rate / 0.4; cumulative capture = running positives / 4.
    np.testing.assert_allclose(table["lift"], [2.5, 2.5, 2.5, 0, 0, 2.5, 0, 0, 0, 0])
    np.testing.assert_allclose(table["cumulative_capture"], [0.25, 0.5, 0.75, 0.75, 0.75, 1, 1, 1, 1, 1])


def test_calibration_curve_table_keeps_empty_bins() -> None:
    table = calibration_curve_table(Y, P, bins=10)
    assert table["customers"].tolist() == [1, 2, 0, 2, 0, 1, 0, 2, 0, 2]
    assert table.loc[9, "mean_predicted"] == pytest.approx(0.915)
    assert table.loc[3, "actual_rate"] == pytest.approx(0.5)
    assert table["actual_rate"].isna().tolist() == [False, False, True, False, True, False, True, False, True, False]
    # p = 1.0 belongs to the last bin, not an eleventh one.
    assert calibration_curve_table([1], [1.0])["customers"].tolist() == [0] * 9 + [1]


# ---------------------------------------------------------------------------------------------
# Behaviour on simulated customers: the product's own generator and labels, out of time
# ---------------------------------------------------------------------------------------------

# 1,500 customers over 240 days, four monthly snapshots: two to train on, one to validate, the
# latest to test. Smaller populations leave the model and the recency rank within noise of each
# other (800 customers: margins of -0.01 to +0.02); at this size the purchase model led by 0.02
# to 0.03 on each of three seeds tried (3, 8, 21).
SIMULATED = {"customers": 1500, "days": 240, "seed": 8}


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, list[str]]:
    """Return the stacked training frame of a simulated population and its feature columns, as train builds them."""
    from features.config import FeaturesConfig
    from features.labels import LABEL_COLUMNS, LabelsConfig, make_training_frame, snapshot_cutoffs
    from pipeline.engine import connect, register
    from pipeline.simulate import SimulateConfig, simulate

    sim = simulate(SimulateConfig(**SIMULATED))
    con = connect("duckdb")
    tables = {name: register(con, name, getattr(sim, name)) for name in ("events", "customers", "catalog")}
    labels = LabelsConfig(n_snapshots=4)
    cutoffs = snapshot_cutoffs(sim.events["timestamp"].max(), labels)
    frame = make_training_frame(tables["events"], cutoffs, FeaturesConfig(), labels,
                                customers=tables["customers"], catalog=tables["catalog"])
    return frame, [c for c in frame.columns if c not in LABEL_COLUMNS]


@pytest.fixture(scope="module")
def simulated_purchase(simulated: tuple[pd.DataFrame, list[str]]) -> PropensityResult:
    frame, inputs = simulated
    config = PropensityConfig(n_trials=5, min_positives=50, min_negatives=50)
    return tune_and_fit(frame, "purchase", inputs, config, seed=5)


def test_tuned_purchase_model_outranks_the_recency_baseline_out_of_time_on_simulated_customers(
    simulated: tuple[pd.DataFrame, list[str]], simulated_purchase: PropensityResult
) -> None:
    from models.baselines import baseline_auc

    frame, _ = simulated
    result = simulated_purchase
    assert result.validation_scheme.startswith("out-of-time")
    y = result.test_predictions["purchase"]
    test_features = frame.xs(result.test_cutoff, level="cutoff").loc[y.index]
    recency = baseline_auc(test_features, y.astype("Float64"), "purchase")["recency"]
    # Same customers, same outcomes: the baseline ranks by days since the last event.
    assert 0.7 < recency < result.metrics["roc_auc"]


@pytest.mark.parametrize("method", ["auto", "sigmoid", "isotonic"])
def test_calibration_does_not_make_the_out_of_time_brier_score_materially_worse_on_simulated_customers(
    simulated: tuple[pd.DataFrame, list[str]], simulated_purchase: PropensityResult, method: str
) -> None:
    # Without a shift between snapshots the early-stopped booster is already close to calibrated,
    # so a calibrator fitted on one validation snapshot moves the test Brier by noise only (on
    # seeds 3, 8 and 21: from -0.0035 to +0.0014). It must never cost more than that noise; the
    # gain under a real shift is test_calibration_improves_brier_on_a_deliberately_miscalibrated_setup.
    frame, inputs = simulated
    if method == "auto":
        result = simulated_purchase
    else:
        config = PropensityConfig(n_trials=1, calibration=method, min_positives=50, min_negatives=50)
        result = tune_and_fit(frame, "purchase", inputs, config, seed=5)
        assert result.calibration == method
    assert result.metrics["brier"] <= result.metrics["brier_uncalibrated"] + 0.003
    assert result.metrics["brier"] < result.metrics["base_rate"] * (1 - result.metrics["base_rate"])
