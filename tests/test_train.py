"""`pipeline train` end to end on simulated data: MLflow run, registry aliases, eligibility, stable personas."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from models.propensity import NotEligibleError
from pipeline import tracking
from pipeline.cli import main
from tests._small import SMALL_TRAINING
from pipeline.config import load_params
from pipeline.featurize import features_for
from pipeline.data import load_dataset
from pipeline.simulate import SimulateConfig, simulate, write_simulation
from pipeline.train import data_digest, train

pytestmark = pytest.mark.slow

SMALL = SMALL_TRAINING


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(simulate(SimulateConfig(customers=700, days=240, seed=5)), folder)
    return folder


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_train_records_a_run_registers_a_champion_and_the_bundle_scores(demo_dir, store):
    params = load_params(None, SMALL)
    outcome = train(params, str(demo_dir))
    m = outcome.metrics
    # Out-of-time quality on simulated data: both models rank far better than chance.
    assert m["purchase.test.roc_auc"] > 0.7
    assert m["churn.test.roc_auc"] > 0.7
    assert m["data.snapshots"] == 4
    # the learned journey model is compared with the last-event heuristic in every run
    assert "journey.heuristic.macro_f1" in m and "journey.model.macro_f1" in m
    assert m["journey.model.macro_f1"] > m["journey.heuristic.macro_f1"]

    client = mlflow.MlflowClient()
    run = client.get_run(outcome.run_id)
    assert run.data.tags["data_digest"] == outcome.bundle.metadata["data_digest"]
    assert run.data.params["labels.horizon_days"] == "30"
    assert run.data.metrics["validation.events.rows_in"] > 0
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"params.yaml", "validation_report.txt", "summary.json"} <= artifacts
    assert run.inputs.dataset_inputs[0].dataset.name == "events"
    # one child run per model, each with its tables and figures
    children = {r.info.run_name: r.info.run_id for r in client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")}
    assert {"data", "purchase", "churn", "personas", "journey", "segments"} <= set(children)
    purchase_files = {a.path for a in client.list_artifacts(children["purchase"])}
    assert {"calibration.png", "gains.png", "shap_beeswarm.png", "gains.csv", "metrics_by_persona.csv"} <= purchase_files
    journey_files = {a.path for a in client.list_artifacts(children["journey"])}
    assert {"confusion_model.png", "confusion_heuristic.csv"} <= journey_files
    # the logged model loads back with mlflow.pyfunc and predicts on its own input example
    version = client.get_model_version("behavioural-segmentation", "1")
    pyfunc = mlflow.pyfunc.load_model("models:/behavioural-segmentation/1")
    assert pyfunc.metadata.get_input_schema() is not None
    assert version.run_id == outcome.run_id
    assert str(client.get_model_version_by_alias("behavioural-segmentation", "candidate").version) == "1"
    assert str(client.get_model_version_by_alias("behavioural-segmentation", "champion").version) == "1"
    assert outcome.promoted

    # the registered bundle scores a feature frame with one row per customer
    bundle = tracking.load_bundle("behavioural-segmentation", "champion")
    dataset = load_dataset(str(demo_dir), params)
    features = features_for(dataset, pd.Timestamp("2025-08-01", tz="UTC"), params).frame
    scores = bundle.score(features, reasons=2)
    assert len(scores) == len(features)
    assert scores["purchase_probability"].between(0, 1).all()
    assert set(scores["purchase_bucket"]) <= {"high", "medium", "low"}
    assert scores["churn_reason_1_text"].str.contains("churn risk").any()
    assert set(scores["persona"]) <= set(bundle.personas.names_.values())


def test_retraining_keeps_persona_names_and_the_gate_keeps_a_better_champion(demo_dir, store):
    params = load_params(None, SMALL)
    first = train(params, str(demo_dir))
    second = train(params, str(demo_dir))
    # same data, same seed: identical scores on the same holdout, so the retrain is promoted
    assert second.model_version == "2" and second.promoted
    assert set(first.bundle.personas.names_.values()) == set(second.bundle.personas.names_.values())
    assert second.metrics["purchase.test.roc_auc"] == first.metrics["purchase.test.roc_auc"]
    # a deliberately worse model (benefit affinities only: no recency, usage or value) is not promoted
    worse = load_params(None, SMALL + ["features.enabled=[benefits]", "tracking.promotion_tolerance=0"])
    third = train(worse, str(demo_dir))
    assert third.model_version == "3" and not third.promoted
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("behavioural-segmentation", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("behavioural-segmentation", "candidate").version) == "3"
    assert "kept the champion" in client.get_run(third.run_id).data.tags["promotion"]


def test_promotion_gate_tolerates_noise_but_not_a_real_drop():
    champion = {"purchase.test.roc_auc": 0.80, "churn.test.roc_auc": 0.70}
    assert tracking.should_promote({"purchase.test.roc_auc": 0.797, "churn.test.roc_auc": 0.71}, champion, 0.005)[0]
    ok, reason = tracking.should_promote({"purchase.test.roc_auc": 0.79, "churn.test.roc_auc": 0.71}, champion, 0.005)
    assert not ok and "purchase.test.roc_auc 0.7900" in reason
    assert tracking.should_promote({"purchase.test.roc_auc": 0.5}, {}, 0.0)[0]  # no champion yet


def test_training_refuses_too_few_positives_naming_the_param(demo_dir, store):
    params = load_params(None, SMALL + ["models.propensity.min_positives=1000000"])
    with pytest.raises(NotEligibleError) as err:
        train(params, str(demo_dir))
    message = str(err.value)
    assert "min_positives" in message
    assert message.startswith("purchase: ") and "purchase: purchase:" not in message  # each target named once


def test_train_command_prints_metrics_and_where_to_look(demo_dir, store, capsys):
    args = ["train", "--data", str(demo_dir)] + [a for s in SMALL for a in ("--set", s)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "out-of-time test" in out and "recency" in out and "mlflow ui" in out


def test_data_digest_ignores_row_order_but_not_content():
    a = pd.DataFrame({"customer_id": ["x", "y"], "revenue": [1.0, 2.0]})
    assert data_digest(a) == data_digest(a.iloc[::-1])
    assert data_digest(a) != data_digest(a.assign(revenue=[1.0, 2.5]))


def test_outcome_windows_longer_than_the_snapshot_spacing_are_warned_about(demo_dir, store, caplog):
    overlapping = SMALL + ["labels.horizon_days=45", "labels.snapshot_every_days=30",
                           "models.propensity.min_positives=1000000"]  # stop right after the features
    with pytest.raises(NotEligibleError):
        train(load_params(None, overlapping), str(demo_dir))
    assert "outcome window (gap + horizon = 45 days) is longer than the 30 days" in caplog.text
    caplog.clear()
    with pytest.raises(NotEligibleError):
        train(load_params(None, SMALL + ["models.propensity.min_positives=1000000"]), str(demo_dir))
    assert "outcome window" not in caplog.text
