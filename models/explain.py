"""SHAP explanations of a fitted PropensityModel: per-customer values, global importance and reason codes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

with warnings.catch_warnings():
    # shap's plotting module triggers matplotlib pending-deprecation warnings on import; none concern us.
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    import shap

from models.propensity import PropensityModel
from models.treeshap import GroupedTreeShap

MISSING_TEXT = "missing"
METHODS = ("grouped", "direct")


class Explainer:
    """Explains a fitted PropensityModel with shap.TreeExplainer on its LightGBM booster.

    The SHAP values explain the log-odds (raw margin) of the uncalibrated booster, not the
    calibrated probability: per row, base_value + sum of SHAP values == model.predict_margin(X).
    Calibration is a monotone map applied afterwards, so which features push a customer up or
    down, and by how much relative to each other, carries over to the probability.

    `outcome` is the phrase the reason texts end with, e.g. "purchase likelihood" or "churn risk".
    `method` picks how the exact values are computed: "grouped" (the default) runs LightGBM's TreeSHAP
    once per distinct decision pattern of each tree (models.treeshap): several times faster on large
    batches, and a customer's values are the same to the last bit whatever batch or chunk they are
    explained in. "direct" runs it row by row (LightGBM's pred_contrib on the whole batch), slightly
    faster below about 2,000 rows. The two agree to float rounding (about 1e-14).
    """

    def __init__(self, model: PropensityModel, outcome: str = "purchase likelihood", method: str = "grouped") -> None:
        check_is_fitted(model)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.model = model
        self.outcome = outcome
        self.method = method
        self._explainer = shap.TreeExplainer(model.booster_)
        self._grouped: GroupedTreeShap | None = None

    @property
    def base_value(self) -> float:
        """Return the expected log-odds of the booster, the starting point every row's SHAP values add to."""
        return float(np.ravel(self._explainer.expected_value)[-1])

    def shap_values(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return SHAP values (log-odds) per row and feature, with X's index and X's feature columns in X's order.

        They come from LightGBM's own TreeSHAP (`pred_contrib`), which is what shap.TreeExplainer
        calls for a LightGBM booster, run on the model's `n_jobs` threads (scoring raises them);
        by default through GroupedTreeShap (see `method`).
        """
        prepared = self.model.prepare_features(X)
        threads = self.model.n_jobs
        if len(prepared) == 0:  # LightGBM refuses empty input; nothing to explain is no error
            values = np.empty((0, prepared.shape[1]), dtype="float64")
        elif self.method == "grouped":
            if self._grouped is None:
                self._grouped = GroupedTreeShap(self.model.booster_)
            values = self._grouped.contributions(booster_matrix(prepared), threads=threads)[:, :-1]
        else:
            contributions = self.model.booster_.predict(prepared, pred_contrib=True, num_threads=threads)
            values = np.asarray(contributions, dtype="float64")[:, :-1]  # the last column is the base value
        table = pd.DataFrame(values, index=X.index, columns=prepared.columns)
        features = set(prepared.columns)
        return table[[c for c in X.columns if c in features]]

    def global_importance(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return per feature: mean |SHAP|, its share of the total, and the direction of the effect.

        `correlation` is the Pearson correlation between a numeric feature's value and its SHAP
        value over X; `direction` is its sign (+1: higher values raise the prediction, -1: they
        lower it), NaN for categorical or constant features. Sorted by mean |SHAP| descending,
        ties by feature name.
        """
        values = self.shap_values(X)
        mean_abs = values.abs().mean(axis=0)
        total = float(mean_abs.sum())
        correlation = pd.Series(np.nan, index=values.columns, dtype="float64")
        for feature in values.columns:
            if feature in self.model.categories_:
                continue
            feature_values = pd.Series(
                X[feature].to_numpy(dtype="float64", na_value=np.nan), index=X.index, dtype="float64"
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                correlation[feature] = feature_values.corr(values[feature])
        table = pd.DataFrame(
            {
                "feature": values.columns,
                "mean_abs_shap": mean_abs.to_numpy(),
                "share": mean_abs.to_numpy() / total if total > 0 else np.zeros(len(mean_abs)),
                "correlation": correlation.to_numpy(),
                "direction": np.sign(correlation.to_numpy()),
            }
        )
        return table.sort_values(["mean_abs_shap", "feature"], ascending=[False, True], ignore_index=True)

    def reason_codes(self, X: pd.DataFrame, k: int = 3) -> pd.DataFrame:
        """Return each row's top-k features by |SHAP| as reason_{i}_feature/value/shap/direction/text.

        Ties in |SHAP| are broken by feature name. `value` is the customer's input value as shown
        in the text (numbers compact: whole numbers and values of 100 or more as integers, others
        with 3 significant digits; missing as "missing"). `direction` is "raised" or "lowered";
        the text reads e.g. "days since last purchase = 45 raised churn risk". A feature with a
        SHAP value of exactly 0 is no reason: its slot is left missing. k above the number of
        features is capped at it. Vectorised over rows, so call it on large chunks.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        values = self.shap_values(X)
        names = np.array(sorted(values.columns), dtype=object)
        k = min(k, len(names))
        matrix = values[list(names)].to_numpy()
        # Columns are in name order and ties keep column order, so equal |SHAP| keeps name order.
        order = top_k_order(np.abs(matrix), k)
        top_shap = np.take_along_axis(matrix, order, axis=1)
        top_feature = names[order]
        empty = top_shap == 0
        shown = self._display_values(X, names, order)
        direction = np.where(top_shap > 0, "raised", "lowered").astype(object)
        humanised = np.array([humanise_feature(name) for name in names], dtype=object)
        text = humanised[order] + " = " + shown + " " + direction + " " + self.outcome

        columns: dict[str, np.ndarray] = {}
        for slot in range(k):
            blank = empty[:, slot]
            prefix = f"reason_{slot + 1}"
            columns[f"{prefix}_feature"] = np.where(blank, None, top_feature[:, slot])
            columns[f"{prefix}_value"] = np.where(blank, None, shown[:, slot])
            columns[f"{prefix}_shap"] = np.where(blank, np.nan, top_shap[:, slot])
            columns[f"{prefix}_direction"] = np.where(blank, None, direction[:, slot])
            columns[f"{prefix}_text"] = np.where(blank, None, text[:, slot])
        return pd.DataFrame(columns, index=X.index)

    def _display_values(self, X: pd.DataFrame, names: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Return the display strings of the input values picked by `order` (rows x k)."""
        # One pass per feature, vectorised over rows; only the picked rows x k cells are gathered,
        # never a rows x features copy of X.
        picked = [(j, name, np.nonzero(order == j)) for j, name in enumerate(names)]
        numbers = np.full(order.shape, np.nan)
        for _, name, (rows, slots) in picked:
            if len(rows) and name not in self.model.categories_:
                numbers[rows, slots] = X[name].to_numpy(dtype="float64", na_value=np.nan)[rows]
        shown = format_numbers(numbers)
        for _, name, (rows, slots) in picked:
            if len(rows) and name in self.model.categories_:
                raw = X[name].to_numpy(dtype=object)[rows]
                shown[rows, slots] = np.where(pd.isna(raw), MISSING_TEXT, raw.astype(str)).astype(object)
        return shown


def top_k_order(magnitude: np.ndarray, k: int) -> np.ndarray:
    """Return per row the columns of the k largest values, largest first, equal values in column order.

    Where a picked value is not 0 this is np.argsort(-magnitude, axis=1, kind="stable")[:, :k];
    among columns that are all 0 at the end of a row it may pick others (a reason with a SHAP value
    of 0 is left empty, so which one does not matter). It partitions instead of sorting every
    column (1.6 times faster on 50,000 x 162), and sorts in full only the rows whose k-th place
    is tied with an unpicked column.
    """
    rows, columns = magnitude.shape
    if k >= columns or np.isnan(magnitude).any():
        return np.argsort(-magnitude, axis=1, kind="stable")[:, :k]
    picked = np.sort(np.argpartition(-magnitude, k - 1, axis=1)[:, :k], axis=1)
    values = np.take_along_axis(magnitude, picked, axis=1)
    kth = values.min(axis=1)
    # The partition breaks ties at the k-th place arbitrarily; a tie that reaches an unpicked column
    # (and is not a tie of zeros) is settled by the full stable sort.
    ambiguous = (kth > 0) & ((magnitude == kth[:, None]).sum(axis=1) > (values == kth[:, None]).sum(axis=1))
    order = np.take_along_axis(picked, np.argsort(-values, axis=1, kind="stable"), axis=1)
    if ambiguous.any():
        order[ambiguous] = np.argsort(-magnitude[ambiguous], axis=1, kind="stable")[:, :k]
    return order


def booster_matrix(prepared: pd.DataFrame) -> np.ndarray:
    """Return prepared features as the float64 matrix LightGBM predicts on: categories as codes, NaN if missing.

    This is LightGBM's own conversion of a pandas frame whose categories are those of training.
    """
    matrix = np.empty(prepared.shape, dtype="float64", order="F")
    for j, column in enumerate(prepared.columns):
        series = prepared[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = series.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        else:
            matrix[:, j] = series.to_numpy(dtype="float64", na_value=np.nan)
    return matrix


def humanise_feature(name: str) -> str:
    """Return a feature name for people: family prefix (up to '__') dropped, underscores as spaces."""
    return name.split("__", 1)[-1].replace("_", " ")


def format_numbers(values: np.ndarray) -> np.ndarray:
    """Return compact display strings: whole numbers and |x| >= 100 as integers, else 3 significant digits.

    Missing values read "missing"; magnitudes of 1e15 and above use scientific notation.
    """
    values = np.asarray(values, dtype="float64")
    out = np.full(values.shape, MISSING_TEXT, dtype=object)
    present = ~np.isnan(values)
    magnitude = np.abs(values)
    huge = present & (magnitude >= 1e15)
    whole = present & ~huge & ((magnitude >= 100) | (values == np.round(values)))
    small = present & ~huge & ~whole
    out[whole] = np.rint(values[whole]).astype("int64").astype(str).tolist()
    out[small] = np.strings.mod("%.3g", values[small]).tolist()
    out[huge] = np.strings.mod("%.3g", values[huge]).tolist()
    return out
