"""The trained bundle: every fitted model plus the settings scoring needs, turning features into scores.

One bundle is one registered model version, so a score always comes from models trained together
on the same data, with the feature settings they were trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from features.schema import JOURNEY_STAGES
from models.explain import Explainer
from models.journey import JourneyStageClassifier, RuleStageScorer, decayed_columns, predict_stages
from models.personas import PersonaModel
from models.propensity import PropensityConfig, PropensityModel, score
from models.segments import SegmentsConfig, assign_segments

TARGETS: dict[str, str] = {"purchase": "purchase likelihood", "churn": "churn risk"}
VALUE_COLUMN = "value__monetary_net"  # purchase revenue minus returns in the last 365 days


@dataclass
class SegmentationBundle:
    """Fitted models of one training run and the settings to apply them consistently.

    `reference` holds each propensity model's out-of-time test probabilities, so percentiles of a
    scored customer are on the training population's scale whatever the size of the scored chunk.
    """

    features_config: FeaturesConfig
    propensity_config: PropensityConfig
    segments_config: SegmentsConfig
    personas: PersonaModel | None
    propensity: dict[str, PropensityModel]
    journey: JourneyStageClassifier | RuleStageScorer | None
    reference: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)
    _explainers: dict[str, Explainer] = field(default_factory=dict, repr=False)

    # Configs are pickled as plain dicts and re-validated on load, so a bundle saved by an older
    # version of this code still loads when a config class gained a field (it takes its default).
    _CONFIGS = {"features_config": FeaturesConfig, "propensity_config": PropensityConfig,
                "segments_config": SegmentsConfig}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._CONFIGS:
            state[name] = state[name].model_dump(mode="json")
        state["_explainers"] = {}  # rebuilt on demand; SHAP explainers need not travel
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, model in self._CONFIGS.items():
            if isinstance(state.get(name), dict):
                state[name] = model.model_validate(state[name])
        self.__dict__.update(state)

    def use_threads(self, threads: int) -> None:
        """Sets the threads LightGBM predicts and explains with; results do not depend on them.

        Training fixes its own thread count (reproducible tuning); a scoring machine can use all its cores.
        """
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        for model in self.propensity.values():
            model.n_jobs = int(threads)

    def churn_population(self, features: pd.DataFrame) -> np.ndarray | None:
        """Returns which customers can churn (active in the labels' lookback), or None when unknown.

        The churn model learned only from customers active in the `active_lookback_days` before a
        cutoff (per the churn definition); for anyone else, who has already lapsed, its output would be
        an extrapolation, so those customers get no churn score. Bundles trained before this was
        recorded (no `churn_population` in the metadata) score everyone.
        """
        population = self.metadata.get("churn_population")
        if not population or population["column"] not in features.columns:
            return None
        days = features[population["column"]].to_numpy(dtype="float64", na_value=np.nan)
        return days <= population["max_days"]  # NaN (never active / never bought) compares False

    def explainer(self, target: str) -> Explainer:
        """Returns the SHAP explainer of one propensity model, built once."""
        if target not in self._explainers:
            self._explainers[target] = Explainer(self.propensity[target], outcome=TARGETS[target])
        return self._explainers[target]

    def score(
        self,
        features: pd.DataFrame,
        customers: pd.DataFrame | None = None,
        cutoff: pd.Timestamp | None = None,
        reasons: int = 3,
    ) -> pd.DataFrame:
        """Scores a feature frame (index customer_id): persona, propensities, stage, segments, reasons.

        `reasons` is the number of reason codes per propensity model (0 for none, which is much
        faster). Columns a model cannot fill (e.g. journey stage on transactions-only data) are
        left out rather than filled with invented values.
        """
        out = pd.DataFrame(index=features.index)
        if cutoff is not None:
            out["cutoff"] = pd.Timestamp(cutoff)
        if self.personas is not None:
            out["persona"] = self.personas.predict(features)
            out["persona_confidence"] = self.personas.confidence(features).to_numpy()
        churn_probability = None
        # Who can churn, once per call: it decides the churn scores and the churn reasons.
        can_churn = self.churn_population(features) if "churn" in self.propensity else None
        for target, model in self.propensity.items():
            scored = score(model, features, self.propensity_config, reference=self.reference.get(target))
            eligible = can_churn if target == "churn" else None
            if eligible is not None:  # lapsed customers cannot churn: no score rather than an extrapolation
                scored["probability"] = scored["probability"].where(eligible)
                scored["percentile"] = scored["percentile"].astype("Int64").where(eligible)
                scored["bucket"] = scored["bucket"].where(eligible, None)
            out[f"{target}_probability"] = scored["probability"].to_numpy()
            out[f"{target}_percentile"] = scored["percentile"].array
            out[f"{target}_bucket"] = scored["bucket"].to_numpy()
            if target == "churn":
                churn_probability = scored["probability"]
        if self.journey is not None and decayed_columns(features):
            stages = predict_stages(self.journey, features)
            out["journey_stage"] = stages["stage"].to_numpy()
            out["journey_stage_confidence"] = stages["stage_confidence"].to_numpy()
            for stage in JOURNEY_STAGES:
                out[f"journey_prob_{stage}"] = stages[f"prob_{stage}"].to_numpy()
        if VALUE_COLUMN in features.columns:  # revenue behind transitions at risk and value audiences
            out["value_365d"] = features[VALUE_COLUMN].astype("float64").to_numpy()
        segments = assign_segments(features, self.segments_config, customers=customers,
                                   churn_probability=churn_probability, cutoff=cutoff)
        for column in segments.frame.columns:
            out[column] = segments.frame[column].astype("str").where(segments.frame[column].notna(), None).to_numpy()
        if reasons > 0:
            for target in self.propensity:
                eligible = can_churn if target == "churn" else None
                if eligible is None:
                    codes = self.explainer(target).reason_codes(features, k=reasons)
                else:  # no score, so no reasons: explain only the customers who get one (SHAP is the cost)
                    codes = self.explainer(target).reason_codes(features[eligible], k=reasons)
                    codes = codes.astype(object).reindex(features.index)
                    codes = codes.where(codes.notna(), None).astype(
                        {c: "float64" for c in codes.columns if c.endswith("_shap")})
                codes = codes.add_prefix(f"{target}_")
                out = out.join(codes)
        return out
