"""Simple baselines every propensity model must beat: recency rank and RFM score, on the same customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

# (feature, sign) per target: the sign makes a higher score mean "more likely".
BASELINES: dict[str, dict[str, tuple[str, float]]] = {
    "purchase": {"recency": ("timing__days_since_last_event", -1.0), "rfm": ("value__rfm_score", 1.0)},
    "churn": {"recency": ("timing__days_since_last_event", 1.0), "rfm": ("value__rfm_score", -1.0)},
}
# What a missing input means: no RFM score = never bought, weaker than the weakest cell 111;
# no last event = as old as it gets. Filled before the sign, so "weakest" holds for both targets.
_WEAKEST = {"value__rfm_score": lambda v: 0.0, "timing__days_since_last_event": lambda v: v.max() + 1}


def baseline_scores(features: pd.DataFrame, target: str) -> dict[str, pd.Series]:
    """Returns each available baseline's score per customer (higher = more likely purchase, or churn).

    Recency: the fewer days since the last event, the likelier a purchase and the less likely churn.
    RFM: the 3-digit R-F-M score; non-buyers have none and count as the weakest customers (least
    likely to buy, most likely to churn).
    """
    out: dict[str, pd.Series] = {}
    for name, (column, sign) in BASELINES[target].items():
        if column not in features.columns:
            continue
        raw = pd.to_numeric(features[column], errors="coerce")
        weakest = _WEAKEST[column](raw) if raw.notna().any() else 0.0
        out[name] = raw.fillna(weakest) * sign
    return out


def baseline_auc(features: pd.DataFrame, y: pd.Series, target: str) -> dict[str, float]:
    """Returns ROC-AUC of each baseline against labels y (index customer_id; NA = not eligible)."""
    labelled = y.dropna()
    out: dict[str, float] = {}
    for name, score in baseline_scores(features, target).items():
        aligned = score.reindex(labelled.index)
        keep = aligned.notna()
        truth = labelled[keep].astype(float).to_numpy()
        out[name] = float(roc_auc_score(truth, aligned[keep].to_numpy())) if len(np.unique(truth)) == 2 else float("nan")
    return out
