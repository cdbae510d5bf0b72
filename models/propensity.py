"""Purchase and churn propensity: a calibrated LightGBM classifier, out-of-time tuning, scoring and evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.validation import check_is_fitted

CalibrationMethod = Literal["isotonic", "sigmoid", "none"]
CALIBRATION_METHODS: tuple[str, ...] = ("none", "sigmoid", "isotonic")  # simplest first: wins ties
BUCKETS: tuple[str, ...] = ("high", "medium", "low")
CUTOFF_LEVEL = "cutoff"
LOG_LOSS_EPS = 1e-15
ECE_BINS = 10


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class BucketCuts(_Section):
    """Percentile cut points that turn a propensity percentile into high / medium / low."""

    high: int = Field(
        80,
        ge=1,
        le=100,
        description="A customer whose percentile is above this is 'high' (80: the top 20% of scored customers).",
    )
    medium: int = Field(
        50,
        ge=1,
        le=100,
        description="A customer whose percentile is above this and not above `high` is 'medium' "
        "(50 with high 80: the next 30%); everyone else is 'low'.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.high <= self.medium:
            raise ValueError(
                f"models.propensity.bucket_cuts.high ({self.high}) must be greater than "
                f"models.propensity.bucket_cuts.medium ({self.medium}), e.g. high: 80, medium: 50"
            )
        return self


# Allowed range of every search-space bound: (smallest lower bound, largest upper bound).
_SEARCH_LIMITS: dict[str, tuple[float, float]] = {
    "num_leaves": (2, 131072),
    "learning_rate": (1e-4, 1.0),
    "min_child_samples": (1, 1_000_000),
    "feature_fraction": (0.01, 1.0),
    "bagging_fraction": (0.01, 1.0),
    "lambda_l1": (1e-10, 1000.0),
    "lambda_l2": (1e-10, 1000.0),
}


class SearchSpace(_Section):
    """Bounds [low, high] of the LightGBM hyperparameters Optuna searches."""

    num_leaves: tuple[int, int] = Field((8, 128), description="Leaves per tree (log scale).")
    learning_rate: tuple[float, float] = Field((0.01, 0.3), description="Shrinkage per boosting round (log scale).")
    min_child_samples: tuple[int, int] = Field(
        (10, 200), description="Fewest customers in a leaf (log scale); larger values smooth small data."
    )
    feature_fraction: tuple[float, float] = Field((0.5, 1.0), description="Share of features each tree may use.")
    bagging_fraction: tuple[float, float] = Field(
        (0.5, 1.0), description="Share of rows each tree is grown on (bagging every round when below 1)."
    )
    lambda_l1: tuple[float, float] = Field(
        (1e-8, 10.0), description="L1 regularisation on leaf values (log scale, > 0)."
    )
    lambda_l2: tuple[float, float] = Field(
        (1e-8, 10.0), description="L2 regularisation on leaf values (log scale, > 0)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        for name, (smallest, largest) in _SEARCH_LIMITS.items():
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(
                    f"models.propensity.search.{name}: lower bound {low} is above upper bound {high}; write [low, high]"
                )
            if low < smallest or high > largest:
                raise ValueError(
                    f"models.propensity.search.{name}: bounds must lie within [{smallest}, {largest}], got [{low}, {high}]"
                )
        return self


class PropensityConfig(_Section):
    """Tuning, calibration, bucketing and eligibility settings of the propensity models (params key `propensity`)."""

    n_trials: int = Field(25, ge=1, description="Optuna trials per target.")
    timeout_seconds: float = Field(
        300, gt=0, description="Wall-clock limit of the search per target; tuning stops after the running trial."
    )
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = Field(
        "auto",
        description="Probability calibration fitted on the validation snapshot. 'auto' picks, among none, sigmoid "
        "and isotonic, the one with the lowest cross-validated Brier score on the validation snapshot.",
    )
    bucket_cuts: BucketCuts = Field(default_factory=BucketCuts, description="Percentile cut points of the buckets.")
    search: SearchSpace = Field(default_factory=SearchSpace, description="Hyperparameter search space bounds.")
    n_estimators: int = Field(
        2000, ge=1, description="Most boosting rounds; early stopping on the validation data usually stops far earlier."
    )
    early_stopping_rounds: int = Field(
        50, ge=1, description="Stop boosting after this many rounds without a better validation log loss."
    )
    num_threads: int = Field(
        1,
        ge=1,
        description="LightGBM threads. Results are reproducible for a fixed value; raise it for large data.",
    )
    holdout_share: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="With exactly two snapshots there is no snapshot left for validation: this share of the "
        "older snapshot's customers is held out instead (the test stays out-of-time).",
    )
    min_positives: int = Field(
        1000,
        ge=1,
        description="Fewest positive labels in the training snapshots (GA4 asks 1,000 positive users); "
        "lower it for small or demo data.",
    )
    min_negatives: int = Field(
        1000, ge=1, description="Fewest negative labels in the training snapshots; lower it for small or demo data."
    )
    min_history_days: int = Field(90, ge=0, description="Fewest days of event history before a model is trained.")
    min_snapshots: int = Field(
        2, ge=2, description="Fewest labelled snapshot cutoffs: at least one to train on and the latest to test on."
    )


# --------------------------------------------------------------------------------------------
# Eligibility
# --------------------------------------------------------------------------------------------


class NotEligibleError(ValueError):
    """The data is too small or too short to train a propensity model; the message names each shortfall."""

    def __init__(self, target: str, problems: list[str]) -> None:
        self.target = target
        self.problems = problems
        super().__init__("; ".join(problems))


def check_eligibility(
    y: pd.Series | np.ndarray | Mapping[Any, pd.Series | np.ndarray],
    history_days: float | None,
    n_snapshots: int,
    config: PropensityConfig,
    target: str,
) -> None:
    """Raise NotEligibleError listing every minimum of `config` the training data misses.

    `y` holds the training labels (0/1, missing for non-eligible customers, which are not counted),
    either as one vector or as a mapping snapshot cutoff -> labels. `history_days` is the span of
    event history; None skips that check (for callers that do not know it). `n_snapshots` counts
    the labelled snapshots including the latest one held out for testing.
    """
    labels = _as_label_vector(y)
    positives = int((labels == 1).sum())
    negatives = int((labels == 0).sum())
    fix = "lower it for small data or add history"
    problems: list[str] = []
    if positives < config.min_positives:
        problems.append(
            f"{target}: {positives} positives in the training snapshots, params require "
            f"models.propensity.min_positives={config.min_positives}; {fix}"
        )
    if negatives < config.min_negatives:
        problems.append(
            f"{target}: {negatives} negatives in the training snapshots, params require "
            f"models.propensity.min_negatives={config.min_negatives}; {fix}"
        )
    if history_days is not None and history_days < config.min_history_days:
        problems.append(
            f"{target}: {history_days:g} days of event history, params require "
            f"models.propensity.min_history_days={config.min_history_days}; {fix}"
        )
    if n_snapshots < config.min_snapshots:
        problems.append(
            f"{target}: {n_snapshots} labelled snapshot(s), params require models.propensity.min_snapshots="
            f"{config.min_snapshots}; build more snapshot cutoffs (one or more to train on, the latest to test on)"
        )
    if problems:
        raise NotEligibleError(target, problems)


def _as_label_vector(y: pd.Series | np.ndarray | Mapping[Any, pd.Series | np.ndarray]) -> np.ndarray:
    parts = list(y.values()) if isinstance(y, Mapping) else [y]
    labels = np.concatenate([_float_labels(part) for part in parts]) if parts else np.array([], dtype="float64")
    return labels[~np.isnan(labels)]


def _float_labels(values: Any) -> np.ndarray:
    """Return labels as float64 with NaN for missing, whatever the input's (nullable) dtype."""
    return pd.Series(values).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


