"""Behavioural personas: clusters of benefit, timing and usage-quality ratios, named after seed persona signatures."""

from __future__ import annotations

import copy
import fnmatch
import logging
import math
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

_KEY = "models.personas"
ALGORITHMS: tuple[str, ...] = ("kmeans", "gmm")
EVENTS_365D = "usage__events_365d"
WISHLIST_RATE = f"benefits__wishlist_adds/{EVENTS_365D}"
REVIEW_RATE = f"engagement__reviews/{EVENTS_365D}"
Z_PREFIX = "z__"
TOP_FEATURES = 3
# Standardised, zero-inflated shares leave clusters where (nearly) everyone has 0, whose fitted
# variance collapses and makes the likelihood, and with it the BIC, reward those clusters without
# bound. A variance floor of 1% of the population variance keeps the components honest.
_GMM_REG_COVAR = 1e-2
_TINY = 1e-12

DEFAULT_FEATURES: tuple[str, ...] = (
    "benefits__topic_*_share",
    "benefits__discounted_purchase_share",
    "benefits__coupon_uses_per_purchase",
    "benefits__recommendation_clicks_per_product_view",
    "benefits__cart_abandonment_rate",
    "benefits__median_hours_view_to_purchase",
    WISHLIST_RATE,
    "timing__share_*",
    "timing__weekend_share",
    "usage__events_per_session",
    "usage__key_action_share",
)
# Unbounded ratios and durations with long right tails: without the log a few extreme customers
# set the standard deviation and everyone else collapses near the mean.
DEFAULT_LOG_FEATURES: tuple[str, ...] = (
    "benefits__coupon_uses_per_purchase",
    "benefits__recommendation_clicks_per_product_view",
    "benefits__median_hours_view_to_purchase",
    "usage__events_per_session",
)
# The four daypart shares and the weekend share describe one behaviour, when someone shops; at full
# weight these five columns outvote single benefit signals and split customers by chronotype
# instead of by the benefits they seek. On demo data (3000 customers x 240 days, seeds 7, 11, 23)
# full weight named 5 of the 6 seed personas each time ("high evening share" clusters took the
# place of need_proof); weight 0.5 named all 6 each time.
DEFAULT_FEATURE_WEIGHTS: dict[str, float] = {"timing__*": 0.5}
DEFAULT_SIGNATURES: dict[str, dict[str, float]] = {
    "price_conscious": {
        "benefits__topic_promo_share": 1.0,
        "benefits__topic_sale_share": 1.0,
        "benefits__discounted_purchase_share": 1.0,
        "benefits__coupon_uses_per_purchase": 1.0,
    },
    "smart": {
        "benefits__topic_specs_share": 1.0,
        "benefits__topic_comparison_share": 1.0,
        "usage__events_per_session": 0.5,
    },
    "risk_averse": {
        "benefits__topic_returns_policy_share": 1.0,
        "benefits__topic_warranty_share": 1.0,
        "benefits__topic_faq_share": 1.0,
        "benefits__topic_shipping_share": 1.0,
    },
    "need_proof": {
        "benefits__topic_reviews_share": 1.0,
        "benefits__topic_bestsellers_share": 1.0,
        REVIEW_RATE: 0.5,
    },
    "get_it_later": {
        WISHLIST_RATE: 1.0,
        "benefits__cart_abandonment_rate": 1.0,
        # Half weight: view-to-purchase time exists only for buyers (the rest get the median), so
        # it is weaker evidence than wishlist use and abandonment, which every browser can show.
        "benefits__median_hours_view_to_purchase": 0.5,
    },
    "persuadable": {
        "benefits__recommendation_clicks_per_product_view": 1.0,
        "benefits__topic_recommendations_share": 1.0,
        "benefits__median_hours_view_to_purchase": -0.5,
    },
}
# Shares and per-event ratios of a customer with a handful of events are mostly sampling noise: on
# demo data (3000 customers x 365 days, seeds 42, 7, 11) the fifth of customers with the fewest
# events (<= ~16 in a year) is recovered with an adjusted Rand index of ~0.15, the most active fifth
# with ~0.99. Clustering everyone lets that noise place the centroids; see PersonasConfig.core_min_events.
DEFAULT_CORE_FEATURE = EVENTS_365D
DEFAULT_CORE_MIN_EVENTS = 50.0
# The core must hold at least this many customers per candidate persona, else everyone is clustered.
_CORE_ROWS_PER_CLUSTER = 10
DEFAULT_BOOTSTRAP_RESAMPLES = 10
DEFAULT_BOOTSTRAP_SHARE = 0.8

_GLOB_CHARS = frozenset("*?[")


# --------------------------------------------------------------------------------------------
# Feature expressions: a column name, a glob over column names, or a ratio "numerator/denominator"
# --------------------------------------------------------------------------------------------


def _is_glob(entry: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in entry)


def _ratio_parts(entry: str) -> tuple[str, str] | None:
    """Returns (numerator, denominator) of a ratio expression 'a/b', or None for a plain name or glob."""
    if "/" not in entry:
        return None
    numerator, denominator = entry.split("/", 1)
    return numerator, denominator


def _check_expression(entry: Any, key: str, allow_glob: bool) -> str:
    """Raises ValueError naming the key when entry is not a column name, glob (if allowed) or ratio 'a/b'."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"{key} has an empty or non-text entry {entry!r}; give a feature column name")
    parts = _ratio_parts(entry)
    if parts is not None:
        if entry.count("/") != 1 or not all(p.strip() for p in parts) or any(_is_glob(p) for p in parts):
            raise ValueError(
                f"{key} entry {entry!r} is not a ratio of two column names; write it as "
                f"'numerator/denominator', e.g. {WISHLIST_RATE!r}"
            )
    elif _is_glob(entry) and not allow_glob:
        raise ValueError(f"{key} entry {entry!r} is a glob; name one column (or a ratio 'a/b') here")
    return entry


def resolve_features(entries: Sequence[str], columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Returns the features that entries select from columns (entry order, no repeats) and the entries selecting none.

    An entry is an exact column name, a glob over column names (`benefits__topic_*_share`; a prefix
    is the glob `prefix*`), or a ratio `numerator/denominator` of two exact column names, which
    becomes a derived feature of that name (present when both columns are).
    """
    available = [str(c) for c in columns]
    present = set(available)
    selected: list[str] = []
    missing: list[str] = []
    for entry in entries:
        parts = _ratio_parts(entry)
        if parts is not None:
            hits = [entry] if all(p in present for p in parts) else []
        elif _is_glob(entry):
            hits = [c for c in available if fnmatch.fnmatchcase(c, entry)]
        else:
            hits = [entry] if entry in present else []
        if not hits:
            missing.append(entry)
        selected += [h for h in hits if h not in selected]
    return selected, missing


