"""Exact TreeSHAP for large batches: each tree explains each distinct decision pattern once.

LightGBM's `pred_contrib` runs path-dependent TreeSHAP (Lundberg et al., 2020) per row and tree,
at a cost of about leaves x depth² per row and tree. A tree's SHAP values for a row depend on the
row only through the way it goes at each of that tree's splits. Two rows that, for every feature
the tree splits on, lie in the same interval between that tree's consecutive thresholds (and have
the same missing or zero status, or the same category) go the same way at every split and so get
identical values from that tree. A tree with 31 leaves typically sees a few thousand such cells in
50,000 customers, so explaining one representative row per cell, and copying its values to the
other rows in the cell, gives the same numbers for a tenth of the work or less.

The representative rows go through LightGBM's own `pred_contrib`, one tree at a time
(`start_iteration=t, num_iteration=1`), so the tree walking, the missing-value rules and the SHAP
recursion stay LightGBM's. Only the grouping is ours, and it follows LightGBM's decision rules:
an input within 1e-35 of 0 is read as 0; a numerical split sends `value <= threshold` left, NaN
(and, for zero-as-missing splits, 0) the default way; a categorical split looks at the category
alone. The per-tree values are added in tree order, so the result does not depend on the number
of threads; it equals the row-by-row `pred_contrib` up to float rounding (about 1e-14).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

# LightGBM's kZeroThreshold (`const double kZeroThreshold = 1e-35f`): |value| <= it counts as zero.
ZERO_THRESHOLD = float(np.float32(1e-35))
_CODE_LIMIT = 2**62  # pattern codes are combined in int64; compacted before they could overflow


@dataclass(frozen=True)
class _NumericFeature:
    """All thresholds of one numerical feature over the model, and whether any split treats 0 as missing."""

    thresholds: np.ndarray
    zero_is_missing: bool

    def classes(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Return each value's class (interval between consecutive thresholds, NaN, zero) and the class count.

        Class i < L+1 (L thresholds) is the interval (t[i-1], t[i]]; L+1 is NaN; when zero is a
        missing value somewhere, L+2+i is a zero (|value| <= LightGBM's zero threshold) in interval i.
        """
        size = len(self.thresholds)
        zero = np.abs(values) <= ZERO_THRESHOLD  # NaN compares False
        # LightGBM reads a dense input row's |value| <= its zero threshold as 0 before any split sees it.
        classes = np.searchsorted(self.thresholds, np.where(zero, 0.0, values), side="left")
        if self.zero_is_missing:
            classes[zero] += size + 2
        classes[np.isnan(values)] = size + 1
        return classes, (2 * size + 3) if self.zero_is_missing else (size + 2)

    def local_table(self, thresholds: np.ndarray) -> np.ndarray:
        """Return the map from this feature's model-wide classes to one tree's classes (its thresholds ⊆ ours).

        A value in the model-wide interval (t[i-1], t[i]] lies above exactly the tree's thresholds
        below t[i], i.e. in the tree's interval searchsorted(tree thresholds, t[i]).
        """
        local = len(thresholds)
        intervals = np.append(np.searchsorted(thresholds, self.thresholds, side="left"), local)
        table = np.append(intervals, local + 1)  # NaN
        if self.zero_is_missing:
            table = np.append(table, intervals + local + 2)
        return table.astype(np.int64)


