"""Loads a user's export onto the canonical data contract and validates it with a counted report.

Sources: CSV (also .gz), Parquet, a directory or glob of those, or a table in a DuckDB database.
Nothing is dropped silently: every rejected row is counted under the first rule it breaks, so the
counts of a table add up to its dropped rows, and the report is returned for training to log.
"""

from __future__ import annotations

import difflib
import glob as globlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import COLUMN_DTYPES, EVENT_TYPES, TABLE_COLUMNS, column_names, required_columns
from pipeline.config import DataConfig, Params, TableMapping, ValidationConfig

TABLES = ("events", "customers", "catalog")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
DUCKDB_SUFFIXES = (".duckdb", ".db")
NUMERIC = {name for t in TABLE_COLUMNS.values() for c in t if c.dtype == "float" for name in [c.name]}
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_FLOATY_ID = re.compile(r"^-?\d+\.0+$")
_FLAGS = {"true": 1.0, "yes": 1.0, "y": 1.0, "false": 0.0, "no": 0.0, "n": 0.0}
EXAMPLES = 3
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default text dtype ("str"), held in Arrow


# --------------------------------------------------------------------------- report


@dataclass
class RuleCount:
    """How many rows one rule caught in one table, what was done, and a few examples."""

    rule: str
    count: int
    action: Literal["dropped", "failed", "kept"]
    examples: list[str] = field(default_factory=list)
    hint: str = ""


