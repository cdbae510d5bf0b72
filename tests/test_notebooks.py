"""The notebooks run end to end on small simulated data, and are committed without outputs.

Each notebook runs in a fresh kernel of this interpreter, with its working directory in a
temporary folder, a temporary MLflow store (MLFLOW_TRACKING_URI) and its first (parameters) cell
read from NOTEBOOK_* environment variables that make it small. The notebooks share one simulated
data folder and one MLflow store, so the model trained by the first notebook that needs one is
reviewed by the next.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from tests._small import SMALL_TRAINING

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TIMEOUT_PER_CELL = 600


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs_and_starts_with_its_parameters(path):
    nb = nbformat.read(path, as_version=4)
    with_outputs = [i for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not with_outputs, (
        f"{path.name}: cells {with_outputs} hold outputs; clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace {path.relative_to(REPO)})"
    )
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: the first code cell must be the parameters cell, tagged 'parameters'"
    )
    assert "os.environ" in code[0].source, f"{path.name}: the parameters cell must read its values from env vars"


def test_there_are_notebooks_to_run():
    assert {p.stem for p in NOTEBOOKS} >= {"01_explore", "02_model_review", "03_bring_your_own_data"}


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """Sets the environment every notebook kernel inherits: small data, a temporary MLflow store, no repo writes."""
    from pipeline.simulate import SimulateConfig, simulate, write_simulation

    base = tmp_path_factory.mktemp("notebooks")
    data = base / "demo"
    write_simulation(simulate(SimulateConfig(customers=400, days=240, seed=5)), data)
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "NOTEBOOK_DATA": str(data),
        "NOTEBOOK_CUSTOMERS": "120",
        "NOTEBOOK_PARAMS": "",  # built-in defaults plus the small-training overrides below
        "NOTEBOOK_SET": ";".join(SMALL_TRAINING),
        "NOTEBOOK_SHAP_SAMPLE": "200",
        "NOTEBOOK_ONLINE_RETAIL": "",  # the real export is not part of the test run
        "PIPELINE_CACHE_DIR": str(base / "cache"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures are rendered, as in Jupyter
        # The kernel imports this working tree's packages, installed or not.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield base


def run_notebook(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Executes a notebook in a fresh kernel of this interpreter; fails naming the cell that broke and its error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    workdir.mkdir(parents=True, exist_ok=True)
    before = _repo_outputs()
    # "python3" is the kernel of the running interpreter (jupyter_client starts sys.executable for it).
    client = NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT_PER_CELL,
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env={**os.environ, "NOTEBOOK_WORK_DIR": str(workdir)})
    except CellExecutionError as error:
        failed = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and any(
            out.get("output_type") == "error" for out in cell.get("outputs", []))), None)
        source = nb.cells[failed].source if failed is not None else "?"
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the kernel's traceback is coloured
        pytest.fail(f"{path.name}: cell {failed} failed:\n{source}\n\n{message}", pytrace=False)
    written = _repo_outputs() - before
    assert not written, f"{path.name} wrote into the repository: {sorted(map(str, written))}; use WORK_DIR"
    return nb


def _outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _repo_outputs() -> set[Path]:
    """Lists what a notebook could leave in the repository: files next to the notebooks, MLflow stores, demo data."""
    found = {p for p in (REPO / "notebooks").rglob("*") if ".ipynb_checkpoints" not in p.parts}
    return found | {REPO / name for name in ("mlflow.db", "mlruns", "demo_data", "scores.parquet")
                    if (REPO / name).exists()}


@pytest.mark.slow
def test_explore_notebook_profiles_personas_segments_timing_and_journey(notebook_env):
    text = _outputs_text(run_notebook(REPO / "notebooks" / "01_explore.ipynb", notebook_env / "01"))
    assert "rows read" in text and "OK" in text  # the validation report
    assert "true persona" in text  # personas found against the simulator's truth
    assert "Champions" in text or "Loyal" in text  # named RFM cells
    assert "journey model:" in text


@pytest.mark.slow
def test_model_review_notebook_reads_the_run_back_from_mlflow(notebook_env):
    text = _outputs_text(run_notebook(REPO / "notebooks" / "02_model_review.ipynb", notebook_env / "02"))
    assert "behavioural-segmentation version" in text and "promotion:" in text
    assert "recency ROC-AUC" in text  # the metrics table against the baselines
    assert "strongest drivers per persona" in text


@pytest.mark.slow
def test_bring_your_own_data_notebook_maps_a_messy_export_step_by_step(notebook_env):
    text = _outputs_text(run_notebook(REPO / "notebooks" / "03_bring_your_own_data.ipynb", notebook_env / "03"))
    assert "required column 'customer_id' not found" in text  # the unmapped export
    assert "null_customer_id" in text and "duplicate_event" in text  # counted drops
    assert "read as returns" in text  # the cancellation
    assert "validation.max_dropped_share" in text  # the guard against a mapping mistake
    assert "exit code 0" in text  # the CLI on the mapped export
    assert "skipped segment engagement_level" in text  # transactions only: skipped, not invented
