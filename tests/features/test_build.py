"""The feature build framework: cutoff handling, population, skipping, ordering, config and the catalog."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from pydantic import ValidationError

from features import registry
from features.build import build_features, feature_catalog
from features.config import FeaturesConfig
from features.registry import FAMILIES, get_family
from features.usage import UsageConfig
from pipeline.engine import connect, register

MINE = ["usage", "timing", "value"]
SMALL = FeaturesConfig(windows_days=[7, 30], enabled=MINE)


@pytest.mark.parametrize(
    "cutoff",
    [
        "2024-03-01",
        date(2024, 3, 1),
        datetime(2024, 3, 1),  # naive means UTC
        datetime(2024, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),  # 01:00+01:00 is 00:00 UTC
        pd.Timestamp("2024-02-29 19:00", tz="America/New_York"),
    ],
)
def test_cutoff_may_be_a_date_text_or_datetime_and_naive_means_utc(shop, cutoff):
    config = FeaturesConfig(windows_days=[7, 30], enabled=["usage", "timing"])
    assert_frame_equal(build_features(shop, cutoff, config).frame, build_features(shop, "2024-03-01", config).frame)


@pytest.mark.parametrize(("cutoff", "error"), [("next tuesday", ValueError), (20240301, TypeError)])
def test_a_cutoff_that_is_not_a_date_is_refused_with_an_example(shop, cutoff, error):
    with pytest.raises(error, match="2024-06-01|date, datetime or ISO string"):
        build_features(shop, cutoff, SMALL)


def test_no_family_ever_receives_an_event_at_or_after_the_cutoff(shop, monkeypatch):
    seen = []
    real = FAMILIES["usage"]

    def spying_build(events, ctx, config):
        """Records the events handed to the family, then builds as usual."""
        seen.append(events.execute())
        return real.build(events, ctx, config)

    monkeypatch.setitem(FAMILIES, "usage", dataclasses.replace(real, build=spying_build))
    build_features(shop, "2024-03-01", SMALL)
    (events,) = seen
    # 20 rows minus alice's two and dave's two at or after Mar 1 00:00.
    assert len(events) == 16
    assert events["timestamp"].max() < pd.Timestamp("2024-03-01", tz="UTC")


def test_frame_has_one_row_per_customer_seen_before_the_cutoff_sorted_by_customer_id(shop):
    frame = build_features(shop, "2024-03-01", SMALL).frame
    # dave's first event is exactly at the cutoff.
    assert list(frame.index) == ["alice", "bob", "carol"]
    assert frame.index.name == "customer_id"
    assert frame.index.is_unique


def test_columns_follow_registry_order_then_each_catalog_and_the_result_catalog_matches(shop):
    result = build_features(shop, "2024-03-01", SMALL.model_copy(update={"enabled": ["value", "usage", "timing"]}))
    families = [name.split("__")[0] for name in result.frame.columns]
    assert list(dict.fromkeys(families)) == MINE  # registry order, whatever the order of `enabled`
    assert [f.name for f in result.catalog] == list(result.frame.columns)
    assert result.frame.columns[0] == "usage__events_7d"
    assert result.skipped == {}


# Transactions only: customer_id, timestamp, event_type = purchase, revenue, quantity.
TRANSACTIONS = pd.DataFrame(
    {
        "customer_id": ["t1", "t1", "t2"],
        "timestamp": pd.to_datetime(["2024-01-05 10:00", "2024-02-05 10:00", "2024-02-20 10:00"], utc=True),
        "event_type": ["purchase", "purchase", "purchase"],
        "revenue": [10.0, 30.0, 5.0],
        "quantity": [1.0, 3.0, 1.0],
    }
)


def test_transactions_only_data_makes_usage_timing_and_value_features(duck):
    result = build_features(register(duck, "transactions", TRANSACTIONS), "2024-03-01", FeaturesConfig())
    made = {name.split("__")[0] for name in result.frame.columns}
    assert set(MINE) <= made
    # t1: orders Jan 5 (10) and Feb 5 (30); 30 days before Mar 1 is Jan 31.
    t1 = result.frame.loc["t1"]
    assert (t1["usage__purchases_30d"], t1["value__historic_value"], t1["value__revenue_30d"]) == (1, 40.0, 30.0)
    # Purchase days Jan 5 and Feb 5: one gap of 31 days.
    assert t1["timing__purchase_gap_mean_days"] == 31.0


def test_transactions_only_data_skips_every_other_family_with_a_reason(duck):
    result = build_features(register(duck, "transactions", TRANSACTIONS), "2024-03-01", FeaturesConfig())
    others = set(FAMILIES) - set(MINE)
    assert set(result.skipped) == others
    assert all(reason.startswith(f"{name}: needs") for name, reason in result.skipped.items())


def test_a_skipped_family_is_logged_with_its_reason(duck, caplog):
    events = register(duck, "views", TRANSACTIONS.assign(event_type="page_view"))
    with caplog.at_level(logging.INFO, logger="features.build"):
        result = build_features(events, "2024-03-01", SMALL)
    assert "value" in result.skipped
    assert "purchase" in result.skipped["value"]
    assert any("value" in rec.getMessage() and "purchase" in rec.getMessage() for rec in caplog.records)


def test_only_enabled_families_run(shop):
    frame = build_features(shop, "2024-03-01", FeaturesConfig(enabled=["timing"])).frame
    assert all(name.startswith("timing__") for name in frame.columns)


def test_no_event_before_the_cutoff_gives_an_empty_frame_with_the_catalog_columns(shop):
    result = build_features(shop, "2020-01-01", SMALL)
    assert len(result.frame) == 0
    assert "value" in result.skipped  # no purchase before 2020
    assert [f.name for f in result.catalog] == list(result.frame.columns)


def test_events_without_a_required_column_are_refused_naming_it(duck):
    events = register(duck, "no_type", TRANSACTIONS.drop(columns=["event_type"]))
    with pytest.raises(ValueError, match=r"lack required column\(s\) \['event_type'\]"):
        build_features(events, "2024-03-01", SMALL)


def test_a_family_building_other_columns_than_its_catalog_is_refused(shop, monkeypatch):
    real = FAMILIES["timing"]

    def sloppy_build(events, ctx, config):
        """Builds timing features plus one column the catalog does not list."""
        out = real.build(events, ctx, config)
        return out.mutate(timing__extra=1)

    monkeypatch.setitem(FAMILIES, "timing", dataclasses.replace(real, build=sloppy_build))
    with pytest.raises(RuntimeError, match="'timing' built columns .* but its catalog lists"):
        build_features(shop, "2024-03-01", FeaturesConfig(enabled=["timing"]))


def test_unknown_family_in_enabled_is_rejected_listing_the_registered_names():
    with pytest.raises(ValidationError, match=r"unknown family name\(s\) \['usgae'\]; allowed: \['usage', 'timing'"):
        FeaturesConfig(enabled=["usgae"])


def test_get_family_names_the_registered_families_when_the_name_is_unknown():
    assert get_family("value") is FAMILIES["value"]
    with pytest.raises(KeyError, match=r"unknown feature family 'nope'; registered families: \['usage'"):
        get_family("nope")


def test_registry_is_an_explicit_ordered_list_starting_with_usage_timing_value():
    assert registry.family_names()[:3] == MINE
    assert FeaturesConfig().enabled == registry.family_names()


@pytest.mark.parametrize(
    ("windows", "message"),
    [([], "is empty"), ([7, 0], r"non-positive window\(s\) \[0\]"), ([7, 30, 7], r"lists \[7\] more than once")],
)
def test_windows_must_be_positive_and_unique(windows, message):
    with pytest.raises(ValidationError, match=message):
        FeaturesConfig(windows_days=windows)


def test_windows_are_sorted_and_shared_with_every_section_that_does_not_set_its_own():
    config = FeaturesConfig(windows_days=[90, 7], usage=UsageConfig(windows_days=[14]))
    assert config.windows_days == [7, 90]
    assert config.section("value").windows_days == [7, 90]
    assert config.section("usage").windows_days == [14]
    # The section itself keeps "not set", so the dumped params still inherit the shared windows.
    assert config.value.windows_days is None
    assert config.model_dump()["value"]["windows_days"] is None


def test_a_family_without_a_config_section_is_reported_with_the_fix():
    with pytest.raises(KeyError, match="features has no section 'nope'; add `nope: <Name>Config`"):
        FeaturesConfig().section("nope")


def test_feature_catalog_lists_name_family_description_and_unit_of_every_enabled_family():
    catalog = feature_catalog(FeaturesConfig())
    assert list(catalog.columns) == ["name", "family", "description", "unit"]
    assert catalog["name"].is_unique
    assert list(dict.fromkeys(catalog["family"])) == registry.family_names()
    assert all(name.startswith(f"{family}__") for name, family in zip(catalog["name"], catalog["family"]))
    assert catalog["description"].str.len().min() > 10
    mine = feature_catalog(FeaturesConfig(windows_days=[7], enabled=["value"]))
    assert "value__revenue_7d" in set(mine["name"]) and set(mine["family"]) == {"value"}


def test_register_gives_canonical_dtypes_and_leaves_the_input_untouched(duck):
    raw = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "timestamp": ["2024-01-01 10:00", "2024-01-02T05:00:00+02:00"],  # naive text means UTC
            "event_type": ["purchase", None],
            "revenue": ["1.5", None],
        }
    )
    before = raw.copy()
    table = register(duck, "raw", raw)
    assert_frame_equal(raw, before)
    assert str(table.schema()["timestamp"]) == "timestamp('UTC', 6)"
    got = table.execute()
    assert got["customer_id"].tolist() == ["1", "2"]
    assert got["timestamp"].tolist() == [pd.Timestamp("2024-01-01 10:00", tz="UTC"), pd.Timestamp("2024-01-02 03:00", tz="UTC")]
    assert got["event_type"].isna().tolist() == [False, True]
    assert got["revenue"].isna().tolist() == [False, True]


def test_connect_refuses_an_unknown_engine_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown engine 'postgres'; allowed: duckdb, spark"):
        connect("postgres")


def test_text_categoricals_register_as_the_same_text_across_slices(duck, monkeypatch):
    import pipeline.engine as engine

    monkeypatch.setattr(engine, "_SLICE_ROWS", 3)  # 4 slices, every one a dictionary array
    plain = pd.DataFrame({
        "customer_id": ["b", "a", None, "c", "a", "b", "b", "c", "a", "a"],
        "timestamp": pd.date_range("2024-01-01", periods=10, freq="h", tz="UTC"),
        "event_type": ["purchase", "page_view"] * 5,
        "revenue": [1.0, None] * 5,
    })
    encoded = plain.astype({"customer_id": "category", "event_type": "category"})
    got_plain = register(duck, "plain", plain).execute()
    table = register(duck, "encoded", encoded)
    assert str(table.schema()["customer_id"]) == "string"
    assert_frame_equal(table.execute(), got_plain)
    assert got_plain["customer_id"].isna().sum() == 1


def test_spark_reads_registered_tables_from_parquet_equal_to_duckdb(duck, spark, monkeypatch, tmp_path):
    import pipeline.engine as engine

    monkeypatch.setattr(engine, "_SLICE_ROWS", 4)  # 3 Parquet row groups, the last with no channel at all
    frame = pd.DataFrame({
        "customer_id": pd.Series(["b", "a", None, "c", "a", "b", "b", "c", "a", "a"], dtype="category"),
        "timestamp": pd.date_range("2024-01-01", periods=10, freq="h", tz="UTC"),
        "event_type": ["purchase", "page_view"] * 5,
        "channel": ["web", None, "app", "web", None, "app", "web", "app", None, None],
        "revenue": [1.0, None] * 5,
    })
    staged = register(spark, "staged_events", frame, spark_staging_dir=str(tmp_path))
    files = list(tmp_path.glob("pipeline-spark-*/staged_events-*.parquet"))
    assert len(files) == 1 and not list(tmp_path.glob("**/*.partial"))
    assert list(files[0].parent.iterdir()) == files  # no temporary file left beside it
    expected = register(duck, "staged_events", frame).execute()
    got = staged.execute().sort_values("timestamp").reset_index(drop=True)
    assert_frame_equal(got, expected, check_dtype=False)
    assert str(staged.schema()["timestamp"]).startswith("timestamp")


def test_spark_tables_go_through_the_driver_only_without_a_shared_place_to_stage():
    from pipeline.engine import _staging_folder

    assert _staging_folder(None, "spark://spark-master:7077") is None
    assert _staging_folder(None, "yarn") is None
    local = _staging_folder(None, "local[4]")
    assert local is not None and local.is_dir() and local == _staging_folder(None, "local[*]")
