"""Journey stage models: a learned behaviour x stage classifier, a rule scorer and a last-event baseline."""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from features.journey import PREFIX, decayed_column, long_decayed_column
from features.schema import EVENT_TYPES, JOURNEY_STAGES

log = logging.getLogger(__name__)

LAPSED = "lapsed"
# Stage the last-event heuristic gives an active customer whose last event says nothing about the
# stage: the customer is known but shows no commitment yet, which is what awareness means.
FALLBACK_STAGE = "awareness"
AS_OF_LEVEL = "as_of"
LAST_EVENT_COLUMN = f"{PREFIX}last_event_type"
NO_RECENT_ACTIVITY = "no_recent_activity"
PROB_PREFIX = "prob_"
_KEY = "models.journey"
_DECAYED_TO_EVENT: dict[str, str] = {decayed_column(e): e for e in EVENT_TYPES}
_LONG_TO_EVENT: dict[str, str] = {long_decayed_column(e): e for e in EVENT_TYPES}
LONG_SUFFIX = "_long"
MISSING_SUFFIX = "_missing"
# Context the decayed counts cannot give: how long the customer has been quiet (lapsed customers emit
# nothing, so a long silence of an otherwise regular customer is the evidence for lapsed), how long
# they have been known (the pre-purchase stages are where new customers are) and how long ago they
# last bought (adoption follows a purchase by a few weeks). On simulated truth (bench/bench_models.py,
# 3000 customers x 365 days, seeds 42, 7, 11) they add about 1.5 accuracy points to the decayed counts.
DEFAULT_EXTRA_FEATURES: tuple[str, ...] = (
    "timing__days_since_last_event",
    "timing__days_since_first_event",
    "timing__days_since_last_purchase",
)

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "awareness": {"ad_click": 1.0, "page_view": 0.6, "email_open": 0.2},
    "education": {"content_view": 1.0, "search": 0.8, "page_view": 0.3},
    "consideration": {
        "product_view": 1.0,
        "add_to_cart": 0.8,
        "wishlist_add": 0.8,
        "remove_from_cart": 0.6,
        "search": 0.3,
    },
    "purchase": {"checkout": 1.0, "purchase": 1.0, "coupon_use": 0.8, "add_to_cart": 0.3},
    "adoption": {"signup": 1.0, "subscription_start": 1.0, "login": 0.6},
    # Repeat buying shows up as purchases next to the retention touchpoints, and cross-sell clicks
    # and returns are post-purchase relationship events.
    "retention": {
        "email_click": 0.8,
        "recommendation_click": 0.8,
        "email_open": 0.6,
        "support_ticket": 0.6,
        "login": 0.4,
        "return": 0.4,
        "purchase": 0.3,
    },
    "advocacy": {"review": 1.0, "referral": 1.0, "survey": 0.8},
    # Lapsed is mostly "no recent activity" (lapsed_threshold); cancelling and complaining are the
    # events that announce it.
    "lapsed": {"subscription_cancel": 1.0, "complaint": 0.5},
}


def _check_weights(weights: dict[str, dict[str, float]], key: str) -> dict[str, dict[str, float]]:
    """Raises ValueError naming the bad stage, event type or weight; returns the weights in JOURNEY_STAGES order."""
    if not weights:
        raise ValueError(
            f"{key} is empty; give at least one stage with event weights, e.g. {{advocacy: {{review: 1.0}}}}"
        )
    unknown_stages = [s for s in weights if s not in JOURNEY_STAGES]
    if unknown_stages:
        raise ValueError(f"{key} has unknown stage(s) {unknown_stages}; allowed: {list(JOURNEY_STAGES)}")
    for stage, row in weights.items():
        if not row:
            raise ValueError(f"{key}.{stage} lists no event type; add event weights or drop the stage")
        unknown_events = [e for e in row if e not in EVENT_TYPES]
        if unknown_events:
            raise ValueError(
                f"{key}.{stage} has unknown event type(s) {unknown_events}; allowed: {list(EVENT_TYPES)}"
            )
        for event_type, weight in row.items():
            if not np.isfinite(weight):
                raise ValueError(f"{key}.{stage}.{event_type} is {weight}; give a finite number")
    return {s: {e: float(w) for e, w in weights[s].items()} for s in JOURNEY_STAGES if s in weights}


def stage_events_from_weights(weights: dict[str, dict[str, float]]) -> dict[str, str]:
    """Maps every weighted event type to the stage where its weight is largest (ties: the earlier stage)."""
    best: dict[str, tuple[float, str]] = {}
    for stage in JOURNEY_STAGES:
        for event_type, weight in weights.get(stage, {}).items():
            if event_type not in best or weight > best[event_type][0]:
                best[event_type] = (weight, stage)
    return {e: best[e][1] for e in EVENT_TYPES if e in best}


