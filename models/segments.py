"""Rule segments per customer: lifecycle, user status, RFM cell, usage tier, engagement, satisfaction, loyalty."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = logging.getLogger(__name__)

_KEY = "models.segments"

# Feature columns read; the names are fixed by the feature families (features.value, .timing, .usage, .engagement).
ORDERS = "value__orders_lifetime"
RECENCY = "value__recency_days"
DAYS_SINCE_LAST_PURCHASE = "timing__days_since_last_purchase"
DAYS_SINCE_LAST_EVENT = "timing__days_since_last_event"
TENURE = "timing__days_since_first_event"
GAP_MEAN = "timing__purchase_gap_mean_days"
GAP_STD = "timing__purchase_gap_std_days"
OVERDUE = "timing__overdue_ratio"
R_SCORE = "value__r_score"
F_SCORE = "value__f_score"
M_SCORE = "value__m_score"
PCTILE_PREFIX = "usage__events_pctile_"
EMAIL_CLICKS = "engagement__email_clicks"
REFERRALS = "engagement__referrals"
COMPLAINTS = "engagement__complaints"
SUPPORT_TICKETS = "engagement__support_tickets"
RETURN_RATE = "engagement__return_rate"
AVG_RATING = "engagement__avg_review_rating"
NPS = "engagement__nps"
CSAT = "engagement__csat"
SATISFACTION_COLUMNS: tuple[str, ...] = (COMPLAINTS, SUPPORT_TICKETS, RETURN_RATE, AVG_RATING, NPS, CSAT)


def active_days_column(window_days: int) -> str:
    """Returns the usage column counting active days in the last `window_days` days."""
    return f"usage__active_days_{window_days}d"


def purchases_column(window_days: int) -> str:
    """Returns the usage column counting orders in the last `window_days` days."""
    return f"usage__purchases_{window_days}d"


# Segment values, in rule order.
GHOST, LEAD, NEW, HERO, REPEAT, OCCASIONAL, PENDING, AT_RISK, LOST = (
    "Ghost",
    "Lead",
    "New",
    "Hero",
    "Repeat",
    "Occasional",
    "Pending",
    "At-risk",
    "Lost",
)
LIFECYCLE_ORDER: tuple[str, ...] = (LEAD, GHOST, LOST, NEW, AT_RISK, PENDING, HERO, REPEAT, OCCASIONAL)
DEFECTOR, FIRST_TIME, REGULAR, PROSPECT, NON_USER = "defector", "first-time buyer", "regular", "prospect", "non-user"
USER_BEHAVIOUR_ORDER: tuple[str, ...] = (DEFECTOR, FIRST_TIME, REGULAR, PROSPECT, NON_USER)
USAGE_ORDER: tuple[str, ...] = ("none", "heavy", "medium", "light")
ENGAGEMENT_ORDER: tuple[str, ...] = ("high", "medium", "low")
SATISFACTION_ORDER: tuple[str, ...] = ("low", "high", "neutral")
NO_PURCHASE_LOYALTY, NEW_LOYALTY, SWITCHER, LOYAL, UNCOMMITTED = (
    "no purchase",
    "new",
    "switcher-risk",
    "loyal",
    "uncommitted",
)
LOYALTY_ORDER: tuple[str, ...] = (NO_PURCHASE_LOYALTY, NEW_LOYALTY, SWITCHER, LOYAL, UNCOMMITTED)
SEGMENTS: tuple[str, ...] = (
    "lifecycle",
    "user_status",
    "rfm_cell",
    "usage_tier",
    "engagement_level",
    "satisfaction",
    "loyalty",
)
SCORE_RANGE = (1, 5)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class EngagedVisitorConfig(_Section):
    """What makes a customer without purchases engaged (lifecycle Lead, user status prospect)."""

    min_active_days: int = Field(
        2, ge=1, description="Active days in the last activity_window_days at or above which a non-buyer is engaged."
    )
    min_email_clicks: int = Field(
        1,
        ge=1,
        description="engagement__email_clicks at or above which a non-buyer is engaged (when the column exists).",
    )
    signup_counts: bool = Field(
        True,
        description="Whether a signup in the customers table (signup_at, else a plan) alone makes a non-buyer engaged.",
    )


class LifecycleConfig(_Section):
    """Thresholds of the lifecycle status.

    Rule order, first match wins: Lead, Ghost, Lost, New, At-risk, Pending, Hero, Repeat, Occasional.
    """

    lead_max_days_since_last_event: float = Field(
        30.0,
        gt=0,
        description="A never-buying engaged customer is a Lead while the last event is at most this many days ago.",
    )
    lost_after_days: float = Field(
        180.0, gt=0, description="A purchaser is Lost when the last purchase is more than this many days ago."
    )
    new_within_days: int = Field(
        30,
        gt=0,
        description="A purchaser is New when every order falls in the last N days (read from usage__purchases_<N>d; "
        "without that column: exactly one order, at most N days ago).",
    )
    at_risk_overdue_ratio: float = Field(
        3.0,
        gt=0,
        description="At-risk when timing__overdue_ratio (days since last purchase / mean purchase gap) is above this.",
    )
    churn_at_risk_probability: float = Field(
        0.5, ge=0, le=1, description="At-risk when a churn probability is given and is above this."
    )
    pending_overdue_ratio: float = Field(
        1.5, gt=0, description="Pending when the overdue ratio is above this and at most at_risk_overdue_ratio."
    )
    hero_min_m_score: int = Field(5, ge=1, le=5, description="Hero needs value__m_score at or above this (top value).")
    hero_min_f_score: int = Field(4, ge=1, le=5, description="Hero needs value__f_score at or above this (frequent).")
    hero_max_recency_days: float = Field(
        30.0, gt=0, description="Hero needs the last purchase at most this many days ago."
    )
    repeat_min_orders: int = Field(
        3, ge=2, description="Repeat needs at least this many orders (value__orders_lifetime)."
    )
    repeat_max_recency_days: float = Field(
        90.0, gt=0, description="Repeat needs the last purchase at most this many days ago."
    )
    repeat_max_gap_cv: float | None = Field(
        1.0,
        gt=0,
        description="Repeat needs regular buying: purchase gap std / mean at most this; "
        "empty = regularity not required.",
    )

    @model_validator(mode="after")
    def _pending_below_at_risk(self) -> LifecycleConfig:
        if self.pending_overdue_ratio >= self.at_risk_overdue_ratio:
            raise ValueError(
                f"{_KEY}.lifecycle.pending_overdue_ratio ({self.pending_overdue_ratio:g}) must be below "
                f"{_KEY}.lifecycle.at_risk_overdue_ratio ({self.at_risk_overdue_ratio:g}), "
                "otherwise no one is Pending; e.g. 1.5 and 3"
            )
        return self


DEFAULT_PLAN_STATUSES: dict[str, str] = {"trial": "trial user", "freemium": "freemium user", "paid": "paid user"}


class UserStatusConfig(_Section):
    """Thresholds of the user status.

    Rule order, first match wins: plan statuses, defector, first-time buyer, regular, prospect, non-user.
    """

    active_within_days: float = Field(
        180.0,
        gt=0,
        description="A purchaser with a purchase in the last N days is a first-time buyer or regular; "
        "with none for more than N days, a defector.",
    )
    plan_statuses: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PLAN_STATUSES),
        description="customers.plan value (case-insensitive) -> user status; these win over the behavioural "
        "statuses. Plans not listed (e.g. free) fall through to behaviour.",
    )

    @field_validator("plan_statuses")
    @classmethod
    def _clean_plans(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for plan, status in value.items():
            key = plan.strip().lower()
            if not key or not status.strip():
                raise ValueError(
                    f"{_KEY}.user_status.plan_statuses has an empty plan or status in {plan!r}: {status!r}; "
                    "write e.g. {paid: paid user}"
                )
            if key in out:
                raise ValueError(f"{_KEY}.user_status.plan_statuses lists plan {key!r} twice (case-insensitive)")
            out[key] = status.strip()
        return out


class RfmRule(_Section):
    """One named RFM cell: inclusive score ranges [min, max] on R, F and M (1-5)."""

    name: str = Field(description="Cell name, e.g. Champions.")
    r: tuple[int, int] = Field((1, 5), description="[min, max] recency score, both included.")
    f: tuple[int, int] = Field((1, 5), description="[min, max] frequency score, both included.")
    m: tuple[int, int] = Field((1, 5), description="[min, max] monetary score, both included.")

    @field_validator("r", "f", "m")
    @classmethod
    def _within_scores(cls, value: tuple[int, int]) -> tuple[int, int]:
        lo, hi = value
        if not SCORE_RANGE[0] <= lo <= hi <= SCORE_RANGE[1]:
            raise ValueError(f"score range {list(value)} must be [min, max] with 1 <= min <= max <= 5, e.g. [4, 5]")
        return value

    def matches(self, r: int, f: int, m: int | None) -> bool:
        """Tells whether the scores fall in every range (M is not checked when it is None)."""
        ok = self.r[0] <= r <= self.r[1] and self.f[0] <= f <= self.f[1]
        return ok and (m is None or self.m[0] <= m <= self.m[1])

    def describe(self) -> str:
        """Returns the ranges in words, e.g. 'R 4-5, F 4-5, M 4-5'."""

        def span(lo_hi: tuple[int, int]) -> str:
            lo, hi = lo_hi
            return "any" if (lo, hi) == SCORE_RANGE else (f"{lo}" if lo == hi else f"{lo}-{hi}")

        return f"R {span(self.r)}, F {span(self.f)}, M {span(self.m)}"


def _rule(name: str, r: tuple[int, int], f: tuple[int, int], m: tuple[int, int]) -> RfmRule:
    return RfmRule(name=name, r=r, f=f, m=m)


def default_rfm_rules() -> list[RfmRule]:
    """Returns the standard RFM cell map as an ordered, total rule list (first match wins).

    It follows the usual 11-segment map (Champions ... Lost); the published map overlaps and leaves
    cells out, so the order and the ranges here settle every one of the 125 cells: recent buyers
    (R 4-5) by frequency, middling recency (R 3) by spend, and lapsed buyers (R 1-2) by how much
    they are worth losing.
    """
    return [
        _rule("Champions", (4, 5), (4, 5), (4, 5)),
        _rule("Loyal", (3, 5), (3, 5), (1, 5)),
        _rule("Potential loyalist", (4, 5), (2, 2), (1, 5)),
        _rule("New customers", (5, 5), (1, 1), (1, 5)),
        _rule("Promising", (4, 4), (1, 1), (1, 5)),
        _rule("Need attention", (3, 3), (1, 2), (3, 5)),
        _rule("About to sleep", (3, 3), (1, 2), (1, 2)),
        _rule("Can't lose", (1, 2), (4, 5), (4, 5)),
        _rule("At risk", (1, 2), (2, 5), (2, 5)),
        _rule("Lost", (1, 1), (1, 1), (1, 5)),
        _rule("Hibernating", (1, 2), (1, 5), (1, 5)),
    ]


def all_score_cells() -> list[tuple[int, int, int]]:
    """Lists every (r, f, m) score combination, 1-5 each."""
    scores = range(SCORE_RANGE[0], SCORE_RANGE[1] + 1)
    return list(itertools.product(scores, scores, scores))


class RfmCellConfig(_Section):
    """The named RFM cells: an ordered rule list over the 1-5 scores, first match wins, covering all 125 cells."""

    rules: list[RfmRule] = Field(
        default_factory=default_rfm_rules,
        description="Ordered rules {name, r: [min, max], f: [min, max], m: [min, max]}; the first rule whose "
        "ranges hold the customer's scores names the cell. Together they must cover every (r, f, m) in 1-5.",
    )
    no_purchase_label: str = Field("No purchase", description="Cell of customers without a purchase (no scores).")

    @field_validator("rules")
    @classmethod
    def _total(cls, rules: list[RfmRule]) -> list[RfmRule]:
        if not rules:
            raise ValueError(f"{_KEY}.rfm_cell.rules is empty; give at least one rule, e.g. {{name: All}}")
        uncovered = [c for c in all_score_cells() if not any(rule.matches(*c) for rule in rules)]
        if uncovered:
            shown = ", ".join(str(c) for c in uncovered[:8]) + (" ..." if len(uncovered) > 8 else "")
            raise ValueError(
                f"{_KEY}.rfm_cell.rules leave {len(uncovered)} (r, f, m) score cell(s) without a name: {shown}; widen "
                "a rule or end the list with a catch-all {name: Other, r: [1, 5], f: [1, 5], m: [1, 5]}"
            )
        return rules


class UsageTierConfig(_Section):
    """Cuts of the usage tier on the usage percentile (rule order: none, heavy, medium, light)."""

    window_days: int | None = Field(
        None,
        gt=0,
        description="Read usage__events_pctile_<N>d and usage__events_<N>d; "
        "empty = the one percentile column in the frame.",
    )
    heavy_min_pctile: float = Field(0.8, gt=0, le=1, description="Heavy at or above this percentile (0-1).")
    medium_min_pctile: float = Field(0.4, gt=0, le=1, description="Medium at or above this percentile, below heavy.")

    @model_validator(mode="after")
    def _ordered(self) -> UsageTierConfig:
        if self.medium_min_pctile >= self.heavy_min_pctile:
            raise ValueError(
                f"{_KEY}.usage_tier.medium_min_pctile ({self.medium_min_pctile:g}) must be below "
                f"{_KEY}.usage_tier.heavy_min_pctile ({self.heavy_min_pctile:g}); e.g. 0.4 and 0.8"
            )
        return self


class EngagementSignal(_Section):
    """One input of the engagement score: its weight and the value at which it counts in full."""

    weight: float = Field(1.0, ge=0, description="Weight in the weighted mean of the present inputs.")
    saturation: float = Field(
        gt=0, description="Value at and above which the input scores 1 (it scores value / saturation below)."
    )


def _default_signals() -> dict[str, EngagementSignal]:
    return {
        "engagement__email_opens": EngagementSignal(weight=1.0, saturation=12),
        EMAIL_CLICKS: EngagementSignal(weight=1.0, saturation=4),
        "engagement__reviews": EngagementSignal(weight=1.0, saturation=2),
        REFERRALS: EngagementSignal(weight=1.0, saturation=1),
    }


class EngagementLevelConfig(_Section):
    """The engagement score and its level cuts (rule order: high, medium, low)."""

    signals: dict[str, EngagementSignal] = Field(
        default_factory=_default_signals,
        description="Engagement-family feature column -> {weight, saturation}. Only the columns present in the "
        "frame count; with none present the level is not computed.",
    )
    activity_weight: float = Field(
        1.0, ge=0, description="Weight of recent activity (usage__active_days_<activity_window_days>d) in the score."
    )
    activity_saturation_days: float = Field(8.0, gt=0, description="Active days at and above which activity scores 1.")
    high_min_score: float = Field(0.5, gt=0, le=1, description="High engagement at or above this score (0-1).")
    medium_min_score: float = Field(
        0.2, gt=0, le=1, description="Medium engagement at or above this score, below high."
    )

    @model_validator(mode="after")
    def _valid(self) -> EngagementLevelConfig:
        if not self.signals:
            raise ValueError(
                f"{_KEY}.engagement_level.signals is empty; list at least one engagement column, "
                "e.g. {engagement__email_opens: {weight: 1, saturation: 12}}"
            )
        if self.medium_min_score >= self.high_min_score:
            raise ValueError(
                f"{_KEY}.engagement_level.medium_min_score ({self.medium_min_score:g}) must be below "
                f"{_KEY}.engagement_level.high_min_score ({self.high_min_score:g}); e.g. 0.2 and 0.5"
            )
        return self


class SatisfactionConfig(_Section):
    """Thresholds of satisfaction: low when any low signal holds, else high when any high signal holds, else neutral."""

    low_min_complaints: int | None = Field(
        1, ge=1, description="Low at or above this many complaints; empty = not used."
    )
    low_min_support_tickets: int | None = Field(
        3, ge=1, description="Low at or above this many support tickets; empty = not used."
    )
    low_min_return_rate: float | None = Field(
        0.5,
        gt=0,
        description="Low at or above this engagement__return_rate (returned / bought orders); empty = not used.",
    )
    low_max_rating: float = Field(2.5, description="Low at or below this average review rating (stars).")
    high_min_rating: float = Field(4.0, description="High at or above this average review rating.")
    low_max_nps: float = Field(-50.0, ge=-100, le=100, description="Low at or below this customer NPS (-100..100).")
    high_min_nps: float = Field(50.0, ge=-100, le=100, description="High at or above this customer NPS.")
    low_max_csat: float = Field(50.0, ge=0, le=100, description="Low at or below this CSAT percent (engagement__csat).")
    high_min_csat: float = Field(80.0, ge=0, le=100, description="High at or above this CSAT percent.")

    @model_validator(mode="after")
    def _bands_apart(self) -> SatisfactionConfig:
        for name in ("rating", "nps", "csat"):
            low, high = getattr(self, f"low_max_{name}"), getattr(self, f"high_min_{name}")
            if low >= high:
                raise ValueError(
                    f"{_KEY}.satisfaction.low_max_{name} ({low:g}) must be below "
                    f"{_KEY}.satisfaction.high_min_{name} ({high:g})"
                )
        return self


class LoyaltyConfig(_Section):
    """Thresholds of loyalty (rule order: no purchase, new, switcher-risk, loyal, uncommitted)."""

    new_max_tenure_days: float = Field(
        90.0, gt=0, description="A purchaser first seen at most this many days ago is new (too early to judge)."
    )
    switcher_min_overdue_ratio: float = Field(
        2.0, gt=0, description="Switcher-risk when the overdue ratio is above this."
    )
    switcher_min_recency_days: float = Field(
        180.0, gt=0, description="Switcher-risk when the last purchase is more than this many days ago."
    )
    switcher_min_gap_cv: float = Field(
        1.0, gt=0, description="Switcher-risk when purchase gaps are irregular (std / mean above this) and the "
        "customer is past their usual gap (see switcher_gap_cv_min_overdue_ratio)."
    )
    switcher_gap_cv_min_overdue_ratio: float = Field(
        1.0, ge=0, description="Irregular gaps signal switching only above this overdue ratio: a frequent buyer "
        "who bought recently is not a switcher for buying in bursts. 0 counts irregular gaps alone."
    )
    loyal_min_orders: int = Field(3, ge=2, description="Loyal from this many orders on (without switching signs).")
    loyal_min_referrals: int = Field(
        1, ge=1, description="Loyal from this many engagement__referrals on, whatever the order count (advocates)."
    )


class SegmentsConfig(_Section):
    """Settings of the rule segments (params.yaml: models.segments); every threshold of every segment is here."""

    activity_window_days: int = Field(
        30,
        gt=0,
        description="Window N of usage__active_days_<N>d, the recent activity read by engaged_visitor and "
        "engagement_level; must be one of features.windows_days.",
    )
    engaged_visitor: EngagedVisitorConfig = Field(
        default_factory=EngagedVisitorConfig, description="What makes a customer without purchases engaged."
    )
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig, description="Lifecycle status thresholds.")
    user_status: UserStatusConfig = Field(
        default_factory=UserStatusConfig, description="User status thresholds and plans."
    )
    rfm_cell: RfmCellConfig = Field(default_factory=RfmCellConfig, description="Named RFM cells.")
    usage_tier: UsageTierConfig = Field(default_factory=UsageTierConfig, description="Usage tier cuts.")
    engagement_level: EngagementLevelConfig = Field(
        default_factory=EngagementLevelConfig, description="Engagement score and level cuts."
    )
    satisfaction: SatisfactionConfig = Field(default_factory=SatisfactionConfig, description="Satisfaction thresholds.")
    loyalty: LoyaltyConfig = Field(default_factory=LoyaltyConfig, description="Loyalty thresholds.")


@dataclass(frozen=True)
class SegmentResult:
    """Segments per customer, the segments that could not be computed and why, and the rules in words."""

    frame: pd.DataFrame
    skipped: dict[str, str]
    notes: dict[str, list[str]]
    definitions: pd.DataFrame = field(repr=False)

    def describe(self) -> pd.DataFrame:
        """Counts customers per segment value (segment, value, customers, share, rule), in rule order.

        A skipped segment gets one row with an empty value and the reason as its rule; customers a
        computed segment could not place get a row with an empty value too.
        """
        n = len(self.frame)
        rows: list[tuple[str, str | None, int, float, str]] = []
        for segment in SEGMENTS:
            if segment in self.skipped:
                rows.append((segment, None, 0, 0.0, f"not computed: {self.skipped[segment]}"))
                continue
            counts = self.frame[segment].value_counts()
            rules = self.definitions[self.definitions["segment"] == segment].drop_duplicates("value")
            for value, rule in zip(rules["value"], rules["rule"]):
                k = int(counts.get(value, 0))
                rows.append((segment, value, k, k / n if n else 0.0, rule))
            missing = int(self.frame[segment].isna().sum())
            if missing:
                rows.append((segment, None, missing, missing / n, "not computable for these customers (see notes)"))
        return pd.DataFrame(rows, columns=["segment", "value", "customers", "share", "rule"])


@dataclass(frozen=True)
class _Outcome:
    """One segment's labels (None where not computable for a customer), or why it was skipped, plus notes."""

    labels: np.ndarray | None
    skipped: str | None = None
    notes: tuple[str, ...] = ()


