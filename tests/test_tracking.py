"""The model registry round trip: a bundle logged from code loads back, and so do versions logged the old way."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest

from pipeline import tracking


class TinyBundle:
    """Stands in for a SegmentationBundle: what the registry stores and gives back."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.metadata: dict[str, str] = {"trained": label}

    def score(self, features: pd.DataFrame, reasons: int = 3) -> pd.DataFrame:
        return pd.DataFrame({"label": self.label, "reasons": reasons}, index=features.index)


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")  # not an experiment id another test's store left active
    return uri


def test_a_bundle_is_logged_from_code_without_pickling_a_python_object(store, caplog):
    with caplog.at_level(logging.WARNING), mlflow.start_run():
        example = pd.DataFrame({"customer_id": ["z"], "x": [0.5]})
        version = tracking.register_bundle(TinyBundle("new"), "registry-test", input_example=example)
    assert "CloudPickle" not in caplog.text  # MLflow warns when a Python object is cloudpickled
    bundle = tracking.load_bundle("registry-test", "candidate")
    assert isinstance(bundle, TinyBundle) and bundle.label == "new"
    assert bundle.metadata == {"trained": "new", "model_name": "registry-test", "model_version": version}
    # The generic pyfunc interface works too: MLflow runs pipeline/mlflow_model.py and predicts,
    # with the number of reasons as a declared param.
    model = mlflow.pyfunc.load_model("models:/registry-test@candidate")  # as the README shows
    frame = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})
    out = model.predict(frame, params={"reasons": 1})
    assert list(out["customer_id"]) == ["a", "b"] and set(out["label"]) == {"new"} and set(out["reasons"]) == {1}


def test_a_version_logged_as_a_pickled_python_object_still_loads(store):
    # Versions registered before the switch to models from code hold a cloudpickled PythonModel
    # whose `bundle` attribute is the bundle.
    class OldWrapper(mlflow.pyfunc.PythonModel):
        def __init__(self, bundle: TinyBundle) -> None:
            self.bundle = bundle

        def predict(self, context, model_input, params=None):
            return self.bundle.score(model_input)

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="segmentation", python_model=OldWrapper(TinyBundle("old")),
                                       registered_model_name="registry-test")
    tracking.set_alias("registry-test", "champion", str(info.registered_model_version))
    bundle = tracking.load_bundle("registry-test", "champion")
    assert bundle.label == "old" and bundle.metadata["model_version"] == "1"