class JourneyModelConfig(BaseModel):
    """Settings of the journey stage model (params.yaml: models.journey)."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {s: dict(w) for s, w in DEFAULT_WEIGHTS.items()},
        description="Behaviour x stage weight matrix used when there are no stage labels: "
        "stage -> {event type -> weight}. A stage's score is the weighted sum of the customer's "
        "decayed event counts; negative weights count against a stage. Lapsed is also given to "
        "everyone below lapsed_threshold.",
    )
    lapsed_threshold: float = Field(
        0.5,
        ge=0,
        description="Total recent decayed activity (sum of journey__decayed_<event_type>) below which a "
        "customer has no recent activity: lapsed for the rule scorer, the no_recent_activity input of "
        "the learned classifier, and lapsed for the last-event heuristic.",
    )
    temperature: float = Field(
        1.0, gt=0, description="Rule scorer probabilities are softmax(score / temperature); higher is flatter."
    )
    class_weight: Literal["balanced"] | None = Field(
        None,
        description="Empty weights every labelled row equally, which maximises accuracy; 'balanced' weights "
        "each stage inversely to its label frequency, so rare stages are predicted more often at the cost of "
        "the common ones. On simulated truth 'balanced' lowered both held-out accuracy (about 5 points) and "
        "macro-F1 (about 4 points): it pushes quiet post-purchase customers into the rare early stages.",
    )
    C: float = Field(1.0, gt=0, description="Inverse L2 regularisation strength of the logistic regression.")
    max_iter: int = Field(1000, gt=0, description="Iteration limit of the logistic regression solver.")
    min_labels: int = Field(
        200, ge=2, description="Labelled rows needed to train the classifier; with fewer the rule scorer is used."
    )
    test_size: float = Field(
        0.25, gt=0, lt=1, description="Share of labelled rows held out to measure the classifier and the heuristic."
    )
    refit_on_all_labels: bool = Field(
        True,
        description="After measuring on the held-out rows, refit the classifier on every labelled row "
        "(the returned model then has seen the held-out rows; the metrics describe the procedure).",
    )
    extra_features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXTRA_FEATURES),
        description="Numeric feature columns of other families the learned classifier reads next to the "
        "journey decayed counts (journey__decayed_* and journey__decayed_long_*), e.g. recency and tenure. "
        "Each goes in as sign(x)*log(1+|x|), plus a 0/1 <column>_missing input when it has empty values "
        "at fit (days since last purchase of a customer who never bought). Columns absent from the "
        "training frame are skipped (listed in the model's missing_extra_features_). The rule scorer "
        "and the last-event heuristic do not use them. Empty: decayed counts only.",
    )
    stage_events: dict[str, str] | None = Field(
        None,
        description="Stage-indicative event type -> stage, for the last-event heuristic. Empty: each "
        "weighted event type goes to the stage where its weight is largest.",
    )

    @field_validator("weights")
    @classmethod
    def _weights_valid(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _check_weights(value, f"{_KEY}.weights")

    @field_validator("extra_features")
    @classmethod
    def _extra_features_valid(cls, value: list[str]) -> list[str]:
        return _check_extra_features(value, f"{_KEY}.extra_features")

    @field_validator("stage_events")
    @classmethod
    def _stage_events_valid(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        unknown_events = [e for e in value if e not in EVENT_TYPES]
        if unknown_events:
            raise ValueError(
                f"{_KEY}.stage_events has unknown event type(s) {unknown_events}; allowed: {list(EVENT_TYPES)}"
            )
        unknown_stages = sorted({s for s in value.values() if s not in JOURNEY_STAGES})
        if unknown_stages:
            raise ValueError(
                f"{_KEY}.stage_events maps to unknown stage(s) {unknown_stages}; allowed: {list(JOURNEY_STAGES)}"
            )
        return value

    def stage_event_map(self) -> dict[str, str]:
        """Returns stage_events, or the map derived from the weights when it is not set."""
        return dict(self.stage_events) if self.stage_events is not None else stage_events_from_weights(self.weights)


def _check_extra_features(value: Any, key: str) -> list[str]:
    """Returns the extra feature names as a list; raises ValueError naming a bad or repeated entry."""
    names = list(value)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{key} has an empty or non-text entry {name!r}; give feature column names")
        if name in _DECAYED_TO_EVENT or name in _LONG_TO_EVENT or name == LAST_EVENT_COLUMN:
            raise ValueError(
                f"{key} lists {name!r}, which the classifier reads anyway (decayed counts) or cannot read "
                "(the last event type is text); drop it"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{key} repeats {repeated}; list each column once")
    return names


def journey_input_columns(X: pd.DataFrame, config: JourneyModelConfig | None = None) -> list[str]:
    """Lists the columns of a feature frame that fit_journey_model reads, in frame order.

    The decayed counts (journey__decayed_*, journey__decayed_long_*), the configured extra_features
    present, and journey__last_event_type (for the last-event heuristic). Select these from the
    training frame: X[journey_input_columns(X, config)].
    """
    config = config or JourneyModelConfig()
    wanted = set(_DECAYED_TO_EVENT) | set(_LONG_TO_EVENT) | set(config.extra_features) | {LAST_EVENT_COLUMN}
    return [c for c in X.columns if c in wanted]


def _frame(X: Any, who: str) -> pd.DataFrame:
    """Returns X when it is a DataFrame; raises TypeError naming the expected input otherwise."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{who} needs a pandas DataFrame with {decayed_column('<event_type>')} columns, got {type(X).__name__}; "
            "pass the journey feature frame"
        )
    return X


