"""Events' repeated text held once per distinct value: the same rows, counts and examples as plain text.

load_dataset reads the events' repeated text columns as categoricals and runs every text rule once
per distinct value. These tests pin that this changes nothing a user can see except the dtype: the
validated rows, the report's counts and examples, the row order and the training data digest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import data
from pipeline.config import load_params
from pipeline.data import ValidationReport, as_sorted_categorical, load_dataset, validate_table
from pipeline.train import data_digest

REF = ["run.reference_time=2024-06-30T00:00:00Z", "validation.max_dropped_share=1"]


@pytest.fixture(autouse=True)
def _no_repo_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def params(*overrides: str):
    return load_params(None, REF + list(overrides))


# Every text rule meets values that differ only in spacing or case, empty text, missing cells,
# and the same bad value on several rows (so examples carry counts).
RAW = pd.DataFrame({
    "customer_id": ["c1", " c1", "c2 ", "", None, "c10", "c9", "c9", "c3", "c3", "c4", "c4", "c5", "c1"],
    "timestamp": ["2024-01-01 10:00:00", "2024-01-01 10:00:00", "2024-01-02T09:00:00+02:00", "2024-01-02 10:00",
                  "2024-01-02 10:00", "2024-01-03 08:00", "2024-01-03 08:00", "not a date", "not a date",
                  "2024-03-31 02:30", "2024-10-27 02:30", " 2024-01-05 07:00 ", "2030-01-01 00:00",
                  "2024-01-01 10:00:00"],
    "event_type": ["purchase", "Purchase", "page_view", "purchase", "purchase", "PAGE_VIEW", "view", "purchase",
                   "purchase", "teleport", "teleport", "purchase", "page_view", "purchase"],
    "revenue": ["10", "10.0", "", "yes", "5", None, "ten", "ten", "3", "-2", "4", "-1", "1", "10"],
    "quantity": ["1", "1", None, "1", "1", None, "1", "1", "no", "1", "1", "2", None, "1"],
    "channel": ["web", " web", "app", "", None, "web", "app", "app", "web", "web", "app", "web", "app", "web"],
    "product_id": ["p1", "p1", "p2", "p1", "p1", None, "p2", "p2", "p1", "p1", "p2", "p1", "p2", "p1"],
})
TEXT_COLUMNS = list(RAW.columns)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with categoricals turned back into plain text, for comparing values only."""
    return frame.astype({c: "str" for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def _validate(raw: pd.DataFrame, *overrides: str) -> tuple[pd.DataFrame, ValidationReport]:
    report = ValidationReport()
    out = validate_table(raw, "events", "test", params(*overrides), report)
    return out, report


def _report_view(report: ValidationReport) -> list:
    t = report.tables["events"]
    return [(r.rule, r.count, r.action, r.examples, r.hint) for r in t.rules] + t.notes + report.errors


@pytest.mark.parametrize("overrides", [(), ("data.events.negative_quantity_as_return=true",)])
def test_encoded_text_gives_the_same_rows_counts_and_examples_as_plain_text(overrides):
    plain_out, plain_report = _validate(RAW.astype("str").where(RAW.notna(), None), *overrides)
    encoded_out, encoded_report = _validate(RAW.astype("category"), *overrides)
    assert _report_view(encoded_report) == _report_view(plain_report)
    pd.testing.assert_frame_equal(_plain(encoded_out), _plain(plain_out))
    # The fixture does exercise the rules: rows are kept and rows are dropped under several rules.
    counts = plain_report.counts()
    assert 0 < counts["events.rows_out"] < counts["events.rows_in"]
    assert sum(1 for k, v in counts.items() if v and k not in ("events.rows_in", "events.rows_out")) >= 5


def test_validated_text_is_categorical_with_the_kept_rows_values_in_sorted_order():
    out, _ = _validate(RAW.astype("category"))
    for column in ("customer_id", "event_type", "channel", "product_id"):
        categories = list(out[column].cat.categories)
        assert categories == sorted(set(out[column].dropna().astype(str))), column
    # "teleport" rows are dropped: their type is not a category of the kept rows.
    assert "teleport" not in out["event_type"].cat.categories
    # Spacing variants of one value became one category, and empty text became missing.
    assert " c1" not in out["customer_id"].cat.categories
    assert "" not in out["channel"].cat.categories


def test_ids_that_are_floats_as_text_are_shortened_only_when_every_distinct_id_is():
    floaty = pd.Series(["17850.0", "17850.0", "13047.0", None], dtype="category")
    assert data.normalise_ids(floaty).astype(object).tolist() == ["17850", "17850", "13047", np.nan]
    mixed = pd.Series(["17850.0", "17850.0", "A13", None], dtype="category")
    assert data.normalise_ids(mixed).astype(object).tolist() == ["17850.0", "17850.0", "A13", np.nan]
    # A category no row holds does not decide it: the rows are all float-like.
    unused = pd.Series(pd.Categorical(["1.0", "2.0"], categories=["1.0", "2.0", "X"]))
    assert data.normalise_ids(unused).astype(object).tolist() == ["1", "2"]


def test_sorted_categorical_orders_by_code_point_like_python():
    values = pd.Series(["b", "B", "a", "é", "c10", "c9", None, "b"], dtype="category")
    out = as_sorted_categorical(values)
    assert list(out.cat.categories) == sorted({"b", "B", "a", "é", "c10", "c9"})
    assert out.astype(object).where(out.notna(), None).tolist() == ["b", "B", "a", "é", "c10", "c9", None, "b"]
    plain = as_sorted_categorical(values.astype("str"))
    pd.testing.assert_series_equal(plain, out)


def _write_events(folder: Path) -> str:
    rng = np.random.default_rng(7)
    n = 500
    frame = pd.DataFrame({
        "customer_id": rng.choice([f"c{i}" for i in range(40)], n),
        # Few distinct times, so many rows tie on timestamp and the customer id decides their order.
        "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        "event_type": rng.choice(["page_view", "purchase", "add_to_cart", "email_open"], n),
        "channel": rng.choice(["web", "app", "email", None], n),
        "session_id": [f"s{i}" for i in rng.integers(0, 400, n)],  # mostly distinct: not encoded on read
        "revenue": rng.choice([np.nan, 5.0, 12.5], n),
    })
    path = folder / "events.parquet"
    frame.to_parquet(path)
    return str(path)


def test_loading_gives_the_same_frame_whatever_the_slice_size(tmp_path, monkeypatch):
    path = _write_events(tmp_path)
    whole = load_dataset(path, params()).events
    monkeypatch.setattr(data, "_FETCH_ROWS", 7)  # 72 slices, each with its own dictionaries
    sliced = load_dataset(path, params()).events
    pd.testing.assert_frame_equal(sliced, whole)
    assert isinstance(whole["customer_id"].dtype, pd.CategoricalDtype)
    assert isinstance(whole["session_id"].dtype, pd.CategoricalDtype)  # text columns always are, once validated


def test_loaded_events_are_in_time_then_customer_text_order_and_the_digest_ignores_the_dtype(tmp_path):
    path = _write_events(tmp_path)
    events = load_dataset(path, params()).events
    plain = _plain(events)
    expected = plain.sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(plain, expected)
    ties = plain[plain["timestamp"] == plain["timestamp"].iloc[0]]["customer_id"].tolist()
    assert ties == sorted(ties) and len(set(ties)) > 1  # "c10" before "c9": text order, not number order
    assert data_digest(events) == data_digest(plain)


def test_catalog_fills_missing_categories_of_encoded_events(tmp_path):
    pd.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c"],
        "timestamp": pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"),
        "event_type": ["page_view"] * 5,
        "product_id": ["p1", "p2", "p1", "p3", None],
        "category": [None, "books", None, None, None],
    }).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame({"product_id": ["p1", "p2"], "category": ["toys", "games"]}).to_csv(tmp_path / "catalog.csv",
                                                                                    index=False)
    events = load_dataset(str(tmp_path), params()).events
    # p1 from the catalog; p2's own category wins over the catalog's; p3 is not in the catalog; no product.
    assert events["category"].astype(object).where(events["category"].notna(), None).tolist() == [
        "toys", "books", "toys", None, None]
    assert list(events["category"].cat.categories) == ["books", "toys"]


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_rows_are_found_exactly_as_pandas_finds_them(seed):
    rng = np.random.default_rng(seed)
    n = 3_000
    frame = pd.DataFrame({
        "customer_id": pd.Series(rng.choice(["a", "b", "c", None], n)).astype("category"),
        "timestamp": pd.Series(pd.Timestamp("2024-01-01", tz="UTC")
                               + pd.to_timedelta(rng.integers(0, 4, n), unit="h")).where(rng.random(n) > 0.05),
        "revenue": rng.choice([0.0, -0.0, np.nan, 1.5], n),
        "channel": pd.Series(rng.choice(["web", "app", None], n), dtype="str"),
    })
    found = data._duplicated_rows(frame)
    expected = frame.duplicated(keep="first")
    pd.testing.assert_series_equal(found, expected, check_names=False)
    assert 0 < found.sum() < n  # both kinds of rows are there