class _Inputs:
    """Read-only numeric access to the feature frame and the shared per-customer facts."""

    def __init__(
        self,
        features: pd.DataFrame,
        config: SegmentsConfig,
        customers: pd.DataFrame | None,
        churn_probability: pd.Series | None,
        cutoff: datetime | pd.Timestamp | str | None,
    ) -> None:
        self.features = features
        self.config = config
        self.n = len(features)
        self.keys = pd.Index(features.index.astype(str))
        self.signed_up, self.plans = _customer_facts(customers, self.keys, cutoff)
        self.churn = _churn(churn_probability, self.keys)
        self.active_col = active_days_column(config.activity_window_days)

    def has(self, column: str) -> bool:
        """Tells whether the feature frame has the column."""
        return column in self.features.columns

    def num(self, column: str) -> np.ndarray:
        """Returns the column as float64 (NaN where empty); all-NaN when the column is absent."""
        if not self.has(column):
            return np.full(self.n, np.nan)
        try:
            return self.features[column].to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(
                f"feature column {column!r} is not numeric (dtype {self.features[column].dtype}); "
                "pass the frame made by features.build.build_features"
            ) from None

    def recency_column(self) -> str | None:
        """Returns the days-since-last-purchase column present (value family first), or None."""
        return next((c for c in (RECENCY, DAYS_SINCE_LAST_PURCHASE) if self.has(c)), None)

    def engaged(self) -> tuple[np.ndarray, list[str]]:
        """Flags engaged customers (signup, recent activity or email clicks) and lists the signals available."""
        cfg = self.config.engaged_visitor
        engaged = np.zeros(self.n, dtype=bool)
        used: list[str] = []
        if cfg.signup_counts and self.signed_up is not None:
            engaged |= self.signed_up
            used.append("signup")
        if self.has(self.active_col):
            engaged |= self.num(self.active_col) >= cfg.min_active_days
            used.append(self.active_col)
        if self.has(EMAIL_CLICKS):
            engaged |= self.num(EMAIL_CLICKS) >= cfg.min_email_clicks
            used.append(EMAIL_CLICKS)
        return engaged, used

    def gap_cv(self) -> np.ndarray:
        """Returns purchase gap std / mean (NaN with fewer than two purchase days)."""
        mean = self.num(GAP_MEAN)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(mean > 0, self.num(GAP_STD) / mean, np.nan)