class PropensityModel(ClassifierMixin, BaseEstimator):
    """LightGBM binary classifier plus an optional probability calibrator, following the sklearn contract.

    Numeric and boolean columns are used as floats (missing values stay missing: LightGBM routes
    them). Any other column (strings, object, category) is categorical: its categories are the
    sorted distinct values seen in `fit`; at predict time a value outside them becomes missing
    instead of raising, so a new channel or event type never breaks batch scoring.

    The calibrator is fitted in `fit` on a separate calibration set (`X_cal`, `y_cal`), on the
    booster's log-odds: 'sigmoid' is Platt scaling (a logistic regression on the log-odds),
    'isotonic' a monotone step function. Without a calibration set the model is uncalibrated
    (`calibration_` is 'none') whatever `calibration` says. `X_valid`, `y_valid` enable early
    stopping on validation log loss; without them all `n_estimators` rounds are grown.

    Results are reproducible for a given `random_state` and `n_jobs` (LightGBM runs with
    deterministic=True and force_row_wise=True).
    """

    def __init__(
        self,
        *,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        n_estimators: int = 500,
        min_child_samples: int = 20,
        feature_fraction: float = 1.0,
        bagging_fraction: float = 1.0,
        lambda_l1: float = 0.0,
        lambda_l2: float = 0.0,
        early_stopping_rounds: int = 50,
        calibration: CalibrationMethod = "none",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l1 = lambda_l1
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        X_cal: pd.DataFrame | None = None,
        y_cal: Any = None,
        X_valid: pd.DataFrame | None = None,
        y_valid: Any = None,
    ) -> Self:
        """Fit the booster on X, y (early-stopping on X_valid), then the calibrator on X_cal; return self."""
        self._validate_hyperparameters()
        _require_frame(X, "X")
        if len(X) == 0:
            raise ValueError("PropensityModel.fit: X has no rows")
        if X.columns.has_duplicates:
            duplicated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise ValueError(f"PropensityModel.fit: X has duplicated columns {duplicated}; keep one of each")
        y_arr = _label_array(y, "y")
        classes = np.unique(y_arr)
        if len(classes) != 2:
            raise ValueError(
                f"PropensityModel.fit: y must hold exactly two classes, got {classes.tolist()}; "
                "a propensity model needs both positives and negatives"
            )
        if len(y_arr) != len(X):
            raise ValueError(f"PropensityModel.fit: X has {len(X)} rows but y has {len(y_arr)}")
        self.classes_ = classes
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.categories_ = self._learn_categories(X)

        train = lgb.Dataset(self.prepare_features(X), label=self._encode(y_arr, "y"), free_raw_data=True)
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Any] = []
        if (X_valid is None) != (y_valid is None):
            raise ValueError("PropensityModel.fit: pass both X_valid and y_valid for early stopping, or neither")
        if X_valid is not None:
            valid_sets.append(
                lgb.Dataset(
                    self.prepare_features(X_valid),
                    label=self._encode(_label_array(y_valid, "y_valid"), "y_valid"),
                    reference=train,
                )
            )
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False))
        booster = lgb.train(
            self._lgb_params(), train, num_boost_round=self.n_estimators, valid_sets=valid_sets, callbacks=callbacks
        )
        best = booster.best_iteration if valid_sets and booster.best_iteration > 0 else booster.current_iteration()
        # Keep only the trees up to the best iteration, so predict, SHAP and a pickled model agree.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.best_iteration_ = int(best)
        self.feature_importances_ = self.booster_.feature_importance(importance_type="gain").astype("float64")

        self.calibrator_: IsotonicRegression | LogisticRegression | None = None
        self.calibration_: str = "none"
        if (X_cal is None) != (y_cal is None):
            raise ValueError("PropensityModel.fit: pass both X_cal and y_cal for calibration, or neither")
        if X_cal is not None and self.calibration != "none":
            y_cal01 = self._encode(_label_array(y_cal, "y_cal"), "y_cal")
            self.calibrator_ = fit_calibrator(self.calibration, self.predict_margin(X_cal), y_cal01)
            self.calibration_ = self.calibration
        return self

    def prepare_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return X as the booster sees it: the fitted columns in order, floats and fixed categories."""
        check_is_fitted(self, "categories_")
        _require_frame(X, "X")
        features = [str(c) for c in self.feature_names_in_]
        missing = [c for c in features if c not in X.columns]
        if missing:
            raise ValueError(
                f"X is missing {len(missing)} feature column(s) the model was trained on: "
                f"{', '.join(repr(c) for c in missing)}; build features with the same feature params as training"
            )
        data: dict[str, Any] = {}
        for column in features:
            series = X[column]
            categories = self.categories_.get(column)
            if categories is None:
                if not _is_numeric(series):
                    raise ValueError(
                        f"column {column!r} was numeric when the model was fitted but is {series.dtype} now; "
                        "pass the same feature types as in training"
                    )
                data[column] = series.to_numpy(dtype="float64", na_value=np.nan)
            else:
                data[column] = _to_categorical(series, categories)
        return pd.DataFrame(data, index=X.index, columns=features)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Return the uncalibrated booster's log-odds per row (what the SHAP values add up to)."""
        check_is_fitted(self)
        margin = self.booster_.predict(self.prepare_features(X), raw_score=True, num_threads=self.n_jobs)
        return np.asarray(margin, dtype="float64")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return calibrated class probabilities, shape (n, 2), columns in the order of classes_."""
        check_is_fitted(self)
        margin = self.predict_margin(X)
        positive = apply_calibrator(self.calibrator_, margin)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Return the class whose calibrated probability is at least 0.5."""
        positive = self.predict_proba(X)[:, 1]
        return self.classes_[(positive >= 0.5).astype(int)]

    def _learn_categories(self, X: pd.DataFrame) -> dict[str, list[str]]:
        categories: dict[str, list[str]] = {}
        for column in X.columns:
            series = X[column]
            if _is_numeric(series):
                continue
            if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
                raise ValueError(
                    f"column {column!r} holds {series.dtype} values; turn it into a number (e.g. days since) "
                    "before modelling"
                )
            values = series.dropna().astype("str")
            categories[str(column)] = sorted(values.unique().tolist())
        return categories

    def _encode(self, y: np.ndarray, name: str) -> np.ndarray:
        unknown = sorted({str(v) for v in np.unique(y)} - {str(c) for c in self.classes_})
        if unknown:
            raise ValueError(
                f"{name} holds labels {unknown} that are not in the training classes {self.classes_.tolist()}"
            )
        return (y == self.classes_[1]).astype("int64")

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "num_leaves": int(self.num_leaves),
            "learning_rate": float(self.learning_rate),
            "min_child_samples": int(self.min_child_samples),
            "feature_fraction": float(self.feature_fraction),
            "bagging_fraction": float(self.bagging_fraction),
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "lambda_l1": float(self.lambda_l1),
            "lambda_l2": float(self.lambda_l2),
            "seed": int(self.random_state),
            "num_threads": int(self.n_jobs),
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def _validate_hyperparameters(self) -> None:
        def fail(name: str, rule: str) -> None:
            raise ValueError(f"PropensityModel: {name} must be {rule}, got {getattr(self, name)!r}")

        if not _is_int(self.num_leaves) or self.num_leaves < 2:
            fail("num_leaves", "an integer >= 2")
        if not _is_int(self.n_estimators) or self.n_estimators < 1:
            fail("n_estimators", "an integer >= 1")
        if not _is_int(self.min_child_samples) or self.min_child_samples < 1:
            fail("min_child_samples", "an integer >= 1")
        if not _is_int(self.early_stopping_rounds) or self.early_stopping_rounds < 1:
            fail("early_stopping_rounds", "an integer >= 1")
        if not _is_int(self.random_state):
            fail("random_state", "an integer")
        if not _is_int(self.n_jobs) or self.n_jobs < 1:
            fail("n_jobs", "an integer >= 1")
        if not _is_number(self.learning_rate) or self.learning_rate <= 0:
            fail("learning_rate", "a number > 0")
        for name in ("feature_fraction", "bagging_fraction"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 1:
                fail(name, "a number in (0, 1]")
        for name in ("lambda_l1", "lambda_l2"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                fail(name, "a number >= 0")
        if self.calibration not in CALIBRATION_METHODS:
            fail("calibration", f"one of {list(CALIBRATION_METHODS)}")


def fit_calibrator(method: str, margin: np.ndarray, y: np.ndarray) -> IsotonicRegression | LogisticRegression | None:
    """Fit a calibrator mapping booster log-odds to probabilities: 'sigmoid' (Platt), 'isotonic' or 'none'."""
    if method == "none":
        return None
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(margin, y)
    if method == "sigmoid":
        # C=inf: plain Platt scaling; a penalty would shrink the slope towards 0 for no reason here.
        return LogisticRegression(C=np.inf).fit(margin.reshape(-1, 1), y)
    raise ValueError(f"calibration must be one of {list(CALIBRATION_METHODS)}, got {method!r}")


def apply_calibrator(calibrator: IsotonicRegression | LogisticRegression | None, margin: np.ndarray) -> np.ndarray:
    """Return probabilities for booster log-odds `margin`, through `calibrator` when there is one."""
    if calibrator is None:
        return _sigmoid(margin)
    if isinstance(calibrator, IsotonicRegression):
        return np.clip(np.asarray(calibrator.predict(margin), dtype="float64"), 0.0, 1.0)
    return np.asarray(calibrator.predict_proba(margin.reshape(-1, 1))[:, 1], dtype="float64")


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin))


