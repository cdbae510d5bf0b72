"""The MLflow model of a SegmentationBundle, logged as "models from code": this file is the model's code.

MLflow runs this file when it loads a registered version (it is not imported by the package); the
bundle itself travels as the model's `bundle` artifact, a pickle whose classes come from the
installed package (models, features), and is read back in `load_context`. Logging the code as a
file rather than a pickled Python object is what MLflow 3 recommends: no class definition is
serialised with cloudpickle. Load models only from a registry you trust: the bundle is a pickle.
"""

from __future__ import annotations

import pickle
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE_ARTIFACT = "bundle"


class SegmentationModel(PythonModel):
    """Scores a feature frame (index or column customer_id) with the registered SegmentationBundle."""

    bundle: Any = None

    def load_context(self, context: Any) -> None:
        with open(context.artifacts[BUNDLE_ARTIFACT], "rb") as handle:
            self.bundle = pickle.load(handle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input.set_index("customer_id") if "customer_id" in model_input.columns else model_input
        reasons = int((params or {}).get("reasons", 3))
        return self.bundle.score(frame, reasons=reasons).reset_index()


mlflow.models.set_model(SegmentationModel())