def decayed_columns(X: pd.DataFrame) -> list[str]:
    """Lists X's decayed-count columns of canonical event types, in EVENT_TYPES order."""
    present = set(X.columns)
    return [c for c in _DECAYED_TO_EVENT if c in present]


def _decayed_values(X: pd.DataFrame, columns: list[str], who: str) -> np.ndarray:
    """Returns the named decayed counts as floats; raises naming a missing, negative or non-finite column."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(
            f"{who}: column(s) {missing} were present at fit but are missing from X; the journey family omits "
            "the decayed count of an event type that never occurs before the cutoff, so add it filled with 0 "
            "or refit on the same columns"
        )
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise ValueError(f"{who}: column(s) {non_numeric} are not numeric; decayed counts are numbers >= 0")
    values = X[columns].to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        names = [c for c, b in zip(columns, bad) if b]
        raise ValueError(
            f"{who}: column(s) {names} hold missing or infinite values; decayed counts of no events are 0, fill them"
        )
    negative = (values < 0).any(axis=0)
    if negative.any():
        names = [c for c, b in zip(columns, negative) if b]
        raise ValueError(f"{who}: column(s) {names} hold negative values; decayed counts are >= 0")
    return values


def long_decayed_columns(X: pd.DataFrame) -> list[str]:
    """Lists X's long-horizon decayed-count columns (journey__decayed_long_*), in EVENT_TYPES order."""
    present = set(X.columns)
    return [c for c in _LONG_TO_EVENT if c in present]


def _extra_values(X: pd.DataFrame, columns: list[str], who: str) -> np.ndarray:
    """Returns the named context columns as floats (NaN where empty); raises naming a missing, text or infinite one."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(
            f"{who}: column(s) {missing} were present at fit but are missing from X; score a feature frame "
            "built with the same feature families, or refit without them (models.journey.extra_features)"
        )
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    if non_numeric:
        raise ValueError(
            f"{who}: extra feature column(s) {non_numeric} are not numeric; list numeric columns in "
            f"{_KEY}.extra_features"
        )
    values = X[columns].to_numpy(dtype=float, na_value=np.nan)
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        names = [c for c, b in zip(columns, infinite) if b]
        raise ValueError(f"{who}: column(s) {names} hold infinite values; give finite numbers or leave them empty")
    return values


def _require_columns(X: pd.DataFrame, who: str) -> list[str]:
    """Returns X's decayed columns; raises when there are none."""
    columns = decayed_columns(X)
    if not columns:
        raise ValueError(
            f"{who}: X has no {decayed_column('<event_type>')} column of a canonical event type; "
            "build features with the journey family"
        )
    return columns


def _stage_labels(y: Any, n_rows: int, who: str) -> np.ndarray:
    """Returns y as an object array of stages; raises naming missing or unknown stages."""
    labels = pd.Series(np.asarray(y, dtype=object).ravel(), dtype=object)
    if len(labels) != n_rows:
        raise ValueError(f"{who}: y has {len(labels)} labels for {n_rows} rows of X; give one stage per row")
    if labels.isna().any():
        raise ValueError(f"{who}: y has {int(labels.isna().sum())} missing stage label(s); drop unlabelled rows first")
    unknown = sorted(set(labels) - set(JOURNEY_STAGES))
    if unknown:
        raise ValueError(f"{who}: y has unknown stage(s) {unknown}; allowed: {list(JOURNEY_STAGES)}")
    return labels.to_numpy(dtype=object)


