"""Compute engines: open an Ibis backend (in-process DuckDB or PySpark) and put pandas tables into it."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.schema import COLUMN_DTYPES
from pipeline.io import write_atomic

Engine = Literal["duckdb", "spark"]


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(),
}

# DuckDB's in-memory database that compresses the rows it holds (when they are checkpointed), and the
# rows put into an engine at a time: each slice is compressed (DuckDB) or written to Parquet (Spark)
# before the next arrives, so there is never an Arrow copy of more than one slice.
_DUCKDB_DATABASE = "compressed"
_SLICE_ROWS = 1_000_000

# Spark defaults for one machine: UTC session time (timestamps are instants read in UTC) and few
# shuffle partitions, since the default 200 makes small groupings slow.
DEFAULT_SPARK_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


class EngineUnavailable(RuntimeError):
    """The configured engine cannot start on this machine; the message says what is missing."""


def connect(engine: Engine, spark_master: str = "local[*]", spark_conf: dict[str, Any] | None = None) -> Any:
    """Opens the Ibis backend for an engine: a fresh in-memory DuckDB, or PySpark on a (shared) session.

    DuckDB keeps its tables in a compressed in-memory database (see register): 10M events take about
    160 MB there instead of 1.5 GB, with the same query results. For Spark,
    SparkSession.builder...getOrCreate() reuses a running session in this process; the session time
    zone is set to UTC on it either way.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql(f"ATTACH ':memory:' AS {_DUCKDB_DATABASE} (COMPRESS)")
        con.raw_sql(f"USE {_DUCKDB_DATABASE}")
        return con
    if engine == "spark":
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise EngineUnavailable(
                "engine 'spark' needs PySpark (pip install 'ibis-framework[pyspark]') and Java 17; "
                "or set run.engine=duckdb"
            ) from None
        # Python workers (mapInPandas when scoring) must run this interpreter, which has the packages,
        # not whatever `python3` is first on the PATH; read when the Spark context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        given = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (spark_conf or {}).items()}
        conf = {**DEFAULT_SPARK_CONF, **given}
        builder = SparkSession.builder.master(spark_master).appName("behavioural-segmentation")
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # PySpark reports a missing or wrong Java only as a generic error
            if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway process exited" in str(exc):
                raise EngineUnavailable(
                    "Spark could not start Java: PySpark 4 needs Java 17 on the PATH (check `java -version`), "
                    "or set run.engine=duckdb"
                ) from exc
            raise
        session.conf.set("spark.sql.session.timeZone", "UTC")
        return ibis.pyspark.connect(session)
    raise ValueError(f"unknown engine {engine!r}; allowed: duckdb, spark")


def canonical_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy with canonical columns in canonical dtypes: str, float64, or UTC timestamps.

    Naive timestamps are read as UTC; a categorical of text stays one; other columns are kept as they are.
    """
    out = df.copy(deep=False)  # columns are replaced, never written into (copy-on-write): no need to copy data
    for name in out.columns:
        kind = COLUMN_DTYPES.get(str(name))
        if kind == "timestamp":
            try:
                out[name] = pd.to_datetime(out[name], utc=True, format="ISO8601")
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"column {name!r} holds values that are not ISO 8601 timestamps ({exc}); parse them first "
                    "(pipeline.data reads the configured timestamp format)"
                ) from None
        elif kind == "float":
            try:
                out[name] = pd.to_numeric(out[name], errors="raise").astype("float64")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"column {name!r} holds values that are not numbers ({exc})") from None
        elif kind == "string":
            col = out[name]
            if _text_categorical(col):
                continue  # already text, each distinct value once: kept so (see _register_duckdb)
            if pd.api.types.is_float_dtype(col) and (col.dropna() % 1 == 0).all():
                col = col.astype("Int64")  # ids read as floats (1.0) because of gaps stay "1", not "1.0"
            out[name] = col.astype("str")  # missing values stay missing
    return out


def _text_categorical(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(col.cat.categories)


def _arrow_dictionary(col: pd.Series) -> pa.Array:
    """Returns a text categorical's categories as an Arrow string array (the dictionary of its slices)."""
    values = pa.array(col.cat.categories.array, from_pandas=True)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(pa.string())


def _arrow(df: pd.DataFrame, dictionaries: dict[str, pa.Array] | None = None) -> pa.Table:
    """Converts to Arrow with canonical types, missing values as nulls (never NaN or the text 'nan').

    A text categorical becomes a dictionary array over `dictionaries[name]` when given (DuckDB reads it
    as text without the text being written out per row), else plain text.
    """
    arrays = []
    for name in df.columns:
        col, kind = df[name], COLUMN_DTYPES.get(str(name))
        if _text_categorical(col):
            codes = col.cat.codes.to_numpy()
            if dictionaries is not None and name in dictionaries:
                indices = pa.array(codes, mask=codes < 0)
                arrays.append(pa.DictionaryArray.from_arrays(indices, dictionaries[name]))
            else:
                arrays.append(pa.array(col.astype("str"), type=pa.string(), from_pandas=True))
        elif kind == "timestamp":
            # Naive UTC values plus a UTC type: the tz-aware route warns on pandas 3.
            values = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
            arrays.append(pa.array(values, type=_ARROW_TYPES[kind], from_pandas=True))
        elif kind is not None:
            arrays.append(pa.array(col, type=_ARROW_TYPES[kind], from_pandas=True))
        else:
            arrays.append(pa.array(col, from_pandas=True))
    return pa.Table.from_arrays(arrays, names=[str(n) for n in df.columns])


