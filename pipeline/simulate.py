"""Demo-data simulator: customer events from a latent persona x journey-stage x satisfaction Markov model.

Ground truth is exact: personas, per-day stages, and oracle propensities computed from the generative model itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.schema import EVENT_TYPES, JOURNEY_STAGES, PERSONAS, check_timezone, column_names
from pipeline.io import write_atomic, write_parquet_atomic

# --------------------------------------------------------------------------- vocabularies

ET: tuple[str, ...] = tuple(EVENT_TYPES)
MIXED, GHOST = "mixed", "ghost"
# A customer's kind is its truth label; a session is drawn in one behaviour mode (mixed customers
# draw a persona per session from their own weights, so "mixed" is never a mode).
KINDS: tuple[str, ...] = (*PERSONAS, MIXED, GHOST)
MODES: tuple[str, ...] = (*PERSONAS, GHOST)
N_STAGES = len(JOURNEY_STAGES)
N_STATES = 2 * N_STAGES  # latent state = stage * 2 + dissatisfied
LAPSED = JOURNEY_STAGES.index("lapsed")
K_MIXED, K_GHOST = KINDS.index(MIXED), KINDS.index(GHOST)
M_GHOST = MODES.index(GHOST)
PC, SMART, RISK, PROOF, LATER, PERSUADE = range(6)  # persona indices, in PERSONAS order

CHANNELS: tuple[str, ...] = ("web", "app", "email", "ads", "store", "support")
WEB, APP, EMAIL, ADS, STORE, SUPPORT = range(6)
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
PLANS: tuple[str, ...] = ("free", "trial", "freemium", "paid")
FREE, TRIAL, FREEMIUM, PAID = range(4)
ACQUISITION: tuple[str, ...] = ("organic_search", "paid_search", "social", "email", "referral", "direct", "affiliate")
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55+")
CHRONOTYPES: tuple[str, ...] = ("morning", "daytime", "evening", "night")
CHRONO_PEAK = np.array([8.0, 13.0, 20.0, 23.0])
CATEGORIES: tuple[str, ...] = ("electronics", "home", "fashion", "beauty", "sports", "books", "toys", "grocery")
CATEGORY_SIZE = np.array([60, 60, 70, 40, 45, 50, 35, 40])
CATEGORY_PRICE = np.array([150.0, 60.0, 45.0, 25.0, 55.0, 15.0, 30.0, 12.0])
CATEGORY_POP = np.array([0.16, 0.15, 0.18, 0.11, 0.10, 0.10, 0.08, 0.12])
BESTSELLER_SHARE = 0.3
CONTENT_TOPICS: tuple[str, ...] = (
    "promo", "sale", "specs", "comparison", "returns_policy", "warranty", "faq", "shipping", "reviews",
    "ratings", "bestsellers", "guide", "how_to", "inspiration", "new_arrivals", "trending",
)
CAMPAIGN_TOPICS: tuple[str, ...] = ("promo", "sale", "new_arrivals", "newsletter", "bestsellers")
PRODUCT_TOPICS: tuple[str, ...] = ("bestseller", "premium", "budget", "eco", "new", "classic")
TOPICS: tuple[str, ...] = tuple(dict.fromkeys((*CONTENT_TOPICS, *CAMPAIGN_TOPICS, *PRODUCT_TOPICS)))
# What a session's free browsing is drawn from; the purchase funnel itself is added in order.
BODY: tuple[str, ...] = (
    "page_view", "product_view", "search", "content_view", "wishlist_add", "recommendation_click", "add_to_cart",
    "remove_from_cart", "coupon_use", "review", "survey", "referral", "support_ticket", "complaint",
)
PRODUCT_EVENTS = frozenset({"product_view", "wishlist_add", "recommendation_click", "add_to_cart", "remove_from_cart"})
DEFAULT_HOLIDAYS: list[tuple[str, str]] = [("11-24", "11-30"), ("12-10", "12-24")]
SECONDS_PER_DAY = 86_400
FORMAT = "simulate/1"


def _e(name: str) -> int:
    return ET.index(name)


# --------------------------------------------------------------------------- config


class SimulateConfig(BaseModel):
    """How much demo data to generate and with which mix of customers, seasons and calendar."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    customers: int = Field(2000, ge=1, description="Number of customers (ghosts and mixed ones included).")
    days: int = Field(365, ge=30, description="Days of history, starting at start_date.")
    seed: int = Field(42, description="Random seed; the same seed gives identical output.")
    start_date: dt.date = Field(dt.date(2025, 1, 1), description="First simulated day (a local date in `timezone`).")
    ghost_share: float = Field(
        0.08, ge=0.0, le=1.0, description="Share of anonymous-ish visitors who browse a little and never buy or sign up."
    )
    mixed_share: float = Field(
        0.15, ge=0.0, le=1.0, description="Share of customers without a dominant persona (a mixture of persona behaviours)."
    )
    existing_share: float = Field(
        0.3, ge=0.0, le=1.0,
        description="Share of non-ghost customers already known on day 0 (spread over every stage); "
        "the rest are acquired uniformly over the period.",
    )
    persona_shares: dict[str, float] = Field(
        default_factory=lambda: {p: 1.0 for p in PERSONAS},
        description="Relative weight of each persona among the customers that are neither ghost nor mixed; "
        "normalised, a persona left out gets weight 0.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA timezone of the customers' local clock (days, hours, weekends); timestamps are written in UTC.",
    )
    holidays: list[tuple[str, str]] = Field(
        default_factory=lambda: list(DEFAULT_HOLIDAYS),
        description="Peak-season windows, inclusive: pairs of 'MM-DD' (every year; may wrap over new year) "
        "or of 'YYYY-MM-DD' (once). Default: Black Friday week and 10-24 December.",
    )

    @field_validator("persona_shares")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for key, share in value.items():
            if key not in PERSONAS:
                raise ValueError(f"unknown persona {key!r} in persona_shares; allowed: {', '.join(PERSONAS)}")
            if not (share >= 0 and math.isfinite(share)):
                raise ValueError(f"persona_shares[{key!r}] = {share!r}; use a finite number >= 0")
        if sum(value.values()) <= 0:
            raise ValueError("persona_shares must have at least one persona with a share > 0")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value, "simulate.timezone")

    @field_validator("holidays", mode="before")
    @classmethod
    def _dates_to_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-11-24 as a date: accept it and store its ISO text
        if isinstance(value, (list, tuple)):
            return [
                tuple(b.isoformat() if isinstance(b, dt.date) else b for b in pair) if isinstance(pair, (list, tuple))
                else pair
                for pair in value
            ]
        return value

    @field_validator("holidays")
    @classmethod
    def _windows(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for start, end in value:
            a, b = _parse_bound(start), _parse_bound(end)
            if type(a) is not type(b):
                raise ValueError(
                    f"holiday window ({start!r}, {end!r}) mixes 'MM-DD' and 'YYYY-MM-DD'; use the same form for both"
                )
            if isinstance(a, dt.date) and b < a:
                raise ValueError(f"holiday window ({start!r}, {end!r}) ends before it starts; swap the dates")
        return value

    @model_validator(mode="after")
    def _population(self) -> SimulateConfig:
        if self.ghost_share + self.mixed_share > 1.0:
            raise ValueError(
                f"ghost_share ({self.ghost_share}) + mixed_share ({self.mixed_share}) exceeds 1; lower one of them"
            )
        return self


def _parse_bound(text: str) -> dt.date | tuple[int, int]:
    """Parses a holiday bound: 'YYYY-MM-DD' -> date, 'MM-DD' -> (month, day)."""
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        if len(text) == 5 and text[2] == "-":
            month, day = int(text[:2]), int(text[3:])
            dt.date(2024, month, day)  # a leap year, so 02-29 is allowed
            return month, day
    except ValueError:
        pass
    raise ValueError(f"holiday bound {text!r} is not 'MM-DD' or 'YYYY-MM-DD' (e.g. '11-24' or '2025-11-24')")


# --------------------------------------------------------------------------- generative model tables
# Every number the simulator and the oracle share lives here, so the two cannot drift apart.

# Daily stage transitions of a satisfied customer (off-diagonal; the diagonal is the rest).
# Rows: from, columns: to, in JOURNEY_STAGES order. Skips (awareness -> purchase), fallbacks
# (consideration -> education), lapses from every stage and a small win-back from lapsed.
_STAGE_MOVES = {
    "awareness": {"education": 0.045, "consideration": 0.012, "purchase": 0.003, "lapsed": 0.012},
    "education": {"awareness": 0.006, "consideration": 0.050, "purchase": 0.008, "lapsed": 0.014},
    "consideration": {"awareness": 0.003, "education": 0.030, "purchase": 0.065, "lapsed": 0.016},
    "purchase": {"consideration": 0.030, "adoption": 0.165, "retention": 0.010, "lapsed": 0.003},
    "adoption": {"consideration": 0.004, "purchase": 0.010, "retention": 0.030, "advocacy": 0.003, "lapsed": 0.004},
    "retention": {"consideration": 0.004, "purchase": 0.014, "advocacy": 0.006, "lapsed": 0.0035},
    "advocacy": {"purchase": 0.010, "retention": 0.012, "lapsed": 0.0025},
    "lapsed": {"awareness": 0.0006, "consideration": 0.0010, "purchase": 0.0004, "retention": 0.0005},
}
# Persona tweaks of single moves: (from, to) -> factor.
_PERSONA_MOVES: dict[str, dict[tuple[str, str], float]] = {
    "price_conscious": {("lapsed", "purchase"): 3.0, ("lapsed", "consideration"): 2.0, ("retention", "lapsed"): 1.4},
    "smart": {("education", "consideration"): 0.8, ("consideration", "education"): 1.6},
    "risk_averse": {("consideration", "purchase"): 0.8, ("retention", "lapsed"): 0.6, ("adoption", "lapsed"): 0.6},
    "need_proof": {("retention", "advocacy"): 1.6, ("adoption", "advocacy"): 1.6},
    "get_it_later": {("consideration", "purchase"): 0.5, ("education", "purchase"): 0.5},
    "persuadable": {("consideration", "purchase"): 1.6, ("awareness", "consideration"): 1.5},
}
# Satisfied -> dissatisfied per day, by stage (post-purchase stages are where things go wrong).
_TO_DISSATISFIED = np.array([0.0005, 0.0005, 0.001, 0.004, 0.003, 0.0015, 0.001, 0.0])
_PERSONA_DISSATISFIED = np.array([1.2, 1.0, 0.6, 1.0, 1.0, 1.1])
_TO_SATISFIED = np.array([0.04] * (N_STAGES - 1) + [0.02])  # issue resolved (in lapsed: forgotten)
_DISSATISFIED_LAPSE, _DISSATISFIED_ADVANCE, _DISSATISFIED_FALLBACK = 3.0, 0.5, 1.5
_GHOST_MOVES = {"awareness": {"education": 0.03, "lapsed": 0.03}, "education": {"awareness": 0.03, "lapsed": 0.03}}

# Sessions per day = activity x weekday/weekend habit x season x stage x mood.
_STAGE_RATE = np.array([0.55, 0.8, 1.1, 1.8, 1.0, 0.8, 0.9, 0.0])  # lapsed emits nothing at all
_MOOD_RATE = np.array([1.0, 1.15])  # dissatisfied customers come back to complain
_MODE_RATE = np.array([1.0, 1.3, 0.8, 1.0, 1.1, 1.0, 1.0])
_ACTIVITY_MEDIAN, _ACTIVITY_SIGMA = 0.13, 0.75
_HOLIDAY_RATE = 1.5
# Per-session purchase probability = stage x persona x mood (x persona's holiday lift), capped.
_STAGE_Q = np.array([0.004, 0.012, 0.05, 0.30, 0.05, 0.09, 0.08, 0.0])
_MODE_Q = np.array([1.0, 0.8, 0.7, 0.9, 0.55, 1.5, 0.0])
_MODE_HOLIDAY_Q = np.array([2.0, 1.2, 1.1, 1.2, 1.3, 1.4, 1.0])  # price-conscious buy on sale
_MOOD_Q = np.array([1.0, 0.5])
_Q_CAP = 0.9

_EXISTING_INIT = np.array([0.08, 0.08, 0.12, 0.04, 0.14, 0.34, 0.12, 0.08])
_NEW_INIT = np.array([0.70, 0.18, 0.12, 0, 0, 0, 0, 0])
_GHOST_INIT = np.array([0.8, 0.2, 0, 0, 0, 0, 0, 0])
_EXISTING_DISSATISFIED = 0.08

# Session content.
_SUPPORT_P = np.array([[0.005, 0.005, 0.01, 0.02, 0.04, 0.015, 0.01, 0.0], [0.25] * 7 + [0.0]])
_EMAIL_CLICK = 0.3
_BODY_LEN_STAGE = np.array([1.5, 3.0, 4.0, 3.0, 2.5, 2.5, 2.5, 0.0])
_BODY_LEN_MODE = np.array([1.1, 1.9, 1.2, 1.2, 1.0, 0.8, 0.6])
_BUY_BODY_FACTOR = 0.6
_GAP_MEAN = np.array([40.0, 95.0, 60.0, 55.0, 45.0, 22.0, 30.0])  # seconds between events, by mode
_GAP_MAX = 900
_POPULAR_P = np.array([0.4, 0.35, 0.75, 0.7, 0.4, 0.5, 0.5])  # risk-averse and need-proof stick to bestsellers
_FAV_CATEGORY_P = 0.6
_VIEWS_EXTRA = np.array([0.4, 2.0, 0.8, 0.6, 0.2, 0.0, 0.0])  # product views before buying, beyond the first
_SMART_MIN_VIEWS = 3
_ADDONS = np.array([0.2, 0.1, 0.1, 0.15, 0.15, 1.1, 0.0])  # impulse add-ons per order
_MAX_ADDONS = 3
_QTY_EXTRA = np.array([0.25, 0.15, 0.1, 0.2, 0.2, 0.5, 0.0])
_COUPON_P = np.array([0.75, 0.08, 0.05, 0.08, 0.1, 0.12, 0.0])
_RETURN_P = np.array([0.08, 0.06, 0.025, 0.07, 0.07, 0.13, 0.0])
_DISSATISFIED_RETURN = 2.5
_ABANDON_CHECKOUT = np.array([0.08, 0.05, 0.1, 0.08, 0.4, 0.06, 0.0])  # reach checkout, then leave
_SAVED_BUY_P = np.array([0.25, 0.25, 0.25, 0.25, 0.9, 0.2, 0.0])  # buy what was saved on an earlier day
_SALE_DISCOUNT = 0.10
_STARS = np.array([[0.02, 0.03, 0.10, 0.35, 0.50], [0.40, 0.30, 0.15, 0.10, 0.05]])
_NPS = np.array([
    [0.01, 0.01, 0.01, 0.02, 0.03, 0.05, 0.07, 0.15, 0.25, 0.22, 0.18],  # satisfied
    [0.0, 0.0, 0.0, 0.0, 0.01, 0.01, 0.02, 0.06, 0.15, 0.30, 0.45],  # satisfied advocate
    [0.12, 0.12, 0.14, 0.14, 0.13, 0.12, 0.10, 0.07, 0.03, 0.02, 0.01],  # dissatisfied
])
_SIGNUP_PLAN = np.array([0.45, 0.30, 0.25, 0.0])
_EXISTING_PLAN = np.array([0.35, 0.05, 0.20, 0.40])
_TRIAL_DAYS = 14
_TRIAL_CONVERT = np.array([0.45, 0.10])
_UPGRADE_P = 0.02
_CANCEL_P = np.array([0.002, 0.05])
_RETURN_DELAY_MIN, _RETURN_DELAY_MEAN = 3, 6.0

# Browsing mixes (relative weights over BODY), blended per (mode, stage) below.
_BODY_BASE = {"page_view": 3, "product_view": 4, "search": 1.5, "content_view": 1.5, "wishlist_add": 0.3,
              "recommendation_click": 0.4, "add_to_cart": 0.6, "remove_from_cart": 0.15, "coupon_use": 0.1,
              "review": 0.1, "survey": 0.05, "referral": 0.03, "support_ticket": 0.05, "complaint": 0.02}
_BODY_PERSONA = {
    "price_conscious": {"content_view": 2.0, "coupon_use": 1.4, "search": 1.0, "product_view": 1.0},
    "smart": {"product_view": 5.0, "content_view": 3.5, "search": 1.5},
    "risk_averse": {"content_view": 3.0, "product_view": 1.0, "support_ticket": 0.2},
    "need_proof": {"content_view": 2.0, "review": 1.2, "product_view": 2.0, "survey": 0.2},
    "get_it_later": {"wishlist_add": 2.2, "add_to_cart": 1.8, "remove_from_cart": 0.4, "product_view": 2.0},
    "persuadable": {"recommendation_click": 2.5, "product_view": 1.5, "add_to_cart": 0.6},
}
_BODY_STAGE = {
    "awareness": {"page_view": 4, "search": 2, "content_view": 2, "product_view": 1},
    "education": {"content_view": 4, "search": 2, "product_view": 2, "page_view": 1},
    "consideration": {"product_view": 4, "add_to_cart": 1.5, "wishlist_add": 1, "content_view": 2,
                      "remove_from_cart": 0.5},
    "purchase": {"product_view": 3, "add_to_cart": 2, "coupon_use": 0.5, "content_view": 1},
    "adoption": {"content_view": 3, "support_ticket": 0.5, "page_view": 2, "review": 0.5, "product_view": 1},
    "retention": {"product_view": 3, "recommendation_click": 1, "page_view": 2, "review": 0.4, "survey": 0.2},
    "advocacy": {"review": 2.0, "referral": 1.2, "survey": 0.8, "product_view": 2, "page_view": 1},
    "lapsed": {"page_view": 1},
}
_BODY_GHOST = {"page_view": 4, "product_view": 3, "search": 1}
_BODY_BLEND = (0.35, 0.45, 0.20)  # stage, persona, base: every stage emits every kind of event
_BODY_DISSATISFIED = {"support_ticket": 0.12, "complaint": 0.08, "remove_from_cart": 0.03}
_TOPIC_PERSONA = {
    "price_conscious": {"promo": 0.45, "sale": 0.45, "shipping": 0.1},
    "smart": {"specs": 0.45, "comparison": 0.45, "guide": 0.1},
    "risk_averse": {"returns_policy": 0.26, "warranty": 0.26, "faq": 0.24, "shipping": 0.24},
    "need_proof": {"reviews": 0.4, "ratings": 0.3, "bestsellers": 0.3},
    "get_it_later": {"inspiration": 0.45, "new_arrivals": 0.45, "guide": 0.1},
    "persuadable": {"trending": 0.5, "bestsellers": 0.2, "inspiration": 0.3},
    "ghost": {"inspiration": 0.5, "guide": 0.5},
}
_TOPIC_STAGE = {
    "awareness": {"inspiration": 0.3, "guide": 0.3, "new_arrivals": 0.2, "promo": 0.2},
    "education": {"guide": 0.35, "how_to": 0.25, "specs": 0.2, "faq": 0.2},
    "consideration": {"comparison": 0.25, "reviews": 0.25, "specs": 0.2, "shipping": 0.15, "returns_policy": 0.15},
    "purchase": {"shipping": 0.4, "returns_policy": 0.3, "promo": 0.3},
    "adoption": {"how_to": 0.4, "guide": 0.25, "faq": 0.2, "warranty": 0.15},
    "retention": {"new_arrivals": 0.4, "promo": 0.3, "how_to": 0.3},
    "advocacy": {"reviews": 0.4, "new_arrivals": 0.3, "inspiration": 0.3},
    "lapsed": {"guide": 1.0},
}
_TOPIC_BLEND = 0.55  # persona share of a content view's topic
_CAMPAIGN_P = np.array([0.3, 0.2, 0.25, 0.15, 0.1])
_ACQ_BASE = np.array([0.25, 0.15, 0.15, 0.1, 0.1, 0.15, 0.1])
_ACQ_LIFT = {PC: {6: 2.5, 3: 1.8}, SMART: {0: 2.0}, PROOF: {4: 2.5}, PERSUADE: {2: 2.2, 1: 1.8}}


def _vec(weights: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(len(names))
    for key, value in weights.items():
        out[names.index(key)] = value
    return out


def _cumulative(p: np.ndarray) -> np.ndarray:
    """Cumulative distribution along the last axis; the last entry is exactly 1 (x/x) so draws never overflow."""
    c = np.cumsum(p, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = c / c[..., -1:]
    return np.nan_to_num(c, nan=1.0)


def _draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row of cumulative probabilities `cum` with uniforms `u` in [0, 1)."""
    return (u[:, None] >= cum).sum(axis=1)


@dataclass(frozen=True)
class _Model:
    trans: np.ndarray  # (kinds, 16, 16) daily transition matrix of the joint state
    stay: np.ndarray  # (kinds, 16) diagonal
    move_cum: np.ndarray  # (kinds, 16, 16) cumulative of the off-diagonal, renormalised
    rate_state: np.ndarray  # (16,) stage x mood factor of the session rate
    q: np.ndarray  # (2 holiday?, modes, 16) per-session purchase probability
    body_cum: np.ndarray  # (modes, 16, len(BODY))
    body_len: np.ndarray  # (modes, stages) mean free-browsing events per session
    topic_cum: np.ndarray  # (modes, stages, len(CONTENT_TOPICS))


def _stage_matrix(moves: dict[str, dict[str, float]], tweak: dict[tuple[str, str], float]) -> np.ndarray:
    m = np.zeros((N_STAGES, N_STAGES))
    for src, row in moves.items():
        for dst, p in row.items():
            m[JOURNEY_STAGES.index(src), JOURNEY_STAGES.index(dst)] = p * tweak.get((src, dst), 1.0)
    return m


def _joint(off: np.ndarray, to_dis: np.ndarray) -> np.ndarray:
    """Joint (stage, dissatisfied) transition matrix from satisfied stage moves and mood flip rates."""
    sat = off.copy()
    dis = off.copy()
    i, j = np.indices(off.shape)
    dis[(j == LAPSED) & (i != LAPSED)] *= _DISSATISFIED_LAPSE
    dis[(j > i) & (j != LAPSED)] *= _DISSATISFIED_ADVANCE
    dis[(j < i) & (i != LAPSED)] *= _DISSATISFIED_FALLBACK
    t = np.zeros((N_STATES, N_STATES))
    for f, s_off in enumerate((sat, dis)):
        stage_t = s_off + np.diag(1.0 - s_off.sum(axis=1))
        if (np.diag(stage_t) < 0.5).any():
            raise AssertionError("stage transition rows must keep most of their mass on the diagonal")
        flip = to_dis if f == 0 else _TO_SATISFIED
        for s in range(N_STAGES):
            for s2 in range(N_STAGES):
                p = stage_t[s, s2]
                t[2 * s + f, 2 * s2 + f] = p * (1.0 - flip[s])
                t[2 * s + f, 2 * s2 + 1 - f] = p * flip[s]
    return t


@functools.cache
def _model() -> _Model:
    """Builds the model tables once, on first use (nothing runs at import)."""
    trans = np.zeros((len(KINDS), N_STATES, N_STATES))
    for k, persona in enumerate(PERSONAS):
        off = _stage_matrix(_STAGE_MOVES, _PERSONA_MOVES[persona])
        trans[k] = _joint(off, _TO_DISSATISFIED * _PERSONA_DISSATISFIED[k])
    trans[K_MIXED] = trans[: len(PERSONAS)].mean(axis=0)  # a mixed customer moves like the average persona
    ghost = _stage_matrix(_GHOST_MOVES, {})
    ghost += np.diag(1.0 - ghost.sum(axis=1))
    trans[K_GHOST] = _joint_ghost(ghost)
    stay = np.einsum("kii->ki", trans).copy()
    off = trans.copy()
    for k in range(len(KINDS)):
        np.fill_diagonal(off[k], 0.0)
    move_cum = _cumulative(off)

    stage_of = np.arange(N_STATES) // 2
    mood_of = np.arange(N_STATES) % 2
    rate_state = _STAGE_RATE[stage_of] * _MOOD_RATE[mood_of]
    q = np.empty((2, len(MODES), N_STATES))
    for h in (0, 1):
        lift = _MODE_HOLIDAY_Q if h else np.ones(len(MODES))
        q[h] = np.minimum(_Q_CAP, (_MODE_Q * lift)[:, None] * (_STAGE_Q[stage_of] * _MOOD_Q[mood_of])[None, :])

    base = _vec(_BODY_BASE, BODY)
    body = np.zeros((len(MODES), N_STATES, len(BODY)))
    for m, mode in enumerate(MODES):
        for st in range(N_STATES):
            stage = JOURNEY_STAGES[st // 2]
            if mode == GHOST:
                p = _vec(_BODY_GHOST, BODY)
            else:
                parts = (_vec(_BODY_STAGE[stage], BODY), _vec(_BODY_PERSONA[mode], BODY), base)
                p = sum(w * x / x.sum() for w, x in zip(_BODY_BLEND, parts))
                if st % 2:
                    p = p + _vec(_BODY_DISSATISFIED, BODY)
            body[m, st] = p / p.sum()
    body_len = _BODY_LEN_MODE[:, None] * _BODY_LEN_STAGE[None, :]
    topics = np.zeros((len(MODES), N_STAGES, len(CONTENT_TOPICS)))
    for m, mode in enumerate(MODES):
        for s, stage in enumerate(JOURNEY_STAGES):
            a, b = _vec(_TOPIC_PERSONA[mode], CONTENT_TOPICS), _vec(_TOPIC_STAGE[stage], CONTENT_TOPICS)
            topics[m, s] = _TOPIC_BLEND * a / a.sum() + (1 - _TOPIC_BLEND) * b / b.sum()
    return _Model(trans, stay, move_cum, rate_state, q, _cumulative(body), body_len, _cumulative(topics))


def _joint_ghost(stage_t: np.ndarray) -> np.ndarray:
    """Ghosts are never dissatisfied: their mood stays 0 and only the stage moves."""
    t = np.zeros((N_STATES, N_STATES))
    t[0::2, 0::2] = stage_t
    t[1::2, 1::2] = stage_t  # unreachable, kept stochastic
    return t


def transition_matrix(kind: str) -> pd.DataFrame:
    """The daily transition matrix of one customer kind over (stage, dissatisfied) states, rows = from."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    labels = pd.MultiIndex.from_product([JOURNEY_STAGES, [False, True]], names=["stage", "dissatisfied"])
    return pd.DataFrame(_model().trans[KINDS.index(kind)], index=labels, columns=labels)


# --------------------------------------------------------------------------- calendar


def _holiday_mask(config: SimulateConfig, day: np.ndarray) -> np.ndarray:
    dates = pd.DatetimeIndex(np.datetime64(config.start_date, "D") + day.astype("timedelta64[D]"))
    key = dates.month.to_numpy() * 100 + dates.day.to_numpy()
    days64 = dates.to_numpy().astype("datetime64[D]")
    mask = np.zeros(len(day), dtype=bool)
    for start, end in config.holidays:
        a, b = _parse_bound(start), _parse_bound(end)
        if isinstance(a, dt.date):
            mask |= (days64 >= np.datetime64(a, "D")) & (days64 <= np.datetime64(b, "D"))
        else:
            ka, kb = a[0] * 100 + a[1], b[0] * 100 + b[1]
            mask |= ((key >= ka) & (key <= kb)) if ka <= kb else ((key >= ka) | (key <= kb))
    return mask


@dataclass(frozen=True)
class _Calendar:
    weekend: np.ndarray  # bool per day
    holiday: np.ndarray  # bool per day
    season: np.ndarray  # global session-rate factor per day


def _calendar(config: SimulateConfig, day: np.ndarray) -> _Calendar:
    """Calendar of day indices (any, also beyond the simulated period): weekend, holiday, season factor."""
    day = np.asarray(day, dtype=np.int64)
    dates = np.datetime64(config.start_date, "D") + day.astype("timedelta64[D]")
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    doy = pd.DatetimeIndex(dates).day_of_year.to_numpy()
    holiday = _holiday_mask(config, day)
    # mild annual cycle (busier in winter) on top of holiday peaks
    season = (1.0 + 0.08 * np.cos(2 * np.pi * (doy - 15) / 365.25)) * np.where(holiday, _HOLIDAY_RATE, 1.0)
    return _Calendar(weekday >= 5, holiday, season)


def _week_factors(weekend_pref: np.ndarray) -> np.ndarray:
    """(n, 2) weekday/weekend rate factors; a week keeps the same mean whatever the preference."""
    weekday = 7.0 / (5.0 + 2.0 * weekend_pref)
    return np.stack([weekday, weekday * weekend_pref], axis=1)


# --------------------------------------------------------------------------- population


@dataclass
class _Population:
    kind: np.ndarray
    weights: np.ndarray  # (n, modes)
    fixed_mode: np.ndarray  # mode of a pure customer, -1 for mixed
    weights_cum: np.ndarray
    activity: np.ndarray
    weekend_pref: np.ndarray
    acq_day: np.ndarray
    init_state: np.ndarray
    chronotype: np.ndarray
    peak_hour: np.ndarray
    region: np.ndarray
    age_band: np.ndarray
    acquisition: np.ndarray
    fav_category: np.ndarray
    device_cum: np.ndarray
    app_share: np.ndarray
    email_share: np.ndarray
    ads_share: np.ndarray
    store_share: np.ndarray
    signed: np.ndarray
    plan: np.ndarray
    trial_end: np.ndarray
    signup_sec: np.ndarray  # local seconds since the start (negative: before it); NaN = not signed up


def _population(config: SimulateConfig, rng: np.random.Generator) -> _Population:
    n = config.customers
    shares = np.array([config.persona_shares.get(p, 0.0) for p in PERSONAS], dtype=float)
    pure = max(0.0, 1.0 - config.ghost_share - config.mixed_share)
    kind_p = np.concatenate([pure * shares / shares.sum(), [config.mixed_share, config.ghost_share]])
    kind = _draw(np.broadcast_to(_cumulative(kind_p), (n, len(KINDS))), rng.random(n)).astype(np.int8)

    weights = np.zeros((n, len(MODES)))
    pure_rows = kind < len(PERSONAS)
    weights[pure_rows, kind[pure_rows]] = 1.0
    weights[kind == K_GHOST, M_GHOST] = 1.0
    mixed = np.flatnonzero(kind == K_MIXED)
    w = rng.dirichlet(np.full(len(PERSONAS), 3.0), size=len(mixed))
    # "no dominant persona": pull any draw with a clear leader back towards uniform
    lead = w.max(axis=1, keepdims=True) > 0.45
    w = np.where(lead, 0.5 * w + 0.5 / len(PERSONAS), w)
    weights[mixed, : len(PERSONAS)] = w
    fixed_mode = np.where(kind == K_GHOST, M_GHOST, np.where(kind == K_MIXED, -1, kind)).astype(np.int8)

    activity = rng.lognormal(np.log(_ACTIVITY_MEDIAN), _ACTIVITY_SIGMA, n) * (weights @ _MODE_RATE)
    weekend_pref = rng.lognormal(0.0, 0.45, n)
    existing = (kind != K_GHOST) & (rng.random(n) < config.existing_share)
    acq_day = np.where(existing, 0, rng.integers(0, config.days, n)).astype(np.int32)
    u = rng.random(n)
    init_stage = np.where(
        kind == K_GHOST, _draw(np.broadcast_to(_cumulative(_GHOST_INIT), (n, N_STAGES)), u),
        np.where(existing, _draw(np.broadcast_to(_cumulative(_EXISTING_INIT), (n, N_STAGES)), u),
                 _draw(np.broadcast_to(_cumulative(_NEW_INIT), (n, N_STAGES)), u)),
    )
    post = (init_stage >= JOURNEY_STAGES.index("purchase")) & (init_stage < LAPSED)
    init_dis = existing & post & (rng.random(n) < _EXISTING_DISSATISFIED)
    init_state = (2 * init_stage + init_dis).astype(np.int8)

    age_band = rng.integers(0, len(AGE_BANDS), n)
    # younger customers lean to evening and night sessions
    chrono_p = np.array([[0.10, 0.20, 0.40, 0.30], [0.20, 0.30, 0.35, 0.15], [0.30, 0.35, 0.30, 0.05],
                         [0.40, 0.35, 0.22, 0.03], [0.50, 0.35, 0.13, 0.02]])
    chronotype = _draw(_cumulative(chrono_p)[age_band], rng.random(n))
    peak_hour = CHRONO_PEAK[chronotype] + rng.normal(0.0, 1.2, n)
    region = rng.integers(0, len(REGIONS), n)
    acq_p = np.tile(_ACQ_BASE, (n, 1))
    for persona, lifts in _ACQ_LIFT.items():
        for channel, lift in lifts.items():
            acq_p[:, channel] *= 1.0 + (lift - 1.0) * weights[:, persona]
    acq_p[kind == K_GHOST] = np.array([0.1, 0.35, 0.35, 0.0, 0.0, 0.1, 0.1])
    acquisition = _draw(_cumulative(acq_p), rng.random(n))
    fav_category = _draw(np.broadcast_to(_cumulative(CATEGORY_POP), (n, len(CATEGORIES))), rng.random(n))
    device_cum = _cumulative(rng.dirichlet([2.0, 3.0, 0.7], size=n))
    app_share = rng.beta(1.5, 3.0, n)
    email_share = rng.beta(1.2, 8.0, n)
    ads_share = rng.beta(1.0, 12.0, n)
    store_share = rng.beta(1.0, 8.0, n)

    signed = existing & ((init_stage >= JOURNEY_STAGES.index("purchase")) | (rng.random(n) < 0.3))
    plan = np.where(signed, _draw(np.broadcast_to(_cumulative(_EXISTING_PLAN), (n, len(PLANS))), rng.random(n)), -1)
    trial_end = np.where(plan == TRIAL, rng.integers(0, _TRIAL_DAYS, n), -1).astype(np.int32)
    before = rng.integers(30, 1000, n) * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY, n)
    signup_sec = np.where(signed, -before.astype(float), np.nan)
    return _Population(
        kind, weights, fixed_mode, _cumulative(weights), activity, weekend_pref, acq_day, init_state,
        chronotype, peak_hour, region, age_band, acquisition, fav_category, device_cum,
        app_share, email_share, ads_share, store_share, signed, plan.astype(np.int8), trial_end, signup_sec,
    )


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class _Catalog:
    category: np.ndarray
    topic: np.ndarray
    price: np.ndarray
    start: np.ndarray  # first product index of each category
    size: np.ndarray
    popular: np.ndarray  # bestsellers per category (the first ones of each category)

    def pick(self, rng: np.random.Generator, category: np.ndarray, popular_p: np.ndarray) -> np.ndarray:
        popular = rng.random(len(category)) < popular_p
        span = np.where(popular, self.popular[category], self.size[category])
        return (self.start[category] + (rng.random(len(category)) * span).astype(np.int64)).astype(np.int32)


def _catalog(rng: np.random.Generator) -> _Catalog:
    category = np.repeat(np.arange(len(CATEGORIES)), CATEGORY_SIZE)
    start = np.concatenate([[0], np.cumsum(CATEGORY_SIZE)[:-1]])
    popular = np.ceil(CATEGORY_SIZE * BESTSELLER_SHARE).astype(np.int64)
    median = CATEGORY_PRICE[category]
    price = np.round(np.maximum(1.0, median * rng.lognormal(0.0, 0.5, len(category)))) - 0.01
    rank = np.arange(len(category)) - start[category]
    other = np.array([PRODUCT_TOPICS.index(t) for t in ("eco", "new", "classic")])[rng.integers(0, 3, len(category))]
    topic = np.where(price < 0.7 * median, PRODUCT_TOPICS.index("budget"),
                     np.where(price > 1.5 * median, PRODUCT_TOPICS.index("premium"), other))
    topic = np.where(rank < popular[category], PRODUCT_TOPICS.index("bestseller"), topic)
    return _Catalog(category, topic, price, start, CATEGORY_SIZE.copy(), popular)


# --------------------------------------------------------------------------- one day of events


_SEGMENT_DEFAULTS: dict[str, float] = {"product": -1, "topic": -1, "rating": np.nan, "revenue": np.nan,
                                       "quantity": np.nan, "unit_price": np.nan, "discount": np.nan, "order": -1}


class _Segments:
    """Collects event segments of a day; each row knows its session, segment rank and position."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []

    def add(self, sess: np.ndarray, rank: int, pos: np.ndarray | int, etype: np.ndarray | int,
            **cols: np.ndarray) -> None:
        if len(sess) == 0:
            return
        n = len(sess)
        self.parts.append((sess, rank, np.broadcast_to(pos, n), np.broadcast_to(etype, n), cols))

    def build(self) -> dict[str, np.ndarray]:
        sess = np.concatenate([p[0] for p in self.parts])
        rank = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in self.parts])
        pos = np.concatenate([p[2] for p in self.parts]).astype(np.int32)
        out = {"sess": sess, "etype": np.concatenate([p[3] for p in self.parts]).astype(np.int8)}
        for col, default in _SEGMENT_DEFAULTS.items():
            out[col] = np.concatenate([
                p[4][col] if col in p[4] else np.full(len(p[0]), default) for p in self.parts
            ])
        order = np.lexsort((pos, rank, sess))
        return {k: v[order] for k, v in out.items()}


@dataclass
class _Live:
    """Per-customer state that evolves day by day besides the Markov state."""

    state: np.ndarray
    signed: np.ndarray
    plan: np.ndarray
    trial_end: np.ndarray
    has_purchased: np.ndarray
    last_product: np.ndarray
    saved_product: np.ndarray
    seen_product: np.ndarray  # last product looked at on an earlier day
    pend_order: np.ndarray
    pend_due: np.ndarray
    pend_product: np.ndarray
    pend_qty: np.ndarray
    pend_price: np.ndarray
    pend_revenue: np.ndarray


_B = {name: i for i, name in enumerate(BODY)}
_BODY_ET = np.array([ET.index(x) for x in BODY], dtype=np.int8)
_BODY_IS_PRODUCT = np.array([x in PRODUCT_EVENTS for x in BODY])


def _nps(rng: np.random.Generator, mood: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """NPS answers 0-10: dissatisfied low, satisfied high, satisfied advocates highest."""
    row = np.where(mood == 1, 2, np.where(stage == JOURNEY_STAGES.index("advocacy"), 1, 0))
    return _draw(_cumulative(_NPS)[row], rng.random(len(row))).astype(float)


def _first_per_customer(cust: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Of idx (already in the wanted order), the first entry of each customer."""
    _, first = np.unique(cust[idx], return_index=True)
    return idx[np.sort(first)]


def _last_per_customer(cust: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(customers, value of their last row) for rows in order."""
    uc, last_rev = np.unique(cust[::-1], return_index=True)
    return uc, values[::-1][last_rev]


def _simulate_day(d: int, rng: np.random.Generator, model: _Model, pop: _Population, cat: _Catalog,
                  live: _Live, cal: _Calendar, counters: dict[str, int]) -> dict[str, np.ndarray] | None:
    """Emits the events of day d for every customer in a non-lapsed stage; updates `live` (not the stage)."""
    state = live.state
    idx = np.flatnonzero((state >= 0) & ((state >> 1) != LAPSED))
    weekend = int(cal.weekend[d])
    lam = (pop.activity[idx] * _week_factors(pop.weekend_pref[idx])[:, weekend] * cal.season[d]
           * model.rate_state[state[idx]])
    n_sess = rng.poisson(lam)
    sc = np.repeat(idx, n_sess)
    S = len(sc)
    if S == 0:
        return None
    st = state[sc].astype(np.int64)
    stage, mood = st >> 1, st & 1
    mode = pop.fixed_mode[sc].astype(np.int64)
    mixed = mode < 0
    mode[mixed] = _draw(pop.weights_cum[sc[mixed]], rng.random(int(mixed.sum())))
    buy = rng.random(S) < model.q[int(cal.holiday[d]), mode, st]
    signed = live.signed[sc]
    ghost = mode == M_GHOST

    # channel: purchase-or-not is decided first (that is the Poisson thinning the oracle relies on)
    channel = np.where(rng.random(S) < pop.app_share[sc], APP, WEB)
    half = np.where(buy, 0.5, 1.0)
    email_p = np.where(signed, pop.email_share[sc], 0.0) * half
    ads_p = pop.ads_share[sc] * half
    u = rng.random(S)
    channel = np.where(u < email_p, EMAIL, np.where(u < email_p + ads_p, ADS, channel))
    channel = np.where(buy & (rng.random(S) < pop.store_share[sc]), STORE, channel)
    support = ~buy & ~ghost & (rng.random(S) < _SUPPORT_P[mood, stage])
    channel = np.where(support, SUPPORT, channel)
    dev = _draw(pop.device_cum[sc], rng.random(S))
    device = np.where(channel == APP, np.where(dev == 0, 1, dev), dev)
    device = np.where((channel == STORE) | (channel == SUPPORT), -1, device)
    clicked = buy | (rng.random(S) < _EMAIL_CLICK)
    email_only = (channel == EMAIL) & ~clicked
    hour = np.where(rng.random(S) < 0.85, np.floor(pop.peak_hour[sc] + rng.normal(0.0, 2.5, S)),
                    rng.integers(0, 24, S)) % 24
    start = (hour * 3600 + rng.integers(0, 3600, S)).astype(np.int64)
    sess_all = np.arange(S)

    seg = _Segments()
    # --- entry
    web_like = (channel == WEB) | (channel == APP)
    login = web_like & signed & ((channel == APP) | (rng.random(S) < 0.4))
    s = np.flatnonzero(web_like)
    seg.add(s, 0, 0, np.where(login[s], _e("login"), _e("page_view")))
    s = np.flatnonzero(channel == EMAIL)
    camp = _draw(np.broadcast_to(_cumulative(_CAMPAIGN_P), (len(s), len(CAMPAIGN_TOPICS))), rng.random(len(s)))
    camp_topic = np.array([TOPICS.index(t) for t in CAMPAIGN_TOPICS])[camp]
    seg.add(s, 0, 0, _e("email_open"), topic=camp_topic)
    c = clicked[s]
    seg.add(s[c], 0, 1, _e("email_click"), topic=camp_topic[c])
    s = np.flatnonzero(channel == ADS)
    camp = _draw(np.broadcast_to(_cumulative(_CAMPAIGN_P), (len(s), len(CAMPAIGN_TOPICS))), rng.random(len(s)))
    seg.add(s, 0, 0, _e("ad_click"), topic=np.array([TOPICS.index(t) for t in CAMPAIGN_TOPICS])[camp])
    s = np.flatnonzero(channel == SUPPORT)
    seg.add(s, 0, 0, _e("support_ticket"))
    comp = s[rng.random(len(s)) < np.where(mood[s] == 1, 0.5, 0.05)]
    seg.add(comp, 2, 0, _e("complaint"))
    surv = s[signed[s] & (rng.random(len(s)) < 0.25)]
    seg.add(surv, 2, 1, _e("survey"), rating=_nps(rng, mood[surv], stage[surv]))

    # --- account events ride on the customer's first interactive session of the day
    inter = np.flatnonzero(~email_only)
    acc = _first_per_customer(sc, inter[np.lexsort((start[inter], sc[inter]))])
    ac = sc[acc]
    due = (live.pend_order[ac] >= 0) & (live.pend_due[ac] <= d)
    r, rc = acc[due], ac[due]
    seg.add(r, 1, 0, _e("return"), product=live.pend_product[rc], quantity=live.pend_qty[rc],
            unit_price=live.pend_price[rc], revenue=live.pend_revenue[rc], order=live.pend_order[rc])
    live.pend_order[rc] = -1
    buy_today = np.zeros(len(state), dtype=bool)
    buy_today[sc[buy]] = True
    elig = ~live.signed[ac] & (pop.kind[ac] != K_GHOST) & ((stage[acc] >= 2) | buy_today[ac])
    su, suc = acc[elig], ac[elig]
    seg.add(su, 1, 1, _e("signup"))
    new_plan = _draw(np.broadcast_to(_cumulative(_SIGNUP_PLAN), (len(suc), len(PLANS))), rng.random(len(suc)))
    before = live.signed[ac].copy()
    pl = live.plan[ac]
    trial_due = before & (pl == TRIAL) & (live.trial_end[ac] <= d)
    convert = rng.random(len(ac)) < _TRIAL_CONVERT[mood[acc]]
    upgrade = (before & ((pl == FREE) | (pl == FREEMIUM)) & (stage[acc] >= 4) & (stage[acc] <= 6)
               & (rng.random(len(ac)) < _UPGRADE_P))
    cancel = before & (pl == PAID) & (rng.random(len(ac)) < _CANCEL_P[mood[acc]])
    sub_start = np.where(trial_due, convert, upgrade)
    sub_cancel = np.where(trial_due, ~convert, cancel)
    seg.add(acc[sub_start], 1, 2, _e("subscription_start"))
    seg.add(acc[sub_cancel], 1, 2, _e("subscription_cancel"))
    live.plan[ac[sub_start]] = PAID
    live.plan[ac[sub_cancel]] = FREE
    live.signed[suc] = True
    live.plan[suc] = new_plan
    live.trial_end[suc] = np.where(new_plan == TRIAL, d + _TRIAL_DAYS, -1)

    # --- focus product of each session: favourite category most of the time
    fav = rng.random(S) < _FAV_CATEGORY_P
    rand_cat = _draw(np.broadcast_to(_cumulative(CATEGORY_POP), (S, len(CATEGORIES))), rng.random(S))
    focus_cat = np.where(fav, pop.fav_category[sc], rand_cat)
    focus = cat.pick(rng, focus_cat, _POPULAR_P[mode])

    # --- free browsing
    browsing = web_like | (channel == ADS) | ((channel == EMAIL) & clicked)
    mean_len = model.body_len[mode, stage] * np.where(buy, _BUY_BODY_FACTOR, 1.0) * browsing
    k = rng.poisson(mean_len)
    bs = np.repeat(sess_all, k)
    bpos = np.arange(len(bs)) - np.repeat(np.cumsum(k) - k, k)
    btype = _draw(model.body_cum[mode[bs], st[bs]], rng.random(len(bs)))
    bc = sc[bs]
    # events that need an account or an earlier purchase fall back to plain browsing
    btype = np.where((btype == _B["review"]) & ~live.has_purchased[bc], _B["product_view"], btype)
    btype = np.where(((btype == _B["survey"]) | (btype == _B["referral"])) & ~signed[bs], _B["page_view"], btype)
    etype = _BODY_ET[btype]
    r = rng.random(len(bs))
    same_cat = cat.pick(rng, focus_cat[bs], _POPULAR_P[mode[bs]])
    any_cat = cat.pick(rng, _draw(np.broadcast_to(_cumulative(CATEGORY_POP), (len(bs), len(CATEGORIES))),
                                  rng.random(len(bs))), _POPULAR_P[mode[bs]])
    product = np.where(_BODY_IS_PRODUCT[btype],
                       np.where(r < 0.55, focus[bs], np.where(r < 0.85, same_cat, any_cat)), -1)
    is_review = btype == _B["review"]
    product = np.where(is_review, live.last_product[bc], product)
    topic = np.full(len(bs), -1, dtype=np.int64)
    ci = np.flatnonzero(btype == _B["content_view"])
    # CONTENT_TOPICS come first in TOPICS, so a content-topic index is also a TOPICS index
    topic[ci] = _draw(model.topic_cum[mode[bs[ci]], stage[bs[ci]]], rng.random(len(ci)))
    rating = np.full(len(bs), np.nan)
    ri = np.flatnonzero(is_review)
    rating[ri] = 1 + _draw(_cumulative(_STARS)[mood[bs[ri]]], rng.random(len(ri)))
    si = np.flatnonzero(btype == _B["survey"])
    rating[si] = _nps(rng, mood[bs[si]], stage[bs[si]])
    # carts and wishlists hold the product in focus, looked at right before it is saved
    keeps = (btype == _B["wishlist_add"]) | (btype == _B["add_to_cart"]) | (btype == _B["remove_from_cart"])
    product = np.where(keeps, focus[bs], product)
    seg.add(bs, 2, 2 * bpos + 1, etype, product=product, topic=topic, rating=rating)
    kv = np.flatnonzero(keeps & (btype != _B["remove_from_cart"]))
    seg.add(bs[kv], 2, 2 * bpos[kv], _e("product_view"), product=product[kv])

    # --- purchase funnel
    b = np.flatnonzero(buy)
    bcu, mb = sc[b], mode[b]
    click = channel[b] != STORE
    main = focus[b].astype(np.int64)
    # get-it-later customers come back for what they saved (or at least looked at) on an earlier day
    saved = live.saved_product[bcu]
    saved = np.where((saved < 0) & (mb == LATER), live.seen_product[bcu], saved)
    use_saved = (saved >= 0) & (rng.random(len(b)) < _SAVED_BUY_P[mb])
    main = np.where(use_saved, saved, main)
    live.saved_product[bcu[use_saved]] = -1
    views = np.where(mb == SMART, _SMART_MIN_VIEWS - 1, 0) + 1 + rng.poisson(_VIEWS_EXTRA[mb])
    views = np.where(click, views, 0)
    vs = np.repeat(b, views)
    vpos = np.arange(len(vs)) - np.repeat(np.cumsum(views) - views, views)
    last_view = vpos == np.repeat(views - 1, views)
    alt = cat.pick(rng, focus_cat[vs], 0.5)
    seg.add(vs, 3, vpos, _e("product_view"),
            product=np.where(last_view | (rng.random(len(vs)) < 0.5), np.repeat(main, views), alt))
    seg.add(b[click], 4, 0, _e("add_to_cart"), product=main[click])
    n_add = np.minimum(rng.poisson(_ADDONS[mb]), _MAX_ADDONS)
    ad_s = np.repeat(b, n_add)
    ad_pos = np.arange(len(ad_s)) - np.repeat(np.cumsum(n_add) - n_add, n_add)
    add_cat = _draw(np.broadcast_to(_cumulative(CATEGORY_POP), (len(ad_s), len(CATEGORIES))), rng.random(len(ad_s)))
    ad_prod = cat.pick(rng, add_cat, 0.8)  # recommendations push bestsellers
    ad_click = channel[ad_s] != STORE
    seg.add(ad_s[ad_click], 5, 2 * ad_pos[ad_click], _e("recommendation_click"), product=ad_prod[ad_click])
    seg.add(ad_s[ad_click], 5, 2 * ad_pos[ad_click] + 1, _e("add_to_cart"), product=ad_prod[ad_click])
    coupon = rng.random(len(b)) < _COUPON_P[mb]
    seg.add(b[coupon], 6, 0, _e("coupon_use"))
    seg.add(b[click], 7, 0, _e("checkout"))
    order_no = counters["order"] + np.arange(len(b))
    counters["order"] += len(b)
    lines = 1 + n_add
    ls = np.repeat(b, lines)
    lpos = np.arange(len(ls)) - np.repeat(np.cumsum(lines) - lines, lines)
    li = np.repeat(np.arange(len(b)), lines)
    lprod = np.empty(len(ls), dtype=np.int64)
    is_main = lpos == 0
    lprod[is_main] = main
    lprod[~is_main] = ad_prod
    qty = 1.0 + rng.poisson(_QTY_EXTRA[mode[ls]])
    unit = cat.price[lprod]
    frac = np.where(cal.holiday[d], _SALE_DISCOUNT, 0.0) + coupon[li] * np.where(
        mode[ls] == PC, rng.uniform(0.10, 0.25, len(ls)), rng.uniform(0.05, 0.10, len(ls)))
    gross = np.round(unit * qty, 2)
    discount = np.round(gross * frac, 2)
    revenue = np.round(gross - discount, 2)
    seg.add(ls, 8, lpos, _e("purchase"), product=lprod, quantity=qty, unit_price=unit, revenue=revenue,
            discount=discount, order=order_no[li])
    # returns: the main line, some days later, if the customer has no other return pending
    ret = rng.random(len(b)) < _RETURN_P[mb] * np.where(mood[b] == 1, _DISSATISFIED_RETURN, 1.0)
    cand = np.flatnonzero(ret & (live.pend_order[bcu] < 0))
    cand = cand[np.sort(np.unique(bcu[cand], return_index=True)[1])]
    rcu = bcu[cand]
    first_line = np.flatnonzero(is_main)[cand]
    live.pend_order[rcu] = order_no[cand]
    live.pend_due[rcu] = d + _RETURN_DELAY_MIN + rng.poisson(_RETURN_DELAY_MEAN, len(cand))
    live.pend_product[rcu] = main[cand]
    live.pend_qty[rcu] = qty[first_line]
    live.pend_price[rcu] = unit[first_line]
    live.pend_revenue[rcu] = revenue[first_line]
    uc, lp = _last_per_customer(bcu, main)
    live.has_purchased[uc] = True
    live.last_product[uc] = lp

    # --- abandoned carts: some browsing sessions with a cart go on to checkout and leave
    cart = np.zeros(S, dtype=bool)
    cart[bs[btype == _B["add_to_cart"]]] = True
    ab = np.flatnonzero(cart & ~buy & (rng.random(S) < _ABANDON_CHECKOUT[mode]))
    seg.add(ab, 9, 0, _e("checkout"))
    # the oldest saved item stays the one to come back for, so saving and buying lie days apart
    keep = ~buy[bs] & ((btype == _B["wishlist_add"]) | (btype == _B["add_to_cart"]))
    uc, sp = _last_per_customer(bc[keep], product[keep])
    empty = live.saved_product[uc] < 0
    live.saved_product[uc[empty]] = sp[empty]
    looked = product >= 0
    uc, lp = _last_per_customer(bc[looked], product[looked])
    live.seen_product[uc] = lp

    # --- assemble with timestamps: sessions start at the customer's habitual hour, events follow
    ev = seg.build()
    es = ev["sess"]
    n_ev = len(es)
    gap = np.minimum(np.floor(rng.exponential(_GAP_MEAN[mode[es]])) + 1, _GAP_MAX).astype(np.int64)
    first = np.r_[True, es[1:] != es[:-1]]
    gap[first] = 0
    cs = np.cumsum(gap)
    starts = np.flatnonzero(first)
    offset = cs - np.repeat(cs[starts], np.diff(np.r_[starts, n_ev]))
    total = np.zeros(S, dtype=np.int64)
    total[es[starts]] = offset[np.r_[starts[1:], n_ev] - 1]
    # a session never spills into the next day (that would break the day-level truth): an extreme
    # one is squeezed into the day, the rest start earlier when they would run past midnight
    long = total[es] > SECONDS_PER_DAY - 1
    offset = np.where(long, offset * (SECONDS_PER_DAY - 1) // np.maximum(total[es], 1), offset)
    total = np.minimum(total, SECONDS_PER_DAY - 1)
    begin = np.maximum(0, np.minimum(start, SECONDS_PER_DAY - 1 - total))
    local = d * SECONDS_PER_DAY + begin[es] + offset
    cust = sc[es]
    order = np.lexsort((cust, local))
    out = {
        "customer": cust[order].astype(np.int32),
        "local": local[order],
        "etype": ev["etype"][order],
        "session": (counters["session"] + es[order]).astype(np.int64),
        "order": ev["order"][order].astype(np.int64),
        "channel": channel[es][order].astype(np.int8),
        "device": device[es][order].astype(np.int8),
        "product": ev["product"][order].astype(np.int32),
        "topic": ev["topic"][order].astype(np.int8),
        "rating": ev["rating"][order].astype(np.float32),
        "revenue": ev["revenue"][order],
        "quantity": ev["quantity"][order].astype(np.float32),
        "unit_price": ev["unit_price"][order],
        "discount": ev["discount"][order],
    }
    counters["session"] += S
    return out


def _advance(rng: np.random.Generator, model: _Model, kind: np.ndarray, state: np.ndarray) -> None:
    """One day of the Markov chain for every acquired customer (in place on the working state array)."""
    a = np.flatnonzero(state >= 0)
    s, k = state[a].astype(np.int64), kind[a].astype(np.int64)
    u = rng.random(len(a))
    stay = model.stay[k, s]
    mv = np.flatnonzero(u >= stay)
    if len(mv) == 0:
        return
    # reuse the uniform: given a move, (u - stay) / (1 - stay) is uniform on [0, 1)
    u2 = np.minimum((u[mv] - stay[mv]) / (1.0 - stay[mv]), np.nextafter(1.0, 0.0))
    state[a[mv]] = _draw(model.move_cum[k[mv], s[mv]], u2).astype(np.int8)


# --------------------------------------------------------------------------- result


@dataclass
class SimulatedData:
    """Simulated tables on the data contract plus exact ground truth.

    events/customers/catalog are what a user would export. personas, stages (per-day stage as runs
    [start, end) of local dates), states (runs of the joint (stage, dissatisfied) state) and latent
    (per-customer parameters of the generative model) are the truth; true_propensities derives the
    oracle from them, so it works the same after write_simulation/read_simulation.
    """

    events: pd.DataFrame
    customers: pd.DataFrame
    catalog: pd.DataFrame
    personas: pd.DataFrame
    stages: pd.DataFrame
    config: SimulateConfig
    states: pd.DataFrame = field(repr=False)
    latent: pd.DataFrame = field(repr=False)

    def true_propensities(self, cutoff: dt.date | dt.datetime | pd.Timestamp | str, horizon_days: int) -> pd.DataFrame:
        """Oracle propensities for the window [cutoff, cutoff + horizon_days) from each customer's latent state.

        Index customer_id; columns p_purchase (P(at least one purchase event in the window)), p_active
        (P(at least one event of any type)), stage_at_cutoff, dissatisfied_at_cutoff and persona. The state
        at the cutoff is the one of the last day before it; the probabilities are exact under the model
        (forward recursion over the Markov chain), not estimated from the realised future. cutoff is a
        local midnight in config.timezone (a date, or a timestamp at 00:00 there), from the second
        simulated day up to the day after the last. Customers not yet acquired by the cutoff (no state
        before it) are not in the population and are left out of the result.
        """
        return _oracle(self, cutoff, horizon_days)


def stage_on(sim: SimulatedData, date: dt.date | pd.Timestamp | str) -> pd.Series:
    """True stage of every customer acquired by `date` (a local date), indexed by customer_id."""
    day = pd.Timestamp(date)
    day = (day.tz_localize(None) if day.tzinfo is not None else day).normalize()
    st = sim.stages
    hit = st[(st["start"] <= day) & (st["end"] > day)]
    return pd.Series(hit["stage"].to_numpy(), index=pd.Index(hit["customer_id"].to_numpy(), name="customer_id"),
                     name="stage")


def expand_stages(stages: pd.DataFrame) -> pd.DataFrame:
    """Per-day rows (customer_id, date, stage) from run-length stages; large: customers x days rows."""
    length = ((stages["end"] - stages["start"]).dt.days).to_numpy()
    rep = np.repeat(np.arange(len(stages)), length)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(length) - length, length)
    dates = stages["start"].to_numpy()[rep] + within.astype("timedelta64[D]")
    return pd.DataFrame({
        "customer_id": stages["customer_id"].to_numpy()[rep],
        "date": dates.astype("datetime64[us]"),
        "stage": stages["stage"].to_numpy()[rep],
    })


# --------------------------------------------------------------------------- simulate


def simulate(config: SimulateConfig) -> SimulatedData:
    """Generates events, side tables and ground truth; the same config (seed included) gives identical output."""
    model = _model()
    rng_cat, rng_pop, rng_days = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3))
    cat = _catalog(rng_cat)
    pop = _population(config, rng_pop)
    n, days = config.customers, config.days
    cal = _calendar(config, np.arange(days))

    # customers known from day 0 in a post-purchase stage have bought before: they can review and re-buy
    bought = (pop.acq_day == 0) & (pop.init_state >> 1 >= JOURNEY_STAGES.index("purchase")) & (pop.kind != K_GHOST)
    last_product = np.where(bought, cat.pick(rng_pop, pop.fav_category, 0.5), -1).astype(np.int64)
    live = _Live(
        state=np.full(n, -1, dtype=np.int8), signed=pop.signed.copy(), plan=pop.plan.copy(),
        trial_end=pop.trial_end.copy(), has_purchased=bought,
        last_product=last_product, saved_product=np.full(n, -1, dtype=np.int64),
        seen_product=np.full(n, -1, dtype=np.int64),
        pend_order=np.full(n, -1, dtype=np.int64), pend_due=np.zeros(n, dtype=np.int64),
        pend_product=np.zeros(n, dtype=np.int64), pend_qty=np.zeros(n), pend_price=np.zeros(n),
        pend_revenue=np.zeros(n),
    )
    by_acq = np.argsort(pop.acq_day, kind="stable")
    bounds = np.searchsorted(pop.acq_day[by_acq], np.arange(days + 1))
    history = np.empty((days, n), dtype=np.int8)
    counters = {"order": 0, "session": 0}
    chunks: list[dict[str, np.ndarray]] = []
    for d in range(days):
        arrived = by_acq[bounds[d]: bounds[d + 1]]
        live.state[arrived] = pop.init_state[arrived]
        history[d] = live.state  # the state that drives day d's emissions
        out = _simulate_day(d, rng_days, model, pop, cat, live, cal, counters)
        if out is not None:
            chunks.append(out)
        _advance(rng_days, model, pop.kind, live.state)  # then move on to day d + 1
    ev = {k: np.concatenate([c.pop(k) for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
          for k in _EVENT_KEYS}  # pop: each day's arrays are freed as soon as they are copied
    return _assemble(config, pop, cat, live, history.T, ev, counters)


_EVENT_KEYS = ("customer", "local", "etype", "session", "order", "channel", "device", "product", "topic",
               "rating", "revenue", "quantity", "unit_price", "discount")


def _ids(prefix: str, count: int, width: int) -> pa.Array:
    """Ids prefix + zero-padded 1..count, as large strings (the storage of pandas' str dtype: no copy later)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, count + 1)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "").cast(pa.large_string())


def _take(vocab: tuple[str, ...] | pa.Array, codes: np.ndarray) -> pa.Array:
    """Strings of `vocab` at `codes` (negative -> null), decoded from a dictionary array in one pass."""
    values = vocab if isinstance(vocab, pa.Array) else pa.array(list(vocab), pa.large_string())
    index_type = np.int32 if len(values) < 2**31 else np.int64
    indices = pa.array(codes.astype(index_type), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, values).dictionary_decode()


def _local_to_utc(config: SimulateConfig, seconds: np.ndarray) -> np.ndarray:
    """Local wall-clock seconds since start_date 00:00 -> UTC datetime64[us] (NaN -> NaT)."""
    seconds = np.asarray(seconds, dtype=float)
    nat = np.isnan(seconds)
    whole = np.where(nat, 0, seconds).astype(np.int64)
    local = np.datetime64(config.start_date, "us") + whole.astype("timedelta64[s]")
    if config.timezone != "UTC":
        idx = pd.DatetimeIndex(local).tz_localize(
            config.timezone, ambiguous=np.zeros(len(local), dtype=bool), nonexistent="shift_forward"
        )
        local = idx.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
    out = local.astype("datetime64[us]")
    out[nat] = np.datetime64("NaT")
    return out


def _dates(config: SimulateConfig, day: np.ndarray) -> np.ndarray:
    return (np.datetime64(config.start_date, "D") + np.asarray(day).astype("timedelta64[D]")).astype("datetime64[us]")


def _runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of each row of a (customers, days) code matrix; code -1 (not acquired) is dropped."""
    n, days = codes.shape
    change = np.ones((n, days), dtype=bool)
    change[:, 1:] = codes[:, 1:] != codes[:, :-1]
    row, col = np.nonzero(change)
    value = codes[row, col]
    end = np.empty_like(col)
    end[:-1] = col[1:]
    last = np.r_[row[1:] != row[:-1], True]
    end[last] = days
    keep = value >= 0
    return row[keep], col[keep], end[keep], value[keep]


def _assemble(config: SimulateConfig, pop: _Population, cat: _Catalog, live: _Live, history: np.ndarray,
              ev: dict[str, np.ndarray], counters: dict[str, int]) -> SimulatedData:
    n = config.customers
    width = max(6, len(str(n)))
    cust_ids = _ids("C", n, width)
    prod_ids = _ids("P", len(cat.price), 4)
    ts = _local_to_utc(config, ev["local"])
    if config.timezone != "UTC":
        # a DST shift can make two local times one UTC time: restore (timestamp, customer) order
        order = np.lexsort((ev["customer"], ts))
        ev, ts = {k: v[order] for k, v in ev.items()}, ts[order]
    product = ev["product"].astype(np.int64)
    columns = {
        "customer_id": _take(cust_ids, ev["customer"]),
        "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "event_type": _take(ET, ev["etype"]),
        "session_id": _take(_ids("S", counters["session"], max(8, len(str(counters["session"])))), ev["session"]),
        "order_id": _take(_ids("O", counters["order"], max(7, len(str(counters["order"])))), ev["order"]),
        "channel": _take(CHANNELS, ev["channel"]),
        "device": _take(DEVICES, ev["device"]),
        "revenue": pa.array(ev["revenue"].astype(np.float64)),
        "quantity": pa.array(ev["quantity"].astype(np.float64)),
        "unit_price": pa.array(ev["unit_price"].astype(np.float64)),
        "product_id": _take(prod_ids, product),
        "category": _take(CATEGORIES, np.where(product < 0, -1, cat.category[np.maximum(product, 0)])),
        "discount": pa.array(ev["discount"].astype(np.float64)),
        "topic": _take(TOPICS, ev["topic"].astype(np.int64)),
        "rating": pa.array(ev["rating"].astype(np.float64)),
    }
    events = pa.table({c: columns[c] for c in column_names("events")}).to_pandas()

    signup_sec = pop.signup_sec.copy()
    is_signup = ev["etype"] == _e("signup")
    signup_sec[ev["customer"][is_signup]] = ev["local"][is_signup]
    customers = pa.table({
        "customer_id": cust_ids,
        "signup_at": pa.array(_local_to_utc(config, signup_sec), pa.timestamp("us", tz="UTC")),
        "plan": _take(PLANS, live.plan.astype(np.int64)),
        "acquisition_channel": _take(ACQUISITION, pop.acquisition),
        "region": _take(REGIONS, pop.region),
        "age_band": _take(AGE_BANDS, pop.age_band),
    }).to_pandas()
    catalog = pa.table({
        "product_id": prod_ids,
        "category": _take(CATEGORIES, cat.category),
        "topic": _take(PRODUCT_TOPICS, cat.topic),
        "price": pa.array(cat.price),
    }).to_pandas()
    personas = pa.table({"customer_id": cust_ids, "persona": _take(KINDS, pop.kind.astype(np.int64))}).to_pandas()

    row, start, end, code = _runs(history)
    states = pa.table({
        "customer_id": _take(cust_ids, row),
        "stage": _take(JOURNEY_STAGES, (code >> 1).astype(np.int64)),
        "dissatisfied": pa.array((code & 1).astype(bool)),
        "start": pa.array(_dates(config, start)),
        "end": pa.array(_dates(config, end)),
    }).to_pandas()
    stage_codes = np.where(history >= 0, history >> 1, -1).astype(np.int8)
    row, start, end, code = _runs(stage_codes)
    stages = pa.table({
        "customer_id": _take(cust_ids, row),
        "stage": _take(JOURNEY_STAGES, code.astype(np.int64)),
        "start": pa.array(_dates(config, start)),
        "end": pa.array(_dates(config, end)),
    }).to_pandas()
    latent_cols: dict[str, Any] = {
        "customer_id": cust_ids,
        "persona": _take(KINDS, pop.kind.astype(np.int64)),
        "acquired": pa.array(_dates(config, pop.acq_day)),
        "activity": pa.array(pop.activity),
        "weekend_pref": pa.array(pop.weekend_pref),
    }
    for m, mode in enumerate(MODES):
        latent_cols[f"w_{mode}"] = pa.array(pop.weights[:, m])
    latent_cols["chronotype"] = _take(CHRONOTYPES, pop.chronotype)
    latent_cols["peak_hour"] = pa.array(pop.peak_hour % 24)
    latent = pa.table(latent_cols).to_pandas()
    return SimulatedData(events, customers, catalog, personas, stages, config, states, latent)


# --------------------------------------------------------------------------- oracle


def _cutoff_day(config: SimulateConfig, cutoff: dt.date | dt.datetime | pd.Timestamp | str) -> int:
    ts = pd.Timestamp(cutoff)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(config.timezone).tz_localize(None)
    if ts != ts.normalize():
        raise ValueError(
            f"cutoff {cutoff!r} is not at midnight in {config.timezone}; pass a date such as '2025-07-01'"
        )
    day = (ts.date() - config.start_date).days
    if not 1 <= day <= config.days:
        first = config.start_date + dt.timedelta(days=1)
        last = config.start_date + dt.timedelta(days=config.days)
        raise ValueError(
            f"cutoff {ts.date()} is outside the simulated period; pick a date from {first} to {last} "
            "(the state of the day before the cutoff must have been simulated)"
        )
    return day


def _oracle(sim: SimulatedData, cutoff: dt.date | dt.datetime | pd.Timestamp | str, horizon_days: int) -> pd.DataFrame:
    config = sim.config
    if not isinstance(horizon_days, (int, np.integer)) or horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days!r}; use a whole number of days >= 1")
    c = _cutoff_day(config, cutoff)
    model = _model()
    lat = sim.latent
    the_day = pd.Timestamp(_dates(config, np.array([c - 1]))[0])  # the state there drives the window
    lat = lat[(lat["acquired"] <= the_day).to_numpy()]
    ids = lat["customer_id"].to_numpy()
    st = sim.states
    at = st[(st["start"] <= the_day) & (st["end"] > the_day)]
    pos = pd.Index(at["customer_id"]).get_indexer(pd.Index(ids))
    if (pos < 0).any():
        raise ValueError("truth states do not cover every acquired customer; the simulation files are inconsistent")
    stage = pd.Index(JOURNEY_STAGES).get_indexer(at["stage"].to_numpy()[pos])
    dissatisfied = at["dissatisfied"].to_numpy()[pos].astype(bool)
    x = 2 * stage + dissatisfied
    kind = pd.Index(KINDS).get_indexer(lat["persona"].to_numpy())
    weights = lat[[f"w_{m}" for m in MODES]].to_numpy()
    activity = lat["activity"].to_numpy()
    week = _week_factors(lat["weekend_pref"].to_numpy())
    groups = [(k, np.flatnonzero(kind == k)) for k in range(len(KINDS))]

    def step(pi: np.ndarray) -> np.ndarray:
        out = np.empty_like(pi)
        for k, rows in groups:
            out[rows] = pi[rows] @ model.trans[k]
        return out

    window = c + np.arange(horizon_days)
    cal = _calendar(config, window)
    # no_buy[c, s] = P(state s today and no purchase so far); p_purchase adds up the mass that buys
    # on each day, -expm1 keeping tiny probabilities exact (a ghost's is exactly 0)
    no_buy = model.trans[kind, x]  # distribution of the state on the cutoff day
    quiet = no_buy.copy()
    p_buy, p_act = np.zeros(len(ids)), np.zeros(len(ids))
    for j in range(horizon_days):
        lam = (activity * week[:, int(cal.weekend[j])] * cal.season[j])[:, None] * model.rate_state[None, :]
        q = weights @ model.q[int(cal.holiday[j])]
        # emissions of day j given its state, then the move to the next day (as in simulate)
        p_buy += (no_buy * -np.expm1(-lam * q)).sum(axis=1)
        p_act += (quiet * -np.expm1(-lam)).sum(axis=1)
        no_buy *= np.exp(-lam * q)
        quiet *= np.exp(-lam)
        if j < horizon_days - 1:
            no_buy, quiet = step(no_buy), step(quiet)
    out = pd.DataFrame({
        "p_purchase": np.clip(p_buy, 0.0, 1.0),
        "p_active": np.clip(p_act, 0.0, 1.0),
        "stage_at_cutoff": np.array(JOURNEY_STAGES, dtype=object)[stage],
        "dissatisfied_at_cutoff": dissatisfied,
        "persona": lat["persona"].to_numpy(),
    }, index=pd.Index(ids, name="customer_id"))
    out["stage_at_cutoff"] = out["stage_at_cutoff"].astype("str")
    return out


# --------------------------------------------------------------------------- files

_FILES = {
    "events": "events.parquet",
    "customers": "customers.parquet",
    "catalog": "catalog.parquet",
    "personas": "truth_personas.parquet",
    "stages": "truth_stages.parquet",
    "states": "truth_state.parquet",
    "latent": "truth_latent.parquet",
}
_META = "simulation.json"


def write_simulation(sim: SimulatedData, out_dir: Path) -> dict[str, Path]:
    """Writes every table and the truth as Parquet plus simulation.json (config); each file atomically.

    simulation.json is written last, so its presence means the folder is complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for attr, name in _FILES.items():
        frame: pd.DataFrame = getattr(sim, attr)
        paths[name.removesuffix(".parquet")] = write_parquet_atomic(frame, out / name)
    meta = {
        "format": FORMAT,
        "config": sim.config.model_dump(mode="json"),
        "files": dict(_FILES),
        "rows": {attr: len(getattr(sim, attr)) for attr in _FILES},
    }
    text = json.dumps(meta, indent=2) + "\n"
    paths["simulation"] = write_atomic(out / _META, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return paths


def read_simulation(out_dir: Path) -> SimulatedData:
    """Reads a folder written by write_simulation back into the same SimulatedData."""
    folder = Path(out_dir)
    meta_path = folder / _META
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: {folder} is not a complete simulation folder; write one with write_simulation "
            "or `python -m pipeline simulate --out DIR`"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}; simulate the data again")
    config = SimulateConfig.model_validate(meta["config"])
    frames: dict[str, pd.DataFrame] = {}
    for attr, name in meta["files"].items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the simulation folder {folder}; simulate it again")
        frames[attr] = pd.read_parquet(path)
    return SimulatedData(config=config, **frames)
