"""GroupedTreeShap: the same SHAP values as LightGBM's row-by-row pred_contrib, on every kind of split."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.explain import Explainer, booster_matrix
from models.propensity import PropensityModel
from models.treeshap import ZERO_THRESHOLD, GroupedTreeShap


def _train(X: np.ndarray, y: np.ndarray, rounds: int = 40, categorical: list[int] | None = None,
           **params: object) -> lgb.Booster:
    settings = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 1,
                "deterministic": True, "num_threads": 1, **params}
    data = lgb.Dataset(X, label=y, categorical_feature=categorical or "auto")
    return lgb.train(settings, data, num_boost_round=rounds)


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four features: continuous with NaNs, an integer count with many zeros, one never missing, noise."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[rng.random(n) < 0.1] = np.nan
    count = rng.poisson(0.7, size=n).astype("float64")
    b = rng.normal(size=n)
    noise = rng.normal(size=n)
    logit = np.nan_to_num(a, nan=1.0) + 0.8 * count - 0.5 * b
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([a, count, b, noise]), y


def _thresholds(booster: lgb.Booster) -> np.ndarray:
    found = []
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            if node["decision_type"] == "<=":
                found.append(float(node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    return np.unique(found)


def _hard_rows(booster: lgb.Booster, n: int, seed: int = 3) -> np.ndarray:
    """Rows made of the values where splits decide: every threshold exactly, its neighbours, 0, ±tiny, NaN, ±inf."""
    edges = _thresholds(booster)
    specials = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                               [0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 1e-36, -1e-36, np.nan, np.inf, -np.inf]])
    rng = np.random.default_rng(seed)
    return rng.choice(specials, size=(n, 4))


def _assert_same(grouped: np.ndarray, direct: np.ndarray) -> None:
    assert grouped.shape == direct.shape
    np.testing.assert_allclose(grouped, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}],
                         ids=["nan-missing", "zero-as-missing", "no-missing-handling"])
def test_values_equal_lightgbm_pred_contrib_on_ordinary_and_boundary_rows(params: dict[str, object]) -> None:
    X, y = _data()
    booster = _train(X, y, **params)
    explainer = GroupedTreeShap(booster)
    rows = np.vstack([X, _hard_rows(booster, 3000)])
    direct = booster.predict(rows, pred_contrib=True)
    _assert_same(explainer.contributions(rows), direct)
    # The values add up to the raw margin, as LightGBM's do.
    np.testing.assert_allclose(explainer.contributions(rows).sum(axis=1), booster.predict(rows, raw_score=True),
                               rtol=0, atol=1e-9)


def test_a_zero_as_missing_split_separates_tiny_values_from_the_rest_of_their_interval() -> None:
    # Under zero_as_missing, |x| <= 1e-35 is missing and goes the default way, while 1e-30 in the same
    # threshold interval does not: grouping them together would copy the wrong values.
    rng = np.random.default_rng(5)
    x = rng.choice([0.0, 1.0, 2.0, 3.0], size=3000)
    y = (rng.random(3000) < np.where(x == 0, 0.9, 0.2)).astype(int)
    X = np.column_stack([x, rng.normal(size=3000), rng.normal(size=3000), rng.normal(size=3000)])
    booster = _train(X, y, zero_as_missing=True, rounds=10)
    assert any(node.get("missing_type") == "Zero" for node in _nodes(booster) if node["split_feature"] == 0)
    rows = X[:8].copy()
    rows[:, 0] = [0.0, 1e-36, -1e-36, 1e-30, 0.5, np.nan, -0.0, 2.0]
    _assert_same(GroupedTreeShap(booster).contributions(rows), booster.predict(rows, pred_contrib=True))


def test_categorical_splits_including_unseen_and_missing_categories() -> None:
    rng = np.random.default_rng(2)
    n = 2500
    category = rng.integers(0, 6, size=n).astype("float64")
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), category])
    logit = X[:, 0] + np.where(np.isin(category, [1, 4]), 1.5, -0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = _train(X, y, categorical=[3], min_data_per_group=5, cat_smooth=1)
    assert any(
        node.get("decision_type") == "==" for node in _nodes(booster)
    ), "the fixture must produce categorical splits"
    rows = X[:1500].copy()
    rows[:100, 3] = np.nan  # missing
    rows[100:200, 3] = 9.0  # a category the model never saw
    rows[200:250, 3] = -1.0
    _assert_same(GroupedTreeShap(booster).contributions(rows), booster.predict(rows, pred_contrib=True))


def _nodes(booster: lgb.Booster) -> list[dict[str, object]]:
    found = []
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.append(node)
            stack += [node["left_child"], node["right_child"]]
    return found


def test_trees_without_splits_contribute_only_their_value() -> None:
    X, y = _data(200)
    booster = _train(X, y, rounds=5, min_data_in_leaf=1000)  # too few rows to split: single-leaf trees
    assert booster.dump_model()["tree_info"][0]["num_leaves"] == 1
    _assert_same(GroupedTreeShap(booster).contributions(X), booster.predict(X, pred_contrib=True))


def test_results_do_not_depend_on_threads_or_row_order() -> None:
    X, y = _data()
    booster = _train(X, y)
    explainer = GroupedTreeShap(booster)
    one = explainer.contributions(X, threads=1)
    np.testing.assert_array_equal(explainer.contributions(X, threads=3), one)
    order = np.random.default_rng(9).permutation(len(X))
    np.testing.assert_array_equal(explainer.contributions(X[order], threads=2), one[order])


def test_each_tree_explains_far_fewer_patterns_than_rows() -> None:
    # The point of grouping: a count feature and few thresholds leave few distinct cells per tree.
    X, y = _data(5000)
    booster = _train(X, y, rounds=20)
    patterns = GroupedTreeShap(booster).pattern_counts(X)
    assert len(patterns) == 20 and 1 <= min(patterns) and max(patterns) < len(X) / 4


def test_empty_input_wrong_shape_and_multiclass_are_handled() -> None:
    X, y = _data(500)
    explainer = GroupedTreeShap(_train(X, y, rounds=3))
    assert explainer.contributions(np.empty((0, 4))).shape == (0, 5)
    with pytest.raises(ValueError, match="4 feature columns"):
        explainer.contributions(np.zeros((3, 5)))
    three_classes = y + (X[:, 2] > 1)
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, label=three_classes),
                      num_boost_round=2)
    with pytest.raises(ValueError, match="single-output"):
        GroupedTreeShap(multi)


def test_survives_pickling_and_keeps_giving_the_same_values() -> None:
    X, y = _data(800)
    booster = _train(X, y, rounds=10)
    explainer = GroupedTreeShap(booster)
    before = explainer.contributions(X, threads=2)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(explainer)).contributions(X, threads=2), before)


def test_explainer_grouped_and_direct_give_the_same_values_and_reasons() -> None:
    rng = np.random.default_rng(4)
    n = 2500
    X = pd.DataFrame({"a": rng.normal(size=n), "visits": rng.poisson(1.0, size=n).astype(float),
                      "stage": rng.choice(["new", "active", "lapsed"], size=n)},
                     index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))
    X.loc[X.index[:200], "a"] = np.nan
    logit = X["a"].fillna(0) + 0.5 * X["visits"] + (X["stage"] == "lapsed")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    model = PropensityModel(n_estimators=60, random_state=0).fit(X, y)
    grouped = Explainer(model, method="grouped")
    direct = Explainer(model, method="direct")
    np.testing.assert_allclose(grouped.shap_values(X).to_numpy(), direct.shap_values(X).to_numpy(), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(grouped.reason_codes(X).drop(columns=[f"reason_{i}_shap" for i in (1, 2, 3)]),
                                  direct.reason_codes(X).drop(columns=[f"reason_{i}_shap" for i in (1, 2, 3)]))
    # The matrix handed to LightGBM is its own conversion of the frame: categories become codes.
    prepared = model.prepare_features(X)
    np.testing.assert_array_equal(model.booster_.predict(booster_matrix(prepared), raw_score=True),
                                  model.booster_.predict(prepared, raw_score=True))
    with pytest.raises(ValueError, match="method must be one of grouped, direct"):
        Explainer(model, method="fast")


def test_a_row_gets_the_same_bits_whatever_batch_it_is_explained_in() -> None:
    # A tree's values depend only on the row's pattern, and trees are added in order: so chunking
    # (in-process chunks, Spark batches) cannot change a customer's values, not even in the last bit.
    X, y = _data(3000)
    explainer = GroupedTreeShap(_train(X, y))
    whole = explainer.contributions(X, threads=2)
    parts = np.vstack([explainer.contributions(X[:7]), explainer.contributions(X[7:1500]),
                       explainer.contributions(X[1500:], threads=3)])
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(explainer.contributions(X[[42]]), whole[[42]])
