"""Data contract: sources, column and event-type mapping, timezones, and every validation rule with its counts."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.config import load_params
from pipeline.data import (
    DataValidationError,
    load_dataset,
    normalise_ids,
    parse_numbers,
    parse_timestamps,
    resolve_sources,
)

# Reference time after every event in the fixtures, so only the future-event row is "future".
REF = ["run.reference_time=2024-06-30T00:00:00Z"]


def params(*overrides: str, ref: bool = True):
    return load_params(None, (REF if ref else []) + list(overrides))


@pytest.fixture(autouse=True)
def _no_repo_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # never pick up a params.yaml from the working directory


def csv(tmp_path: Path, text: str, name: str = "events.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# One clean row, then one row per rule, in the order the rules are applied.
MESSY = """customer_id,timestamp,event_type,revenue,quantity
c1,2024-01-01 10:00:00,purchase,10.0,1
,2024-01-01 11:00:00,purchase,5.0,1
c2,not a date,page_view,,
c3,2024-01-02 09:00:00,teleport,,
c4,2024-01-02 10:00:00,purchase,ten,1
c5,2024-01-03 10:00:00,purchase,-3.0,1
c6,2030-01-01 00:00:00,page_view,,
c1,2024-01-01 10:00:00,purchase,10.0,1
c7,2024-01-04 12:00:00,Purchase,7.5,2
"""


# MESSY is mostly bad rows by design: allow dropping them all.
MESSY_OK = "validation.max_dropped_share=1"


def counts(dataset) -> dict[str, int]:
    return {k: v for k, v in dataset.report.counts().items() if k.startswith("events.")}


def test_each_row_rule_drops_and_counts_exactly_its_rows(tmp_path):
    ds = load_dataset(csv(tmp_path, MESSY), params(MESSY_OK))
    assert counts(ds) == {
        "events.rows_in": 9,
        "events.rows_out": 2,
        "events.null_customer_id": 1,
        "events.unparseable_timestamp": 1,
        "events.unknown_event_type": 1,
        "events.unparseable_number": 1,
        "events.negative_value": 1,
        "events.future_event": 1,
        "events.duplicate_event": 1,
    }
    assert ds.report.ok
    # counts add up: 9 read = 2 kept + 7 dropped
    assert ds.report.tables["events"].dropped == 7
    assert list(ds.events["customer_id"]) == ["c1", "c7"]
    # canonical names are matched case-insensitively: "Purchase" is a purchase
    assert list(ds.events["event_type"]) == ["purchase", "purchase"]
    assert list(ds.events["revenue"]) == [10.0, 7.5]


def test_report_text_shows_counts_examples_and_fixes(tmp_path):
    text = load_dataset(csv(tmp_path, MESSY), params(MESSY_OK)).report.to_text()
    assert "rows read 9  kept 2  dropped 7" in text
    assert "unknown_event_type" in text and "'teleport'" in text
    assert "data.events.event_types" in text
    assert "revenue=ten" in text
    assert "'(empty)'" in text and "'nan'" not in text  # the row without a customer id
    assert text.endswith("OK")


@pytest.mark.parametrize(
    "rule", ["null_customer_id", "unparseable_timestamp", "unknown_event_type",
             "unparseable_number", "negative_value", "future_event", "duplicate_event"],
)
def test_fail_policy_turns_a_rule_into_an_error_naming_it(tmp_path, rule):
    with pytest.raises(DataValidationError) as err:
        load_dataset(csv(tmp_path, MESSY), params(MESSY_OK, f"validation.{rule}=fail"))
    assert f"break rule {rule}" in str(err.value)
    assert f"validation.{rule}" in str(err.value)


def test_missing_required_column_names_it_and_the_mapping_key_that_fixes_it(tmp_path):
    path = csv(tmp_path, "CustomerID,ts,event_type\n1,2024-01-01,purchase\n")
    with pytest.raises(DataValidationError) as err:
        load_dataset(path, params())
    msg = str(err.value)
    assert "required column 'customer_id' not found" in msg
    assert "data.events.columns: {CustomerID: customer_id}" in msg
    assert "required column 'timestamp' not found" in msg


def test_missing_event_type_column_suggests_a_default_event_type(tmp_path):
    path = csv(tmp_path, "customer_id,timestamp\n1,2024-01-01\n")
    with pytest.raises(DataValidationError, match="default_event_type: purchase"):
        load_dataset(path, params())


def test_empty_input_is_a_structural_error(tmp_path):
    with pytest.raises(DataValidationError, match="has no rows"):
        load_dataset(csv(tmp_path, "customer_id,timestamp,event_type\n"), params())


def test_dropping_more_than_the_allowed_share_fails_as_a_likely_mapping_mistake(tmp_path):
    text = "customer_id,timestamp,event_type\nc1,2024-01-01,purchase\nc2,2024-01-01,order_done\nc3,2024-01-01,order_done\n"
    with pytest.raises(DataValidationError, match=r"2 of 3 rows \(67%\)"):
        load_dataset(csv(tmp_path, text), params())
    ok = load_dataset(csv(tmp_path, text), params("data.events.event_types={order_done: purchase}"))
    assert len(ok.events) == 3


def test_transactions_only_export_maps_without_code(tmp_path):
    # UCI Online Retail shape: float-looking ids, a cancellation, no event type column.
    text = (
        "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
        "536366,22633,2,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n"
        "C536379,D,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom\n"
        "536380,22961,24,2010-12-01 09:45:00,1.45,,United Kingdom\n"
        "C536381,22962,-3,2010-12-01 09:50:00,1.45,,United Kingdom\n"
    )
    p = params(
        "data.events.columns={InvoiceNo: order_id, StockCode: product_id, Quantity: quantity,"
        " InvoiceDate: timestamp, UnitPrice: unit_price, CustomerID: customer_id}",
        "data.events.default_event_type=purchase",
        "data.events.negative_quantity_as_return=true",
        "data.timezone=Europe/London",
    )
    ds = load_dataset(csv(tmp_path, text, "retail.csv"), p)
    ev = ds.events
    assert list(ev["customer_id"]) == ["17850", "17850", "14527"]
    assert list(ev["event_type"]) == ["purchase", "purchase", "return"]
    # revenue = unit_price x quantity: 6 x 2.55 = 15.3, 2 x 1.85 = 3.7, |-1 x 27.5| = 27.5
    assert list(ev["revenue"].round(6)) == [15.3, 3.7, 27.5]
    assert list(ev["quantity"]) == [6.0, 2.0, 1.0]
    assert "unit_price" not in ev.columns
    assert ds.report.counts()["events.null_customer_id"] == 2
    # the note counts the returns kept: the cancellation without a customer was dropped
    notes = ds.report.tables["events"].notes
    assert "1 purchase row(s) with negative amounts read as returns (2 before the row rules)" in notes
    # December: London is on GMT, so local time equals UTC
    assert ev["timestamp"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")


def test_renamed_event_types_and_columns_of_a_clickstream_export(tmp_path):
    text = "user,ts,event\nu1,2024-03-01T10:00:00Z,order_completed\nu1,2024-03-01T09:00:00Z,pdp_view\n"
    p = params(
        "data.events.columns={user: customer_id, ts: timestamp, event: event_type}",
        "data.events.event_types={order_completed: purchase, pdp_view: product_view}",
    )
    ev = load_dataset(csv(tmp_path, text), p).events
    # sorted by time
    assert list(ev["event_type"]) == ["product_view", "purchase"]


def test_timestamps_with_offsets_become_utc_and_naive_ones_take_the_configured_zone():
    s = pd.Series(["2024-07-01 10:00:00", "2024-07-01T10:00:00+02:00", "2024-07-01T10:00:00Z", "", None, "garbage"])
    out = parse_timestamps(s, "Europe/London")
    expected = pd.Series(
        [pd.Timestamp("2024-07-01 09:00", tz="UTC"),  # 10:00 BST (UTC+1)
         pd.Timestamp("2024-07-01 08:00", tz="UTC"),  # 10:00 at +02:00
         pd.Timestamp("2024-07-01 10:00", tz="UTC"),
         pd.NaT, pd.NaT, pd.NaT],
        dtype="datetime64[us, UTC]",
    )
    pd.testing.assert_series_equal(out, expected)


def test_ambiguous_and_missing_local_times_at_clock_changes_are_resolved_not_dropped():
    # 2024-10-27 01:30 happens twice in London (read as GMT); 2024-03-31 01:30 never happens (shifted to 02:00 BST).
    out = parse_timestamps(pd.Series(["2024-10-27 01:30:00", "2024-03-31 01:30:00"]), "Europe/London")
    assert list(out) == [pd.Timestamp("2024-10-27 01:30", tz="UTC"), pd.Timestamp("2024-03-31 01:00", tz="UTC")]


def test_explicit_timestamp_format_and_epoch_seconds():
    out = parse_timestamps(pd.Series(["01/02/2024 13:05"]), "UTC", "%d/%m/%Y %H:%M")
    assert out.iloc[0] == pd.Timestamp("2024-02-01 13:05", tz="UTC")
    out = parse_timestamps(pd.Series([0, 86400]), "UTC", "epoch_s")
    assert list(out) == [pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("1970-01-02", tz="UTC")]


def test_tz_aware_and_naive_datetime_columns_from_parquet_are_normalised():
    aware = pd.Series(pd.to_datetime(["2024-01-01 12:00"]).tz_localize("America/New_York"))
    assert parse_timestamps(aware, "UTC").iloc[0] == pd.Timestamp("2024-01-01 17:00", tz="UTC")
    naive = pd.Series(pd.to_datetime(["2024-01-01 12:00"]))
    assert parse_timestamps(naive, "Asia/Tokyo").iloc[0] == pd.Timestamp("2024-01-01 03:00", tz="UTC")


def test_ids_written_as_floats_lose_the_trailing_zero_only_when_all_ids_do():
    out = normalise_ids(pd.Series(["17850.0", " 12346.0 ", None, ""]))
    assert out.iloc[:2].tolist() == ["17850", "12346"] and out.iloc[2:].isna().all()
    assert list(normalise_ids(pd.Series(["1.0", "A7"]))) == ["1.0", "A7"]
    out = normalise_ids(pd.Series([17850.0, None]))
    assert out.iloc[0] == "17850" and pd.isna(out.iloc[1])


def test_numbers_accept_flags_and_flag_text_that_is_not_a_number():
    nums, bad = parse_numbers(pd.Series(["1.5", "yes", "no", "", "abc", None]))
    assert nums.tolist()[:3] == [1.5, 1.0, 0.0]
    assert nums.iloc[3:].isna().all()
    assert bad.tolist() == [False, False, False, False, True, False]


# ---- sources ------------------------------------------------------------------------------

CLEAN = pd.DataFrame({
    "customer_id": ["a", "b", "a"],
    "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-03 12:00"]).tz_localize("UTC"),
    "event_type": ["product_view", "purchase", "purchase"],
    "product_id": ["p1", "p2", "p1"],
    "revenue": [None, 20.0, 5.0],
})


def test_directory_with_events_customers_and_catalog_loads_all_three(tmp_path):
    CLEAN.to_parquet(tmp_path / "events.parquet")
    pd.DataFrame({"customer_id": ["a", "b", "b"], "plan": ["paid", "free", "trial"], "region": ["N", "S", "S"]}).to_csv(
        tmp_path / "customers.csv", index=False)
    pd.DataFrame({"product_id": ["p1", "p2"], "category": ["toys", "books"], "price": ["5", "20"]}).to_csv(
        tmp_path / "catalog.csv", index=False)
    ds = load_dataset(str(tmp_path), params())
    assert ds.customers["region"].tolist() == ["N", "S"]  # trait passes through; duplicate b dropped
    assert ds.report.counts()["customers.duplicate_key"] == 1
    assert ds.catalog["price"].tolist() == [5.0, 20.0]
    # event category filled from the catalog through product_id
    assert ds.events["category"].tolist() == ["toys", "books", "toys"]


def test_glob_of_gzipped_csv_parts_is_one_events_table(tmp_path):
    for i, part in enumerate([CLEAN.iloc[:2], CLEAN.iloc[2:]]):
        with gzip.open(tmp_path / f"part{i}.csv.gz", "wt") as fh:
            part.to_csv(fh, index=False)
    ds = load_dataset(str(tmp_path / "part*.csv.gz"), params())
    assert len(ds.events) == 3
    assert ds.events["revenue"].tolist()[1:] == [20.0, 5.0]


def test_directory_of_plain_parts_is_read_as_events(tmp_path):
    CLEAN.iloc[:1].to_parquet(tmp_path / "a.parquet")
    CLEAN.iloc[1:].to_parquet(tmp_path / "b.parquet")
    assert len(load_dataset(str(tmp_path), params()).events) == 3


def test_duckdb_database_table_with_a_custom_name(tmp_path):
    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.register("clean", CLEAN)
        con.execute("CREATE TABLE web_events AS SELECT * FROM clean")
    with pytest.raises(ValueError, match="data.events.table"):
        load_dataset(str(db), params())
    ds = load_dataset(str(db), params("data.events.table=web_events"))
    assert ds.events["customer_id"].tolist() == ["a", "b", "a"]


def test_unknown_file_kind_and_missing_paths_have_clear_errors(tmp_path):
    (tmp_path / "events.xlsx").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format"):
        resolve_sources(str(tmp_path / "events.xlsx"), params().data)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        resolve_sources(str(tmp_path / "*.parquet"), params().data)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_sources(str(tmp_path / "missing.csv"), params().data)


def test_loading_does_not_modify_the_source_frame(tmp_path):
    before = CLEAN.copy()
    CLEAN.to_parquet(tmp_path / "events.parquet")
    load_dataset(str(tmp_path / "events.parquet"), params())
    pd.testing.assert_frame_equal(CLEAN, before)


def test_loading_is_invariant_to_input_row_order(tmp_path):
    CLEAN.to_parquet(tmp_path / "a.parquet")
    CLEAN.iloc[::-1].to_parquet(tmp_path / "b.parquet")
    a = load_dataset(str(tmp_path / "a.parquet"), params()).events
    b = load_dataset(str(tmp_path / "b.parquet"), params()).events
    pd.testing.assert_frame_equal(a, b)
