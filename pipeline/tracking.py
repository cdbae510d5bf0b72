"""MLflow wiring: where runs go, flat params and metrics, artifacts, and the model registry aliases.

Only pipeline/ talks to MLflow. Runs are opened explicitly (no autologging side effects). The
tracking store is MLFLOW_TRACKING_URI when set, else tracking.uri in params, else MLflow's
default (a sqlite file mlflow.db in the working directory).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")  # the registered model's code (models from code)
_BAD_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


class TrackingConfig(BaseModel):
    """Where runs and models go (params.yaml: tracking)."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        None,
        description="MLflow tracking URI, e.g. http://mlflow:5000 or sqlite:///mlflow.db. Empty: "
        "MLFLOW_TRACKING_URI if set, else mlflow.db in the working directory.",
    )
    train_experiment: str = Field("segmentation-train", description="Experiment of training runs.")
    score_experiment: str = Field("segmentation-score", description="Experiment of scoring runs.")
    model_name: str = Field("behavioural-segmentation", description="Registered model name of the trained bundle.")
    promote: bool = Field(
        True,
        description="After training, move the champion alias to the new version when it is not worse than the "
        "current champion on the same out-of-time holdout (or when there is no champion).",
    )
    promotion_tolerance: float = Field(
        0.005,
        ge=0.0,
        le=1.0,
        description="How much lower the new version's out-of-time ROC-AUC (purchase and churn) may be than the "
        "champion's on the same holdout and still be promoted (noise between retrains).",
    )


def configure(config: TrackingConfig) -> str:
    """Points MLflow at the configured store and returns its URI."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.uri
    if uri:
        mlflow.set_tracking_uri(uri)
    return mlflow.get_tracking_uri()


@contextmanager
def run(experiment: str, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Opens an MLflow run in an experiment (created when missing) and closes it, failed or not."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as active:
        yield active


@contextmanager
def child_run(name: str) -> Iterator[Any]:
    """Opens a run nested in the active one (one per model of a training run)."""
    import mlflow

    with mlflow.start_run(run_name=name, nested=True) as active:
        yield active


def set_tags(tags: Mapping[str, str]) -> None:
    """Tags the active run."""
    import mlflow

    mlflow.set_tags(dict(tags))


def log_dataset(events: pd.DataFrame, digest: str, source: str) -> None:
    """Records the training events as the run's input dataset (name, digest, schema, row count, date range)."""
    import mlflow
    import mlflow.data

    sample = events.head(1000)  # schema and profile only: the digest names the full data
    # Instants as naive UTC: MLflow records the same datetime schema, without pyarrow reading the
    # tz-aware column through the Series.values route pandas 3.1 warns about.
    sample = sample.assign(**{c: sample[c].dt.tz_convert(None) for c in sample.columns
                              if isinstance(sample[c].dtype, pd.DatetimeTZDtype)})
    with warnings.catch_warnings():
        # A local path reads as two kinds of local source to MLflow, which says so on every run.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_pandas(sample, source=source or "events", name="events", digest=digest[:16])
    mlflow.log_input(dataset, context="training")
    mlflow.log_params({"data.rows": len(events), "data.first_event": str(events["timestamp"].min()),
                       "data.last_event": str(events["timestamp"].max())})


