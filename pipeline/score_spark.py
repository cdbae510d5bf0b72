"""Scoring on Spark (`run.engine: spark`): the registered bundle applied with mapInPandas, Parquet partitions out.

Features are built by the same Ibis builders on Spark (pipeline.featurize) and come back one row per
customer; the scoring itself, where SHAP reason codes make most of the cost, is spread over the
executors: the bundle is broadcast once and every Arrow batch is scored by `SegmentationBundle.score`,
exactly as the in-process scorer does chunk by chunk, so both give the same rows. The output is a
directory of Parquet part files, range-partitioned and sorted by customer_id, written to a temporary
directory next to `out` and swapped in only when complete.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from models.bundle import SegmentationBundle
from pipeline.config import Params
from pipeline.engine import connect, spark_dataframe
from pipeline.io import arrow_table

log = logging.getLogger(__name__)


def _output_schema(bundle: SegmentationBundle, features: pd.DataFrame, customers: pd.DataFrame | None,
                   cutoff: pd.Timestamp, reasons: int) -> pa.Schema:
    """Returns the Arrow schema of the scores, from scoring a few rows on the driver.

    Text columns that happen to be empty in the sample are typed as strings, not nulls.
    """
    from pipeline.score import with_model

    sample = with_model(bundle, bundle.score(features.head(50), customers=customers, cutoff=cutoff,
                                             reasons=reasons)).reset_index()
    schema = arrow_table(sample).schema
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    return pa.schema(fields)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replaces `out` (file or directory) by `tmp` so that a reader never sees a half-written output."""
    backup = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        out.rename(backup)
    try:
        tmp.rename(out)
    except BaseException:
        if backup.exists():
            backup.rename(out)
        raise
    if backup.exists():
        shutil.rmtree(backup) if backup.is_dir() else backup.unlink()


def _ship_code(session: Any) -> None:
    """Sends this package's code (features, models, pipeline) to the executors as one zip.

    The broadcast bundle unpickles into classes of `models` and `features`, so every Python worker
    must import them; the third-party dependencies (LightGBM, scikit-learn, pandas...) must be
    installed on the executors. The zip is named after its content, so shipping twice is a no-op.
    """
    import hashlib
    import tempfile
    import zipfile

    import features
    import models
    import pipeline

    roots = [Path(package.__file__).parent for package in (features, models, pipeline)]
    files = sorted((root, f) for root in roots for f in root.rglob("*.py"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for _, f in files)).hexdigest()[:12]
    code = Path(tempfile.gettempdir()) / f"behavioural-segmentation-{digest}.zip"
    if not code.exists():
        tmp = code.with_name(f"{code.stem}.{uuid.uuid4().hex[:8]}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for root, file in files:
                archive.write(file, (Path(root.name) / file.relative_to(root)).as_posix())
        tmp.replace(code)
    if str(code) not in _SHIPPED:
        session.sparkContext.addPyFile(str(code))
        _SHIPPED.add(str(code))


_SHIPPED: set[str] = set()


def score_on_spark(bundle: SegmentationBundle, features: pd.DataFrame, customers: pd.DataFrame | None,
                   cutoff: pd.Timestamp, reasons: int, out: Path, keep: list[str], params: Params,
                   partitions: int | None = None) -> tuple[int, pd.DataFrame]:
    """Scores on the configured Spark session and writes Parquet partitions to `out` (a directory).

    Returns (rows written, the `keep` columns of the scores collected to the driver for drift,
    transitions and audiences).
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    from pipeline.score import compact, with_model

    if not len(features):
        raise ValueError("no customers to score: the data has no customer with an event before the cutoff")
    session = connect("spark", params.run.spark_master, params.run.spark_conf)._session
    _ship_code(session)
    schema = _output_schema(bundle, features, customers, cutoff, reasons)
    columns = schema.names
    shared = session.sparkContext.broadcast((bundle, customers))

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, known = shared.value
        for batch in batches:
            scored = with_model(model, model.score(batch.set_index("customer_id"), customers=known, cutoff=cutoff,
                                                   reasons=reasons)).reset_index()
            yield scored[columns]

    frame = features.reset_index()
    # Staged as Parquet when there is a place to (see pipeline.engine): a million customers' feature
    # rows (about 1.3 GB) would otherwise have to fit in the driver's JVM heap.
    source = spark_dataframe(session, arrow_table(frame), "features",
                             params.run.spark_staging_dir)
    n = partitions or max(1, min(session.sparkContext.defaultParallelism * 2, len(frame) // 20_000 + 1))
    scored = (source.repartitionByRange(n, "customer_id")
              .mapInPandas(score_batches, from_arrow_schema(schema))
              .sortWithinPartitions("customer_id"))
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        scored.write.mode("error").parquet(str(tmp))
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        shared.unpersist()
    written = session.read.parquet(str(out))
    rows = written.count()
    kept = written.select(*[c for c in keep if c in columns]).orderBy("customer_id").toPandas()
    log.info("Spark wrote %s scored customers in %d partitions to %s", f"{rows:,}", n, out)
    return rows, compact(kept)
