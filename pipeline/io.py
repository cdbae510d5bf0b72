"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A crash or a full disk mid-write leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_atomic(path: Path, writer: Callable[[Path], None]) -> Path:
    """Calls writer(tmp_path) on a temporary file next to `path`, then renames it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """Returns pa.Table.from_pandas(frame) without its index, quietly.

    pyarrow reads a tz-aware column through Series.values, which pandas 3.1 deprecates with a
    warning that every `score` printed. The values it reads are right (UTC instants, tz kept in the
    Arrow type); the warning is pyarrow's to act on, not a user's.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        return pa.Table.from_pandas(frame, preserve_index=False)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Writes a frame as Parquet atomically (index not stored: reset it first to keep it).

    The same file as frame.to_parquet(index=False), through arrow_table (no pyarrow warning).
    """
    return write_atomic(path, lambda tmp: pq.write_table(arrow_table(frame), tmp))


def write_text_atomic(text: str, path: Path) -> Path:
    """Writes UTF-8 text atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
