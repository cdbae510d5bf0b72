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


def baseline_scores(features: pd.DataFrame, target: str) -> dict[str, pd.Series]:
    """Returns each available baseline's score per customer (missing inputs rank lowest for that baseline).

    Recency: the fewer days since the last event, the likelier a purchase and the less likely churn.
    RFM: the 3-digit R-F-M score (non-buyers have none and rank as the weakest customers).
    """
    out: dict[str, pd.Series] = {}
    for name, (column, sign) in BASELINES[target].items():
        if column not in features.columns:
            continue
        values = pd.to_numeric(features[column], errors="coerce") * sign
        floor = values.min() - 1 if values.notna().any() else 0.0
        out[name] = values.fillna(floor)
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