def log_bytes(payload: bytes, artifact_file: str) -> None:
    """Logs raw bytes (e.g. a PNG figure) as an artifact."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_bytes(payload)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Returns a nested mapping as {'a.b.c': value} (lists and empty mappings kept as values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def metric_name(name: str) -> str:
    """Returns a metric or param name MLflow accepts (letters, digits, _ - . / and spaces; others become _)."""
    return _BAD_NAME.sub("_", name)


def log_params(params: BaseModel | Mapping[str, Any]) -> None:
    """Logs a nested config as flat params (values longer than MLflow's limit are cut, marked with ...)."""
    import mlflow

    tree = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
    flat = {}
    for key, value in flatten(tree).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[metric_name(key)] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    items = list(flat.items())
    for start in range(0, len(items), 100):  # MLflow's batch limit
        mlflow.log_params(dict(items[start:start + 100]))


def log_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Logs the finite numbers of a nested mapping as metrics; returns what was logged."""
    import mlflow

    flat = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(float(value)):
            flat[metric_name(key)] = float(value)
    if flat:
        mlflow.log_metrics(flat)
    return flat


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Logs a table as a CSV artifact (index kept) under the run's artifacts."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_json(payload: Any, artifact_file: str) -> None:
    """Logs a JSON-serialisable object as an artifact."""
    import mlflow

    mlflow.log_text(json.dumps(payload, indent=2, default=str, sort_keys=True), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    """Logs text as an artifact."""
    import mlflow

    mlflow.log_text(text, artifact_file)


# --------------------------------------------------------------------------- registry


def register_bundle(bundle: Any, model_name: str, alias: str = "candidate",
                    input_example: pd.DataFrame | None = None) -> str:
    """Logs the bundle as a pyfunc model (signature from the input example), registers a version, sets the alias.

    The model is logged from code (pipeline/mlflow_model.py) with the pickled bundle as its artifact.
    """
    import mlflow

    if input_example is not None:
        # Counts are whole numbers in the example but may be missing at inference (a customer without
        # an order has no order value): declare every number a double, as the models read them.
        input_example = input_example.astype({c: "float64" for c in input_example.columns
                                              if pd.api.types.is_integer_dtype(input_example[c])})
    with warnings.catch_warnings():
        # The scores hold whole-number percentiles, which are never missing; MLflow's hint that an
        # integer column cannot hold a missing value does not apply to them.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        with tempfile.TemporaryDirectory() as tmp:
            pickled = Path(tmp) / "bundle.pkl"
            pickled.write_bytes(pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL))
            info = mlflow.pyfunc.log_model(
                name="segmentation", python_model=str(MODEL_CODE), artifacts={"bundle": str(pickled)},
                registered_model_name=model_name,
                # With the params in the example, the signature declares `reasons` and predict honours it.
                input_example=None if input_example is None else (input_example, {"reasons": 3}),
            )
    version = str(info.registered_model_version)
    set_alias(model_name, alias, version)
    return version


def set_alias(model_name: str, alias: str, version: str) -> None:
    """Points a registry alias (candidate, champion) at a version."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(model_name, alias, version)


def resolve_version(model_name: str, ref: str) -> str:
    """Returns the version number an alias (champion, candidate) or a version string points at."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        if ref.isdigit():
            return str(client.get_model_version(model_name, ref).version)
        return str(client.get_model_version_by_alias(model_name, ref).version)
    except MlflowException as exc:
        raise LookupError(
            f"no model {model_name!r} {'version' if ref.isdigit() else 'alias'} {ref!r} in the registry at "
            f"{mlflow.get_tracking_uri()}; run `python -m pipeline train` first or pick another --model"
        ) from exc


def load_bundle(model_name: str, ref: str = "champion") -> Any:
    """Loads the SegmentationBundle of a registered version (alias or number); LookupError when absent.

    Works for versions logged from code and for older ones logged as a pickled Python object.
    """
    import mlflow

    version = resolve_version(model_name, ref)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    bundle = model.unwrap_python_model().bundle
    bundle.metadata = {**bundle.metadata, "model_name": model_name, "model_version": version}
    return bundle


def should_promote(new: Mapping[str, float], champion: Mapping[str, float], tolerance: float) -> tuple[bool, str]:
    """Decides promotion: not worse than the champion on the same holdout by more than `tolerance` ROC-AUC.

    `champion` holds the champion's metrics on this run's holdout ({} when there is no champion, or
    it can no longer score this data: then the new version is promoted).
    """
    if not champion:
        return True, "promoted: no champion to compare with on this holdout"
    for key in ("purchase.test.roc_auc", "churn.test.roc_auc"):
        if key in champion and key in new and new[key] < champion[key] - tolerance:
            return False, (f"kept the champion: {key} {new[key]:.4f} is below the champion's {champion[key]:.4f} "
                           f"on the same holdout by more than tracking.promotion_tolerance={tolerance}")
    shown = ", ".join(f"{k} {new.get(k, float('nan')):.4f} vs {v:.4f}" for k, v in champion.items())
    return True, f"promoted: not worse than the champion on the same holdout ({shown})"