def _matches_any(name: str, patterns: Sequence[str]) -> bool:
    return any(name == p or (_is_glob(p) and fnmatch.fnmatchcase(name, p)) for p in patterns)


def _first_weight(feature: str, weights: Mapping[str, float]) -> float:
    """Returns the weight of the first entry of weights matching feature, else 1."""
    return next((w for pattern, w in weights.items() if _matches_any(feature, [pattern])), 1.0)


def _column_values(X: pd.DataFrame, column: str, who: str) -> np.ndarray:
    try:
        return X[column].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"{who}: column {column!r} holds non-numeric values (dtype {X[column].dtype}); "
            "personas cluster numeric features only, so drop it from models.personas.features"
        ) from None


def _raw_values(X: pd.DataFrame, features: Sequence[str], who: str) -> np.ndarray:
    """Returns the float values of each feature (ratios computed, a zero denominator giving NaN, +-inf as NaN)."""
    out = np.empty((len(X), len(features)))
    for j, name in enumerate(features):
        parts = _ratio_parts(name)
        if parts is None:
            out[:, j] = _column_values(X, name, who)
        else:
            numerator, denominator = (_column_values(X, p, who) for p in parts)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.where(denominator != 0, numerator / denominator, np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


_EVENTS_WINDOW = re.compile(r"^usage__events_\d+d$")


def feature_label(name: str) -> str:
    """Returns a short reader's label of a feature: 'benefits__topic_promo_share' -> 'promo share'."""
    parts = _ratio_parts(name)
    if parts is not None:
        numerator, denominator = parts
        per = "event" if _EVENTS_WINDOW.match(denominator) else feature_label(denominator)
        return f"{feature_label(numerator)} per {per}"
    base = name.split("__", 1)[-1]
    topic = re.fullmatch(r"topic_(.+)_share", base)
    if topic:
        base = f"{topic.group(1)}_share"
    daypart = re.fullmatch(r"share_(.+)", base)
    if daypart:
        base = f"{daypart.group(1)}_share"
    return base.replace("_", " ")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class PersonasConfig(BaseModel):
    """Settings of the persona model (params.yaml: models.personas)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    algorithm: Literal["kmeans", "gmm"] = Field(
        "kmeans",
        description="kmeans: k-means (n_init restarts), k chosen by silhouette; gmm: a diagonal Gaussian "
        "mixture, k chosen by BIC, whose posteriors are the persona confidences.",
    )
    k: int | None = Field(
        None, ge=2, description="Fixed number of personas; empty: chosen within k_range. Overrides k_range when set."
    )
    k_range: list[int] = Field(
        default_factory=lambda: [4, 9],
        description="[min, max] number of personas tried when k is empty (silhouette for kmeans, BIC for gmm).",
    )
    sample_size: int = Field(
        20_000,
        ge=10,
        description="Customers (a seeded random sample) on which each candidate k is fitted and scored; "
        "the silhouette costs O(n^2). The chosen k is then fitted on every customer.",
    )
    features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        description="Feature columns clustered on: exact names, globs (benefits__topic_*_share; a prefix "
        "is prefix*), or ratios numerator/denominator of two columns. Ratios and shares only, not raw "
        "counts, so heavy users do not form a persona of their own. Entries absent from the data are "
        "skipped and reported.",
    )
    log_features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOG_FEATURES),
        description="Features (names, globs or ratios as in `features`) put through sign(x)*log(1+|x|) "
        "before standardising: long-tailed ratios and durations.",
    )
    feature_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FEATURE_WEIGHTS),
        description="Feature (name, glob or ratio as in `features`) -> multiplier of its z-score in the "
        "clustering distance; unlisted features weigh 1, 0 drops a feature from the distance while "
        "keeping it in the profiles. The first matching entry wins.",
    )
    core_feature: str | None = Field(
        DEFAULT_CORE_FEATURE,
        description="Column counting each customer's events (how much behaviour the ratios rest on). "
        "Customers below core_min_events in it do not shape the personas (scaling, k choice, centroids); "
        "they are assigned to the nearest persona afterwards like any scored customer. Empty, or absent "
        "from the data: every customer shapes them.",
    )
    core_min_events: float = Field(
        DEFAULT_CORE_MIN_EVENTS,
        ge=0,
        description="Fewest core_feature events for a customer to shape the personas: the shares and "
        "per-event ratios of a customer with a handful of events are mostly noise, which blurs the "
        "centroids and the k choice. 0: everyone. When fewer than 10 customers per persona tried reach "
        "it, everyone shapes them.",
    )
    min_cluster_share: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="A candidate k whose smallest persona holds less than this share of the sample is "
        "not chosen (a persona that small is not actionable).",
    )
    n_init: int = Field(10, ge=1, description="Restarts of k-means / the Gaussian mixture; the best fit is kept.")
    n_threads: int | None = Field(
        None,
        ge=1,
        description="Threads the clustering may use (OpenMP / BLAS); empty: the libraries' default, every "
        "core. On a machine shared with other jobs 1 avoids oversubscription, which slows k-means a lot.",
    )
    bootstrap_resamples: int = Field(
        DEFAULT_BOOTSTRAP_RESAMPLES, ge=1, description="Refits on random subsamples used to measure stability."
    )
    bootstrap_sample_share: float = Field(
        DEFAULT_BOOTSTRAP_SHARE,
        gt=0,
        lt=1,
        description="Share of customers drawn (without replacement) into each stability resample.",
    )
    signatures: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {p: dict(s) for p, s in DEFAULT_SIGNATURES.items()},
        description="Persona -> {feature -> weight}: the expected direction (sign) and strength of each "
        "feature's z-score for that persona. A cluster takes a persona's name when the cosine similarity "
        "of its centroid z-profile with the signature is at least match_threshold (one-to-one). "
        "Signature features need not be clustered on; they are profiled either way.",
    )
    match_threshold: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="Minimum cosine similarity between a cluster's centroid z-profile and a signature "
        "(or a previous persona's profile) for the cluster to take that name; otherwise it gets a "
        "descriptive name from its two most distinctive features.",
    )

    signature_min_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A signature can name a cluster only when the features present and informative in the "
        "data carry at least this share of its total |weight|: on data without most of a persona's signals "
        "(e.g. transactions only) one leftover feature would otherwise decide the name.",
    )

    @field_validator("k_range")
    @classmethod
    def _k_range(cls, value: list[int]) -> list[int]:
        if len(value) != 2 or value[0] < 2 or value[0] > value[1]:
            raise ValueError(f"{_KEY}.k_range is {value}; give [min, max] with 2 <= min <= max, e.g. [4, 9]")
        return value

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                f"{_KEY}.features is empty; list feature columns or globs, e.g. ['benefits__topic_*_share']"
            )
        return [_check_expression(e, f"{_KEY}.features", allow_glob=True) for e in value]

    @field_validator("core_feature")
    @classmethod
    def _core_feature(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or _is_glob(value) or _ratio_parts(value) is not None:
            raise ValueError(
                f"{_KEY}.core_feature is {value!r}; name one numeric column counting events, e.g. {EVENTS_365D!r}, "
                "or leave it empty to let every customer shape the personas"
            )
        return value

    @field_validator("log_features")
    @classmethod
    def _log_features(cls, value: list[str]) -> list[str]:
        return [_check_expression(e, f"{_KEY}.log_features", allow_glob=True) for e in value]

    @field_validator("feature_weights")
    @classmethod
    def _feature_weights(cls, value: dict[str, float]) -> dict[str, float]:
        for feature, weight in value.items():
            _check_expression(feature, f"{_KEY}.feature_weights", allow_glob=True)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{_KEY}.feature_weights.{feature} is {weight}; give a finite weight >= 0")
        return value

    @field_validator("signatures")
    @classmethod
    def _signatures(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for persona, weights in value.items():
            key = f"{_KEY}.signatures.{persona}"
            if not persona.strip():
                raise ValueError(f"{_KEY}.signatures has an empty persona name; name each persona")
            if not weights:
                raise ValueError(f"{key} lists no feature; give {{feature: weight}} or drop the persona")
            for feature, weight in weights.items():
                _check_expression(feature, key, allow_glob=False)
                if not math.isfinite(weight):
                    raise ValueError(f"{key}.{feature} is {weight}; give a finite weight (sign = expected direction)")
            if all(w == 0 for w in weights.values()):
                raise ValueError(f"{key} has only zero weights; give at least one non-zero weight")
        return value

    @model_validator(mode="after")
    def _sample_fits_k(self) -> Self:
        largest = self.k if self.k is not None else self.k_range[1]
        if self.sample_size <= largest:
            raise ValueError(
                f"{_KEY}.sample_size ({self.sample_size}) must exceed the largest k tried ({largest}); "
                "raise sample_size or lower k / k_range"
            )
        return self


_ESTIMATOR_KEYS: tuple[str, ...] = (
    "algorithm",
    "k",
    "k_range",
    "sample_size",
    "features",
    "log_features",
    "feature_weights",
    "core_feature",
    "core_min_events",
    "min_cluster_share",
    "n_init",
    "n_threads",
    "signatures",
    "match_threshold",
    "signature_min_coverage",
)


# --------------------------------------------------------------------------------------------
# Naming helpers
# --------------------------------------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Returns the cosine similarity of every row of a with every row of b (0 where a row is all zero)."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = (a @ b.T) / (na * nb.T)
    return np.nan_to_num(sim, nan=0.0)


_LOGGED: set[str] = set()


def _log_once(message: str, *args: Any) -> None:
    """Logs a message once per process: bootstrap refits would otherwise repeat it for every resample."""
    text = message % args
    if text not in _LOGGED:
        _LOGGED.add(text)
        log.info(text)


def _coverage(signatures: Mapping[str, Mapping[str, float]], features: list[str],
              informative: np.ndarray) -> dict[str, float]:
    """Returns per signature the share of its total |weight| on features present and varying in the data."""
    usable = {f for f, ok in zip(features, informative) if ok}
    out = {}
    for persona, weights in signatures.items():
        total = sum(abs(w) for w in weights.values())
        out[persona] = sum(abs(w) for f, w in weights.items() if f in usable) / total if total > 0 else 0.0
    return out


def _assign(similarity: np.ndarray, threshold: float) -> dict[int, int]:
    """Returns row -> column of a one-to-one assignment maximising similarity, keeping pairs >= threshold.

    Pairs below the threshold are priced far below any real similarity, so the Hungarian algorithm
    first maximises the number of qualifying pairs and only then their total similarity.
    """
    if similarity.size == 0:
        return {}
    penalty = -2.0 * (sum(similarity.shape) + 1)
    priced = np.where(similarity >= threshold, similarity, penalty)
    rows, cols = linear_sum_assignment(priced, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols) if similarity[r, c] >= threshold}


def _descriptive_name(profile: pd.Series) -> str:
    """Returns 'high X, low Y' from the two features of the profile with the largest |z|."""
    magnitude = profile.abs()
    if magnitude.empty or magnitude.max() < 1e-9:
        return "typical profile"
    top = magnitude.sort_values(ascending=False, kind="stable").index[:2]
    return ", ".join(f"{'high' if profile[f] > 0 else 'low'} {feature_label(str(f))}" for f in top)


def _dedupe(name: str, used: set[str]) -> str:
    """Returns name, or name with the smallest ' (n)' suffix (n >= 2) not in used."""
    if name not in used:
        return name
    n = 2
    while f"{name} ({n})" in used:
        n += 1
    return f"{name} ({n})"


def _profile_matrix(previous: Any) -> pd.DataFrame:
    """Returns centroid z-profiles by persona name from a PersonaModel, a profiles_ frame or persona_profiles output."""
    if isinstance(previous, PersonaModel):
        check_is_fitted(previous)
        return previous.profiles_
    if not isinstance(previous, pd.DataFrame):
        raise TypeError(
            f"previous is a {type(previous).__name__}; pass the previous PersonaModel, its profiles_ "
            "frame, or persona_profiles() output (persona rows, z__<feature> columns)"
        )
    z_columns = [c for c in previous.columns if str(c).startswith(Z_PREFIX)]
    frame = previous[z_columns].rename(columns=lambda c: str(c)[len(Z_PREFIX):]) if z_columns else previous
    if not frame.index.is_unique:
        raise ValueError("previous profiles have repeated persona names in the index; keep one row per persona")
    return frame.apply(pd.to_numeric, errors="coerce").astype("float64")


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


class PersonaModel(BaseEstimator):
    """Clusters customers on behaviour ratios and names each cluster after the seed persona it resembles.

    Steps in `fit`, on the rows sorted by X's index (customer ids, which must be unique), so the
    result does not depend on row order:

    1. Features: `features` entries (names, globs, ratios 'a/b') resolved against X's columns:
       `features_` are clustered on, `missing_features_` lists the entries that selected nothing.
       The features named in `signatures` are computed too (`profile_features_`, the clustered ones
       first) so clusters can be named and profiled on them without being clustered on them.
    2. Core: the customers with at least `core_min_events` in `core_feature` (default 50 events in
       the last 365 days) shape the personas (steps 3 to 5); `core_size_` and `core_share_` say how
       many. The shares and per-event ratios of a customer with a handful of events are mostly
       sampling noise, and clustering them lets that noise place the centroids and pick k. Every
       customer is still assigned (step 5). Without the column, with the threshold 0, or when fewer
       than 10 customers per largest k tried reach it, the core is everyone.
    3. Missing values: a feature whose name ends in `_share` is a share of events of some kind and
       is NaN only when the customer has none of those events; it is filled with 0 (no observed
       affinity), not the median, which would invent an affinity for customers who never showed it.
       Every other feature is filled with the core's median. `fill_` holds the values.
    4. Scaling: `log_features` go through sign(x)*log(1+|x|); then every feature is standardised
       with the core's mean and standard deviation (`center_`, `scale_`; a constant feature gets
       scale 1, hence z = 0). Median/IQR scaling is not used because most shares are zero-inflated:
       their IQR is 0. The clustering distance multiplies each z-score by its `feature_weights`
       entry (`weights_`; default 0.5 for timing__*, 1 otherwise).
    5. Clustering and k: k-means (`n_init` restarts, `random_state`) or a diagonal Gaussian mixture,
       on the core. With `k` unset, every k in `k_range` is fitted on a seeded sample of at most
       `sample_size` core rows and scored (`selection_scores_`: silhouette for kmeans, higher is
       better; BIC for gmm, lower is better); a k leaving a cluster below `min_cluster_share` of the
       sample, or fewer distinct clusters than k, is passed over (`rejected_k_`). Ties go to the
       smaller k. The chosen `k_` is then fitted on the whole core, and every row is assigned as
       `predict` does (see Assignment). Cluster ids are ordered by size (`cluster_sizes_`, every
       row), largest first.
    6. Names: `cluster_profiles_` holds each cluster's centroid z-profile (mean z-score of its core
       members over `profile_features_`, i.e. standard deviations from the core's mean).
       `signature_similarity_` is the cosine similarity of each profile with each signature
       vector over the profile features (a signature feature absent from X, or constant in it,
       is left out: it cannot tell clusters apart). A
       one-to-one assignment (Hungarian) maximising the number, then the total, of similarities
       >= `match_threshold` gives seed names, so two clusters never share one. Other clusters are
       named by their two most distinctive features ('high wishlist adds per event, low evening
       share'); a repeated name gets ' (2)', ' (3)' in cluster id order. `names_` maps cluster id
       to name, `profiles_` is `cluster_profiles_` indexed by name.
    7. `previous` (a previous PersonaModel or its profiles_): see `match_to_previous`;
       `previous_matches_` maps the clusters that took a previous name to it.

    Assignment and confidence: only a row's observed clustering features count (a feature that is
    NaN before the fill, e.g. the discounted-purchase share of someone who never bought, says
    nothing about the persona and is left out rather than filled). For gmm the posterior of each
    component from the diagonal Gaussians over the observed features. For kmeans the posterior of
    the isotropic Gaussian mixture k-means is the hard limit of, with equal weights and the shared
    per-dimension variance `variance_` = inertia / (core rows x features) of the final fit:
    p_c proportional to exp(-||z - centroid_c||^2 / (2 variance_)) over the observed features. Its
    argmax is the nearest centroid. `confidence(X)` is the probability of the assigned persona.
    """

    def __init__(
        self,
        algorithm: Literal["kmeans", "gmm"] = "kmeans",
        k: int | None = None,
        k_range: Sequence[int] = (4, 9),
        sample_size: int = 20_000,
        features: Sequence[str] | None = None,
        log_features: Sequence[str] | None = None,
        feature_weights: Mapping[str, float] | None = None,
        core_feature: str | None = DEFAULT_CORE_FEATURE,
        core_min_events: float = DEFAULT_CORE_MIN_EVENTS,
        min_cluster_share: float = 0.02,
        n_init: int = 10,
        n_threads: int | None = None,
        signatures: Mapping[str, Mapping[str, float]] | None = None,
        match_threshold: float = 0.5,
        signature_min_coverage: float = 0.5,
        random_state: int | None = 0,
    ) -> None:
        self.algorithm = algorithm
        self.k = k
        self.k_range = k_range
        self.sample_size = sample_size
        self.features = features
        self.log_features = log_features
        self.feature_weights = feature_weights
        self.core_feature = core_feature
        self.core_min_events = core_min_events
        self.min_cluster_share = min_cluster_share
        self.n_init = n_init
        self.n_threads = n_threads
        self.signatures = signatures
        self.match_threshold = match_threshold
        self.signature_min_coverage = signature_min_coverage
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model pickled before the core existed was shaped by every customer.
        if "core_min_events" not in state:
            state = {**state, "core_feature": None, "core_min_events": 0.0}
            if "k_" in state:
                state.setdefault("core_size_", int(state["cluster_sizes_"].sum()))
                state.setdefault("core_share_", 1.0)
        # Before signature coverage was checked, any signature could name a cluster.
        state = {"signature_min_coverage": 0.0, **state}
        super().__setstate__(state)

    @classmethod
    def from_config(cls, config: PersonasConfig, random_state: int | None = 0) -> PersonaModel:
        """Returns an unfitted model with the config's settings and the run's seed."""
        return cls(**{key: copy.deepcopy(getattr(config, key)) for key in _ESTIMATOR_KEYS}, random_state=random_state)

    # ---------------------------------------------------------------- validation

    def _settings(self) -> PersonasConfig:
        """Returns the hyperparameters validated as a PersonasConfig; raises ValueError naming the bad one."""
        who = type(self).__name__
        if not (self.random_state is None or isinstance(self.random_state, numbers.Integral)):
            raise ValueError(f"{who}: random_state={self.random_state!r}; give an integer seed or None")
        values: dict[str, Any] = {}
        for key in _ESTIMATOR_KEYS:
            value = getattr(self, key)
            if value is None and key in ("features", "log_features", "feature_weights", "signatures"):
                continue  # None means the documented defaults
            if key == "k_range" and isinstance(value, tuple):
                value = list(value)
            values[key] = value
        try:
            return PersonasConfig(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"{who}: invalid hyperparameter(s): {problems}") from None

    def _frame(self, X: Any) -> pd.DataFrame:
        who = type(self).__name__
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{who}: X is a {type(X).__name__}; pass the feature frame as a pandas DataFrame "
                "indexed by customer_id (features are selected by column name)"
            )
        if X.columns.has_duplicates:
            repeated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise ValueError(f"{who}: X has repeated columns {repeated}; keep one of each")
        return X

    # ---------------------------------------------------------------- fitting

    def fit(self, X: pd.DataFrame, y: Any = None, previous: Any = None) -> PersonaModel:
        """Fits the clusters on X (y is ignored), chooses k, names the clusters; returns self.

        previous: the previous champion (a fitted PersonaModel, its profiles_, or persona_profiles
        output); clusters resembling one of its personas take that persona's name.
        """
        settings = self._settings()
        who = type(self).__name__
        X = self._frame(X)
        if not X.index.is_unique:
            repeated = X.index[X.index.duplicated()].unique()[:5].tolist()
            raise ValueError(
                f"{who}: X has repeated index values {repeated}; the index must be unique customer ids "
                "(one row per customer)"
            )
        columns = [str(c) for c in X.columns]
        self.features_, self.missing_features_ = resolve_features(settings.features, columns)
        if not self.features_:
            raise ValueError(
                f"{who}: none of the configured features is in X: {settings.features} "
                f"(X has {len(columns)} column(s), e.g. {columns[:5]}). Build the benefits, timing and usage "
                f"feature families, or set {_KEY}.features to columns of your feature frame."
            )
        if self.missing_features_:
            _log_once("personas: configured features absent from X, clustering without them: %s",
                      self.missing_features_)
        signature_features = list(dict.fromkeys(f for s in settings.signatures.values() for f in s))
        present_signature, self.missing_signature_features_ = resolve_features(signature_features, columns)
        self.profile_features_ = self.features_ + [f for f in present_signature if f not in self.features_]
        self.signatures_ = pd.DataFrame(
            [[settings.signatures[p].get(f, 0.0) for f in self.profile_features_] for p in settings.signatures],
            index=pd.Index(list(settings.signatures), name="persona"),
            columns=self.profile_features_,
            dtype="float64",
        )

        data = X.iloc[np.argsort(X.index.to_numpy(), kind="stable")] if len(X) else X
        n = len(data)
        largest = settings.k if settings.k is not None else settings.k_range[1]
        if n <= largest:
            raise ValueError(
                f"{who}: X has {n} row(s); clustering into up to {largest} personas needs more rows than "
                f"that. Use more customers or lower {_KEY}.k / k_range."
            )

        core = self._core(data, settings, largest)
        self.core_size_ = int(core.sum())
        self.core_share_ = self.core_size_ / n
        raw = _raw_values(data, self.profile_features_, who)
        is_share = np.array([f.endswith("_share") for f in self.profile_features_])
        medians = np.full(raw.shape[1], np.nan)
        observed = ~np.isnan(raw[core]).all(axis=0)
        medians[observed] = np.nanmedian(raw[core][:, observed], axis=0)
        self.fill_ = pd.Series(
            np.where(is_share, 0.0, np.nan_to_num(medians, nan=0.0)), index=self.profile_features_, dtype="float64"
        )
        self.log_features_ = [f for f in self.profile_features_ if _matches_any(f, settings.log_features)]
        values = self._transform_raw(raw)
        center = values[core].mean(axis=0)
        scale = values[core].std(axis=0)
        informative = scale > _TINY
        scale = np.where(informative, scale, 1.0)
        self.center_ = pd.Series(center, index=self.profile_features_, dtype="float64")
        self.scale_ = pd.Series(scale, index=self.profile_features_, dtype="float64")
        z = (values - center) / scale
        n_cluster = len(self.features_)
        self.weights_ = pd.Series(
            [_first_weight(f, settings.feature_weights) for f in self.features_], index=self.features_, dtype="float64"
        )
        if not (self.weights_ > 0).any():
            raise ValueError(
                f"{who}: every clustered feature has weight 0 in {_KEY}.feature_weights "
                f"({settings.feature_weights}); give at least one feature a weight > 0"
            )
        design = z[:, :n_cluster] * self.weights_.to_numpy()
        observed = ~np.isnan(raw[:, :n_cluster])

        with threadpool_limits(limits=settings.n_threads):
            self.k_, self.selection_scores_, self.rejected_k_, reusable = self._choose_k(design[core], settings)
            estimator = reusable if reusable is not None else self._estimator(self.k_, settings).fit(design[core])
        self.estimator_ = estimator
        if settings.algorithm == "kmeans":
            self.variance_ = max(float(estimator.inertia_) / (int(core.sum()) * n_cluster), _TINY)
        responsibilities = self._component_proba(design, observed)
        raw_labels = responsibilities.argmax(axis=1)
        sizes = np.bincount(raw_labels, minlength=self.k_)
        raw_profiles = np.zeros((self.k_, z.shape[1]))
        for c in range(self.k_):
            members = (raw_labels == c) & core
            if members.any():
                raw_profiles[c] = z[members].mean(axis=0)
            else:
                # A cluster that wins no core row still has soft members: their weighted mean.
                weight = responsibilities[core, c]
                raw_profiles[c] = weight @ z[core] / max(weight.sum(), _TINY)
        # Cluster ids by size, largest first; equal sizes by centroid, so ids never depend on the
        # solver's arbitrary label order.
        order = sorted(range(self.k_), key=lambda c: (-int(sizes[c]), tuple(np.round(raw_profiles[c], 12))))
        self.cluster_order_ = np.array(order, dtype=int)
        self.cluster_sizes_ = pd.Series(sizes[order], index=pd.RangeIndex(self.k_, name="cluster"), name="size")
        self.cluster_profiles_ = pd.DataFrame(
            raw_profiles[order], index=pd.RangeIndex(self.k_, name="cluster"), columns=self.profile_features_
        )

        # A signature feature that is constant in the data (z = 0 everywhere: no customer shows the
        # behaviour, e.g. an untagged topic) cannot tell personas apart; it is left out of the
        # signature rather than counted as evidence against every cluster.
        similarity = _cosine(self.cluster_profiles_.to_numpy(), self.signatures_.to_numpy() * informative)
        self.signature_coverage_ = _coverage(settings.signatures, self.profile_features_, informative)
        too_thin = [p for p, share in self.signature_coverage_.items() if share < settings.signature_min_coverage]
        if too_thin:
            _log_once("personas: signatures %s cannot name clusters: under %.0f%% of their weight is in features "
                     "present and varying in the data (personas.signature_min_coverage)", too_thin,
                     100 * settings.signature_min_coverage)
            similarity[:, [list(self.signatures_.index).index(p) for p in too_thin]] = -1.0
        self.signature_similarity_ = pd.DataFrame(
            similarity, index=self.cluster_profiles_.index, columns=self.signatures_.index
        )
        matched = _assign(similarity, settings.match_threshold)
        seed_names = {c: str(self.signatures_.index[p]) for c, p in matched.items()}
        self.match_threshold_ = settings.match_threshold
        self.previous_matches_: dict[int, str] = {}
        self._set_names(seed_names)
        if previous is not None:
            self._rename_to(_profile_matrix(previous), settings.match_threshold)
        return self

    def _core(self, data: pd.DataFrame, settings: PersonasConfig, largest: int) -> np.ndarray:
        """Returns the rows that shape the personas: enough core_feature events, else every row."""
        everyone = np.ones(len(data), dtype=bool)
        column = settings.core_feature
        if column is None or settings.core_min_events <= 0:
            return everyone
        if column not in data.columns:
            log.info("personas: core_feature %s is not in X; every customer shapes the personas", column)
            return everyone
        events = _column_values(data, column, type(self).__name__)
        core = np.nan_to_num(events, nan=0.0) >= settings.core_min_events
        if core.sum() < _CORE_ROWS_PER_CLUSTER * largest:
            log.info(
                "personas: only %d customers have %s >= %s (fewer than %d per persona tried); every customer "
                "shapes the personas", int(core.sum()), column, settings.core_min_events, _CORE_ROWS_PER_CLUSTER,
            )
            return everyone
        return core

    def _estimator(self, k: int, settings: PersonasConfig) -> KMeans | GaussianMixture:
        if settings.algorithm == "kmeans":
            return KMeans(n_clusters=k, n_init=settings.n_init, random_state=self.random_state)
        return GaussianMixture(
            n_components=k,
            covariance_type="diag",
            reg_covar=_GMM_REG_COVAR,
            n_init=settings.n_init,
            random_state=self.random_state,
        )

    def _choose_k(
        self, design: np.ndarray, settings: PersonasConfig
    ) -> tuple[int, dict[int, float], list[int], KMeans | GaussianMixture | None]:
        """Returns the chosen k, the score per k, the k passed over, and the chosen fit when it used every row."""
        n = len(design)
        low, high = settings.k_range
        candidates = [settings.k] if settings.k is not None else list(range(low, high + 1))
        whole = n <= settings.sample_size
        if whole:
            sample = design
        else:
            rng = np.random.default_rng(self.random_state)
            sample = design[np.sort(rng.choice(n, size=settings.sample_size, replace=False))]
        scores: dict[int, float] = {}
        rejected: list[int] = []
        fits: dict[int, KMeans | GaussianMixture] = {}
        for k in candidates:
            with warnings.catch_warnings():
                # Fewer distinct clusters than k is detected below and the k passed over.
                warnings.simplefilter("ignore", ConvergenceWarning)
                estimator = self._estimator(k, settings).fit(sample)
            labels = estimator.predict(sample)
            counts = np.bincount(labels, minlength=k)
            distinct = int((counts > 0).sum())
            if settings.algorithm == "kmeans":
                score = float(silhouette_score(sample, labels)) if 2 <= distinct < len(sample) else math.nan
            else:
                score = float(estimator.bic(sample))
            scores[k] = score
            fits[k] = estimator
            if distinct < k or counts.min() < settings.min_cluster_share * len(sample) or not math.isfinite(score):
                rejected.append(k)
        eligible = [k for k in candidates if k not in rejected]
        if eligible:
            sign = 1.0 if settings.algorithm == "kmeans" else -1.0
            chosen = max(eligible, key=lambda k: (sign * scores[k], -k))
        else:
            chosen = candidates[0]
            log.warning(
                "personas: every k in %s leaves a cluster below min_cluster_share=%s or fewer distinct "
                "clusters than k; using k=%d. Lower %s.k_range or min_cluster_share.",
                candidates, settings.min_cluster_share, chosen, _KEY,
            )
        return chosen, scores, rejected, fits[chosen] if whole else None

    def _transform_raw(self, raw: np.ndarray) -> np.ndarray:
        values = np.where(np.isnan(raw), self.fill_.to_numpy()[None, :], raw)
        logged = np.isin(self.profile_features_, self.log_features_)
        values[:, logged] = np.sign(values[:, logged]) * np.log1p(np.abs(values[:, logged]))
        return values

    def _set_names(self, names: Mapping[int, str]) -> None:
        """Stores names_ from the given cluster -> name (others get a descriptive name), with classes_ and profiles_."""
        used = set(names.values())
        final: dict[int, str] = {}
        for c in range(self.k_):
            if c in names:
                final[c] = names[c]
            else:
                final[c] = _dedupe(_descriptive_name(self.cluster_profiles_.loc[c]), used)
                used.add(final[c])
        self.names_ = final
        self.classes_ = np.array([final[c] for c in range(self.k_)], dtype=object)
        self.profiles_ = self.cluster_profiles_.set_axis(pd.Index(self.classes_, name="persona"), axis=0)

    def _rename_to(self, previous: pd.DataFrame, threshold: float) -> None:
        """Renames clusters resembling a previous persona's z-profile after it (Hungarian, >= threshold)."""
        common = [f for f in self.profile_features_ if f in set(map(str, previous.columns))]
        if not common:
            log.warning("personas: the previous profiles share no feature with this model; names kept")
            self.previous_matches_ = {}
            return
        prev = previous.rename(columns=str)[common].fillna(0.0)
        similarity = _cosine(self.cluster_profiles_[common].to_numpy(), prev.to_numpy())
        matched = _assign(similarity, threshold)
        taken = {c: str(prev.index[p]) for c, p in matched.items()}
        taken_names = set(taken.values())
        names: dict[int, str] = dict(taken)
        for c, own in self.names_.items():
            # A cluster matching no previous persona keeps its own name unless a matched one now holds it.
            if c not in taken and own not in taken_names:
                names[c] = own
        self.previous_matches_ = taken
        self._set_names(names)

    # ---------------------------------------------------------------- scoring

    def _standardised(self, X: pd.DataFrame) -> np.ndarray:
        """Returns the z-scores of every profile feature (fit-time fill, log and scaling), in X's row order."""
        X = self._frame(X)
        needed = {p for f in self.profile_features_ for p in (_ratio_parts(f) or (f,))}
        absent = sorted(needed - set(map(str, X.columns)))
        if absent:
            raise ValueError(
                f"{type(self).__name__}: X lacks column(s) {absent} the model was fitted with; "
                "score a feature frame built with the same feature families and settings"
            )
        values = self._transform_raw(_raw_values(X, self.profile_features_, type(self).__name__))
        return (values - self.center_.to_numpy()) / self.scale_.to_numpy()

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Returns the standardised clustering features (z-scores against the fit-time core), indexed like X."""
        check_is_fitted(self)
        z = self._standardised(X)[:, : len(self.features_)]
        return pd.DataFrame(z, index=X.index, columns=self.features_)

    def _component_proba(self, design: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Returns each row's probability of each fitted component (the estimator's own order).

        Only the row's observed features count: a feature the customer has no data for (NaN before
        the fill, e.g. the discounted-purchase share of someone who never bought) says nothing about
        which persona they are, so it is left out of the distance or likelihood instead of pulling
        the row towards clusters whose members happen to sit at the fill value.
        """
        mask = observed.astype(float)
        x = np.where(observed, design, 0.0)
        # sum_j mask_j (x_j - c_j)^2 / v_j expanded into (rows x clusters) products, so memory stays
        # O(rows x clusters) rather than O(rows x clusters x features).
        if isinstance(self.estimator_, GaussianMixture):
            means, variances = self.estimator_.means_, self.estimator_.covariances_  # diagonal: (k, features)
            inverse = 1.0 / variances
            constant = means**2 * inverse + np.log(2.0 * np.pi * variances)
            terms = (x**2) @ inverse.T - 2.0 * x @ (means * inverse).T + mask @ constant.T
            logits = -0.5 * terms + np.log(self.estimator_.weights_)[None, :]
        else:
            centers = self.estimator_.cluster_centers_
            squared = (x**2).sum(axis=1, keepdims=True) - 2.0 * x @ centers.T + mask @ (centers**2).T
            logits = -np.maximum(squared, 0.0) / (2.0 * self.variance_)
        logits -= logits.max(axis=1, keepdims=True)  # stable softmax: shifting keeps the ratios
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Returns each row's probability of each persona, columns in classes_ (cluster id) order."""
        check_is_fitted(self)
        X = self._frame(X)
        z = self._standardised(X)[:, : len(self.features_)]
        observed = ~np.isnan(_raw_values(X, self.features_, type(self).__name__))
        proba = self._component_proba(z * self.weights_.to_numpy(), observed)
        return proba[:, self.cluster_order_]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Returns the persona name of each row, in X's row order."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def confidence(self, X: pd.DataFrame) -> pd.Series:
        """Returns the probability of each row's assigned persona (see the class docstring), indexed like X."""
        check_is_fitted(self)
        proba = self.predict_proba(X)
        return pd.Series(proba.max(axis=1), index=X.index, name="persona_confidence")