def _customer_facts(
    customers: pd.DataFrame | None, keys: pd.Index, cutoff: datetime | pd.Timestamp | str | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Returns per feature-frame customer: signed up (bool) and normalised plan (object), None when unknown."""
    if customers is None:
        return None, None
    if not isinstance(customers, pd.DataFrame):
        raise TypeError(f"customers must be a pandas DataFrame or None, got {type(customers).__name__}")
    if "customer_id" in customers.columns:
        ids = customers["customer_id"]
    elif customers.index.name == "customer_id":
        ids = customers.index.to_series()
    else:
        raise ValueError(
            "customers has no customer_id column (or index); pass the customers table of the data contract"
        )
    ids = pd.Index(ids.astype(str).to_numpy())
    if ids.has_duplicates:
        dup = sorted(set(ids[ids.duplicated()]))[:5]
        raise ValueError(f"customers has duplicated customer_id values {dup}; keep one row per customer")
    pos = ids.get_indexer(keys)
    known = pos >= 0
    plans: np.ndarray | None = None
    if "plan" in customers.columns:
        raw = customers["plan"].astype("string").str.strip().str.lower().replace("", pd.NA)
        plans = np.full(len(keys), None, dtype=object)
        plans[known] = raw.to_numpy(dtype=object, na_value=None)[pos[known]]
    signed: np.ndarray | None = None
    if "signup_at" in customers.columns:
        at = pd.to_datetime(customers["signup_at"], utc=True)
        present = at.notna().to_numpy(dtype=bool)
        if cutoff is not None:
            moment = pd.Timestamp(cutoff)
            moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
            present = present & (at < moment).to_numpy(dtype=bool)
        signed = np.where(known, present[np.where(known, pos, 0)], False)
    elif plans is not None:
        # Without signup dates a plan is the only trace of a signup.
        signed = pd.notna(plans)
    return signed, plans


def _churn(churn_probability: pd.Series | None, keys: pd.Index) -> np.ndarray | None:
    """Aligns the churn probabilities with the feature frame (NaN for customers without one)."""
    if churn_probability is None:
        return None
    if not isinstance(churn_probability, pd.Series):
        raise TypeError(
            f"churn_probability must be a pandas Series indexed by customer_id, got {type(churn_probability).__name__}"
        )
    values = churn_probability.to_numpy(dtype="float64", na_value=np.nan)
    bad = values[~np.isnan(values) & ((values < 0) | (values > 1))]
    if bad.size:
        raise ValueError(f"churn_probability has values outside 0-1, e.g. {bad[:3].tolist()}; pass probabilities")
    index = pd.Index(churn_probability.index.astype(str))
    if index.has_duplicates:
        dup = sorted(set(index[index.duplicated()]))[:5]
        raise ValueError(f"churn_probability has duplicated customer_id values {dup}; keep one per customer")
    pos = index.get_indexer(keys)
    return np.where(pos >= 0, values[np.where(pos >= 0, pos, 0)], np.nan)


def _first_match(n: int, rules: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """Gives each row the label of the first rule whose mask holds (None where none holds)."""
    out = np.full(n, None, dtype=object)
    done = np.zeros(n, dtype=bool)
    for label, mask in rules:
        take = mask & ~done
        out[take] = label
        done |= take
    return out


def _missing(x: _Inputs, columns: Iterable[str]) -> list[str]:
    """Lists the columns absent from the feature frame."""
    return [c for c in columns if not x.has(c)]


def _lifecycle(x: _Inputs) -> _Outcome:
    """Gives the lifecycle status: Lead, Ghost, Lost, New, At-risk, Pending, Hero, Repeat, Occasional."""
    cfg = x.config.lifecycle
    recency_col = x.recency_column()
    missing = _missing(x, (ORDERS, DAYS_SINCE_LAST_EVENT)) + ([] if recency_col else [RECENCY])
    if missing:
        return _Outcome(None, f"needs {missing}, absent from the feature frame (enable the value and timing families)")
    notes: list[str] = []
    orders, recency = x.num(ORDERS), x.num(recency_col)
    never, bought = orders == 0, orders >= 1
    engaged, used = x.engaged()
    if not used:
        notes.append("no engagement signal (signup, activity, email clicks) available: every non-buyer is a Ghost")
    lead = never & engaged & (x.num(DAYS_SINCE_LAST_EVENT) <= cfg.lead_max_days_since_last_event)

    window_col = purchases_column(cfg.new_within_days)
    if x.has(window_col):
        new = bought & (orders <= x.num(window_col))  # every order of the customer falls in the window
    else:
        new = (orders == 1) & (recency <= cfg.new_within_days)
        notes.append(
            f"{window_col} absent: New is limited to one-order customers (exactly one order in the last "
            f"{cfg.new_within_days} days)"
        )

    overdue = x.num(OVERDUE)
    if not x.has(OVERDUE):
        notes.append(f"{OVERDUE} absent: At-risk only from churn probability, and no one is Pending")
    at_risk = overdue > cfg.at_risk_overdue_ratio
    if x.churn is not None:
        at_risk |= x.churn > cfg.churn_at_risk_probability
    pending = (overdue > cfg.pending_overdue_ratio) & (overdue <= cfg.at_risk_overdue_ratio)

    if x.has(M_SCORE) and x.has(F_SCORE):
        hero = (
            (x.num(M_SCORE) >= cfg.hero_min_m_score)
            & (x.num(F_SCORE) >= cfg.hero_min_f_score)
            & (recency <= cfg.hero_max_recency_days)
        )
    else:
        hero = np.zeros(x.n, dtype=bool)
        notes.append(f"{_missing(x, (M_SCORE, F_SCORE))} absent (no revenue): no one is a Hero")

    repeat = (orders >= cfg.repeat_min_orders) & (recency <= cfg.repeat_max_recency_days)
    if cfg.repeat_max_gap_cv is not None:
        if x.has(GAP_MEAN) and x.has(GAP_STD):
            repeat &= x.gap_cv() <= cfg.repeat_max_gap_cv
        else:
            notes.append("purchase gap columns absent: Repeat does not check regularity")

    rules = [
        (LEAD, lead),
        (GHOST, never),
        (LOST, bought & (recency > cfg.lost_after_days)),
        (NEW, bought & new),
        (AT_RISK, bought & at_risk),
        (PENDING, bought & pending),
        (HERO, bought & hero),
        (REPEAT, bought & repeat),
        (OCCASIONAL, bought),
    ]
    return _Outcome(_first_match(x.n, rules), notes=tuple(notes))


def _user_status(x: _Inputs) -> _Outcome:
    """Gives the user status: plan statuses, then defector, first-time buyer, regular, prospect, non-user."""
    cfg = x.config.user_status
    recency_col = x.recency_column()
    missing = _missing(x, (ORDERS,)) + ([] if recency_col else [RECENCY])
    if missing:
        return _Outcome(None, f"needs {missing}, absent from the feature frame (enable the value family)")
    notes: list[str] = []
    orders, recency = x.num(ORDERS), x.num(recency_col)
    never, bought = orders == 0, orders >= 1
    rules: list[tuple[str, np.ndarray]] = []
    if x.plans is not None:
        for plan, status in cfg.plan_statuses.items():
            rules.append((status, x.plans == plan))
    else:
        notes.append("no customers.plan: plan statuses (trial / freemium / paid user) are not assigned")
    engaged, used = x.engaged()
    if x.signed_up is None:
        notes.append(f"no customers signup: prospects are recognised by {used or 'nothing'} only")
    rules += [
        (DEFECTOR, bought & (recency > cfg.active_within_days)),
        (FIRST_TIME, orders == 1),
        (REGULAR, orders >= 2),
        (PROSPECT, never & engaged),
        (NON_USER, never),
    ]
    return _Outcome(_first_match(x.n, rules), notes=tuple(notes))


def _scores(x: _Inputs, column: str) -> np.ndarray:
    """Returns a 1-5 score column as float; raises naming the column when a value is not a whole 1-5 score."""
    values = x.num(column)
    given = values[~np.isnan(values)]
    bad = given[(given < SCORE_RANGE[0]) | (given > SCORE_RANGE[1]) | (given != np.round(given))]
    if bad.size:
        raise ValueError(
            f"feature column {column!r} has values {sorted(set(bad.tolist()))[:5]} that are not 1-5 scores"
        )
    return values


def _rfm_cell(x: _Inputs) -> _Outcome:
    """Names the RFM cell of each purchaser through the first matching rule; non-buyers get no_purchase_label."""
    cfg = x.config.rfm_cell
    missing = _missing(x, (R_SCORE, F_SCORE))
    if missing:
        return _Outcome(None, f"needs {missing}, absent from the feature frame (enable the value family)")
    notes: list[str] = []
    r, f = _scores(x, R_SCORE), _scores(x, F_SCORE)
    use_m = x.has(M_SCORE)
    m = _scores(x, M_SCORE) if use_m else np.ones(x.n)
    if not use_m:
        notes.append(f"{M_SCORE} absent (no revenue): cells are matched on R and F only, ignoring the M ranges")
    # One lookup table of the 125 cells: first matching rule, as the config validator guarantees one exists.
    table = np.empty(125, dtype=object)
    for cell in all_score_cells():
        rf_m = cell if use_m else (cell[0], cell[1], None)
        table[_cell_index(*cell)] = next(rule.name for rule in cfg.rules if rule.matches(*rf_m))
    scored = ~(np.isnan(r) | np.isnan(f) | np.isnan(m))
    out = np.full(x.n, None, dtype=object)
    idx = _cell_index(r[scored].astype(int), f[scored].astype(int), m[scored].astype(int))
    out[scored] = table[idx]
    no_purchase = (x.num(ORDERS) == 0) if x.has(ORDERS) else ~scored
    out[no_purchase & ~scored] = cfg.no_purchase_label
    if (~scored & ~no_purchase).any():
        notes.append("purchasers with an empty R, F or M score get no cell")
    return _Outcome(out, notes=tuple(notes))


def _cell_index(r: np.ndarray | int, f: np.ndarray | int, m: np.ndarray | int) -> np.ndarray | int:
    """Returns the position of score cell (r, f, m) in the 125-cell lookup table."""
    return (r - 1) * 25 + (f - 1) * 5 + (m - 1)


def _pctile_window(x: _Inputs) -> tuple[str | None, str | None]:
    """Returns (percentile column, events column) of the usage tier, or (None, reason) when there is none."""
    wanted = x.config.usage_tier.window_days
    if wanted is not None:
        col = f"{PCTILE_PREFIX}{wanted}d"
        if not x.has(col):
            return (
                None,
                f"needs {col!r} (models.segments.usage_tier.window_days={wanted}), absent from the feature frame",
            )
        return col, f"usage__events_{wanted}d"
    found = sorted(c for c in x.features.columns if str(c).startswith(PCTILE_PREFIX))
    if len(found) != 1:
        what = "no" if not found else f"several ({found})"
        return None, (
            f"{what} {PCTILE_PREFIX}<N>d column in the feature frame"
            + ("; enable the usage family" if not found else "; set models.segments.usage_tier.window_days")
        )
    col = found[0]
    return col, "usage__events_" + col.removeprefix(PCTILE_PREFIX)


def _usage_tier(x: _Inputs) -> _Outcome:
    """Gives the usage tier: none (no events), heavy, medium, light by usage percentile."""
    cfg = x.config.usage_tier
    col, other = _pctile_window(x)
    if col is None:
        return _Outcome(None, other)
    notes: list[str] = []
    pctile = x.num(col)
    if x.has(other):
        zero = x.num(other) == 0
    else:
        zero = np.zeros(x.n, dtype=bool)
        notes.append(f"{other} absent: no one is in tier none")
    rules = [
        ("none", zero),
        ("heavy", pctile >= cfg.heavy_min_pctile),
        ("medium", pctile >= cfg.medium_min_pctile),
        ("light", ~np.isnan(pctile)),
    ]
    return _Outcome(_first_match(x.n, rules), notes=tuple(notes))


def engagement_score(features: pd.DataFrame, config: SegmentsConfig | None = None) -> pd.Series:
    """Computes the 0-1 engagement score: weighted mean of the present inputs, each min(value / saturation, 1).

    Inputs are the configured engagement columns found in the frame plus recent activity; weights are
    renormalised over those present, so a frame without referrals scores on the rest. Empty values
    count as 0 (no such events). All-NaN when no engagement column is present.
    """
    cfg = config or SegmentsConfig()
    x = _Inputs(features, cfg, None, None, None)
    score, _ = _engagement_score(x)
    return pd.Series(score, index=features.index, name="engagement_score")


def _engagement_score(x: _Inputs) -> tuple[np.ndarray, list[str]]:
    """Returns the engagement score and the columns it read; all-NaN without an engagement column."""
    cfg = x.config.engagement_level
    inputs = [(col, s.weight, s.saturation) for col, s in cfg.signals.items() if x.has(col)]
    if not inputs:
        return np.full(x.n, np.nan), []
    if x.has(x.active_col) and cfg.activity_weight > 0:
        inputs.append((x.active_col, cfg.activity_weight, cfg.activity_saturation_days))
    # All weights 0 leaves every score at 0 (low) rather than dividing by zero.
    total = sum(w for _, w, _ in inputs) or 1.0
    score = np.zeros(x.n)
    for col, weight, saturation in inputs:
        score += (weight / total) * np.clip(np.nan_to_num(x.num(col), nan=0.0) / saturation, 0.0, 1.0)
    return score, [col for col, _, _ in inputs]


def _engagement_level(x: _Inputs) -> _Outcome:
    """Gives high, medium or low engagement from the engagement score."""
    cfg = x.config.engagement_level
    score, used = _engagement_score(x)
    if not used:
        return _Outcome(
            None,
            f"none of its inputs {list(cfg.signals)} is in the feature frame (the data has no email, "
            "review or referral events, e.g. transactions only); activity alone is the usage tier",
        )
    absent = [c for c in cfg.signals if not x.has(c)]
    notes = (f"score from {used}; absent inputs {absent} are left out and the weights renormalised",) if absent else ()
    rules = [
        ("high", score >= cfg.high_min_score),
        ("medium", score >= cfg.medium_min_score),
        ("low", ~np.isnan(score)),
    ]
    return _Outcome(_first_match(x.n, rules), notes=notes)


def _satisfaction(x: _Inputs) -> _Outcome:
    """Gives low (any low signal), high (any high signal) or neutral satisfaction."""
    cfg = x.config.satisfaction
    present = [c for c in SATISFACTION_COLUMNS if x.has(c)]
    if not present:
        return _Outcome(
            None,
            f"none of its inputs {list(SATISFACTION_COLUMNS)} is in the feature frame (the data has "
            "no complaint, support, return, review or survey events, e.g. transactions only)",
        )
    low = np.zeros(x.n, dtype=bool)
    high = np.zeros(x.n, dtype=bool)
    if cfg.low_min_complaints is not None:
        low |= x.num(COMPLAINTS) >= cfg.low_min_complaints
    if cfg.low_min_support_tickets is not None:
        low |= x.num(SUPPORT_TICKETS) >= cfg.low_min_support_tickets
    if cfg.low_min_return_rate is not None:
        low |= x.num(RETURN_RATE) >= cfg.low_min_return_rate
    rating, nps, csat = x.num(AVG_RATING), x.num(NPS), x.num(CSAT)
    low |= (rating <= cfg.low_max_rating) | (nps <= cfg.low_max_nps) | (csat <= cfg.low_max_csat)
    high |= (rating >= cfg.high_min_rating) | (nps >= cfg.high_min_nps) | (csat >= cfg.high_min_csat)
    # A survey gives NPS or CSAT (features.engagement.survey_scale), never both, so only both absent is a gap.
    absent = [c for c in (COMPLAINTS, SUPPORT_TICKETS, RETURN_RATE, AVG_RATING) if c not in present]
    if NPS not in present and CSAT not in present:
        absent.append(f"{NPS} / {CSAT}")
    notes = (f"read from {present}; absent: {absent}",) if absent else ()
    rules = [("low", low), ("high", high), ("neutral", np.ones(x.n, dtype=bool))]
    return _Outcome(_first_match(x.n, rules), notes=notes)


def _loyalty(x: _Inputs) -> _Outcome:
    """Gives loyalty: no purchase, new, switcher-risk, loyal, uncommitted."""
    cfg = x.config.loyalty
    recency_col = x.recency_column()
    missing = _missing(x, (ORDERS, TENURE)) + ([] if recency_col else [RECENCY])
    if missing:
        return _Outcome(None, f"needs {missing}, absent from the feature frame (enable the value and timing families)")
    notes: list[str] = []
    orders, recency = x.num(ORDERS), x.num(recency_col)
    bought = orders >= 1
    switching = (recency > cfg.switcher_min_recency_days) | (x.num(OVERDUE) > cfg.switcher_min_overdue_ratio)
    switching |= (x.gap_cv() > cfg.switcher_min_gap_cv) & (
        (x.num(OVERDUE) > cfg.switcher_gap_cv_min_overdue_ratio) if cfg.switcher_gap_cv_min_overdue_ratio > 0
        else np.ones(x.n, dtype=bool))
    if not (x.has(OVERDUE) and x.has(GAP_MEAN) and x.has(GAP_STD)):
        notes.append("purchase gap columns absent: switcher-risk only from recency")
    loyal = orders >= cfg.loyal_min_orders
    if x.has(REFERRALS):
        loyal |= x.num(REFERRALS) >= cfg.loyal_min_referrals
    else:
        notes.append(f"{REFERRALS} absent: loyalty from orders only")
    rules = [
        (NO_PURCHASE_LOYALTY, orders == 0),
        (NEW_LOYALTY, bought & (x.num(TENURE) <= cfg.new_max_tenure_days)),
        (SWITCHER, bought & switching),
        (LOYAL, bought & loyal),
        (UNCOMMITTED, bought),
    ]
    return _Outcome(_first_match(x.n, rules), notes=tuple(notes))


_ASSIGNERS = {
    "lifecycle": _lifecycle,
    "user_status": _user_status,
    "rfm_cell": _rfm_cell,
    "usage_tier": _usage_tier,
    "engagement_level": _engagement_level,
    "satisfaction": _satisfaction,
    "loyalty": _loyalty,
}


def segment_values(config: SegmentsConfig) -> dict[str, list[str]]:
    """Lists every value each segment can take, in rule order (the categories of the result columns)."""
    plans = list(dict.fromkeys(config.user_status.plan_statuses.values()))
    rfm = list(dict.fromkeys([r.name for r in config.rfm_cell.rules] + [config.rfm_cell.no_purchase_label]))
    return {
        "lifecycle": list(LIFECYCLE_ORDER),
        "user_status": list(dict.fromkeys(plans + list(USER_BEHAVIOUR_ORDER))),
        "rfm_cell": rfm,
        "usage_tier": list(USAGE_ORDER),
        "engagement_level": list(ENGAGEMENT_ORDER),
        "satisfaction": list(SATISFACTION_ORDER),
        "loyalty": list(LOYALTY_ORDER),
    }


def assign_segments(
    features: pd.DataFrame,
    config: SegmentsConfig | None = None,
    customers: pd.DataFrame | None = None,
    churn_probability: pd.Series | None = None,
    *,
    cutoff: datetime | pd.Timestamp | str | None = None,
) -> SegmentResult:
    """Assigns every customer of the feature frame one value of each segment whose inputs are present.

    Each segment is an ordered rule list, first match wins; `segment_definitions(config)` writes the
    rules in words. A segment whose input columns are absent from the frame (engagement_level and
    satisfaction on transactions-only data) is not computed: its column is empty and
    `SegmentResult.skipped` says why; one computed from fewer inputs than it can use says so in
    `SegmentResult.notes`. Within a computed segment a value is empty only where the customer's own
    input is empty: lifecycle, user_status and loyalty without value__orders_lifetime, rfm_cell
    for a purchaser without R/F/M scores, usage_tier without a usage percentile.

    `customers` (optional, the contract's customers table) gives plans and signups; with `cutoff`,
    signups at or after it are ignored so that they match the point-in-time features (plans are
    read as they are). `churn_probability` (optional, indexed by customer_id, 0-1) makes purchasers
    above lifecycle.churn_at_risk_probability At-risk. Customers without an event before the cutoff
    are not in the feature frame and get no segment. The inputs are not modified.
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame indexed by customer_id, got {type(features).__name__}")
    if features.index.has_duplicates:
        dup = sorted(set(features.index[features.index.duplicated()].astype(str)))[:5]
        raise ValueError(f"features has duplicated customer_id values {dup}; keep one row per customer")
    cfg = config or SegmentsConfig()
    x = _Inputs(features, cfg, customers, churn_probability, cutoff)
    values = segment_values(cfg)
    columns: dict[str, pd.Categorical] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for segment, assign in _ASSIGNERS.items():
        outcome = assign(x)
        labels = outcome.labels if outcome.labels is not None else np.full(x.n, None, dtype=object)
        unknown = set(labels[pd.notna(labels)]) - set(values[segment])
        if unknown:
            # pd.Categorical would silently turn these into NaN.
            raise RuntimeError(f"segment {segment} produced values {sorted(unknown)} missing from segment_values")
        columns[segment] = pd.Categorical(labels, categories=values[segment])
        if outcome.skipped is not None:
            skipped[segment] = outcome.skipped
            log.info("segment %s not computed: %s", segment, outcome.skipped)
        if outcome.notes:
            notes[segment] = list(outcome.notes)
    frame = pd.DataFrame(columns, index=features.index.copy())
    definitions = segment_definitions(cfg)
    return SegmentResult(frame=frame, skipped=skipped, notes=notes, definitions=definitions)


def _g(value: float) -> str:
    return f"{value:g}"


def segment_definitions(config: SegmentsConfig | None = None) -> pd.DataFrame:
    """Writes every segment value's rule in words from the config (segment, order, value, rule), in rule order.

    Within a segment the first rule that holds wins, so each rule reads as 'otherwise, if ...'.
    """
    cfg = config or SegmentsConfig()
    ev, lc, us, ut = cfg.engaged_visitor, cfg.lifecycle, cfg.user_status, cfg.usage_tier
    el, sa, lo = cfg.engagement_level, cfg.satisfaction, cfg.loyalty
    w = cfg.activity_window_days
    engaged = (
        ("signed up (customers table), or " if ev.signup_counts else "")
        + f"active on at least {ev.min_active_days} of the last {w} days, "
        + f"or at least {ev.min_email_clicks} email click(s)"
    )
    regular = (
        f", and buys regularly (std / mean of purchase gaps at most {_g(lc.repeat_max_gap_cv)})"
        if lc.repeat_max_gap_cv is not None
        else ""
    )
    overdue = "overdue ratio (days since last purchase / mean gap between purchase days)"
    rows: list[tuple[str, str, str]] = [
        (
            "lifecycle",
            LEAD,
            (
                f"never purchased, last event at most {_g(lc.lead_max_days_since_last_event)} days ago, "
                f"and engaged: {engaged}"
            ),
        ),
        (
            "lifecycle",
            GHOST,
            "never purchased and not a Lead: inactive for longer, or only browsing without engagement",
        ),
        ("lifecycle", LOST, f"purchased, but not in the last {_g(lc.lost_after_days)} days"),
        ("lifecycle", NEW, f"every order within the last {lc.new_within_days} days (first purchase that recent)"),
        (
            "lifecycle",
            AT_RISK,
            (
                f"{overdue} above {_g(lc.at_risk_overdue_ratio)}, or churn probability above "
                f"{_g(lc.churn_at_risk_probability)} when a churn model is given"
            ),
        ),
        (
            "lifecycle",
            PENDING,
            (
                f"{overdue} above {_g(lc.pending_overdue_ratio)} and at most "
                f"{_g(lc.at_risk_overdue_ratio)}: later than usual, not yet at risk"
            ),
        ),
        (
            "lifecycle",
            HERO,
            (
                f"M score at least {lc.hero_min_m_score}, F score at least {lc.hero_min_f_score} and last "
                f"purchase at most {_g(lc.hero_max_recency_days)} days ago"
            ),
        ),
        (
            "lifecycle",
            REPEAT,
            (
                f"at least {lc.repeat_min_orders} orders, last purchase at most "
                f"{_g(lc.repeat_max_recency_days)} days ago{regular}"
            ),
        ),
        ("lifecycle", OCCASIONAL, "any other purchaser: few orders, irregular or not recent"),
    ]
    for plan, status in us.plan_statuses.items():
        rows.append(("user_status", status, f"customers.plan is {plan!r} (plans win over behaviour)"))
    rows += [
        ("user_status", DEFECTOR, f"purchased, but not in the last {_g(us.active_within_days)} days"),
        ("user_status", FIRST_TIME, "exactly one order"),
        ("user_status", REGULAR, f"two or more orders, the last within {_g(us.active_within_days)} days"),
        ("user_status", PROSPECT, f"never purchased, and {engaged}"),
        ("user_status", NON_USER, "never purchased, not signed up and not engaged"),
    ]
    rows += [("rfm_cell", rule.name, rule.describe()) for rule in cfg.rfm_cell.rules]
    rows.append(("rfm_cell", cfg.rfm_cell.no_purchase_label, "no purchase before the cutoff (no R, F, M scores)"))
    window = f"{ut.window_days}d" if ut.window_days is not None else "<N>d"
    rows += [
        ("usage_tier", "none", f"no events in the usage window (usage__events_{window} = 0)"),
        ("usage_tier", "heavy", f"usage percentile (usage__events_pctile_{window}) at least {_g(ut.heavy_min_pctile)}"),
        ("usage_tier", "medium", f"usage percentile at least {_g(ut.medium_min_pctile)}"),
        ("usage_tier", "light", f"usage percentile below {_g(ut.medium_min_pctile)}, with some events"),
    ]
    inputs = ", ".join(f"{c} (x{_g(s.weight)}, full at {_g(s.saturation)})" for c, s in el.signals.items())
    score = (
        f"engagement score: weighted mean of min(value / saturation, 1) over the present inputs among {inputs}, "
        f"plus active days in the last {w} days (x{_g(el.activity_weight)}, full at "
        f"{_g(el.activity_saturation_days)})"
    )
    rows += [
        ("engagement_level", "high", f"{score} at least {_g(el.high_min_score)}"),
        ("engagement_level", "medium", f"engagement score at least {_g(el.medium_min_score)}"),
        ("engagement_level", "low", f"engagement score below {_g(el.medium_min_score)}"),
    ]
    lows = []
    if sa.low_min_complaints is not None:
        lows.append(f"at least {sa.low_min_complaints} complaint(s)")
    if sa.low_min_support_tickets is not None:
        lows.append(f"at least {sa.low_min_support_tickets} support tickets")
    if sa.low_min_return_rate is not None:
        lows.append(f"return rate at least {_g(sa.low_min_return_rate)} returned per bought order")
    lows += [
        f"average review rating at most {_g(sa.low_max_rating)}",
        f"NPS at most {_g(sa.low_max_nps)}",
        f"CSAT at most {_g(sa.low_max_csat)}%",
    ]
    rows += [
        ("satisfaction", "low", "any of: " + "; ".join(lows)),
        (
            "satisfaction",
            "high",
            (
                f"no low signal and any of: average review rating at least {_g(sa.high_min_rating)}; "
                f"NPS at least {_g(sa.high_min_nps)}; CSAT at least {_g(sa.high_min_csat)}%"
            ),
        ),
        ("satisfaction", "neutral", "no signal either way (no complaints, ratings or answers beyond the thresholds)"),
    ]
    rows += [
        ("loyalty", NO_PURCHASE_LOYALTY, "never purchased"),
        ("loyalty", NEW_LOYALTY, f"first seen at most {_g(lo.new_max_tenure_days)} days ago: too early to judge"),
        (
            "loyalty",
            SWITCHER,
            (
                f"last purchase more than {_g(lo.switcher_min_recency_days)} days ago, or {overdue} above "
                f"{_g(lo.switcher_min_overdue_ratio)}, or irregular gaps (std / mean above "
                f"{_g(lo.switcher_min_gap_cv)}) with {overdue} above {_g(lo.switcher_gap_cv_min_overdue_ratio)}"
            ),
        ),
        (
            "loyalty",
            LOYAL,
            (
                f"at least {lo.loyal_min_orders} orders or at least {lo.loyal_min_referrals} referral(s), "
                "without switching signs"
            ),
        ),
        ("loyalty", UNCOMMITTED, "any other purchaser: bought, but not yet repeatedly"),
    ]
    frame = pd.DataFrame(rows, columns=["segment", "value", "rule"])
    frame.insert(1, "order", frame.groupby("segment", sort=False).cumcount() + 1)
    return frame
