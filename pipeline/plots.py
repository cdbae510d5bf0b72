"""Charts for MLflow artifacts and the stakeholder report: each helper draws on an Axes and returns it.

Plot helpers take `ax: plt.Axes | None = None` (a new figure when None) so that the report can lay
several out together; `to_png` turns a figure into bytes for logging or embedding.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: batch jobs and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (5.0, 4.0)) -> plt.Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size)
    return new


def to_png(ax: plt.Axes, dpi: int = 110) -> bytes:
    """Renders the Axes' figure to PNG bytes and closes it."""
    fig = ax.figure
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def calibration_plot(table: pd.DataFrame, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws predicted vs actual rate per probability bin (a calibration_curve_table), with the ideal diagonal."""
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    shown = table[table["customers"] > 0]
    ax.plot(shown["mean_predicted"], shown["actual_rate"], marker="o", label="model")
    for _, row in shown.iterrows():
        ax.annotate(f"{int(row['customers'])}", (row["mean_predicted"], row["actual_rate"]), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))
    ax.set(xlabel="predicted probability", ylabel="actual rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return ax


def gains_plot(table: pd.DataFrame, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws lift per decile (bars) and cumulative capture (line) from a gains_table."""
    ax = _axes(ax)
    ax.bar(table["decile"], table["lift"], color="#4c72b0", label="lift")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="decile (1 = highest scores)", ylabel="lift over average", title=title)
    ax.set_xticks(table["decile"])
    twin = ax.twinx()
    twin.plot(table["decile"], table["cumulative_capture"], color="#dd8452", marker="o", label="cumulative capture")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("share of all positives captured")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, ["lift", "cumulative capture"], loc="center right", fontsize=8)
    return ax


def importance_plot(importance: pd.DataFrame, title: str, top: int = 15, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws mean |SHAP| per feature, largest on top (a global_importance table)."""
    ax = _axes(ax, (6.0, 0.35 * top + 1.2))
    shown = importance.head(top).iloc[::-1]
    ax.barh(shown["feature"].astype(str), shown["mean_abs_shap"], color="#55a868")
    ax.set(xlabel="mean |SHAP value| (log-odds)", title=title)
    ax.tick_params(axis="y", labelsize=8)
    return ax


def beeswarm_plot(shap_values: pd.DataFrame, features: pd.DataFrame, title: str, top: int = 12,
                  seed: int = 0, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws a SHAP beeswarm: one row per top feature, dots coloured by the feature's (rank-scaled) value."""
    ax = _axes(ax, (7.0, 0.45 * top + 1.2))
    order = shap_values.abs().mean().sort_values(ascending=False).index[:top][::-1]
    rng = np.random.default_rng(seed)
    for row, name in enumerate(order):
        values = shap_values[name].to_numpy(dtype=float)
        raw = pd.to_numeric(features[name], errors="coerce") if name in features else pd.Series(np.nan, index=features.index)
        colour = raw.rank(pct=True).fillna(0.5).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, size=len(values))
        points = ax.scatter(values, row + jitter, c=colour, cmap="coolwarm", s=6, alpha=0.7, vmin=0, vmax=1)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([str(n) for n in order], fontsize=8)
    ax.set(xlabel="SHAP value (effect on log-odds)", title=title)
    if len(order):
        bar = ax.figure.colorbar(points, ax=ax, fraction=0.04, pad=0.01)
        bar.set_label("feature value (low → high)")
    return ax


def dependence_plot(shap_values: pd.Series, values: pd.Series, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws a SHAP dependence plot: each customer's feature value against its SHAP value for that feature.

    Numeric values go on a linear axis (missing values are left out, their count named in the x
    label); categorical ones on one tick per category, with a little jitter so that dots stay visible.
    """
    ax = _axes(ax, (5.5, 4.0))
    effect = pd.Series(np.asarray(shap_values, dtype="float64"), index=values.index)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    label = str(values.name or "feature value")
    if numeric:
        x = pd.to_numeric(values, errors="coerce").astype("float64")
        present = x.notna()
        ax.scatter(x[present], effect[present], s=8, alpha=0.6, color="#4c72b0")
        missing = int((~present).sum())
        ax.set_xlabel(f"{label} ({missing} missing, not shown)" if missing else label)
    else:
        text = values.astype("object").where(values.notna(), "missing").astype(str)
        categories = sorted(text.unique())
        codes = text.map({c: i for i, c in enumerate(categories)}).to_numpy(dtype="float64")
        jitter = np.random.default_rng(0).uniform(-0.2, 0.2, size=len(codes))
        ax.scatter(codes + jitter, effect, s=8, alpha=0.6, color="#4c72b0")
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, rotation=45, ha="right", fontsize=8)
        ax.set_xlabel(label)
    ax.axhline(0, color="grey", linewidth=1, linestyle="--")
    ax.set(ylabel="SHAP value (effect on log-odds)", title=title)
    return ax


def confusion_plot(confusion: pd.DataFrame, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Draws a confusion matrix (rows true, columns predicted) as a heatmap with counts."""
    ax = _axes(ax, (6.0, 5.0))
    values = confusion.to_numpy(dtype=float)
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(confusion.columns)))
    ax.set_xticklabels(confusion.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(confusion.index)))
    ax.set_yticklabels(confusion.index, fontsize=8)
    top = values.max() if values.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{int(values[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if top and values[i, j] > top / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return ax