# --------------------------------------------------------------------------------------------
# Retrain stability, profiles and bootstrap stability
# --------------------------------------------------------------------------------------------


def match_to_previous(model: PersonaModel, previous_profiles: Any, threshold: float | None = None) -> PersonaModel:
    """Returns a copy of a fitted model whose clusters carry the names of the previous personas they resemble.

    previous_profiles: centroid z-profiles by persona name (the previous model's profiles_, the
    previous PersonaModel itself, or persona_profiles() output with z__<feature> columns). The
    cosine similarity of every new cluster profile with every previous profile, over the features
    both have, feeds a one-to-one Hungarian assignment; a pair at or above threshold (default the
    model's match_threshold) gives the cluster the previous name, whatever its signature match was,
    so names stay stable across retrains. A cluster matching no previous persona keeps its own
    name, unless a matched cluster now holds that name; then it gets its descriptive name.
    The input model is not modified.
    """
    check_is_fitted(model)
    renamed = copy.deepcopy(model)
    renamed._rename_to(
        _profile_matrix(previous_profiles), model.match_threshold_ if threshold is None else float(threshold)
    )
    return renamed


def persona_profiles(
    model: PersonaModel,
    X: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    revenue: pd.Series | None = None,
    top: int = TOP_FEATURES,
) -> pd.DataFrame:
    """Returns one row per persona (classes_ order) describing who is in it and how they behave.

    Columns: size and share of X's customers; with revenue (a Series by customer id; customers
    without an entry count 0) revenue and revenue_share (persona revenue / total, NaN when the
    total is 0); with outcomes (a frame by customer id with boolean `purchase` and/or `churn`, e.g.
    features.labels.make_labels) purchase_rate and churn_rate, each the mean over the persona's
    customers whose label is known (churn is NA for customers not eligible to churn, and they are
    left out); top_features, the `top` profile features with the largest |z| as text
    ("promo share +1.8σ, coupon uses per purchase +1.2σ"); then z__<feature>: the mean z-score of
    the persona's customers in X, against the core population the model was fitted on (see PersonaModel).
    """
    check_is_fitted(model)
    names = model.predict(X)
    z = model._standardised(X)
    index = pd.Index(model.classes_, name="persona")
    out = pd.DataFrame(index=index)
    members = {p: names == p for p in model.classes_}
    out["size"] = [int(members[p].sum()) for p in model.classes_]
    out["share"] = out["size"] / len(X) if len(X) else math.nan
    if revenue is not None:
        money = pd.to_numeric(revenue.reindex(X.index), errors="coerce").fillna(0.0).to_numpy(dtype="float64")
        out["revenue"] = [float(money[members[p]].sum()) for p in model.classes_]
        total = float(money.sum())
        out["revenue_share"] = out["revenue"] / total if total != 0 else math.nan
    if outcomes is not None:
        known = [c for c in ("purchase", "churn") if c in outcomes.columns]
        if not known:
            raise ValueError(
                f"persona_profiles: outcomes has columns {list(outcomes.columns)} but neither 'purchase' nor "
                "'churn'; pass features.labels.make_labels output or rename the label columns"
            )
        for column in known:
            labels = outcomes[column].reindex(X.index).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            rates = []
            for p in model.classes_:
                values = labels[members[p] & ~np.isnan(labels)]
                rates.append(float(values.mean()) if len(values) else math.nan)
            out[f"{column}_rate"] = rates
    means = np.full((len(index), z.shape[1]), np.nan)
    for i, p in enumerate(model.classes_):
        if members[p].any():
            means[i] = z[members[p]].mean(axis=0)
    zframe = pd.DataFrame(means, index=index, columns=model.profile_features_)
    out["top_features"] = [_top_text(zframe.loc[p], top) for p in model.classes_]
    return pd.concat([out, zframe.add_prefix(Z_PREFIX)], axis=1)


