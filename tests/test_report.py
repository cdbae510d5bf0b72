"""`pipeline report`: the stakeholder page built from a training run, opened in a real headless browser."""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.config import load_params
from pipeline.report import (
    GRADES,
    SECTIONS,
    build_html,
    fetch_run,
    grade,
    metric_sentences,
    resolve_run,
    write_report,
)
from pipeline.simulate import SimulateConfig, simulate, write_simulation
from pipeline.train import train
from tests._small import SMALL_TRAINING

EXPERIMENT = "segmentation-train"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Injected into a copy of the page: after the load event, it records every image's decoding state and
# every section heading's rendered box where --dump-dom prints it.
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var headings = Array.prototype.map.call(document.querySelectorAll('h2'), function (h) {
    var box = h.getBoundingClientRect();
    return {text: h.innerText, width: box.width, height: box.height};
  });
  var out = document.createElement('pre');
  out.id = 'browser-check';
  out.textContent = JSON.stringify({images: images, headings: headings});
  document.body.appendChild(out);
});
</script>"""


# --------------------------------------------------------------------------- plain words and grades (fast)


def test_grade_needs_both_the_roc_auc_and_the_gain_over_the_simple_rule():
    assert grade(0.85, 0.80)[0] == "A"
    assert grade(0.85, 0.83)[0] == "B"  # high AUC, but only 0.02 better than ranking by recency
    assert grade(0.72, 0.60)[0] == "B"
    assert grade(0.65, 0.64)[0] == "C"
    assert grade(0.65, 0.66)[0] == "D"  # worse than the simple rule
    assert grade(0.55, math.nan)[0] == "D"
    assert grade(0.81, math.nan)[0] == "A"  # no baseline recorded: compared with a coin flip
    assert [g[0] for g in GRADES] == ["A", "B", "C", "D"]


def test_metric_sentences_say_the_top_decile_rate_and_lift_in_words():
    gains = pd.DataFrame({"decile": range(1, 11), "rate": [0.34] + [0.08] * 9, "lift": [3.1] + [0.8] * 9,
                          "cumulative_capture": [0.31, 0.45, 0.56, 0.64, 0.72, 0.8, 0.86, 0.91, 0.96, 1.0]})
    metrics = {"test.base_rate": 0.11, "test.n": 400, "test.roc_auc": 0.82, "baseline.recency_roc_auc": 0.71,
               "test.ece": 0.021}
    text = " ".join(metric_sentences("purchase", metrics, gains))
    assert "Of the 10% of customers the model ranks highest, 34% bought, 3.1 times the average." in text
    assert "The top 30% by score hold 56% of all buyers." in text
    assert "82% of the time" in text and "days since the last visit alone gets 71%" in text
    assert "2.1 percentage points" in text
    churn = " ".join(metric_sentences("churn", metrics, gains))
    assert "34% churned" in churn and "churners" in churn


# --------------------------------------------------------------------------- one training run per module


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("report")
    write_simulation(simulate(SimulateConfig(customers=500, days=240, seed=5)), folder / "sim")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        params = load_params(None, SMALL_TRAINING)
        outcome = train(params, str(folder / "sim"))
        yield {"folder": folder, "params": params, "run_id": outcome.run_id, "outcome": outcome}


@pytest.fixture()
def store(trained, monkeypatch) -> mlflow.MlflowClient:
    monkeypatch.chdir(trained["folder"])
    uri = f"sqlite:///{trained['folder'] / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def report_file(trained) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(trained["folder"])
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained['folder'] / 'mlflow.db'}")
        run_id, path = write_report(trained["params"], trained["run_id"], trained["folder"] / "out" / "report.html")
    assert run_id == trained["run_id"]
    return path


@pytest.mark.slow
def test_training_records_what_the_report_needs(trained, store):
    run_id = trained["run_id"]
    tables = trained["outcome"].tables
    summary = tables["segments/segment_summary.csv"]
    customers = int(trained["outcome"].metrics["data.customers"])
    lifecycle = summary[summary["dimension"] == "lifecycle"]
    # every customer at the test snapshot has exactly one lifecycle status
    assert lifecycle["share"].sum() == pytest.approx(1.0)
    assert 0 < lifecycle["customers"].sum() <= customers
    assert {"persona", "journey_stage", "rfm_cell"} <= set(summary["dimension"])
    assert lifecycle["revenue"].sum() > 0
    buckets = tables["purchase/buckets.csv"]
    assert list(buckets.index) == ["high", "medium", "low"]
    assert buckets["customers"].sum() == trained["outcome"].metrics["purchase.test.n"]
    # the top bucket really buys more often than the bottom one on simulated data
    assert buckets.loc["high", "actual_rate"] > buckets.loc["low", "actual_rate"]
    examples = tables["purchase/examples.csv"]
    assert len(examples) == 5 and examples["percentile"].is_monotonic_decreasing
    assert examples["reason_1_text"].str.contains("purchase likelihood").all()
    drivers = tables["churn/drivers_by_persona.csv"]
    assert set(drivers.index) == set(tables["personas/profiles.csv"].index)

    children = {r.info.run_name: r.info.run_id for r in store.search_runs(
        [store.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")}
    files = {a.path for a in store.list_artifacts(children["churn"])}
    assert {"model_card.json", "buckets.csv", "examples.csv", "drivers_by_persona.csv"} <= files
    assert len([f for f in files if f.startswith("dependence_")]) == 3
    card = json.loads(Path(store.download_artifacts(children["churn"], "model_card.json",
                                                    str(trained["folder"] / "card"))).read_text())
    assert card["labels"]["horizon_days"] == 30
    assert card["eligibility"]["positives"] >= card["eligibility"]["min_positives"] == 30
    assert card["rows"]["test"] == trained["outcome"].metrics["churn.test.n"]


@pytest.mark.slow
def test_latest_is_the_newest_finished_training_run_not_a_child_or_a_running_one(trained, store):
    experiment = store.get_experiment_by_name(EXPERIMENT).experiment_id
    # the child runs started after their parent, so a plain "newest run" would pick one of them
    assert resolve_run(store, EXPERIMENT, "latest") == trained["run_id"]
    running = store.create_run(experiment, run_name="still-training")
    try:
        assert resolve_run(store, EXPERIMENT, "latest") == trained["run_id"]
    finally:
        store.delete_run(running.info.run_id)


@pytest.mark.slow
def test_report_command_writes_every_section_self_contained_and_logs_it_to_the_run(trained, store, capsys):
    out = trained["folder"] / "latest.html"
    assert main(["report", "--run", "latest", "--out", str(out)]) == 0
    assert trained["run_id"] in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    for heading in SECTIONS.values():
        assert f">{html.escape(heading)}</h2>" in page, heading
    # self-contained: every image is embedded, nothing is fetched from elsewhere
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert not re.search(r"https?://", page)
    assert page.count("<img ") >= 14  # calibration, gains, importance, beeswarm, 3 dependence x 2 + 2 confusion
    # in plain words, with a grade per model
    assert "Of the 10% of customers the model ranks highest" in page
    assert 'class="grade grade-' in page
    for persona in trained["outcome"].tables["personas/profiles.csv"].index:
        assert html.escape(persona) in page
    artifacts = {a.path for a in store.list_artifacts(trained["run_id"])}
    assert "report.html" in artifacts
    logged = Path(store.download_artifacts(trained["run_id"], "report.html", str(trained["folder"] / "dl")))
    assert logged.read_text(encoding="utf-8") == page


@pytest.mark.slow
def test_report_for_an_explicit_run_id_names_that_run(trained, report_file):
    page = report_file.read_text(encoding="utf-8")
    assert f"Made from MLflow run {trained['run_id']}" in page
    example = trained["outcome"].tables["purchase/examples.csv"]
    assert html.escape(str(example.index[0])) in page
    assert html.escape(str(example["reason_1_text"].iloc[0])) in page


@pytest.mark.slow
def test_a_bad_run_id_exits_two_naming_it_and_how_to_list_runs(trained, store, capsys):
    assert main(["report", "--run", "0123456789abcdef", "--out", "x.html"]) == 2
    err = capsys.readouterr().err
    assert "0123456789abcdef" in err and "mlflow runs list" in err and "--run latest" in err
    child = store.search_runs([store.get_experiment_by_name(EXPERIMENT).experiment_id],
                              f"tags.mlflow.parentRunId = '{trained['run_id']}'")[0]
    assert main(["report", "--run", child.info.run_id, "--out", "x.html"]) == 2
    err = capsys.readouterr().err
    assert "child run" in err and f"--run {trained['run_id']}" in err
    assert not Path("x.html").exists()


@pytest.mark.slow
def test_report_explains_absent_parts_instead_of_failing(trained, store, tmp_path):
    record = fetch_run(store, trained["run_id"], tmp_path)
    for name in ("churn", "personas", "journey"):
        del record.children[name]
    record.summary["skipped"] = {"models.churn": "churn: 12 positives in the training snapshots, params require "
                                                 "propensity.min_positives=30",
                                 "models.personas": "no persona feature <present>"}
    page = build_html(record)
    for heading in SECTIONS.values():
        assert f">{html.escape(heading)}</h2>" in page
    assert "This model was not trained: churn: 12 positives" in page
    assert "No personas: no persona feature &lt;present&gt;" in page  # text from the run is escaped
    assert "No journey-stage model" in page
    assert "Of the 10% of customers the model ranks highest" in page  # purchase is still reported


# --------------------------------------------------------------------------- the real browser


def _browser() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        reason = ("no Chromium on PATH (tried " + ", ".join(BROWSERS) + "); install it with "
                  "`apt-get install -y chromium`")
        if os.environ.get("PIPELINE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PIPELINE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return found


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def browser_check(browser: str, page: Path, work: Path) -> dict:
    """Loads a copy of the page with CHECK_SCRIPT in headless Chromium and returns what the script saw."""
    probe = work / f"check-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    done = _headless(browser, work / "profile-dom", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"the check script left no result (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_the_browser_check_notices_a_broken_image(tmp_path):
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><h2>Heading</h2><img alt="broken" src="data:image/png;base64,AAAA">'
                    "</body></html>")
    seen = browser_check(browser, page, tmp_path)
    assert seen["headings"][0]["text"] == "Heading"
    assert seen["images"] == [{"alt": "broken", "complete": True, "width": 0, "height": 0}]


@pytest.mark.slow
def test_report_renders_in_a_headless_browser_with_every_heading_and_image(report_file, tmp_path):
    browser = _browser()
    seen = browser_check(browser, report_file, tmp_path)
    assert [h["text"] for h in seen["headings"]] == list(SECTIONS.values())
    assert all(h["width"] > 0 and h["height"] > 0 for h in seen["headings"])
    assert len(seen["images"]) >= 14
    broken = [image["alt"] for image in seen["images"] if not (image["complete"] and image["width"] > 0)]
    assert broken == []
    shot = tmp_path / "report.png"
    done = _headless(browser, tmp_path / "profile-shot", "--window-size=1280,2400", "--hide-scrollbars",
                     f"--screenshot={shot}", report_file.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank canvas