def _walk(node: dict[str, Any], splits: dict[int, list[dict[str, Any]]]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if "split_feature" in current:
            splits.setdefault(int(current["split_feature"]), []).append(current)
            stack.extend((current["left_child"], current["right_child"]))


class GroupedTreeShap:
    """Exact SHAP contributions of a binary LightGBM booster, each tree run once per distinct decision pattern.

    `contributions(matrix, threads)` returns what `booster.predict(matrix, pred_contrib=True)`
    returns (one column per feature, then the expected value), for a float64 matrix whose
    categorical columns hold LightGBM's category codes (NaN for missing or unseen).
    """

    def __init__(self, booster: lgb.Booster) -> None:
        if booster.num_model_per_iteration() != 1:
            raise ValueError("GroupedTreeShap explains single-output (binary or regression) boosters only")
        model = booster.dump_model()
        self.n_features = int(model["max_feature_idx"]) + 1
        iterations = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        self._model_text = booster.model_to_string(num_iteration=iterations)
        splits_per_tree: list[list[tuple[int, np.ndarray | None]]] = []  # (feature, thresholds or None: categorical)
        numeric: dict[int, set[float]] = {}
        zero_is_missing: set[int] = set()
        categorical: set[int] = set()
        for info in model["tree_info"][:iterations]:
            by_feature: dict[int, list[dict[str, Any]]] = {}
            _walk(info["tree_structure"], by_feature)
            splits: list[tuple[int, np.ndarray | None]] = []
            for feature, nodes in sorted(by_feature.items()):
                if nodes[0]["decision_type"] == "==":
                    categorical.add(feature)
                    splits.append((feature, None))
                    continue
                values = np.unique(np.array([float(node["threshold"]) for node in nodes], dtype="float64"))
                numeric.setdefault(feature, set()).update(values.tolist())
                if any(node.get("missing_type") == "Zero" for node in nodes):
                    zero_is_missing.add(feature)
                splits.append((feature, values))
            splits_per_tree.append(splits)
        self._numeric = {
            f: _NumericFeature(np.array(sorted(t), dtype="float64"), f in zero_is_missing) for f, t in numeric.items()
        }
        self._categorical = sorted(categorical)
        # Per tree and split feature: the map from model-wide classes to the tree's, and the tree's class
        # count (None for a categorical feature, whose classes are its categories as they come).
        self._plans: list[list[tuple[int, np.ndarray | None, int | None]]] = []
        for splits in splits_per_tree:
            plan = []
            for feature, thresholds in splits:
                if thresholds is None:
                    plan.append((feature, None, None))
                else:
                    table = self._numeric[feature].local_table(thresholds)
                    plan.append((feature, table, int(table.max()) + 1))
            self._plans.append(plan)
        self._lock = threading.Lock()
        self._spare: list[lgb.Booster] = []

    @property
    def n_trees(self) -> int:
        return len(self._plans)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_spare"]  # booster copies are rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._spare = []

    def _predict_one_tree(self, tree: int, rows: np.ndarray) -> np.ndarray:
        # LightGBM keeps a prediction's iteration range on the booster, so threads explaining
        # different trees at once each borrow their own copy; copies are kept for the next batch.
        with self._lock:
            booster = self._spare.pop() if self._spare else None
        if booster is None:
            booster = lgb.Booster(model_str=self._model_text)
        try:
            return booster.predict(rows, pred_contrib=True, start_iteration=tree, num_iteration=1, num_threads=1)
        finally:
            with self._lock:
                self._spare.append(booster)

    def contributions(self, matrix: np.ndarray, threads: int = 1) -> np.ndarray:
        """Return SHAP values (rows x features) with the expected value as the last column."""
        matrix = np.asarray(matrix, dtype="float64")
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-d matrix with {self.n_features} feature columns, got shape {matrix.shape}")
        rows = matrix.shape[0]
        out = np.zeros((self.n_features + 1, rows), dtype="float64")  # feature-major: one contiguous row per feature
        if rows == 0:
            return out.T
        classes = self._classes(matrix)
        for used, inverse, values in self._per_tree(matrix, classes, threads):
            for j, feature in enumerate(used):
                out[feature] += values[:, j][inverse]
            out[self.n_features] += values[0, -1]  # a tree's expected value is the same for every row
        return out.T  # a view in column order, which is how pandas stores a frame's columns anyway

    def pattern_counts(self, matrix: np.ndarray) -> list[int]:
        """Return, per tree, how many distinct decision patterns the rows of `matrix` make (what it explains)."""
        matrix = np.asarray(matrix, dtype="float64")
        if len(matrix) == 0:
            return [0] * self.n_trees
        classes = self._classes(matrix)
        return [int(self._patterns(tree, classes, len(matrix)).max()) + 1 for tree in range(self.n_trees)]

    def _classes(self, matrix: np.ndarray) -> dict[int, tuple[np.ndarray, int]]:
        """Each split feature's model-wide class per row, with the number of classes."""
        classes: dict[int, tuple[np.ndarray, int]] = {}
        for feature, spec in self._numeric.items():
            classes[feature] = spec.classes(matrix[:, feature])
        for feature in self._categorical:
            codes, uniques = pd.factorize(matrix[:, feature], use_na_sentinel=True)  # NaN -> -1
            classes[feature] = (codes.astype(np.int64) + 1, len(uniques) + 1)
        return classes

    def _per_tree(
        self, matrix: np.ndarray, classes: dict[int, tuple[np.ndarray, int]], threads: int
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """Yield per tree, in tree order: the features it splits on, each row's pattern and each pattern's values."""
        if threads <= 1:
            for tree in range(self.n_trees):
                yield self._explain_tree(tree, matrix, classes)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending: deque[Future[tuple[list[int], np.ndarray, np.ndarray]]] = deque()
            for tree in range(self.n_trees):  # keep a few trees in flight; results are consumed in order
                pending.append(pool.submit(self._explain_tree, tree, matrix, classes))
                if len(pending) >= 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _patterns(self, tree: int, classes: dict[int, tuple[np.ndarray, int]], rows: int) -> np.ndarray:
        """Return each row's decision pattern in one tree, numbered 0, 1, ... in order of first appearance."""
        codes = np.zeros(rows, dtype=np.int64)
        radix = 1
        for feature, table, local_count in self._plans[tree]:
            model_classes, count = classes[feature]
            local = model_classes if table is None else table[model_classes]
            size = count if local_count is None else local_count
            if radix > _CODE_LIMIT // size:  # compact before the combined code could overflow
                codes, uniques = pd.factorize(codes)
                codes = codes.astype(np.int64)
                radix = len(uniques)
            codes *= size
            codes += local
            radix *= size
        return pd.factorize(codes)[0]

    def _explain_tree(
        self, tree: int, matrix: np.ndarray, classes: dict[int, tuple[np.ndarray, int]]
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        rows = matrix.shape[0]
        used = [feature for feature, _, _ in self._plans[tree]]
        inverse = self._patterns(tree, classes, rows)
        patterns = int(inverse.max()) + 1
        first = np.empty(patterns, dtype=np.int64)
        first[inverse[::-1]] = np.arange(rows - 1, -1, -1)  # the first row of every pattern
        representatives = np.zeros((patterns, self.n_features), dtype="float64")
        if used:  # other features are never looked at by this tree, so 0 stands in for them
            representatives[:, used] = matrix[np.ix_(first, used)]
        values = self._predict_one_tree(tree, representatives)
        return used, inverse, np.asarray(values, dtype="float64")[:, used + [self.n_features]]