def register(con: Any, name: str, df: pd.DataFrame, spark_staging_dir: str | None = None) -> ir.Table:
    """Puts a pandas frame into the backend as table `name` (replacing one of that name) with canonical dtypes.

    Timestamps become UTC instants: timestamp('UTC') on DuckDB, Spark's TimestampType (an instant,
    shown in the session time zone, which connect() sets to UTC) on Spark. The input is not modified.
    On Spark the frame is written as Parquet (see _register_spark); `spark_staging_dir` says where.
    """
    if con.name == "duckdb":
        return _register_duckdb(con, name, df)
    if con.name == "pyspark":
        return _register_spark(con, name, df, spark_staging_dir)
    return con.create_table(name, _arrow(canonical_frame(df)), overwrite=True)


def _register_spark(con: Any, name: str, df: pd.DataFrame, staging_dir: str | None) -> ir.Table:
    """Writes the frame as Parquet, slice by slice, and lets Spark read it, when there is a place to.

    Handed over with createDataFrame, the rows sit in the driver's JVM heap and every query reads
    them from there: at 10M events that ran out of the default 1 GB heap, and with 6 GB it took 17 s
    to hand over and 205 s to build the features, the JVM at 5.7 GB. Read from Parquet, Spark splits,
    prunes and streams them: 7 s and 131 s, the JVM at 1.6 GB (local[*] on 2 cores). The files live
    in a per-process folder removed when the process ends.
    """
    session = con._session  # Ibis' PySpark backend has no public accessor for its session
    # Straight from Arrow when it goes through the driver: ibis' own pandas route to Spark turns missing
    # strings into 'NaN' text and missing floats into NaN values, which SQL does not treat as null.
    _spark_frame(session, name, staging_dir, lambda tmp: _write_parquet(_slices(df), tmp),
                 lambda: _arrow(canonical_frame(df))).createOrReplaceTempView(name)
    return con.table(name)


def spark_dataframe(session: Any, table: pa.Table, name: str, staging_dir: str | None = None) -> Any:
    """Returns an Arrow table as a Spark DataFrame, read from a staged Parquet file when there is a
    place to stage it (see _register_spark), else sent through the driver's memory."""
    return _spark_frame(session, name, staging_dir, lambda tmp: pq.write_table(table, tmp), lambda: table)


def _spark_frame(session: Any, name: str, staging_dir: str | None, write: Callable[[Path], None],
                 arrow: Callable[[], pa.Table]) -> Any:
    """Stages `write`'s Parquet file and reads it in Spark; without a place to stage, createDataFrame(arrow())."""
    folder = _staging_folder(staging_dir, session.sparkContext.master)
    if folder is None:
        return session.createDataFrame(arrow())
    path = write_atomic(folder / f"{name}-{uuid.uuid4().hex[:12]}.parquet", write)
    return session.read.parquet(str(path))


_STAGING: dict[str, Path] = {}


def _staging_folder(configured: str | None, master: str) -> Path | None:
    """Returns this process's folder for Spark's input files: under `configured`, else under the
    temporary directory when the master is local (executors share the driver's disk), else None."""
    if configured:
        base = Path(configured)
        base.mkdir(parents=True, exist_ok=True)
    elif master.startswith("local"):
        base = Path(tempfile.gettempdir())
    else:
        return None
    key = str(base.resolve())
    if key not in _STAGING:
        folder = Path(tempfile.mkdtemp(prefix="pipeline-spark-", dir=base))
        atexit.register(shutil.rmtree, folder, True)
        _STAGING[key] = folder
    return _STAGING[key]


def _slices(df: pd.DataFrame) -> Iterator[pa.Table]:
    """Yields the frame as Arrow tables of canonical types, _SLICE_ROWS rows at a time (one, when empty).

    Text categoricals become dictionary arrays over their categories, converted once for every slice.
    """
    dictionaries = {str(c): _arrow_dictionary(df[c]) for c in df.columns if _text_categorical(df[c])}
    for start in range(0, max(len(df), 1), _SLICE_ROWS):
        yield _arrow(canonical_frame(df.iloc[start:start + _SLICE_ROWS]), dictionaries)


def _write_parquet(tables: Iterator[pa.Table], path: Path) -> None:
    """Writes the tables as one Parquet file, one row group each, in the first table's schema."""
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            elif table.schema != schema:
                table = table.cast(schema)  # e.g. a slice whose values are all missing
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _register_duckdb(con: Any, name: str, df: pd.DataFrame) -> ir.Table:
    """Copies the frame into DuckDB slice by slice, compressing each slice before the next one is converted.

    At 10M events this lowered the peak memory of putting the events into DuckDB from about 4 GB to the
    frame plus about 0.5 GB, and the engine then holds them in about 160 MB instead of 1.5 GB. Each
    slice goes in through the DuckDB connection itself: an Ibis memtable would keep its Arrow copy alive.
    """
    db = con.con
    target = '"' + name.replace('"', '""') + '"'
    for i, piece in enumerate(_slices(df)):
        db.register("_slice", piece)
        if i == 0:
            db.execute(f"CREATE OR REPLACE TABLE {target} AS FROM _slice")
        else:
            db.execute(f"INSERT INTO {target} FROM _slice")
        db.unregister("_slice")
        db.execute("CHECKPOINT")  # compresses the rows just added
    return con.table(name)


def release_unused_memory() -> None:
    """Hands memory that pandas and Arrow have freed back to the operating system.

    Arrow's allocator keeps freed blocks for reuse: once the events frame is in the engine and the
    pandas copy is dropped, it would otherwise hold about as much memory as that frame, unused.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