class JourneyStageClassifier(ClassifierMixin, BaseEstimator):
    """Learns per-behaviour weights per journey stage from labelled history.

    A multinomial logistic regression on standardised inputs, all taken from X by column name:

    - log1p of every journey__decayed_<event_type> column present at fit (required: at least one);
    - log1p of every journey__decayed_long_<event_type> column present at fit (the long-horizon
      counts; optional, used when the frame has them);
    - sign(x)*log(1+|x|) of every `extra_features` column present at fit (context such as days since
      the last event; optional), with empty values set to the fit-time median and, for a column with
      empty values at fit, a 0/1 <column>_missing input;
    - a 0/1 no_recent_activity input (total recent decayed activity below lapsed_threshold), so that
      lapsed, which is the absence of behaviour, is learnable.

    Other columns of X (the rest of the feature frame) are ignored; the columns used at fit must be
    present at predict (feature_names_in_). classes_ are the stages seen in y, in JOURNEY_STAGES order.

    weights_ (stages x inputs) holds the coefficients: the change in a stage's log-odds score per
    standard deviation of the input. Columns: the event type of each recent decayed count,
    <event_type>_long of each long-horizon count, the extra feature names (and <name>_missing), then
    no_recent_activity.
    """

    def __init__(
        self,
        C: float = 1.0,
        class_weight: Literal["balanced"] | None = None,
        lapsed_threshold: float = 0.5,
        max_iter: int = 1000,
        extra_features: Sequence[str] | None = None,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.lapsed_threshold = lapsed_threshold
        self.max_iter = max_iter
        self.extra_features = extra_features

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model pickled before the long-horizon counts and context inputs existed read the recent
        # decayed counts (its feature_names_in_) only; give it the attributes _design now reads.
        if "feature_names_in_" in state and "decayed_columns_" not in state:
            state = {
                **state,
                "extra_features": [],
                "decayed_columns_": list(state["feature_names_in_"]),
                "long_columns_": [],
                "extra_columns_": [],
                "missing_extra_features_": [],
                "extra_fill_": np.zeros(0),
                "extra_indicated_": np.zeros(0, dtype=bool),
            }
        state.setdefault("extra_features", [])
        super().__setstate__(state)

    def _check_params(self) -> list[str]:
        """Raises ValueError naming a hyperparameter outside its allowed values; returns the extra feature names."""
        who = type(self).__name__
        if not (isinstance(self.C, numbers.Real) and self.C > 0):
            raise ValueError(f"{who}: C={self.C!r}; give a number > 0")
        if self.class_weight not in ("balanced", None):
            raise ValueError(f"{who}: class_weight={self.class_weight!r}; allowed: 'balanced' or None")
        if not (isinstance(self.lapsed_threshold, numbers.Real) and self.lapsed_threshold >= 0):
            raise ValueError(f"{who}: lapsed_threshold={self.lapsed_threshold!r}; give a number >= 0")
        if not (isinstance(self.max_iter, numbers.Integral) and self.max_iter > 0):
            raise ValueError(f"{who}: max_iter={self.max_iter!r}; give an integer > 0")
        if self.extra_features is None:
            return list(DEFAULT_EXTRA_FEATURES)
        if isinstance(self.extra_features, str):
            raise ValueError(f"{who}: extra_features={self.extra_features!r}; give a list of column names")
        return _check_extra_features(self.extra_features, f"{who}.extra_features")

    def _design(self, X: Any) -> np.ndarray:
        """Returns the model inputs in weights_ column order (before standardising)."""
        who = type(self).__name__
        X = _frame(X, who)
        recent = _decayed_values(X, self.decayed_columns_, who)
        parts = [np.log1p(recent)]
        if self.long_columns_:
            parts.append(np.log1p(_decayed_values(X, self.long_columns_, who)))
        if self.extra_columns_:
            extra = _extra_values(X, self.extra_columns_, who)
            empty = np.isnan(extra)
            signed = np.sign(extra) * np.log1p(np.abs(extra))
            parts.append(np.where(empty, self.extra_fill_[None, :], signed))
            parts.append(empty[:, self.extra_indicated_].astype(float))
        parts.append((recent.sum(axis=1) < self.lapsed_threshold).astype(float)[:, None])
        return np.column_stack(parts)

    def fit(self, X: pd.DataFrame, y: Any) -> JourneyStageClassifier:
        """Fits the classifier on feature frame X and stage labels y (one per row); returns self."""
        extra_wanted = self._check_params()
        who = type(self).__name__
        columns = _require_columns(_frame(X, who), who)
        labels = _stage_labels(y, len(X), who)
        seen = [s for s in JOURNEY_STAGES if s in set(labels)]
        if len(seen) < 2:
            raise ValueError(f"{who}: y holds only stage(s) {seen}; labels of at least two stages are needed to learn")
        codes = np.array([seen.index(s) for s in labels])
        self.decayed_columns_ = columns
        self.long_columns_ = long_decayed_columns(X)
        self.extra_columns_ = [c for c in extra_wanted if c in X.columns]
        self.missing_extra_features_ = [c for c in extra_wanted if c not in X.columns]
        if self.missing_extra_features_:
            log.info("journey classifier: extra feature(s) absent from X, learning without them: %s",
                     self.missing_extra_features_)
        extra = _extra_values(X, self.extra_columns_, who)
        signed = np.sign(extra) * np.log1p(np.abs(extra))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty column: its median is NaN
            fill = np.nanmedian(signed, axis=0) if len(signed) else np.zeros(len(self.extra_columns_))
        self.extra_fill_ = np.nan_to_num(np.asarray(fill, dtype=float).reshape(-1), nan=0.0)
        self.extra_indicated_ = np.isnan(extra).any(axis=0)
        design = self._design(X)
        self.scaler_ = StandardScaler().fit(design)
        # The solver is deterministic (lbfgs), so no random_state is needed for reproducible fits.
        self.model_ = LogisticRegression(C=float(self.C), class_weight=self.class_weight, max_iter=self.max_iter)
        self.model_.fit(self.scaler_.transform(design), codes)
        self.classes_ = np.array(seen, dtype=object)
        self.behaviours_ = [_DECAYED_TO_EVENT[c] for c in columns]
        self.feature_names_in_ = np.array([*columns, *self.long_columns_, *self.extra_columns_], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        inputs = [
            *self.behaviours_,
            *[f"{_LONG_TO_EVENT[c]}{LONG_SUFFIX}" for c in self.long_columns_],
            *self.extra_columns_,
            *[f"{c}{MISSING_SUFFIX}" for c, flag in zip(self.extra_columns_, self.extra_indicated_) if flag],
            NO_RECENT_ACTIVITY,
        ]
        coef = self.model_.coef_
        if len(seen) == 2:
            # A two-class fit has one coefficient row for the second class; split it symmetrically,
            # the softmax form with the same probabilities, so each stage has its own row.
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        self.weights_ = pd.DataFrame(coef, index=pd.Index(seen, name="stage"), columns=inputs)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Returns stage probabilities, one column per classes_ entry (JOURNEY_STAGES order)."""
        check_is_fitted(self)
        return self.model_.predict_proba(self.scaler_.transform(self._design(X)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Returns the most probable stage per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class RuleStageScorer(ClassifierMixin, BaseEstimator):
    """Scores journey stages from a behaviour x stage weight matrix, for when there are no labels.

    score_s = sum_e weights[s][e] * decayed_e over the weighted event types present in X;
    probabilities = softmax(score / temperature) over the weighted stages. A row whose total
    decayed activity (every decayed column present at fit) is below lapsed_threshold gets
    probability 1 for lapsed. classes_ are the weighted stages plus lapsed, in JOURNEY_STAGES order.
    """

    def __init__(
        self,
        weights: dict[str, dict[str, float]] | None = None,
        temperature: float = 1.0,
        lapsed_threshold: float = 0.5,
    ) -> None:
        self.weights = weights
        self.temperature = temperature
        self.lapsed_threshold = lapsed_threshold

    def fit(self, X: pd.DataFrame, y: Any = None) -> RuleStageScorer:
        """Validates the weights and X (y is ignored) and records which columns score; returns self."""
        who = type(self).__name__
        weights = _check_weights(DEFAULT_WEIGHTS if self.weights is None else self.weights, f"{who}.weights")
        if not (isinstance(self.temperature, numbers.Real) and self.temperature > 0):
            raise ValueError(f"{who}: temperature={self.temperature!r}; give a number > 0")
        if not (isinstance(self.lapsed_threshold, numbers.Real) and self.lapsed_threshold >= 0):
            raise ValueError(f"{who}: lapsed_threshold={self.lapsed_threshold!r}; give a number >= 0")
        columns = _require_columns(_frame(X, who), who)
        _decayed_values(X, columns, who)
        present = {_DECAYED_TO_EVENT[c] for c in columns}
        weighted = [e for e in EVENT_TYPES if any(e in row for row in weights.values())]
        self.behaviours_ = [e for e in weighted if e in present]
        self.missing_behaviours_ = [e for e in weighted if e not in present]
        if not self.behaviours_:
            raise ValueError(
                f"{who}: none of the weighted event types {weighted} has a decayed column in X; "
                "map your events onto them or weight the event types you have"
            )
        if self.missing_behaviours_:
            log.info("rule scorer: weighted event types without a decayed column, scored as absent: %s",
                     self.missing_behaviours_)
        self.weights_ = pd.DataFrame(
            [[weights[s].get(e, 0.0) for e in self.behaviours_] for s in weights],
            index=pd.Index(list(weights), name="stage"),
            columns=self.behaviours_,
            dtype=float,
        )
        self.classes_ = np.array([s for s in JOURNEY_STAGES if s in weights or s == LAPSED], dtype=object)
        self.feature_names_in_ = np.array(columns, dtype=object)
        self.n_features_in_ = len(columns)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Returns stage probabilities, one column per classes_ entry (JOURNEY_STAGES order)."""
        check_is_fitted(self)
        who = type(self).__name__
        values = _decayed_values(_frame(X, who), list(self.feature_names_in_), who)
        used = [list(self.feature_names_in_).index(decayed_column(e)) for e in self.behaviours_]
        scores = values[:, used] @ self.weights_.to_numpy().T / self.temperature
        scores -= scores.max(axis=1, keepdims=True)  # stable softmax: shifting scores keeps the ratios
        weighted = np.exp(scores)
        weighted /= weighted.sum(axis=1, keepdims=True)
        proba = np.zeros((len(values), len(self.classes_)))
        for j, stage in enumerate(self.weights_.index):
            proba[:, list(self.classes_).index(stage)] = weighted[:, j]
        idle = values.sum(axis=1) < self.lapsed_threshold
        proba[idle] = 0.0
        proba[idle, list(self.classes_).index(LAPSED)] = 1.0
        return proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Returns the most probable stage per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def last_event_heuristic(
    last_event_type: pd.Series,
    config: JourneyModelConfig | None = None,
    recent_activity: pd.Series | None = None,
) -> pd.Series:
    """Returns the stage the customer's last event indicates: the baseline every learned model must beat.

    Per row, first rule that applies:
    1. no last event (null or empty) -> lapsed;
    2. recent_activity given (total decayed activity, same index) and below config.lapsed_threshold
       -> lapsed, because journey__last_event_type is the latest event of any age;
    3. last event in config.stage_event_map() -> its stage;
    4. otherwise (an event type that indicates no stage) -> awareness: the customer is known but
       shows no commitment yet.
    """
    config = config or JourneyModelConfig()
    mapping = config.stage_event_map()
    events = last_event_type.astype(object)
    missing = events.isna() | (events.astype(str).str.strip() == "")
    stages = events.map(lambda e: mapping.get(e, FALLBACK_STAGE)).astype(object)
    stages[missing] = LAPSED
    if recent_activity is not None:
        if not recent_activity.index.equals(last_event_type.index):
            raise ValueError(
                "last_event_heuristic: recent_activity has a different index from last_event_type; "
                "pass both from the same feature frame"
            )
        stages[recent_activity.to_numpy(dtype=float) < config.lapsed_threshold] = LAPSED
    return stages.rename("stage")


@dataclass(frozen=True)
class StageMetrics:
    """How well one set of stage predictions matches the labels.

    `macro_f1` averages over the stages present in the true labels, so the model and the
    heuristic are averaged over the same stages. `confusion` has true stages as rows and predicted
    stages as columns, all JOURNEY_STAGES in order; `per_stage` holds precision, recall, f1 and
    support per stage in the same order.
    """

    accuracy: float
    macro_f1: float
    confusion: pd.DataFrame
    per_stage: pd.DataFrame


@dataclass(frozen=True)
class JourneyResult:
    """A fitted journey model, which kind it is and why, and how it compares with the last-event heuristic.

    `metrics` and `heuristic_metrics` are measured on the same rows: the held-out labelled rows for
    a learned model, every labelled row for the rule scorer (which learns nothing), or None without
    labels. `support` counts those rows per stage (JOURNEY_STAGES order). `split` is how held-out
    rows were chosen: "time" (latest as_of dates), "stratified", "random", or "none".
    `heuristic_source` says where the last event came from.
    """

    model: JourneyStageClassifier | RuleStageScorer
    kind: Literal["learned", "rules"]
    reason: str
    metrics: StageMetrics | None
    heuristic_metrics: StageMetrics | None
    support: pd.Series
    split: str
    n_train: int
    n_test: int
    heuristic_source: str


def evaluate_stages(y_true: pd.Series | np.ndarray, y_pred: pd.Series | np.ndarray) -> StageMetrics:
    """Returns accuracy, macro-F1 over the true stages, the confusion matrix and per-stage scores."""
    truth = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    present = [s for s in JOURNEY_STAGES if s in set(truth)]
    stages = list(JOURNEY_STAGES)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=stages, zero_division=0
    )
    return StageMetrics(
        accuracy=float(accuracy_score(truth, pred)),
        macro_f1=float(f1_score(truth, pred, labels=present, average="macro", zero_division=0)),
        confusion=pd.DataFrame(
            confusion_matrix(truth, pred, labels=stages),
            index=pd.Index(stages, name="true"),
            columns=pd.Index(stages, name="predicted"),
        ),
        per_stage=pd.DataFrame(
            {"precision": precision, "recall": recall, "f1": f1, "support": support},
            index=pd.Index(stages, name="stage"),
        ),
    )


def _last_events(X: pd.DataFrame, columns: list[str], last_event_type: pd.Series | None) -> tuple[pd.Series, str]:
    """Returns the last event type per row of X and where it came from."""
    if last_event_type is not None:
        return last_event_type.reindex(X.index), "argument"
    if LAST_EVENT_COLUMN in X.columns:
        return X[LAST_EVENT_COLUMN], LAST_EVENT_COLUMN
    # Without the last event, the event type with the largest decayed count is the closest proxy:
    # decay favours recent events, so it is usually among the latest ones.
    values = X[columns].to_numpy(dtype=float)
    dominant = np.array([_DECAYED_TO_EVENT[c] for c in columns], dtype=object)[values.argmax(axis=1)]
    dominant[values.max(axis=1) <= 0] = None
    return pd.Series(dominant, index=X.index, dtype=object), "dominant decayed event (no last event type given)"


def _split(y: pd.Series, config: JourneyModelConfig, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Returns train and test positions of the labelled rows and the split kind.

    With an as_of index level holding at least two dates, the latest dates (about test_size of the
    rows, always leaving one date to train on) are held out, as the model will score later dates.
    Otherwise, or when the training dates would hold fewer than two stages, a random split
    stratified by stage; unstratified when a stage has too few rows to stratify.
    """
    positions = np.arange(len(y))
    if AS_OF_LEVEL in (y.index.names or []):
        as_of = np.asarray(y.index.get_level_values(AS_OF_LEVEL))
        counts = pd.Series(as_of).value_counts().sort_index(ascending=False)
        if len(counts) >= 2:
            held: list[Any] = []
            for date in counts.index:
                if len(held) == len(counts) - 1 or sum(counts[held]) >= config.test_size * len(y):
                    break
                held.append(date)
            test_mask = np.isin(as_of, held)
            if y[~test_mask].nunique() >= 2:
                return positions[~test_mask], positions[test_mask], "time"
    try:
        train, test = train_test_split(positions, test_size=config.test_size, random_state=seed, stratify=y.to_numpy())
        return np.sort(train), np.sort(test), "stratified"
    except ValueError:
        train, test = train_test_split(positions, test_size=config.test_size, random_state=seed)
        return np.sort(train), np.sort(test), "random"


def _support(labels: pd.Series) -> pd.Series:
    """Counts labels per stage, every JOURNEY_STAGES entry in order."""
    return labels.value_counts().reindex(list(JOURNEY_STAGES), fill_value=0).rename("support").astype(int)


def _classifier(config: JourneyModelConfig) -> JourneyStageClassifier:
    return JourneyStageClassifier(
        config.C, config.class_weight, config.lapsed_threshold, config.max_iter, list(config.extra_features)
    )


def fit_journey_model(
    X: pd.DataFrame,
    labels: pd.Series | None,
    config: JourneyModelConfig | None = None,
    seed: int = 0,
    last_event_type: pd.Series | None = None,
) -> JourneyResult:
    """Fits the journey stage model and measures it against the last-event heuristic on the same rows.

    X is the feature frame, or the part of it the model reads: journey_input_columns(frame, config)
    (recent and long-horizon decayed counts, config.extra_features, the last event type). The
    classifier learns from whichever of them X holds; the rule scorer reads the recent counts only.
    `labels` are stages indexed like X (missing = unlabelled). With at least config.min_labels
    labelled rows of at least two stages, a JourneyStageClassifier is trained and measured on
    held-out rows (see _split: by time when X has an as_of index level, else stratified random);
    otherwise the RuleStageScorer is returned with the reason, measured on whatever labels exist.
    The heuristic's last event comes from `last_event_type`, else X's journey__last_event_type,
    else the dominant decayed event.
    """
    X = _frame(X, "fit_journey_model")
    config = config or JourneyModelConfig()
    columns = _require_columns(X, "fit_journey_model")
    last_events, heuristic_source = _last_events(X, columns, last_event_type)
    activity = pd.Series(_decayed_values(X, columns, "fit_journey_model").sum(axis=1), index=X.index)

    if labels is None:
        y = pd.Series(np.nan, index=X.index, dtype=object)
    else:
        if not labels.index.is_unique:
            raise ValueError("fit_journey_model: labels has duplicate index entries; give one label per row of X")
        y = labels.reindex(X.index).astype(object)
        dropped = int((~labels.index.isin(X.index)).sum())
        if dropped:
            log.info("journey model: %d label(s) have no row in X and are ignored", dropped)
    labelled = y.notna().to_numpy()
    y_lab = y[labelled]
    _stage_labels(y_lab, len(y_lab), "fit_journey_model")
    n_stages = y_lab.nunique()

    if labels is None or len(y_lab) < config.min_labels or n_stages < 2:
        if labels is None:
            reason = f"no stage labels given; scoring stages with the rule weights ({_KEY}.weights)"
        elif len(y_lab) < config.min_labels:
            reason = (f"only {len(y_lab)} labelled rows, fewer than min_labels={config.min_labels}; scoring with "
                      f"the rule weights (add labels or lower {_KEY}.min_labels)")
        else:
            reason = (f"labels hold only stage(s) {sorted(set(y_lab))}; at least two are needed to learn, "
                      "scoring with the rule weights")
        log.info("journey model: %s", reason)
        model = RuleStageScorer(config.weights, config.temperature, config.lapsed_threshold).fit(X)
        metrics = heuristic_metrics = None
        if len(y_lab):
            metrics = evaluate_stages(y_lab, model.predict(X[labelled]))
            heuristic = last_event_heuristic(last_events, config, activity)
            heuristic_metrics = evaluate_stages(y_lab, heuristic[labelled])
        return JourneyResult(model, "rules", reason, metrics, heuristic_metrics, _support(y_lab), "none",
                             0, len(y_lab), heuristic_source)

    X_lab = X[labelled]
    train, test, split = _split(y_lab, config, seed)
    model = _classifier(config)
    model.fit(X_lab.iloc[train], y_lab.iloc[train])
    y_test = y_lab.iloc[test]
    metrics = evaluate_stages(y_test, model.predict(X_lab.iloc[test]))
    heuristic = last_event_heuristic(last_events, config, activity)[labelled].iloc[test]
    heuristic_metrics = evaluate_stages(y_test, heuristic)
    if config.refit_on_all_labels:
        model = _classifier(config)
        model.fit(X_lab, y_lab)
    reason = f"{len(y_lab)} labelled rows (min_labels={config.min_labels}); learned stage weights"
    log.info("journey model: %s; held-out macro-F1 %.3f vs last-event heuristic %.3f (%s split, %d rows)",
             reason, metrics.macro_f1, heuristic_metrics.macro_f1, split, len(test))
    return JourneyResult(model, "learned", reason, metrics, heuristic_metrics, _support(y_test), split,
                         len(train), len(test), heuristic_source)


class _StageModel(Protocol):
    classes_: np.ndarray

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


def predict_stages(model: _StageModel, X: pd.DataFrame) -> pd.DataFrame:
    """Returns per row of X: stage, stage_confidence and prob_<stage> for every JOURNEY_STAGES entry.

    Stages the model never saw get probability 0; on a tie the earlier stage in JOURNEY_STAGES wins.
    """
    proba = model.predict_proba(X)
    classes = list(model.classes_)
    full = np.zeros((len(proba), len(JOURNEY_STAGES)))
    for j, stage in enumerate(classes):
        full[:, JOURNEY_STAGES.index(stage)] = proba[:, j]
    best = full.argmax(axis=1)
    out = pd.DataFrame(
        {
            "stage": pd.Series(np.array(JOURNEY_STAGES, dtype=object)[best], index=X.index, dtype=object),
            "stage_confidence": full[np.arange(len(full)), best],
        },
        index=X.index,
    )
    for j, stage in enumerate(JOURNEY_STAGES):
        out[f"{PROB_PREFIX}{stage}"] = full[:, j]
    return out