def _require_frame(X: Any, name: str) -> None:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame with named feature columns, got {type(X).__name__}")


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _label_array(y: Any, name: str) -> np.ndarray:
    values = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.Index)) else y)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if pd.isna(values).any():
        raise ValueError(f"{name} has {int(pd.isna(values).sum())} missing labels; drop those rows first")
    return values


def _to_categorical(series: pd.Series, categories: list[str]) -> pd.Categorical:
    as_text = series.astype("str")
    # Unseen values become missing here, before pandas sees them: pandas deprecates casting
    # values outside the categories.
    known = as_text.where(as_text.isin(categories))
    return pd.Categorical(known, categories=categories)


# --------------------------------------------------------------------------------------------
# Tuning on snapshots
# --------------------------------------------------------------------------------------------


@dataclass
class PropensityResult:
    """What tune_and_fit learned and measured for one target.

    `metrics` are out-of-time test metrics of the calibrated model on the latest snapshot (plus
    `brier_uncalibrated`, the same model without calibrator). `validation_metrics` are measured on
    the validation rows, on which the calibrator was also fitted, so they flatter calibration.
    `calibration_brier` holds the cross-validated validation Brier score of each calibration
    method, which is what 'auto' chooses by.
    """

    target: str
    model: PropensityModel
    best_params: dict[str, Any]
    best_iteration: int
    metrics: dict[str, float]
    validation_metrics: dict[str, float]
    n_trials_done: int
    calibration: str
    calibration_brier: dict[str, float]
    validation_scheme: str
    train_size: int
    valid_size: int
    test_size: int
    train_cutoffs: list[Any]
    valid_cutoff: Any
    test_cutoff: Any
    feature_importances: pd.DataFrame
    test_predictions: pd.DataFrame


