"""Batch scoring: round trip against a model trained here, atomic writes, determinism, CSV formula escaping."""

from __future__ import annotations

import hashlib

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


SETS = [a for s in SMALL for a in ("--set", s)]  # the same params on the command line


@pytest.fixture()
def at_model(trained, monkeypatch):
    """Points MLflow at the trained store and works in its folder; returns (folder, data)."""
    folder, data, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(folder)
    return folder, data


@pytest.mark.slow
def test_score_round_trip_is_complete_deterministic_and_escaped_in_csv(at_model, capsys):
    folder, data = at_model
    out1, out2 = folder / "s1.parquet", folder / "s2.parquet"
    assert main(["score", "--data", str(data), "--out", str(out1), *SETS]) == 0
    assert main(["score", "--data", str(data), "--out", str(out2), *SETS]) == 0
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
    # Churn is scored only for customers who can churn (active in the lookback); the rest get no score.
    unscored = scores["churn_probability"].isna()
    assert 0 < unscored.sum() < len(scores)
    assert (scores["churn_bucket"].isna() == unscored).all() and (scores["churn_percentile"].isna() == unscored).all()
    assert scores.loc[unscored, "churn_reason_1_text"].isna().all()
    assert scores.loc[~unscored, "churn_reason_1_text"].notna().any()
    assert (scores["model_version"] == "1").all()
    assert "scored" in capsys.readouterr().out

    csv_out = folder / "s.csv"
    assert main(["score", "--data", str(data), "--out", str(csv_out), "--format", "csv", "--no-reasons", *SETS]) == 0
    table = pd.read_csv(csv_out)
    assert len(table) == len(scores) and "purchase_reason_1_text" not in table.columns


@pytest.mark.slow
def test_scoring_with_an_unknown_model_version_says_how_to_fix_it(at_model, capsys):
    folder, data = at_model
    assert main(["score", "--data", str(data), "--model", "99", "--out", str(folder / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "version '99'" in err and "python -m pipeline train" in err
    assert not (folder / "x.parquet").exists()


@pytest.mark.slow
def test_transitions_audiences_and_drift_come_with_the_scores(at_model, capsys):
    folder, data = at_model
    early, late = folder / "early.parquet", folder / "late.parquet"
    last = pd.read_parquet(data / "events.parquet", columns=["timestamp"])["timestamp"].max()
    two_months_before = str((last - pd.Timedelta(days=60)).date())
    assert main(["score", "--data", str(data), "--out", str(early), "--cutoff", two_months_before, "--no-reasons",
                 *SETS]) == 0
    assert main(["score", "--data", str(data), "--out", str(late), "--no-reasons", "--previous", str(early),
                 "--audiences", *SETS]) == 0
    printed = capsys.readouterr().out
    assert "entering at-risk lifecycle" in printed and "audience likely_purchasers" in printed

    before, after = pd.read_parquet(early), pd.read_parquet(late)
    moves = pd.read_parquet(folder / "late.transitions.parquet")
    both = before.merge(after, on="customer_id", how="outer", suffixes=("_old", "_new"))
    changed = both["lifecycle_old"].fillna("(none)") != both["lifecycle_new"].fillna("(none)")
    lifecycle = moves[moves["dimension"] == "lifecycle"]
    assert sorted(lifecycle["customer_id"]) == sorted(both.loc[changed, "customer_id"])
    assert (lifecycle["from"] != lifecycle["to"]).all()
    matrix = pd.read_csv(folder / "late.transition_matrix.csv")
    per_dimension = matrix.groupby("dimension")["customers"].sum()
    assert (per_dimension == len(both)).all()  # every customer counted once per dimension
    assert set(per_dimension.index) >= {"lifecycle", "rfm_cell", "purchase_bucket", "churn_bucket", "persona"}

    buyers = pd.read_parquet(folder / "late.audiences" / "likely_purchasers.parquet")
    assert sorted(buyers["customer_id"]) == sorted(after.loc[after["purchase_percentile"] >= 81, "customer_id"])
    churners = pd.read_parquet(folder / "late.audiences" / "high_value_churn_risk.parquet")
    assert churners["churn_probability"].is_monotonic_decreasing
    assert set(churners["rfm_cell"]) <= {"Champions", "Loyal", "Can't lose", "At risk"}


@pytest.mark.slow
def test_scoring_deliberately_shifted_data_warns_of_drift_and_logs_it(at_model, capsys, caplog):
    import mlflow

    folder, data = at_model
    params = load_params(None, SMALL)
    same = score_module.score(params, str(data), folder / "same.parquet", reasons=0)
    # Shifted: every customer keeps only the last 20 days of history, so tenure, frequency and
    # revenue collapse while the model still expects a year of behaviour.
    shifted = folder / "shifted"
    shifted.mkdir()
    events = pd.read_parquet(data / "events.parquet")
    events[events["timestamp"] >= events["timestamp"].max() - pd.Timedelta(days=20)].to_parquet(
        shifted / "events.parquet")
    moved = score_module.score(params, str(shifted / "events.parquet"), folder / "moved.parquet", reasons=0)

    calm, drifted = same["drift"], moved["drift"]
    assert drifted["warning"].any() and drifted["psi"].max() > 1.0
    assert drifted["psi"].max() > 4 * calm["psi"].max()
    assert set(calm["kind"]) == {"feature", "score"}
    assert "drift:" in caplog.text and "against training" in caplog.text

    runs = mlflow.search_runs(experiment_names=[params.tracking.score_experiment], order_by=["start_time DESC"])
    latest = runs.iloc[0]
    assert latest["metrics.drift.warnings"] == int(drifted["warning"].sum())
    column = drifted.iloc[0]["column"]
    assert latest[f"metrics.drift.psi.{column}"] == pytest.approx(drifted.iloc[0]["psi"])


@pytest.mark.slow
@pytest.mark.spark
def test_spark_scoring_writes_partitions_equal_to_the_in_process_scores(at_model):
    pytest.importorskip("pyspark")
    from pipeline.engine import connect

    folder, data = at_model
    # The shared local session if the feature tests started one, else a small one.
    connect("spark", "local[2]", {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"})
    local = score_module.score(load_params(None, SMALL), str(data), folder / "local.parquet", reasons=3)
    spark_params = load_params(None, [*SMALL, "run.engine=spark", "run.spark_master=local[2]",
                                      "scoring.spark_partitions=3"])
    out = folder / "spark.parquet"
    out.write_text("an older output that must be replaced whole")
    distributed = score_module.score(spark_params, str(data), out, reasons=3)

    assert out.is_dir() and len(list(out.glob("part-*.parquet"))) == 3
    assert [p.name for p in folder.iterdir() if p.name.startswith(".spark.parquet")] == []  # no temp dirs left
    expected = pd.read_parquet(folder / "local.parquet")
    got = pd.read_parquet(out).sort_values("customer_id", ignore_index=True)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_categorical=False)
    assert distributed["rows"] == local["rows"] == len(expected)
    assert distributed["segments"] == local["segments"]
    pd.testing.assert_frame_equal(distributed["drift"], local["drift"])
