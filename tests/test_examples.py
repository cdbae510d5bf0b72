"""The params files under examples/: each validates, maps its dataset's layout, and trains on a slice of it.

The real datasets live outside the repository (../shared/data); the tests that need them skip
with the reason when they are absent. The rest build their input by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import Params, load_params
from pipeline.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
DATA_DIR = REPO.parent / "shared" / "data"
# Example (params file stem) -> the dataset file in DATA_DIR it is written for.
EXAMPLE_DATA = {"online_retail": "online_retail.csv.gz"}
SLICE_CUSTOMERS = 600  # customers sampled (with every line of theirs) for the training test
SLICE_ANONYMOUS = 3000  # lines without a customer kept in the slice, so the drop rule is exercised
FAST = [
    "models.propensity.n_trials=2",
    "models.propensity.min_positives=30",
    "models.propensity.min_negatives=30",
    "models.personas.bootstrap_resamples=2",
]


def test_examples_folder_holds_params_files_each_written_for_a_named_dataset() -> None:
    assert EXAMPLES, "examples/ has no params file"
    assert {p.stem for p in EXAMPLES} == set(EXAMPLE_DATA)
    readme = (REPO / "examples" / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES:
        assert path.name in readme, f"examples/README.md does not describe {path.name}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_against_the_config_model(path: Path) -> None:
    params = load_params(path)
    assert isinstance(params, Params)
    # Only keys that differ from the defaults: a key restating a default hides what the example changes.
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    restated = _restated_defaults(raw, Params().model_dump(mode="json"))
    assert not restated, f"{path.name} sets keys to their default value: {restated}"


def _restated_defaults(raw: dict, defaults: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in raw.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict) and value:
            out += _restated_defaults(value, default, f"{prefix}{key}.")
        elif value == default:
            out.append(prefix + key)
    return out


# UCI Online Retail's header and quirks, by hand: float-text customer ids, a cancellation, a line
# without customer, an exact duplicate, and a summer (BST) timestamp.
RETAIL_CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom
560000,22139,"RETRO SPOT TEA SET, CERAMIC",2,2011-07-01 10:00:00,4.95,12346.0,Norway
"""


def test_online_retail_example_maps_the_export_onto_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "online_retail.csv"
    path.write_text(RETAIL_CSV, encoding="utf-8")
    dataset = load_dataset(str(path), load_params(REPO / "examples" / "online_retail.yaml"))

    counts = dataset.report.counts()
    assert (counts["events.rows_in"], counts["events.rows_out"]) == (6, 4)
    assert counts["events.null_customer_id"] == 1
    assert counts["events.duplicate_event"] == 1
    ev = dataset.events.set_index(["order_id", "product_id"])
    assert sorted(ev["customer_id"].unique()) == ["12346", "14527", "17850"]
    sale = ev.loc[("536365", "85123A")]
    assert sale["event_type"] == "purchase"
    assert sale["revenue"] == pytest.approx(6 * 2.55)
    assert sale["timestamp"] == pd.Timestamp("2010-12-01 08:26", tz="UTC")  # GMT in winter
    cancellation = ev.loc[("C536379", "D")]
    assert cancellation["event_type"] == "return"
    assert (cancellation["quantity"], cancellation["revenue"]) == (1.0, 27.5)
    summer = ev.loc[("560000", "22139")]
    assert summer["timestamp"] == pd.Timestamp("2011-07-01 09:00", tz="UTC")  # 10:00 BST


# --------------------------------------------------------------------------- real data


def _customer_column(params: Params) -> str:
    return next((src for src, dst in params.data.events.columns.items() if dst == "customer_id"), "customer_id")


def _slice(source: Path, customer_column: str, out: Path) -> pd.DataFrame:
    """Writes every line of SLICE_CUSTOMERS seeded-random customers plus some anonymous lines; returns it."""
    raw = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    ids = np.sort(raw[customer_column].dropna().unique())
    picked = np.random.default_rng(0).choice(ids, size=min(SLICE_CUSTOMERS, len(ids)), replace=False)
    anonymous = raw[raw[customer_column].isna()].head(SLICE_ANONYMOUS)
    part = pd.concat([raw[raw[customer_column].isin(picked)], anonymous]).sort_index()
    part.to_csv(out, index=False)
    return part


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_trains_purchase_and_churn_on_a_slice_of_its_dataset(path, tmp_path, monkeypatch) -> None:
    from pipeline.train import train

    data = DATA_DIR / EXAMPLE_DATA[path.stem]
    if not data.is_file():
        pytest.skip(f"{data} is absent: the real dataset of examples/{path.name} is not on this machine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    params = load_params(path, FAST)
    part = _slice(data, _customer_column(params), tmp_path / "slice.csv")

    outcome = train(params, str(tmp_path / "slice.csv"))

    m = outcome.metrics
    assert m["validation.events.rows_in"] == len(part)
    assert m["validation.events.null_customer_id"] == part[_customer_column(params)].isna().sum()
    for target in ("purchase", "churn"):
        for metric in ("roc_auc", "brier", "top_decile_lift"):
            assert math.isfinite(m[f"{target}.test.{metric}"]), f"{target}.test.{metric}"
        # A model that ranks no better than chance on the real slice means the mapping or labels broke.
        assert m[f"{target}.test.roc_auc"] > 0.55
        assert m[f"{target}.test.brier"] < 0.25
    assert all(reason for reason in outcome.skipped.values())