def tune_and_fit(
    frame: pd.DataFrame,
    target: str,
    feature_columns: list[str],
    config: PropensityConfig,
    seed: int,
) -> PropensityResult:
    """Tune, fit, calibrate and test a propensity model on a stacked (customer_id, cutoff) frame.

    Snapshots are sorted by cutoff: the latest is the out-of-time test set, the one before it
    validation, older ones training. With exactly two snapshots, `config.holdout_share` of the
    older snapshot's customers (stratified, seeded) is validation instead. Rows whose target is
    missing (customers not eligible for the label, e.g. churn) are excluded.

    Optuna (TPE, seeded) minimises validation log loss of the uncalibrated booster: log loss is a
    proper scoring rule, so it rewards both ranking and probability quality, it is what early
    stopping monitors, and it is far less noisy than ROC-AUC on a small validation snapshot. The
    best parameters are refitted on training (early-stopping on validation) and calibrated on
    validation with the configured (or, for 'auto', the best cross-validated) method.
    """
    _check_stacked_frame(frame, target, feature_columns)
    labels = pd.Series(_float_labels(frame[target]), index=frame.index)
    labelled_mask = labels.notna().to_numpy()
    bad = sorted(set(labels[labelled_mask].unique().tolist()) - {0.0, 1.0})
    if bad:
        raise ValueError(f"target {target!r} must be 0/1 (or missing when not eligible), found values {bad}")
    cutoffs = frame.index.get_level_values(CUTOFF_LEVEL)
    snapshots = sorted(pd.unique(cutoffs[labelled_mask]))
    test_cutoff = snapshots[-1] if snapshots else None
    in_test = labelled_mask & (cutoffs == test_cutoff)
    check_eligibility(labels[labelled_mask & ~in_test], None, len(snapshots), config, target)

    if len(snapshots) >= 3:
        valid_cutoff = snapshots[-2]
        train_cutoffs = snapshots[:-2]
        in_valid = labelled_mask & (cutoffs == valid_cutoff)
        in_train = labelled_mask & ~in_test & ~in_valid
        scheme = f"out-of-time: validation on snapshot {_cutoff_text(valid_cutoff)}"
    else:
        valid_cutoff = snapshots[0]
        train_cutoffs = snapshots[:1]
        older = np.flatnonzero(labelled_mask & ~in_test)
        older_labels = labels.to_numpy()[older]
        can_stratify = min((older_labels == 1).sum(), (older_labels == 0).sum()) >= 2
        train_rows, valid_rows = train_test_split(
            older,
            test_size=config.holdout_share,
            random_state=seed,
            stratify=older_labels if can_stratify else None,
        )
        in_train = np.zeros(len(frame), dtype=bool)
        in_valid = np.zeros(len(frame), dtype=bool)
        in_train[train_rows] = True
        in_valid[valid_rows] = True
        scheme = (
            f"customer holdout: {config.holdout_share:.0%} of snapshot {_cutoff_text(valid_cutoff)} "
            "(only two snapshots)"
        )

    features = frame[feature_columns]
    y_all = labels.to_numpy()
    splits = {"training": in_train, "validation": in_valid, "test": in_test}
    for name, mask in splits.items():
        y_split = y_all[mask]
        for value, word in ((1.0, "positives"), (0.0, "negatives")):
            if not (y_split == value).any():
                raise NotEligibleError(
                    target,
                    [
                        (
                            f"{target}: the {name} rows ({mask.sum()} customers) have no {word}; "
                            "add history or snapshot cutoffs so every split holds both outcomes"
                        )
                    ],
                )
    X_tr, y_tr = features[in_train], y_all[in_train].astype("int64")
    X_va, y_va = features[in_valid], y_all[in_valid].astype("int64")
    X_te, y_te = features[in_test], y_all[in_test].astype("int64")

    fixed = {
        "n_estimators": config.n_estimators,
        "early_stopping_rounds": config.early_stopping_rounds,
        "random_state": seed,
        "n_jobs": config.num_threads,
    }

    def objective(trial: optuna.Trial) -> float:
        model = PropensityModel(**_suggest(trial, config.search), **fixed, calibration="none")
        model.fit(X_tr, y_tr, X_valid=X_va, y_valid=y_va)
        trial.set_user_attr("best_iteration", model.best_iteration_)
        return log_loss(y_va, model.predict_proba(X_va)[:, 1])

    with _quiet_optuna():
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout_seconds)
    n_done = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    best_params = dict(study.best_params)

    uncalibrated = PropensityModel(**best_params, **fixed, calibration="none").fit(
        X_tr, y_tr, X_valid=X_va, y_valid=y_va
    )
    calibration_brier = cross_validated_brier(uncalibrated.predict_margin(X_va), y_va, seed)
    if config.calibration == "auto":
        method = min(CALIBRATION_METHODS, key=lambda m: (calibration_brier[m], CALIBRATION_METHODS.index(m)))
    else:
        method = config.calibration
    model = clone(uncalibrated).set_params(calibration=method)
    model.fit(X_tr, y_tr, X_cal=X_va, y_cal=y_va, X_valid=X_va, y_valid=y_va)

    p_test = model.predict_proba(X_te)[:, 1]
    metrics = evaluate(y_te, p_test, config=config)
    metrics["brier_uncalibrated"] = brier(y_te, uncalibrated.predict_proba(X_te)[:, 1])
    validation_metrics = evaluate(y_va, model.predict_proba(X_va)[:, 1], config=config)

    test_index = frame.index[in_test].droplevel(CUTOFF_LEVEL)
    test_predictions = pd.DataFrame({target: y_te, "probability": p_test}, index=test_index)
    return PropensityResult(
        target=target,
        model=model,
        best_params=best_params,
        best_iteration=model.best_iteration_,
        metrics=metrics,
        validation_metrics=validation_metrics,
        n_trials_done=n_done,
        calibration=model.calibration_,
        calibration_brier=calibration_brier,
        validation_scheme=scheme,
        train_size=int(in_train.sum()),
        valid_size=int(in_valid.sum()),
        test_size=int(in_test.sum()),
        train_cutoffs=list(train_cutoffs),
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        feature_importances=feature_importances(model),
        test_predictions=test_predictions,
    )