@dataclass
class TableReport:
    """Validation outcome of one table."""

    table: str
    source: str
    rows_in: int = 0
    rows_out: int = 0
    rules: list[RuleCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return sum(r.count for r in self.rules if r.action == "dropped")


@dataclass
class ValidationReport:
    """The whole validation outcome: per-table counts plus structural errors that stop the run."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        """Returns flat counts (e.g. 'events.rows_in', 'events.null_customer_id') for run logging."""
        out: dict[str, int] = {}
        for name, t in self.tables.items():
            out[f"{name}.rows_in"] = t.rows_in
            out[f"{name}.rows_out"] = t.rows_out
            for r in t.rules:
                out[f"{name}.{r.rule}"] = r.count
        return out

    def to_text(self) -> str:
        """Renders the report for a terminal: one block per table, then errors."""
        lines: list[str] = []
        for t in self.tables.values():
            lines.append(f"{t.table}: {t.source}")
            lines.append(f"  rows read {t.rows_in:,}  kept {t.rows_out:,}  dropped {t.dropped:,}")
            for r in t.rules:
                if r.count == 0:
                    continue
                ex = f"  e.g. {', '.join(r.examples)}" if r.examples else ""
                lines.append(f"  {r.rule:<22} {r.count:>10,}  {r.action}{ex}")
                if r.hint:
                    lines.append(f"  {'':<22} {'':>10}  fix: {r.hint}")
            for note in t.notes:
                lines.append(f"  note: {note}")
        if self.errors:
            lines.append("FAILED:")
            lines.extend(f"  - {e}" for e in self.errors)
        else:
            lines.append("OK")
        return "\n".join(lines)


class DataValidationError(ValueError):
    """The input breaks the data contract in a way the policy says must stop the run."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__("data validation failed:\n" + "\n".join(f"  - {e}" for e in report.errors))


@dataclass
class Dataset:
    """Canonical, validated tables ready for feature building, plus the report that made them.

    The events are in (timestamp, customer_id) order; their text columns (ids, event type, channel,
    ...) are pandas categoricals with sorted categories, so each distinct value is held once.
    """

    events: pd.DataFrame
    customers: pd.DataFrame | None
    catalog: pd.DataFrame | None
    report: ValidationReport
    sources: dict[str, str]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where one table is read from."""

    kind: Literal["csv", "parquet", "duckdb"]
    files: tuple[str, ...]
    table: str | None = None

    def describe(self) -> str:
        where = self.files[0] if len(self.files) == 1 else f"{self.files[0]} (+{len(self.files) - 1} more files)"
        return f"{where} [table {self.table}]" if self.table else where


def _kind_of(name: str) -> Literal["csv", "parquet", "duckdb"] | None:
    low = name.lower()
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(CSV_SUFFIXES):
        return "csv"
    if low.endswith(DUCKDB_SUFFIXES):
        return "duckdb"
    return None


def _files_source(files: list[str], what: str) -> Source:
    kinds = {_kind_of(f) for f in files}
    kinds.discard(None)
    if not kinds:
        raise FileNotFoundError(
            f"{what}: no CSV (.csv, .csv.gz) or Parquet files found; point --data at a file, a glob or a directory of them"
        )
    if len(kinds) > 1:
        raise ValueError(f"{what}: mixes file kinds {sorted(kinds)}; use one kind per table")
    kind = kinds.pop()
    return Source(kind, tuple(sorted(f for f in files if _kind_of(f) == kind)))


def _source_for_path(path: str, what: str) -> Source:
    """Resolves a file, glob or directory of files to a Source."""
    if any(ch in path for ch in "*?["):
        files = sorted(globlib.glob(path))
        if not files:
            raise FileNotFoundError(f"{what}: the glob {path!r} matches no file")
        return _files_source(files, what)
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.iterdir() if f.is_file() and _kind_of(f.name) in ("csv", "parquet"))
        return _files_source(files, f"{what} ({path})")
    if not p.exists():
        raise FileNotFoundError(f"{what}: {path!r} does not exist")
    kind = _kind_of(p.name)
    if kind is None:
        raise ValueError(
            f"{what}: cannot tell the format of {path!r}; use .csv, .csv.gz, .parquet, or .duckdb for a DuckDB database"
        )
    return Source(kind, (str(p),))


def _table_in_dir(directory: Path, table: str) -> str | None:
    for suffix in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        candidate = directory / f"{table}{suffix}"
        if candidate.is_file():
            return str(candidate)
    if (directory / table).is_dir():
        return str(directory / table)
    return None


def resolve_sources(path: str | None, cfg: DataConfig) -> dict[str, Source | None]:
    """Finds where events (required), customers and catalog (optional) come from."""
    mappings: dict[str, TableMapping] = {"events": cfg.events, "customers": cfg.customers, "catalog": cfg.catalog}
    out: dict[str, Source | None] = {t: None for t in TABLES}
    if path is not None and _kind_of(path) == "duckdb":
        if not Path(path).is_file():
            raise FileNotFoundError(f"DuckDB database {path!r} does not exist")
        with duckdb.connect(path, read_only=True) as con:
            present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for t in TABLES:
            name = mappings[t].table or t
            if name in present:
                out[t] = Source("duckdb", (path,), name)
            elif t == "events" or mappings[t].table:
                raise ValueError(
                    f"DuckDB database {path!r} has no table {name!r} (tables: {sorted(present)}); "
                    f"set data.{t}.table to the right name"
                )
    elif path is not None and Path(path).is_dir() and _table_in_dir(Path(path), "events"):
        for t in TABLES:
            found = _table_in_dir(Path(path), t)
            out[t] = _source_for_path(found, t) if found else None
    elif path is not None:
        out["events"] = _source_for_path(path, "events")
    for t in TABLES:  # an explicit per-table path wins
        if mappings[t].path:
            out[t] = _source_for_path(mappings[t].path, t)
    if out["events"] is None:
        raise FileNotFoundError(
            "no events found: pass --data (an events file, glob, directory or DuckDB database) or set data.path"
        )
    return out


def read_source(src: Source, cfg: DataConfig, encode_repeated_text: bool = False) -> pd.DataFrame:
    """Reads a source as it is, CSV cells as text so that parsing (and its errors) happens in one place.

    With `encode_repeated_text`, text columns whose values repeat (at most half of them distinct in
    the first slice read) come back as pandas categoricals: each distinct value is held once, so 10M
    events' ids, types and channels take codes of 1-4 bytes a row instead of the text itself, and the
    validation rules run once per distinct value (see _distinct_and_codes).
    """
    with duckdb.connect() as con:
        if src.kind == "duckdb":
            with duckdb.connect(src.files[0], read_only=True) as db:
                db.execute(_LARGE_STRINGS)
                rel = db.table(src.table)
                if not encode_repeated_text:
                    return _to_pandas(rel.to_arrow_table())
                slices = _encoded_slices(rel)
        else:
            con.execute(_LARGE_STRINGS)
            if src.kind == "parquet":
                rel = con.sql("SELECT * FROM read_parquet($files, union_by_name = true)",
                              params={"files": list(src.files)})
            else:
                rel = con.sql(
                    "SELECT * FROM read_csv($files, all_varchar = true, header = $header, delim = $delim, "
                    "union_by_name = true)",
                    params={"files": list(src.files), "header": cfg.csv.header, "delim": cfg.csv.delimiter},
                )
            if not encode_repeated_text:
                return _to_pandas(rel.to_arrow_table())
            slices = _encoded_slices(rel)
    # Converted once DuckDB is closed: its buffers (about 0.3 GB for a 10M-row CSV) are gone by then.
    return _slices_to_pandas(*slices)


# Rows fetched from DuckDB at a time when text is encoded as it arrives: the raw text of one slice is
# the most that is ever held at once.
_FETCH_ROWS = 250_000


def _encoded_slices(rel: duckdb.DuckDBPyRelation) -> tuple[pa.Schema, set[int], list[list[pa.Array]]]:
    """Streams the rows; returns the schema, the columns dictionary-encoded, and each column's slices."""
    reader = rel.to_arrow_reader(_FETCH_ROWS)
    schema = reader.schema
    encode: set[int] | None = None
    chunks: list[list[pa.Array]] = [[] for _ in schema]
    for batch in reader:
        if encode is None:  # decided on the first slice, so every slice of a column gets the same type
            encode = {i for i, f in enumerate(schema)
                      if _is_text_type(f.type) and pc.count_distinct(batch.column(i)).as_py() * 2 <= batch.num_rows}
        for i, column in enumerate(batch.columns):
            # Every column kept is new memory: DuckDB frees a slice's buffers only once none of it is used.
            chunks[i].append(pc.dictionary_encode(column) if i in encode else pa.concat_arrays([column]))
        del batch
    reader.close()
    return schema, encode or set(), chunks


def _slices_to_pandas(schema: pa.Schema, encode: set[int], chunks: list[list[pa.Array]]) -> pd.DataFrame:
    if not chunks[0]:
        return _to_pandas(schema.empty_table())
    frame = pd.DataFrame(index=pd.RangeIndex(sum(len(c) for c in chunks[0])))
    for i, f in enumerate(schema):  # one column at a time, each column's Arrow chunks let go once converted
        column, chunks[i] = pa.chunked_array(chunks[i]), []
        frame[f.name] = _categorical(column) if i in encode else _to_pandas(pa.table({f.name: column}))[f.name]
        del column
        # Arrow's allocator keeps freed blocks for reuse; handed back, the chunks just converted do not
        # add up with the next column's (at 10M events this lowered the peak by about 0.4 GB).
        pa.default_memory_pool().release_unused()
    return frame


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """Returns dictionary-encoded slices as one categorical with sorted categories (see as_sorted_categorical).

    Sorted here, in Arrow, so that the cleaning steps after it find nothing to recode on a clean export.
    """
    column = column.unify_dictionaries()  # one dictionary for every slice: the distinct values, once each
    categories, rank = _sorted_dictionary(column.chunk(0).dictionary)
    codes = np.concatenate([rank[pc.fill_null(chunk.indices, -1).to_numpy()] for chunk in column.chunks])
    return pd.Categorical.from_codes(codes, categories=categories)


def _sorted_dictionary(distinct: pa.Array | pa.ChunkedArray) -> tuple[pd.Index, np.ndarray]:
    """Returns distinct text values in sorted order, and the lookup from an old code to its new one.

    The order is UTF-8 byte order, which is code-point order, as Python's. The lookup's last slot
    is what code -1 (missing) picks, and it stays -1.
    """
    order = pc.sort_indices(distinct).to_numpy()
    rank = np.empty(len(order) + 1, dtype=np.int32)
    rank[order], rank[-1] = np.arange(len(order), dtype=np.int32), -1
    return _categories(distinct.take(pa.array(order))), rank


def _is_text_type(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# Text comes out of DuckDB as Arrow large_string, the layout of pandas' text dtype, so that turning
# it into pandas copies no text (with plain strings, every text column was copied: 1.1 GB at 10M events).
_LARGE_STRINGS = "SET arrow_large_buffer_size = true"

_NULLABLE_INTS: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(), pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
}


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Converts a DuckDB result to pandas as DuckDB's .df() does, but through Arrow.

    Text stays Arrow-backed rather than becoming one Python object per cell, which at 10M events took
    about 30 s and several GB. As with .df(), decimals become float64 and integers with gaps nullable.
    """
    for i, column in enumerate(table.columns):
        if pa.types.is_decimal(column.type):
            table = table.set_column(i, table.field(i).name, column.cast(pa.float64()))
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        if column.null_count and column.type in _NULLABLE_INTS:
            frame[name] = column.to_pandas(types_mapper=_NULLABLE_INTS.get)
    return frame


# --------------------------------------------------------------------------- parsing


def _is_categorical(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype)


def _distinct_and_codes(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Returns a categorical's distinct values that some row holds (as a Series) and each row's code into them.

    Categories no row holds are left out, so that a rule over "every value" (such as the float-id
    check in normalise_ids) sees exactly the values of the rows. Missing rows have code -1.
    """
    codes = values.cat.codes.to_numpy()
    categories = values.cat.categories
    used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
    if not used.all():
        remap = np.full(len(categories) + 1, -1, dtype=np.int64)  # the last slot maps -1 to -1
        remap[np.flatnonzero(used)] = np.arange(int(used.sum()))
        codes, categories = remap[codes], categories[used]
    return pd.Series(categories, dtype=categories.dtype, name=values.name), codes


def _spread(result: pd.Series, codes: np.ndarray, index: pd.Index, fill: Any = None) -> pd.Series:
    """Returns result[code] for every row; rows with code -1 get `fill`, or the dtype's missing value."""
    if fill is None:
        taken = pd.api.extensions.take(result.array, codes, allow_fill=True)
        return pd.Series(taken, index=index, name=result.name)
    lookup = np.append(result.to_numpy(), fill)  # the last slot is what code -1 picks
    return pd.Series(lookup[codes], index=index, name=result.name)


def _spread_text(result: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """Returns per-distinct text results as a categorical over the rows; values that became equal share a code."""
    new_codes, uniques = pd.factorize(result)  # missing results get -1
    lookup = np.append(new_codes, -1)  # the last slot is what code -1 picks
    categorical = pd.Categorical.from_codes(lookup[codes], categories=_categories(uniques))
    return pd.Series(categorical, index=index, name=result.name)


def _same_text(new: pd.Series, old: pd.Series) -> bool:
    """Whether per-distinct text results equal their inputs: then the rows need no new codes."""
    return bool(new.notna().all()) and bool(new.astype(TEXT).eq(old.astype(TEXT)).all())


def _categories(values: Any) -> pd.Index:
    """Returns text values as unnamed categories of pandas' text dtype (no copy when they already are)."""
    return pd.Index(values, dtype=TEXT).rename(None)


def as_sorted_categorical(values: pd.Series) -> pd.Series:
    """Returns text as a categorical whose categories are the values rows hold, in sorted order.

    The layout of every text column of the validated events: it does not depend on the order of the
    input or on how it was read, and sorting by it sorts by the text.
    """
    if _is_categorical(values):
        distinct, codes = _distinct_and_codes(values)
        text = pa.array(distinct.astype(TEXT).array)
        if (len(distinct) == len(values.cat.categories) and values.cat.categories.dtype == TEXT
                and values.cat.categories.name is None
                and not (len(text) > 1 and pc.any(pc.greater_equal(text[:-1], text[1:])).as_py())):
            return values  # already sorted, every category held by a row
        categories, rank = _sorted_dictionary(text)
        categorical = pd.Categorical.from_codes(rank[codes], categories=categories)
    else:
        codes, uniques = pd.factorize(values.astype(TEXT), sort=True)
        categorical = pd.Categorical.from_codes(codes, categories=_categories(uniques))
    return pd.Series(categorical, index=values.index, name=values.name)


def clean_text(values: pd.Series, empty_as_missing: bool = True) -> pd.Series:
    """Returns values as trimmed text (dtype str); missing stays missing, and so does empty text unless told not to.

    Text already in pandas' str dtype is trimmed one Arrow chunk at a time, and a chunk with nothing
    to trim or empty keeps its own memory: a clean export is then checked without a copy of the column.
    A categorical is cleaned once per distinct value and stays categorical.
    """
    if _is_categorical(values):
        distinct, codes = _distinct_and_codes(values)
        cleaned = clean_text(distinct, empty_as_missing)
        return values if _same_text(cleaned, distinct) else _spread_text(cleaned, codes, values.index)
    if values.dtype != TEXT:
        text = values.astype("str").str.strip().where(values.notna(), None)
        return text.where(text != "", None) if empty_as_missing else text
    arrow = pa.array(values.array)  # the column's own Arrow data, not a copy
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    cleaned = pa.chunked_array([_clean_chunk(c, empty_as_missing) for c in chunks], type=pa.large_string())
    return pd.Series(cleaned, dtype=TEXT, index=values.index, name=values.name)


def _clean_chunk(chunk: pa.Array, empty_as_missing: bool) -> pa.Array:
    # The trim pandas' str.strip() does on this dtype, so the text is the same either way.
    trimmed = pc.utf8_trim_whitespace(chunk)
    if empty_as_missing and pc.any(pc.equal(trimmed, "")).as_py():
        trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.large_string()), trimmed)
    return chunk if trimmed.equals(chunk) else trimmed


