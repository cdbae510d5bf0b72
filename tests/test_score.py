"""Batch scoring: round trip against a model trained here, atomic writes, determinism, CSV formula escaping."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from pipeline import score as score_module
from pipeline.cli import main
from tests._small import SMALL_TRAINING
from pipeline.config import load_params
from pipeline.io import write_atomic
from pipeline.score import neutralise_formulas, write_scores
from pipeline.simulate import SimulateConfig, simulate, write_simulation
from pipeline.train import train

SMALL = SMALL_TRAINING


def test_formula_cells_are_escaped_but_numbers_and_plain_text_are_not():
    frame = pd.DataFrame({"name": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "plain", None],
                          "value": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0]})
    out = neutralise_formulas(frame)
    assert out["name"].tolist()[:5] == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "plain"]
    assert pd.isna(out["name"].iloc[5])
    assert out["value"].tolist() == [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0]
    assert frame["name"].iloc[0] == "=HYPERLINK(\"x\")"  # the input is not modified


def test_a_failure_mid_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "scores.parquet"
    pd.DataFrame({"customer_id": ["old"]}).to_parquet(target)
    before = target.read_bytes()

    def parts():
        yield pd.DataFrame({"customer_id": ["a"], "p": [0.5]})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_scores(parts(), target, "parquet")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no temporary file left behind


def test_atomic_write_creates_missing_folders(tmp_path):
    path = write_atomic(tmp_path / "a" / "b.txt", lambda tmp: tmp.write_text("x"))
    assert path.read_text() == "x"


def test_atomic_write_gives_the_file_the_usual_permissions_not_the_temp_files_private_ones(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = write_atomic(tmp_path / "atomic.txt", lambda tmp: tmp.write_text("x"))
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_chunked_parquet_output_equals_one_frame(tmp_path):
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)], "p": [i / 10 for i in range(10)]})
    rows = write_scores(score_module.chunks(frame, 3), tmp_path / "s.parquet", "parquet")
    assert rows == 10
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), frame)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("score")
    data = folder / "data"
    write_simulation(simulate(SimulateConfig(customers=500, days=240, seed=9)), data)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(folder)
        train(load_params(None, SMALL), str(data))
    return folder, data, uri


@pytest.mark.slow
def test_score_round_trip_is_complete_deterministic_and_escaped_in_csv(trained, monkeypatch, capsys):
    folder, data, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(folder)
    sets = [a for s in SMALL for a in ("--set", s)]
    out1, out2 = folder / "s1.parquet", folder / "s2.parquet"
    assert main(["score", "--data", str(data), "--out", str(out1), *sets]) == 0
    assert main(["score", "--data", str(data), "--out", str(out2), *sets]) == 0
    # same inputs and model: identical bytes
    assert hashlib.sha256(out1.read_bytes()).digest() == hashlib.sha256(out2.read_bytes()).digest()
    scores = pd.read_parquet(out1)
    events = pd.read_parquet(data / "events.parquet")
    assert scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(events["customer_id"])  # default cutoff: after the last event
    assert scores["customer_id"].tolist() == sorted(scores["customer_id"])
    for column in ("persona", "purchase_probability", "purchase_percentile", "purchase_bucket", "churn_probability",
                   "journey_stage", "lifecycle", "user_status", "rfm_cell", "usage_tier",
                   "purchase_reason_1_text", "churn_reason_3_text", "model_version"):
        assert column in scores.columns, column
    assert scores["purchase_percentile"].between(1, 100).all()
    assert (scores["model_version"] == "1").all()
    assert "scored" in capsys.readouterr().out

    csv_out = folder / "s.csv"
    assert main(["score", "--data", str(data), "--out", str(csv_out), "--format", "csv", "--no-reasons", *sets]) == 0
    table = pd.read_csv(csv_out)
    assert len(table) == len(scores) and "purchase_reason_1_text" not in table.columns


@pytest.mark.slow
def test_scoring_with_an_unknown_model_version_says_how_to_fix_it(trained, monkeypatch, capsys):
    folder, data, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(folder)
    assert main(["score", "--data", str(data), "--model", "99", "--out", str(folder / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "version '99'" in err and "python -m pipeline train" in err
    assert not (folder / "x.parquet").exists()