def feature_importances(model: PropensityModel) -> pd.DataFrame:
    """Return the booster's importances per feature: total gain, split count and share of gain, largest first."""
    check_is_fitted(model)
    gain = model.booster_.feature_importance(importance_type="gain").astype("float64")
    split = model.booster_.feature_importance(importance_type="split").astype("int64")
    total = gain.sum()
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in model.feature_names_in_],
            "gain": gain,
            "split": split,
            "gain_share": gain / total if total > 0 else np.zeros_like(gain),
        }
    )
    return table.sort_values(["gain", "feature"], ascending=[False, True], ignore_index=True)


def cross_validated_brier(margin: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> dict[str, float]:
    """Return the out-of-fold Brier score of each calibration method fitted on `margin`, `y`.

    Comparing in-sample would always favour isotonic (it minimises squared error over all
    monotone maps, sigmoid included), so each method is fitted on k-1 folds and scored on the
    held-out fold. With fewer than two positives or negatives only 'none' can be scored and the
    others get +inf.
    """
    y = np.asarray(y, dtype="int64")
    scores = {"none": brier(y, _sigmoid(margin))}
    n_splits = int(min(folds, (y == 1).sum(), (y == 0).sum()))
    if n_splits < 2:
        return {**scores, "sigmoid": math.inf, "isotonic": math.inf}
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for method in ("sigmoid", "isotonic"):
        out_of_fold = np.empty(len(y), dtype="float64")
        for fit_rows, score_rows in splitter.split(margin.reshape(-1, 1), y):
            calibrator = fit_calibrator(method, margin[fit_rows], y[fit_rows])
            out_of_fold[score_rows] = apply_calibrator(calibrator, margin[score_rows])
        scores[method] = brier(y, out_of_fold)
    return scores


def _suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", *space.num_leaves, log=True),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", *space.min_child_samples, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", *space.feature_fraction),
        "bagging_fraction": trial.suggest_float("bagging_fraction", *space.bagging_fraction),
        "lambda_l1": trial.suggest_float("lambda_l1", *space.lambda_l1, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", *space.lambda_l2, log=True),
    }


def _cutoff_text(cutoff: Any) -> str:
    """Return a cutoff as a date when it falls on midnight, else as given."""
    try:
        stamp = pd.Timestamp(cutoff)
    except (TypeError, ValueError):
        return str(cutoff)
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else str(stamp)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _check_stacked_frame(frame: pd.DataFrame, target: str, feature_columns: list[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if CUTOFF_LEVEL not in (frame.index.names or []):
        raise ValueError(
            f"frame must be indexed by (customer_id, {CUTOFF_LEVEL}); its index levels are {list(frame.index.names)}"
        )
    if target not in frame.columns:
        raise ValueError(
            f"target column {target!r} is not in the frame; label columns present: "
            f"{[c for c in ('purchase', 'churn') if c in frame.columns]}"
        )
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) not in the frame: {', '.join(repr(c) for c in missing)}")
    if target in feature_columns:
        raise ValueError(f"the target {target!r} is also listed as a feature column; remove it from the features")
    if not feature_columns:
        raise ValueError("feature_columns is empty; pass the feature columns to train on")


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def percentile_ranks(p: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Return integer percentiles 1..100 of `p`: ceil(100 x share of reference scores <= p).

    Higher means more likely. Ties get the same percentile, the highest of their group (rank
    method "max"): percentile 83 reads "83% of customers score at or below this one". The
    reference distribution defaults to `p` itself; pass a fixed one (e.g. the test snapshot's
    probabilities) so chunks of a batch are ranked on the same scale.
    """
    p = np.asarray(p, dtype="float64")
    ref = np.sort(np.asarray(p if reference is None else reference, dtype="float64"))
    if len(ref) == 0:
        return np.zeros(len(p), dtype="int64")
    at_or_below = np.searchsorted(ref, p, side="right").astype("int64")
    # Integer ceiling division: float arithmetic can turn 20/100*100 into 20.000000000000004.
    percentile = (100 * at_or_below + len(ref) - 1) // len(ref)
    return np.clip(percentile, 1, 100)


def buckets(percentile: np.ndarray, cuts: BucketCuts) -> np.ndarray:
    """Return 'high' above cuts.high, 'medium' above cuts.medium, else 'low', per percentile."""
    percentile = np.asarray(percentile)
    return np.where(percentile > cuts.high, "high", np.where(percentile > cuts.medium, "medium", "low")).astype(object)


def score(
    model: PropensityModel,
    X: pd.DataFrame,
    config: PropensityConfig | None = None,
    reference: np.ndarray | None = None,
) -> pd.DataFrame:
    """Return probability, percentile (1..100, see percentile_ranks) and bucket per row of X."""
    config = config or PropensityConfig()
    probability = model.predict_proba(X)[:, 1]
    percentile = percentile_ranks(probability, reference)
    return pd.DataFrame(
        {"probability": probability, "percentile": percentile, "bucket": buckets(percentile, config.bucket_cuts)},
        index=X.index,
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Return the Brier score: the mean squared difference between outcome and probability."""
    y, p = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    return float(np.mean((p - y) ** 2)) if len(y) else math.nan


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Return the mean negative log-likelihood, with p clipped to [1e-15, 1 - 1e-15] to stay finite."""
    y = np.asarray(y, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    if not len(y):
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_curve_table(y: Any, p: Any, bins: int = ECE_BINS) -> pd.DataFrame:
    """Return one row per equal-width probability bin: bounds, customers, mean predicted, actual rate.

    Bin i covers [i/bins, (i+1)/bins); the last bin also holds p = 1. Empty bins are kept (0
    customers, missing rates) so the table always has `bins` rows.
    """
    y, p = _check_y_p(y, p)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    index = np.minimum((p * bins).astype("int64"), bins - 1)
    customers = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=p, minlength=bins) / customers
        actual_rate = np.bincount(index, weights=y, minlength=bins) / customers
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "customers": customers,
            "mean_predicted": mean_predicted,
            "actual_rate": actual_rate,
        }
    )


def expected_calibration_error(y: Any, p: Any, bins: int = ECE_BINS) -> float:
    """Return ECE: sum over equal-width bins of (bin share of customers) x |actual rate - mean predicted|."""
    table = calibration_curve_table(y, p, bins)
    filled = table[table["customers"] > 0]
    if filled.empty:
        return math.nan
    weights = filled["customers"] / filled["customers"].sum()
    return float((weights * (filled["actual_rate"] - filled["mean_predicted"]).abs()).sum())


def deciles(p: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Return decile 1 (top 10%: percentile above 90) .. 10 (bottom) of each probability."""
    return 11 - np.ceil(percentile_ranks(p, reference) / 10).astype("int64")


def gains_table(y: Any, p: Any) -> pd.DataFrame:
    """Return the decile gains table, top decile first: customers, positives, rate, lift, cumulative capture.

    Deciles come from percentile_ranks, so tied probabilities share a decile and a decile can be
    empty (0 customers, missing rate and lift); all 10 rows are always present.
    """
    y, p = _check_y_p(y, p)
    decile = deciles(p)
    customers = np.bincount(decile - 1, minlength=10)
    positives = np.bincount(decile - 1, weights=y, minlength=10).astype("int64")
    base_rate = y.mean() if len(y) else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = positives / customers
        lift = rate / base_rate if base_rate > 0 else np.full(10, np.nan)
        capture = np.cumsum(positives) / positives.sum() if positives.sum() > 0 else np.full(10, np.nan)
    return pd.DataFrame(
        {
            "decile": np.arange(1, 11),
            "customers": customers,
            "positives": positives,
            "rate": rate,
            "lift": lift,
            "cumulative_capture": capture,
        }
    )


def evaluate(
    y_true: Any,
    p: Any,
    groups: pd.Series | np.ndarray | None = None,
    config: PropensityConfig | None = None,
) -> dict[str, Any]:
    """Return ranking, probability and bucket metrics of probabilities `p` against 0/1 outcomes.

    Keys: n, positives, base_rate, roc_auc, pr_auc (average precision), brier, log_loss, ece (10
    equal-width bins, see expected_calibration_error), top_decile_lift, top_decile_capture,
    n_high/medium/low and rate_high/medium/low (actual rate per bucket). Percentiles, deciles and
    buckets are computed over all rows passed. Metrics undefined on the data (AUC with one
    class, lift without positives) are NaN, never an error.

    With `groups` (positionally aligned labels, e.g. persona) the result also has `by_group`:
    group -> the same metrics for that group's rows, where deciles and buckets stay those of the
    whole population (a group's top-decile capture is the share of its positives that landed in
    the overall top decile). Missing group labels are reported as "(missing)".
    """
    config = config or PropensityConfig()
    y, p = _check_y_p(y_true, p)
    percentile = percentile_ranks(p)
    result: dict[str, Any] = _metrics(y, p, percentile, config.bucket_cuts)
    if groups is not None:
        labels = _group_labels(groups, len(y))
        result["by_group"] = {
            key: _metrics(y[labels == key], p[labels == key], percentile[labels == key], config.bucket_cuts)
            for key in _sorted_keys(labels)
        }
    return result


def evaluate_by_group(
    y_true: Any, p: Any, groups: pd.Series | np.ndarray, config: PropensityConfig | None = None
) -> pd.DataFrame:
    """Return evaluate()'s per-group metrics as a tidy frame: one row per group, one column per metric."""
    by_group = evaluate(y_true, p, groups, config)["by_group"]
    name = groups.name if isinstance(groups, pd.Series) and groups.name is not None else "group"
    table = pd.DataFrame.from_dict(by_group, orient="index")
    table.index.name = str(name)
    return table


def _metrics(y: np.ndarray, p: np.ndarray, percentile: np.ndarray, cuts: BucketCuts) -> dict[str, float | int]:
    n = len(y)
    positives = int(y.sum())
    both_classes = 0 < positives < n
    base_rate = positives / n if n else math.nan
    top = percentile > 90
    top_positives = float(y[top].sum())
    metrics: dict[str, float | int] = {
        "n": n,
        "positives": positives,
        "base_rate": base_rate,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else math.nan,
        "brier": brier(y, p),
        "log_loss": log_loss(y, p),
        "ece": expected_calibration_error(y, p) if n else math.nan,
        "top_decile_lift": (
            float(y[top].mean() / base_rate) if top.any() and base_rate and base_rate > 0 else math.nan
        ),
        "top_decile_capture": top_positives / positives if positives > 0 else math.nan,
    }
    bucket = buckets(percentile, cuts)
    for name in BUCKETS:
        members = bucket == name
        metrics[f"n_{name}"] = int(members.sum())
        metrics[f"rate_{name}"] = float(y[members].mean()) if members.any() else math.nan
    return metrics


def _check_y_p(y_true: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_raw = np.asarray(
        y_true.to_numpy(dtype="float64", na_value=np.nan) if isinstance(y_true, pd.Series) else y_true, dtype="float64"
    )
    p_arr = np.asarray(p.to_numpy() if isinstance(p, pd.Series) else p, dtype="float64")
    if y_raw.shape != p_arr.shape or y_raw.ndim != 1:
        raise ValueError(f"y_true and p must be 1-D of the same length, got shapes {y_raw.shape} and {p_arr.shape}")
    if np.isnan(y_raw).any():
        raise ValueError(f"y_true has {int(np.isnan(y_raw).sum())} missing labels; drop non-eligible rows first")
    if not np.isin(y_raw, (0.0, 1.0)).all():
        raise ValueError(f"y_true must be 0/1, found {sorted(set(np.unique(y_raw).tolist()) - {0.0, 1.0})}")
    if np.isnan(p_arr).any() or (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError("p must be probabilities in [0, 1] without missing values")
    return y_raw, p_arr


def _group_labels(groups: pd.Series | np.ndarray, n: int) -> np.ndarray:
    values = pd.Series(np.asarray(groups.to_numpy() if isinstance(groups, pd.Series) else groups, dtype=object))
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} labels but y_true has {n}; pass one group label per customer")
    return values.where(values.notna(), "(missing)").to_numpy(dtype=object)


def _sorted_keys(labels: np.ndarray) -> list[Any]:
    return sorted(pd.unique(labels).tolist(), key=lambda key: (str(type(key).__name__), str(key)))