def test_text_timestamps_parsed_in_slices_equal_those_parsed_whole(monkeypatch):
    text = RAW["timestamp"].astype("str").where(RAW["timestamp"].notna(), None)
    whole = data.parse_timestamps(text, "Europe/London")
    monkeypatch.setattr(data, "_PARSE_ROWS", 3)  # 5 slices: offsets, naive, unreadable and clock changes mixed
    sliced = data.parse_timestamps(text, "Europe/London")
    pd.testing.assert_series_equal(sliced, whole)
    assert whole.isna().sum() == 2 and whole.notna().sum() == len(text) - 2


def test_a_column_empty_in_the_first_slice_and_an_enum_column_load_as_text(tmp_path, monkeypatch):
    import duckdb

    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TYPE kind AS ENUM ('page_view', 'purchase')")
        con.execute("""
            CREATE TABLE events AS
            SELECT 'c' || (i % 5) AS customer_id,
                   TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_hours(i) AS timestamp,
                   (CASE WHEN i % 3 = 0 THEN 'purchase' ELSE 'page_view' END)::kind AS event_type,
                   CASE WHEN i >= 8 THEN 'web' END AS channel
            FROM range(20) t(i)
        """)
    monkeypatch.setattr(data, "_FETCH_ROWS", 4)  # the first slice has no channel at all
    events = load_dataset(str(db), params()).events
    assert len(events) == 20
    assert events["channel"].isna().sum() == 8
    assert list(events["channel"].cat.categories) == ["web"]
    assert list(events["event_type"].cat.categories) == ["page_view", "purchase"]
    assert (events["event_type"] == "purchase").sum() == 7