def normalise_ids(values: pd.Series) -> pd.Series:
    """Returns ids as trimmed text; empty -> missing; '17850.0' floats-as-text -> '17850' when every id looks so."""
    if _is_categorical(values):
        distinct, codes = _distinct_and_codes(values)
        ids = normalise_ids(distinct)
        return values if _same_text(ids, distinct) else _spread_text(ids, codes, values.index)
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if len(finite) and bool((finite == np.floor(finite)).all()):
            text = values.astype("Int64").astype("str")
            return text.where(values.notna(), None).astype("str")
    text = clean_text(values)
    present = text.notna()
    # Tested in place rather than on text.dropna(), which would copy every id.
    if present.any() and bool((text.str.match(_FLOATY_ID) | ~present).all()):
        text = text.str.replace(r"\.0+$", "", regex=True)
    return text


_PARSE_ROWS = 1_000_000


def parse_timestamps(values: pd.Series, tz: str, fmt: str | None = None) -> pd.Series:
    """Returns UTC timestamps (datetime64[us, UTC]); unreadable values become NaT.

    Values with an offset (or Z) are converted to UTC; values without one are local times in `tz`.
    Ambiguous local times at the autumn clock change are read as standard time, and times that do
    not exist (spring forward) are shifted forward.
    """
    out_dtype = "datetime64[us, UTC]"
    if _is_categorical(values):
        distinct, codes = _distinct_and_codes(values)
        return _spread(parse_timestamps(distinct, tz, fmt), codes, values.index)
    if len(values) > _PARSE_ROWS and not pd.api.types.is_datetime64_any_dtype(values):
        # Each value is read on its own, so slices give the same result with a slice's temporaries only
        # (whole, 10M text timestamps briefly took about 1 GB more).
        return pd.concat([parse_timestamps(values.iloc[start:start + _PARSE_ROWS], tz, fmt)
                          for start in range(0, len(values), _PARSE_ROWS)])
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype(out_dtype)
    if pd.api.types.is_datetime64_dtype(values):
        return _localise(values, tz).astype(out_dtype)
    if fmt in ("epoch_s", "epoch_ms"):
        nums = pd.to_numeric(values, errors="coerce")
        return pd.to_datetime(nums, unit="s" if fmt == "epoch_s" else "ms", utc=True).astype(out_dtype)
    text = clean_text(values, empty_as_missing=False)
    result = pd.Series(pd.NaT, index=values.index, dtype=out_dtype)
    present = text.notna() & (text != "")
    if fmt is not None:
        parsed = pd.to_datetime(text[present], format=fmt, errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            result[present] = parsed.dt.tz_convert("UTC")
        else:
            result[present] = _localise(parsed, tz)
        return result
    has_offset = present & text.str.contains(_OFFSET, na=False)
    naive = present & ~has_offset
    if has_offset.any():
        result[has_offset] = _to_datetime(text[has_offset], utc=True)
    if naive.any():
        result[naive] = _localise(_to_datetime(text[naive], utc=False), tz)
    return result


def _to_datetime(text: pd.Series, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc)
    retry = parsed.isna()
    if retry.any():  # common non-ISO layouts such as 12/1/2010 8:26
        parsed = parsed.astype(parsed.dtype)
        parsed[retry] = pd.to_datetime(text[retry], format="mixed", errors="coerce", utc=utc)
    return parsed


def _localise(values: pd.Series, tz: str) -> pd.Series:
    ambiguous = np.zeros(len(values), dtype=bool)
    return values.dt.tz_localize(tz, ambiguous=ambiguous, nonexistent="shift_forward").dt.tz_convert("UTC")


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Returns (floats, mask of cells that held text that is not a number); yes/no flags read as 1/0."""
    if _is_categorical(values):
        distinct, codes = _distinct_and_codes(values)
        nums, bad = parse_numbers(distinct)
        return _spread(nums, codes, values.index), _spread(bad, codes, values.index, fill=False).astype(bool)
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = clean_text(values, empty_as_missing=False)
    present = text.notna() & (text != "")
    flags = text.str.lower().map(_FLAGS)
    nums = pd.to_numeric(text.where(flags.isna()), errors="coerce").astype("float64")
    nums = nums.fillna(flags.astype("float64"))
    bad = present & nums.isna()
    return nums.where(present), bad


# --------------------------------------------------------------------------- mapping


def _missing_column_message(table: str, column: str, present: list[str]) -> str:
    close = difflib.get_close_matches(column, present, n=1, cutoff=0.6)
    ci = [c for c in present if c.lower() == column.lower()]
    guess = (ci or close or ["<your column>"])[0]
    shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
    return (
        f"{table}: required column {column!r} not found (columns: {shown}). "
        f"Map yours in params.yaml: data.{table}.columns: {{{guess}: {column}}}"
    )


def map_columns(raw: pd.DataFrame, table: str, mapping: TableMapping, report: ValidationReport) -> pd.DataFrame | None:
    """Renames the user's columns to canonical names; records a structural error when a required one is missing."""
    present = [str(c) for c in raw.columns]
    absent_keys = [src for src in mapping.columns if src not in present]
    if absent_keys:
        report.tables[table].notes.append(
            f"data.{table}.columns names column(s) {absent_keys} that the input does not have"
        )
    renamed = raw.rename(columns={k: v for k, v in mapping.columns.items() if k in present})
    if renamed.columns.duplicated().any():
        dup = sorted(set(renamed.columns[renamed.columns.duplicated()]))
        report.errors.append(
            f"{table}: after mapping, column(s) {dup} appear twice; drop the mapping or rename the input column"
        )
        return None
    needed = required_columns(table)
    if table == "events" and isinstance(mapping, TableMapping) and getattr(mapping, "default_event_type", None):
        needed = [c for c in needed if c != "event_type"]
    missing = [c for c in needed if c not in renamed.columns]
    for col in missing:
        msg = _missing_column_message(table, col, present)
        if table == "events" and col == "event_type":
            msg += " or, for a transactions-only export, set data.events.default_event_type: purchase"
        report.errors.append(msg)
    if missing:
        return None
    keep = column_names(table)
    if table == "customers":  # trait columns pass through to the output
        keep = keep + [c for c in renamed.columns if c not in keep]
    # No .copy(): pandas copies on write, and validation builds new columns rather than editing these.
    return renamed[[c for c in keep if c in renamed.columns]]


# --------------------------------------------------------------------------- validation


def _examples(values: pd.Series) -> list[str]:
    # A missing value reads "(empty)", not the 'nan' or 'None' its text form would give.
    text = values.astype("object").where(values.notna(), "(empty)").astype("str")
    counts = text.value_counts(dropna=False).head(EXAMPLES)
    return [f"{v!r} ({n:,})" if n > 1 else repr(v) for v, n in counts.items()]


def _first_flag(flagged: list[tuple[str, pd.Series, pd.Series]], rows: pd.Series) -> pd.Series:
    """Returns 'column=value' for the given rows, naming the first column that flagged each one."""
    out = pd.Series(None, index=rows[rows].index, dtype="object")
    for col, bad, values in flagged:
        pick = bad[rows] & out.isna()
        out[pick] = col + "=" + values[rows][pick].astype("str")
    return out


class _RowRules:
    """Applies row rules in order; a row is counted under the first rule it breaks."""

    def __init__(self, table: TableReport, policies: ValidationConfig, errors: list[str]):
        self.table = table
        self.policies = policies
        self.errors = errors
        self.bad: pd.Series | None = None

    def check(self, rule: str, mask: pd.Series, shown: Callable[[pd.Series], pd.Series], hint: str = "") -> None:
        """Counts rows of `mask` not already counted; `shown(rows)` renders examples, only when some are caught."""
        if self.bad is None:
            self.bad = pd.Series(False, index=mask.index)
        fresh = mask & ~self.bad
        n = int(fresh.sum())
        policy = getattr(self.policies, rule)
        action: Literal["dropped", "failed"] = "failed" if (n and policy == "fail") else "dropped"
        self.table.rules.append(RuleCount(rule, n, action, _examples(shown(fresh)) if n else [], hint if n else ""))
        if n and policy == "fail":
            self.errors.append(
                f"{self.table.table}: {n:,} row(s) break rule {rule} and validation.{rule} is 'fail' "
                f"(set it to 'drop' to drop and count them)"
            )
        self.bad = self.bad | fresh


def _validate_events(df: pd.DataFrame, mapping: Any, cfg: DataConfig, policies: ValidationConfig,
                     now: datetime, tr: TableReport, errors: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    rules = _RowRules(tr, policies, errors)
    raw_ids = df["customer_id"]
    out["customer_id"] = normalise_ids(raw_ids)
    rules.check("null_customer_id", out["customer_id"].isna(), lambda rows: raw_ids[rows])

    raw_ts = df["timestamp"]
    out["timestamp"] = parse_timestamps(raw_ts, cfg.timezone, cfg.timestamp_format)
    rules.check(
        "unparseable_timestamp", out["timestamp"].isna(), lambda rows: raw_ts[rows],
        "set data.timestamp_format (e.g. '%d/%m/%Y %H:%M') or fix the values",
    )

    if "event_type" in df.columns:
        raw_types = clean_text(df["event_type"], empty_as_missing=False)
        lookup = {k: v for k, v in mapping.event_types.items()}
        lookup.update({k: k for k in EVENT_TYPES})
        lowered = {k.lower(): v for k, v in lookup.items()}
        # Mapped once per distinct name, then spread over the rows by their codes (missing: -1).
        names, codes = _distinct_and_codes(as_sorted_categorical(raw_types))
        canonical = names.map(lookup)
        canonical = canonical.fillna(names.str.lower().map(lowered))
        mapped = _spread_text(canonical, codes, raw_types.index)
        out["event_type"] = mapped
        rules.check(
            "unknown_event_type", mapped.isna(), lambda rows: raw_types[rows],
            "map them in data.events.event_types: {<your name>: <canonical type>}",
        )
    else:
        every_row = np.zeros(len(df), dtype=np.int8)  # code 0 of the one category
        default = pd.Categorical.from_codes(every_row, categories=_categories([mapping.default_event_type]))
        out["event_type"] = pd.Series(default, index=df.index)
        tr.notes.append(f"no event_type column: every row is a {mapping.default_event_type!r} event")

    numeric_bad = pd.Series(False, index=df.index)
    flagged: list[tuple[str, pd.Series, pd.Series]] = []
    for col in [c for c in column_names("events") if c in NUMERIC and c in df.columns]:
        nums, bad = parse_numbers(df[col])
        out[col] = nums
        flagged.append((col, bad, df[col]))
        numeric_bad |= bad
    rules.check("unparseable_number", numeric_bad, lambda rows: _first_flag(flagged, rows))

    if "revenue" not in out.columns and {"unit_price", "quantity"} <= set(out.columns):
        out["revenue"] = out["unit_price"] * out["quantity"]
        tr.notes.append("revenue derived as unit_price x quantity")
    neg = pd.Series(False, index=out.index)
    if mapping.negative_quantity_as_return:
        neg = (out["event_type"] == "purchase") & (
            out.get("quantity", pd.Series(0.0, index=out.index)).lt(0)
            | out.get("revenue", pd.Series(0.0, index=out.index)).lt(0)
        )
        if neg.any():
            if "return" not in out["event_type"].cat.categories:
                out["event_type"] = out["event_type"].cat.add_categories(["return"])
            out.loc[neg, "event_type"] = "return"
            for col in ("quantity", "revenue"):
                if col in out.columns:
                    out.loc[neg, col] = out.loc[neg, col].abs()
    negative = pd.Series(False, index=df.index)
    flagged = []
    for col in ("revenue", "quantity"):
        if col in out.columns:
            is_neg = out[col].lt(0)
            flagged.append((col, is_neg, out[col]))
            negative |= is_neg
    rules.check(
        "negative_value", negative, lambda rows: _first_flag(flagged, rows),
        "for cancellations or credit notes set data.events.negative_quantity_as_return: true",
    )

    now_ts = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    rules.check(
        "future_event", out["timestamp"] > now_ts, lambda rows: out["timestamp"][rows].astype("str"),
        "set run.reference_time to the export time, or check the timezone (data.timezone)",
    )

    for col in column_names("events"):
        if col in df.columns and col not in out.columns and col != "unit_price":
            out[col] = clean_text(df[col])
    out = out[[c for c in column_names("events") if c in out.columns and c != "unit_price"]]
    keep = ~rules.bad
    dup = _duplicated_rows(out) & keep
    rules.check("duplicate_event", dup,
                lambda rows: out["customer_id"][rows].astype("str") + " @ " + out["timestamp"][rows].astype("str"))
    if neg.any():  # counted on the rows kept, so it matches the returns the features will see
        kept_returns = int((neg & ~rules.bad).sum())
        tr.notes.append(f"{kept_returns:,} purchase row(s) with negative amounts read as returns "
                        f"({int(neg.sum()):,} before the row rules)")
    out = out[~rules.bad] if rules.bad.any() else out  # no copy of every row when none is dropped
    for col in out.columns:  # categories: the values of the rows kept, sorted
        if COLUMN_DTYPES.get(col) == "string":
            out[col] = as_sorted_categorical(out[col])
    return out


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _row_bits(values: pd.Series) -> np.ndarray:
    """Returns integers that are equal exactly where duplicated() counts two cells of the column equal."""
    if pd.api.types.is_float_dtype(values):
        bits = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        bits[np.isnan(bits)] = np.nan  # one bit pattern for every missing value
        bits += 0.0  # and one for 0.0 and -0.0
        return bits.view(np.uint64)
    if _is_categorical(values):
        return values.cat.codes.to_numpy()  # categories are unique: equal values, equal codes
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return values.array.asi8  # NaT has one value too
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        return pd.factorize(values)[0]
    return pd.util.hash_pandas_object(values, index=False).to_numpy()


def _duplicated_rows(frame: pd.DataFrame) -> pd.Series:
    """Returns frame.duplicated(keep="first"), comparing whole rows only where a row hash repeats.

    Equal rows always hash alike, so the rows compared in full hold every duplicate; at 10M events this
    lowered load_dataset's peak memory by about 1.5 GB and its time by about a quarter. The row hash
    is built one column at a time, in place, from each column's bits (a text column's from its codes:
    equal values share a code, as duplicated() compares them), which spares a Python string per cell
    and any full-size temporary beyond one column's.
    """
    row_hash = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        np.bitwise_xor(row_hash, _row_bits(frame[name]).astype(np.uint64, copy=False), out=row_hash)
        # A bijection of 64-bit values (odd multiplier, xor-shift): rows stay apart once they differ.
        np.multiply(row_hash, _MIX, out=row_hash)
        np.bitwise_xor(row_hash, row_hash >> np.uint64(29), out=row_hash)
    # Hashes that occur more than once, found by sorting: a hash table over 10M rows took ~0.8 GB.
    ordered = np.sort(row_hash)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    out = pd.Series(False, index=frame.index)
    if len(twice):
        repeated = np.isin(row_hash, np.unique(twice))
        out[repeated] = frame[repeated].duplicated(keep="first")
    return out


def _validate_side(df: pd.DataFrame, table: str, cfg: DataConfig, policies: ValidationConfig,
                   tr: TableReport, errors: list[str]) -> pd.DataFrame:
    key = "customer_id" if table == "customers" else "product_id"
    out = df.copy()
    rules = _RowRules(tr, policies, errors)
    out[key] = normalise_ids(df[key])
    rules.check("null_key", out[key].isna(), lambda rows: df[key][rows].astype("str"), f"every {table} row needs a {key}")
    for col in [c.name for c in TABLE_COLUMNS[table] if c.name != key and c.name in df.columns]:
        spec = next(c for c in TABLE_COLUMNS[table] if c.name == col)
        if spec.dtype == "timestamp":
            parsed = parse_timestamps(df[col], cfg.timezone, cfg.timestamp_format)
            unreadable = parsed.isna() & df[col].notna() & (df[col].astype("str").str.strip() != "")
            if unreadable.any():
                tr.notes.append(f"{int(unreadable.sum()):,} unreadable {col} value(s) left empty")
            out[col] = parsed
        elif spec.dtype == "float":
            nums, bad = parse_numbers(df[col])
            if bad.any():
                tr.notes.append(f"{int(bad.sum()):,} non-numeric {col} value(s) left empty")
            out[col] = nums
        else:
            out[col] = clean_text(df[col])
    dup = out[key].duplicated(keep="first") & out[key].notna()
    rules.check("duplicate_key", dup, lambda rows: out[key][rows].astype("str"), f"make {key} unique in the {table} table")
    return out[~rules.bad]


def validate_table(raw: pd.DataFrame, table: str, source: str, params: Params, report: ValidationReport) -> pd.DataFrame | None:
    """Maps and validates one raw table; records counts and errors in the report."""
    cfg, policies = params.data, params.validation
    tr = report.tables.setdefault(table, TableReport(table, source))
    tr.rows_in = len(raw)
    if len(raw) == 0:
        report.errors.append(f"{table}: the input {source} has no rows")
        return None
    mapping: TableMapping = getattr(cfg, table)
    df = map_columns(raw.reset_index(drop=True), table, mapping, report)
    if df is None:
        return None
    if table == "events":
        out = _validate_events(df, mapping, cfg, policies, params.run.now(), tr, report.errors)
    else:
        out = _validate_side(df, table, cfg, policies, tr, report.errors)
    tr.rows_out = len(out)
    if tr.rows_in and tr.dropped / tr.rows_in > policies.max_dropped_share:
        report.errors.append(
            f"{table}: {tr.dropped:,} of {tr.rows_in:,} rows ({tr.dropped / tr.rows_in:.0%}) would be dropped, "
            f"more than validation.max_dropped_share={policies.max_dropped_share}; check the column and event-type mapping"
        )
    elif tr.rows_out == 0:
        report.errors.append(f"{table}: no valid rows remain after validation")
    return out.reset_index(drop=True)


def _fill_from_catalog(events: pd.DataFrame, catalog: pd.DataFrame | None) -> pd.DataFrame:
    """Fills an event's missing category from the catalog through product_id."""
    if catalog is None or "product_id" not in events.columns or "category" not in catalog.columns:
        return events
    if "category" in events.columns and not (events["category"].isna() & events["product_id"].notna()).any():
        return events  # every event with a product names its category already
    lookup = catalog.set_index("product_id")["category"]  # validated: product_id is unique
    products, codes = _distinct_and_codes(as_sorted_categorical(events["product_id"]))
    from_catalog = _spread_text(products.map(lookup), codes, events.index)  # looked up once per product
    if "category" not in events.columns:
        return events.assign(category=as_sorted_categorical(from_catalog))
    category = as_sorted_categorical(events["category"])
    missing = category.isna().to_numpy()
    known = category.cat.categories.union(from_catalog.cat.categories)
    category = category.cat.set_categories(known)
    category[missing] = from_catalog[missing].astype(object).to_numpy()
    return events.assign(category=as_sorted_categorical(category))


def _sorted_by_time(events: pd.DataFrame) -> pd.DataFrame:
    """Returns the events in (timestamp, customer_id) order, ties kept in input order, one column at a time.

    Equal to a stable sort_values on those columns, but a whole sorted copy of the frame never exists
    next to the original: each column is moved out of `events` (which is left empty) and reordered
    before the next one is.
    """
    if len(events) == 0:
        return events.reset_index(drop=True)
    customer_key = events["customer_id"].cat.codes.to_numpy()  # sorted categories: code order is text order
    order = np.lexsort((customer_key, events["timestamp"].to_numpy(dtype="datetime64[us]").view("int64")))
    if (order[1:] > order[:-1]).all():
        return events.reset_index(drop=True)  # already in order: no copy
    out = pd.DataFrame(index=pd.RangeIndex(len(events)))
    for name in list(events.columns):
        out[name] = events.pop(name).take(order).reset_index(drop=True)
    return out


def load_dataset(path: str | None, params: Params, raise_on_error: bool = True) -> Dataset:
    """Reads, maps and validates every table; raises DataValidationError when the policy says fail."""
    report = ValidationReport()
    if path is None and params.data.path is None and not any(
        getattr(params.data, t).path for t in TABLES
    ):
        path = str(ensure_demo(params))
    sources = resolve_sources(path or params.data.path, params.data)
    frames: dict[str, pd.DataFrame | None] = {}
    for table, src in sources.items():
        if src is None:
            frames[table] = None
            continue
        # The events' repeated text (ids, types, channels) is held once per distinct value.
        raw = read_source(src, params.data, encode_repeated_text=table == "events")
        frames[table] = validate_table(raw, table, src.describe(), params, report)
        del raw
    if raise_on_error and not report.ok:
        raise DataValidationError(report)
    events = frames.pop("events")
    if events is None:
        events = pd.DataFrame(columns=required_columns("events"))
    events = _fill_from_catalog(events, frames["catalog"])
    events = _sorted_by_time(events)
    return Dataset(events, frames["customers"], frames["catalog"], report,
                   {t: s.describe() for t, s in sources.items() if s is not None})


# --------------------------------------------------------------------------- demo data


def cache_dir() -> Path:
    """Returns where generated demo data is cached (PIPELINE_CACHE_DIR, else ~/.cache/behavioural-segmentation)."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR") or Path.home() / ".cache" / "behavioural-segmentation")


def ensure_demo(params: Params) -> Path:
    """Returns the folder of the demo data, simulating it once when it is not cached yet."""
    from pipeline.simulate import SimulateConfig, simulate, write_simulation

    demo = params.data.demo
    folder = cache_dir() / f"demo-c{demo.customers}-d{demo.days}-s{demo.seed}"
    marker = folder / ".complete"
    if not marker.is_file():
        sim = simulate(SimulateConfig(customers=demo.customers, days=demo.days, seed=demo.seed))
        write_simulation(sim, folder)
        marker.write_text("ok\n")
    return folder
