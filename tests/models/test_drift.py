"""PSI against hand-computed values: bins from training quantiles, missing values as their own bin."""

import math

import numpy as np
import pandas as pd
import pytest

from models.drift import Reference, build_reference, drift_table, level, psi, reference, top_features


def test_reference_bins_one_to_ten_into_fifths_with_empty_fences_outside_the_training_range():
    ref = reference(np.arange(1, 11), bins=5)
    # quantiles 0.2..0.8 (lower) of 1..10 are 2, 4, 6, 8; fences just below 1 and at 10
    assert ref.edges[1:] == (2.0, 4.0, 6.0, 8.0, 10.0)
    assert ref.edges[0] < 1.0 and ref.edges[0] == pytest.approx(1.0)
    assert ref.expected == pytest.approx((0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.0))
    assert ref.missing == 0.0 and ref.n == 10


def test_same_distribution_has_zero_psi_whatever_the_order():
    values = np.arange(1, 11)
    ref = reference(values, bins=5)
    assert psi(ref, values[::-1]) == 0.0
    assert psi(ref, np.repeat(values, 3)) == 0.0


def test_everyone_moving_to_the_top_fifth_gives_the_hand_computed_psi():
    ref = reference(np.arange(1, 11), bins=5)
    # four bins drop from 0.2 to 0 (floored at 1e-4), the top one rises from 0.2 to 1
    expected = 4 * (1e-4 - 0.2) * math.log(1e-4 / 0.2) + (1 - 0.2) * math.log(1 / 0.2)
    assert psi(ref, [9, 10] * 5) == pytest.approx(expected)
    assert expected == pytest.approx(7.3652, abs=1e-4)


def test_missing_values_are_a_bin_of_their_own():
    ref = reference([1.0, 2.0, np.nan, np.nan], bins=2)  # half missing
    assert ref.missing == 0.5
    now = [1.0, 2.0, 1.0, 2.0]  # nothing missing any more, same values otherwise
    # bins: <1 (0/0), [1] .25 -> .5, (1,2] .25 -> .5, missing .5 -> 0 (floored)
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi(ref, now) == pytest.approx(expected)


def test_a_constant_in_training_still_shows_a_move_out_of_its_value():
    ref = reference(np.zeros(10), bins=10)
    assert psi(ref, np.zeros(4)) == 0.0
    assert psi(ref, np.ones(4)) > 1.0
    assert psi(ref, -np.ones(4)) > 1.0


def test_booleans_count_as_numbers_and_text_against_a_numeric_reference_is_refused_by_name():
    ref = reference(pd.Series([True, False, False, False]), bins=4)
    assert psi(ref, pd.Series([True, False, False, False])) == 0.0
    with pytest.raises(TypeError, match="'days' is not numeric"):
        psi(reference(pd.Series([1.0, 2.0])), pd.Series(["a", "b"]), name="days")
    with pytest.raises(ValueError, match="no values of 'x'"):
        psi(ref, np.array([], dtype="float64"), name="x")


def test_text_columns_get_a_bin_per_training_category_and_one_for_new_values():
    ref = reference(pd.Series(["view", "view", "cart", None]), name="last_event_type")
    assert ref.categories == ("cart", "view") and ref.missing == 0.25
    assert ref.expected == pytest.approx((1 / 3, 2 / 3, 0.0))  # cart, view, unseen (of the 3 present)
    assert Reference.from_dict(ref.to_dict()) == ref
    assert psi(ref, pd.Series(["view", "cart", "view", None])) == pytest.approx(0.0)
    # half the customers who have one now end on a type training never saw:
    # bins cart .25 -> .125, view .5 -> .25, unseen 0 -> .375 (expected floored at 1e-4), missing .25 -> .25
    now = pd.Series(["view", "cart", "refund", "refund", "view", None, None, "refund"])
    expected = (0.125 - 0.25) * math.log(0.125 / 0.25) + (0.25 - 0.5) * math.log(0.25 / 0.5) + \
        (0.375 - 1e-4) * math.log(0.375 / 1e-4) + (0.25 - 0.25) * 0
    assert psi(ref, now) == pytest.approx(expected)


def test_levels_follow_the_usual_reading():
    assert [level(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, 3.0)] == [
        "stable", "stable", "moderate", "moderate", "major", "major"]


def test_top_features_is_the_union_of_each_models_top_n_in_order():
    a = pd.DataFrame({"feature": ["x", "y", "z"], "gain": [3.0, 2.0, 1.0]})
    b = pd.DataFrame({"feature": ["y", "w", "x"], "gain": [5.0, 4.0, 0.0]})
    assert top_features([a, b], 2) == ["x", "y", "w"]
    assert top_features([a, b], 0) == []


def test_reference_round_trips_and_the_table_flags_shifted_and_absent_columns():
    train = pd.DataFrame({"f": np.arange(100.0), "g": np.arange(100.0), "h": np.arange(100.0)})
    refs = build_reference(train, ["f", "g", "h"], {"purchase": np.linspace(0, 1, 100)}, bins=10)
    assert Reference.from_dict(refs["f"]) == reference(train["f"], 10)
    assert refs["purchase_probability"]["kind"] == "score"
    now = pd.DataFrame({"f": np.arange(100.0), "g": np.arange(100.0) + 1000,
                        "purchase_probability": np.linspace(0, 1, 100)})
    table = drift_table(refs, now, warning_psi=0.25)
    assert list(table["column"]) == ["g", "f", "purchase_probability", "h"]  # largest PSI first, absent last
    row = table.set_index("column")
    assert bool(row.loc["g", "warning"]) and row.loc["g", "level"] == "major"
    assert row.loc["f", "psi"] == 0.0 and not bool(row.loc["f", "warning"])
    assert row.loc["h", "level"] == "absent" and np.isnan(row.loc["h", "psi"])
    with pytest.raises(KeyError, match="'nope' is not in the training features"):
        build_reference(train, ["nope"], {}, bins=10)


def test_scores_are_compared_over_the_customers_who_get_one():
    refs = build_reference(pd.DataFrame(index=range(4)), [], {"churn": np.array([0.1, 0.2, 0.3, 0.4])}, bins=4)
    # Lapsed customers get no churn score: missing, not a shift of the score's distribution.
    now = pd.DataFrame({"churn_probability": [0.1, 0.2, 0.3, 0.4, np.nan, np.nan]})
    row = drift_table(refs, now, warning_psi=0.25).iloc[0]
    assert row["psi"] == 0.0 and row["n_current"] == 4
    nobody = drift_table(refs, pd.DataFrame({"churn_probability": [np.nan]}), warning_psi=0.25).iloc[0]
    assert nobody["level"] == "absent"
