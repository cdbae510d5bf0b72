"""DuckDB and PySpark run the same feature and label code: the same tiny tables give the same frames."""

from __future__ import annotations

import pytest
from pandas.testing import assert_frame_equal

from features.build import build_features
from features.config import FeaturesConfig
from features.labels import LabelsConfig, make_labels
from features.timing import TimingConfig

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def assert_same_result(duck_result, spark_result) -> None:
    assert spark_result.skipped == duck_result.skipped
    assert spark_result.catalog == duck_result.catalog
    # Integer widths may differ between engines; values must not.
    assert_frame_equal(spark_result.frame, duck_result.frame, check_dtype=False, rtol=1e-9, atol=1e-9)


def test_every_family_gives_the_same_frame_on_duckdb_and_spark(duck, spark, table, rich_frame, rich_cutoff):
    config = FeaturesConfig()
    assert_same_result(
        build_features(table(duck, rich_frame), rich_cutoff, config),
        build_features(table(spark, rich_frame), rich_cutoff, config),
    )


def test_shop_example_with_a_non_utc_timezone_gives_the_same_frame_on_both_engines(duck, spark, table, shop_frame):
    # America/New_York exercises the daylight-saving offsets, computed as plain SQL on both engines.
    config = FeaturesConfig(windows_days=[7, 30], timing=TimingConfig(timezone="America/New_York"))
    duck_result = build_features(table(duck, shop_frame), "2024-03-01", config)
    spark_result = build_features(table(spark, shop_frame), "2024-03-01", config)
    assert_same_result(duck_result, spark_result)
    # A hand-checked anchor so both engines cannot be wrong together: alice's 10 events include 4 purchases.
    assert spark_result.frame.loc["alice", "usage__key_action_share"] == 0.5


def test_labels_are_the_same_on_duckdb_and_spark(duck, spark, table, shop_frame):
    config = LabelsConfig(horizon_days=4)
    # Horizon [Mar 1, Mar 5): alice buys at Mar 1 00:00; the data ends Mar 5, so the window is complete.
    duck_labels = make_labels(table(duck, shop_frame), "2024-03-01", config)
    spark_labels = make_labels(table(spark, shop_frame), "2024-03-01", config)
    assert_frame_equal(spark_labels, duck_labels)
    assert spark_labels["purchase"].tolist() == [True, False, False]