def _top_text(profile: pd.Series, top: int) -> str:
    if profile.isna().all():
        return ""
    order = profile.abs().sort_values(ascending=False, kind="stable").index[:top]
    return ", ".join(f"{feature_label(str(f))} {profile[f]:+.1f}σ" for f in order)


def bootstrap_stability(
    model: PersonaModel | PersonasConfig,
    X: pd.DataFrame,
    resamples: int | None = None,
    seed: int = 0,
    sample_share: float | None = None,
) -> float:
    """Returns the mean adjusted Rand index between the model's personas and refits on random subsamples.

    model: a PersonaModel (fitted on X first when unfitted) or a PersonasConfig (a model with
    random_state=seed is fitted on X). Each of `resamples` rounds draws round(sample_share x rows)
    customers without replacement (a bootstrap with replacement would duplicate customers, which
    pulls k-means centroids towards them and is not a stability signal), refits a clone with the
    same hyperparameters, k selection included, and compares its predictions on every row of X
    with the model's: 1 means the same partition, about 0 a partition unrelated to it.
    Defaults: the config's bootstrap_resamples and bootstrap_sample_share, else 10 and 0.8.
    """
    if isinstance(model, PersonasConfig):
        resamples = model.bootstrap_resamples if resamples is None else resamples
        sample_share = model.bootstrap_sample_share if sample_share is None else sample_share
        model = PersonaModel.from_config(model, random_state=seed)
    resamples = DEFAULT_BOOTSTRAP_RESAMPLES if resamples is None else resamples
    sample_share = DEFAULT_BOOTSTRAP_SHARE if sample_share is None else sample_share
    if not (isinstance(resamples, numbers.Integral) and resamples >= 1):
        raise ValueError(f"bootstrap_stability: resamples={resamples!r}; give an integer >= 1")
    if not (0 < sample_share < 1):
        raise ValueError(f"bootstrap_stability: sample_share={sample_share!r}; give a share strictly between 0 and 1")
    try:
        check_is_fitted(model)
        fitted = model
    except NotFittedError:
        fitted = clone(model).fit(X)
    reference = fitted.predict(X)
    size = round(sample_share * len(X))
    scores = []
    for r in range(resamples):
        rng = np.random.default_rng([seed, r])
        rows = np.sort(rng.choice(len(X), size=size, replace=False))
        refit = clone(fitted).fit(X.iloc[rows])
        scores.append(adjusted_rand_score(reference, refit.predict(X)))
    return float(np.mean(scores))
