"""`python -m pipeline report`: one self-contained HTML page for non-technical readers, made from a training run.

Everything on the page comes from what the MLflow training run recorded (summary, child-run
metrics, tables and figures), so a report can be written for any past run without its data. The
page embeds its images, loads nothing from elsewhere, and is logged back to the run as report.html.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.explain import humanise_feature
from pipeline import tracking
from pipeline.io import write_text_atomic

log = logging.getLogger(__name__)

REPORT_ARTIFACT = "report.html"
PARENT_TAG = "mlflow.parentRunId"
TARGET_NAMES = {"purchase": "purchase likelihood", "churn": "churn risk"}
SECTIONS: dict[str, str] = {  # anchor -> heading, in page order
    "glance": "At a glance",
    "segments": "Who the customers are",
    "card-purchase": "Model card: purchase likelihood",
    "card-churn": "Model card: churn risk",
    "drivers": "What drives the scores",
    "persona-drivers": "Drivers per persona",
    "examples": "Example customers",
    "journey": "Journey stages: model against the heuristic",
    "reading": "How to read this report",
}
# Quality grade of a propensity model on its out-of-time test, first row met wins:
# (grade, lowest ROC-AUC, lowest ROC-AUC gain over the best simple baseline, meaning).
# The baselines rank by days since the last event or by RFM score; a model that cannot beat
# them adds nothing a spreadsheet rule would not give.
GRADES: tuple[tuple[str, float, float, str], ...] = (
    ("A", 0.80, 0.03, "strong: ranks customers well and clearly better than simple rules"),
    ("B", 0.70, 0.01, "good: useful for targeting, better than simple rules"),
    ("C", 0.60, 0.00, "fair: better than chance and no worse than simple rules; use with care"),
    ("D", 0.00, -math.inf, "weak: close to chance or worse than a simple rule; do not base decisions on it"),
)
DIMENSIONS = {  # segment_summary.csv dimension -> heading, in page order
    "persona": "Personas", "lifecycle": "Lifecycle status", "rfm_cell": "RFM cell (recency, frequency, money)",
    "journey_stage": "Journey stage", "usage_tier": "Usage tier", "user_status": "User status",
    "engagement_level": "Engagement level", "satisfaction": "Satisfaction", "loyalty": "Loyalty",
}
_WORDS = {  # target -> (what happened, who, did not happen)
    "purchase": ("bought", "buyers", "did not buy"),
    "churn": ("churned", "churners", "stayed"),
}
_DOWNLOADED = (".csv", ".png", ".json", ".yaml", ".txt")


@dataclass
class ChildRecord:
    """What one child run of a training run recorded."""

    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """What a training run recorded: the parent's tags, metrics and summary, and each child run by name."""

    run_id: str
    run_name: str
    start_time: pd.Timestamp
    tags: dict[str, str]
    metrics: dict[str, float]
    summary: dict[str, Any]
    children: dict[str, ChildRecord]


# --------------------------------------------------------------------------- finding and reading the run


def resolve_run(client: Any, experiment: str, ref: str) -> str:
    """Returns the training run to report on: `latest` (newest finished parent run) or a parent run id."""
    from mlflow.exceptions import MlflowException

    listing = (f"list training runs with `mlflow runs list --experiment-id <id>` (experiment {experiment!r}) or "
               f"open `mlflow ui --backend-store-uri {client.tracking_uri}`")
    if ref == "latest":
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise LookupError(f"no experiment {experiment!r} at {client.tracking_uri}: run `python -m pipeline train` "
                              "first, or point MLFLOW_TRACKING_URI / tracking.uri at the store that has it")
        token = None
        while True:
            page = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"], max_results=500, page_token=token)
            for candidate in page:
                if PARENT_TAG not in candidate.data.tags:
                    return candidate.info.run_id
            token = page.token
            if not token:
                break
        raise LookupError(f"no finished training run in experiment {experiment!r} at {client.tracking_uri}; "
                          "run `python -m pipeline train` first")
    try:
        run = client.get_run(ref)
    except MlflowException as exc:
        raise LookupError(f"no MLflow run {ref!r} at {client.tracking_uri}; {listing}, or pass --run latest") from exc
    if PARENT_TAG in run.data.tags:
        parent = run.data.tags[PARENT_TAG]
        raise ValueError(f"run {ref!r} ({run.info.run_name}) is a child run of training run {parent!r}; "
                         f"pass the parent: --run {parent}")
    names = {a.path for a in client.list_artifacts(ref)}
    if "summary.json" not in names:
        raise ValueError(f"run {ref!r} ({run.info.run_name}) is not a training run (it has no summary.json); {listing}")
    return ref


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """Turns off MLflow's per-file download progress bars (dozens of small files would flood the terminal)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def fetch_run(client: Any, run_id: str, folder: Path) -> RunRecord:
    """Downloads what the training run and its child runs recorded into `folder` and reads it."""
    with _quiet_downloads():
        return _fetch_run(client, run_id, folder)


def _fetch_run(client: Any, run_id: str, folder: Path) -> RunRecord:
    run = client.get_run(run_id)
    parent = _read_artifacts(client, run_id, folder / "parent")
    children: dict[str, ChildRecord] = {}
    token = None
    while True:
        page = client.search_runs([run.info.experiment_id], f"tags.{PARENT_TAG} = '{run_id}'",
                                  max_results=500, page_token=token)
        for child in page:
            record = _read_artifacts(client, child.info.run_id, folder / child.info.run_id)
            record.metrics = dict(child.data.metrics)
            children[child.info.run_name] = record
        token = page.token
        if not token:
            break
    return RunRecord(run_id, run.info.run_name or run_id, pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
                     dict(run.data.tags), dict(run.data.metrics), parent.documents.get("summary.json", {}), children)


def _read_artifacts(client: Any, run_id: str, folder: Path) -> ChildRecord:
    record = ChildRecord()
    folder.mkdir(parents=True, exist_ok=True)
    for item in client.list_artifacts(run_id):
        if item.is_dir or not item.path.endswith(_DOWNLOADED):
            continue
        path = Path(client.download_artifacts(run_id, item.path, str(folder)))
        name = Path(item.path).name
        if name.endswith(".csv"):
            record.tables[name] = pd.read_csv(path, index_col=0)
        elif name.endswith(".png"):
            record.figures[name] = path.read_bytes()
        elif name.endswith(".json"):
            record.documents[name] = json.loads(path.read_text(encoding="utf-8"))
        else:
            record.documents[name] = path.read_text(encoding="utf-8")
    return record


# --------------------------------------------------------------------------- small formatting helpers


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _pct(value: Any, digits: int = 0) -> str:
    number = _num(value)
    return "–" if math.isnan(number) else f"{100 * number:.{digits}f}%"


def _int(value: Any) -> str:
    number = _num(value)
    return "–" if math.isnan(number) else f"{number:,.0f}"


def _day(text: Any) -> str:
    try:
        return str(pd.Timestamp(str(text)).date())
    except (ValueError, TypeError):
        return str(text)


def _p(text: str) -> str:
    return f"<p>{text}</p>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _image(png: bytes | None, alt: str) -> str:
    if not png:
        return _note(f"The run has no figure for {alt}.")
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f"<figcaption>{_e(alt)}</figcaption></figure>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Renders a table; header cells are escaped here, body cells must arrive escaped (they may hold markup)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bar(share: Any) -> str:
    number = _num(share)
    if math.isnan(number):
        return "–"
    width = max(0.0, min(100.0, 100 * number))
    bar = f'<span class="bar"><span style="width:{width:.1f}%"></span></span>'
    return f'<span class="share">{bar} {_pct(number)}</span>'


# --------------------------------------------------------------------------- grading and plain words


def best_baseline(metrics: dict[str, float]) -> tuple[str | None, float]:
    """Returns the best simple baseline's name and ROC-AUC from a propensity child run's metrics."""
    found = {name: _num(metrics.get(f"baseline.{name}_roc_auc")) for name in ("recency", "rfm")}
    found = {k: v for k, v in found.items() if not math.isnan(v)}
    if not found:
        return None, math.nan
    name = max(found, key=found.get)
    return name, found[name]


def grade(roc_auc: float, baseline_auc: float) -> tuple[str, str]:
    """Returns the quality grade and its meaning (see GRADES); no baseline counts as a coin flip (0.5)."""
    baseline = 0.5 if math.isnan(baseline_auc) else baseline_auc
    if math.isnan(roc_auc):
        return "D", "not measurable: the test snapshot lacks one of the two outcomes"
    for letter, lowest_auc, lowest_gain, meaning in GRADES:
        if roc_auc >= lowest_auc and roc_auc - baseline >= lowest_gain:
            return letter, meaning
    return GRADES[-1][0], GRADES[-1][3]


def outcome_definition(target: str, labels: dict[str, Any]) -> str:
    """Says in words what the model predicts, from the label settings in the model card."""
    horizon = labels.get("horizon_days", "?")
    gap = int(_num(labels.get("gap_days", 0)) or 0)
    after = f"{horizon} days" + (f" starting {gap} days" if gap else "")
    if target == "purchase":
        return f"whether a customer makes at least one purchase in the {after} after the snapshot"
    activity = "purchase" if labels.get("churn_definition") == "no_purchase" else "activity"
    return (f"whether a customer who was active in the {labels.get('active_lookback_days', '?')} days before the "
            f"snapshot has no {activity} at all in the {after} after it")


def metric_sentences(target: str, metrics: dict[str, float], gains: pd.DataFrame | None) -> list[str]:
    """Returns the model's out-of-time test results as plain sentences (already HTML-escaped)."""
    did, who, _ = _WORDS.get(target, ("had the outcome", "positives", "did not"))
    out = []
    base = _num(metrics.get("test.base_rate"))
    n = _num(metrics.get("test.n"))
    if not math.isnan(base):
        out.append(f"On the test snapshot {_int(n)} customers were scored; {_pct(base, 1)} of them {did}.")
    if gains is not None and len(gains):
        top = gains.iloc[0]
        if not math.isnan(_num(top.get("rate"))):
            out.append(f"Of the 10% of customers the model ranks highest, {_pct(top['rate'])} {did}, "
                       f"{_num(top['lift']):.1f} times the average.")
        if len(gains) >= 3 and not math.isnan(_num(gains.iloc[2].get("cumulative_capture"))):
            out.append(f"The top 30% by score hold {_pct(gains.iloc[2]['cumulative_capture'])} of all {who}.")
    auc = _num(metrics.get("test.roc_auc"))
    if not math.isnan(auc):
        name, baseline = best_baseline(metrics)
        text = (f"Take one customer who {did} and one who did not: the model gives the first a higher score "
                f"{_pct(auc)} of the time (ROC-AUC {auc:.3f}; a coin flip gets 50%")
        if name:
            rule = "days since the last visit" if name == "recency" else "the RFM score"
            text += f", ranking by {rule} alone gets {_pct(baseline)}"
        out.append(_e(text + ")."))
    ece = _num(metrics.get("test.ece"))
    if not math.isnan(ece):
        out.append(f"The probabilities can be read at face value to within about {100 * ece:.1f} percentage points "
                   "on average (expected calibration error).")
    return out


# --------------------------------------------------------------------------- sections


def _section(anchor: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(SECTIONS[anchor])}</h2>\n{body}\n</section>'


def _skipped(record: RunRecord, key: str) -> str | None:
    return (record.summary.get("skipped") or {}).get(key)


def glance(record: RunRecord) -> str:
    meta = record.summary.get("metadata") or {}
    data = record.children.get("data", ChildRecord()).metrics
    cutoffs = meta.get("cutoffs") or []
    parts = [_p(_e(f"Training run {record.run_name} ({record.run_id}), started {record.start_time:%Y-%m-%d %H:%M} UTC. "
                   f"It learned from {_int(data.get('events'))} events of {_int(data.get('customers'))} customers "
                   f"between {_day(meta.get('first_event', '?'))} and {_day(meta.get('last_event', '?'))} "
                   f"({_int(data.get('history_days'))} days)."))]
    if cutoffs:
        parts.append(_p(_e(f"Customers were looked at on {len(cutoffs)} snapshot dates "
                           f"({', '.join(_day(c) for c in cutoffs)}); the last one is the out-of-time test: the "
                           "models never saw it while learning, so its results are what to expect on new data.")))
    rows = []
    for target, name in TARGET_NAMES.items():
        child = record.children.get(target)
        if child is None:
            rows.append([_e(name), "not trained", _e(_skipped(record, f"models.{target}") or "no record in this run")])
            continue
        auc = _num(child.metrics.get("test.roc_auc"))
        letter, meaning = grade(auc, best_baseline(child.metrics)[1])
        rows.append([_e(name), f'<span class="grade grade-{letter}">{letter}</span>', _e(meaning)])
    parts.append(_table(["model", "grade", "meaning"], rows))
    promotion = record.tags.get("promotion")
    if promotion:
        parts.append(_p(_e(f"Registry decision: {promotion}.")))
    skipped = record.summary.get("skipped") or {}
    if skipped:
        items = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in sorted(skipped.items()))
        parts.append(_p("Parts left out of this run, and why:") + f"<ul>{items}</ul>")
    return _section("glance", "\n".join(parts))


def segments_section(record: RunRecord) -> str:
    seg = record.children.get("segments", ChildRecord())
    summary = seg.tables.get("segment_summary.csv")
    notes = seg.documents.get("segment_summary.json") or {}
    profiles = record.children.get("personas", ChildRecord()).tables.get("profiles.csv")
    definitions = seg.tables.get("definitions.csv")
    horizon = _horizon(record)
    parts = []
    if summary is None:
        parts.append(_note("This run recorded no segment summary (it was trained before the report existed); "
                           "retrain to see segment sizes and revenue."))
        return _section("segments", "\n".join(parts))
    parts.append(_p(_e("Every customer seen before the test snapshot is counted once per view below. "
                       + _revenue_words(notes.get("revenue_feature"))
                       + f"'Bought' and 'churned' are what customers actually did in the {horizon} days after it.")))
    if profiles is not None and "top_features" in profiles.columns:
        rows = [[_e(name), _bar(row.get("share")), _int(row.get("size")), _int(row.get("revenue")),
                 _pct(row.get("purchase_rate")), _pct(row.get("churn_rate")), _e(row.get("top_features", ""))]
                for name, row in profiles.iterrows()]
        parts.append("<h3>Personas</h3>" + _p("Personas are groups of customers who behave alike, found by "
                                               "clustering; the last column says what sets each apart "
                                               "(σ: standard deviations above or below the typical customer).")
                     + _table(["persona", "share", "customers", "revenue", "bought", "churned", "stands out by"], rows))
    elif _skipped(record, "models.personas"):
        parts.append("<h3>Personas</h3>" + _note(f"No personas: {_skipped(record, 'models.personas')}"))
    rules = {}
    if definitions is not None and {"segment", "value", "rule"} <= set(definitions.columns):
        rules = {(str(r["segment"]), str(r["value"])): str(r["rule"]) for _, r in definitions.iterrows()}
    for dimension, heading in DIMENSIONS.items():
        if dimension == "persona" and profiles is not None:
            continue
        rows_of = summary[summary["dimension"] == dimension]
        if rows_of.empty:
            reason = _skipped(record, f"segments.{dimension}")
            if reason:
                parts.append(f"<h3>{_e(heading)}</h3>" + _note(f"Not computed: {reason}"))
            continue
        rows = [[_e(r["segment"]), _bar(r["share"]), _int(r["customers"]), _int(r["revenue"]),
                 _pct(r["purchase_rate"]), _pct(r["churn_rate"]), _e(rules.get((dimension, str(r["segment"])), ""))]
                for _, r in rows_of.iterrows()]
        header = ["segment", "share", "customers", "revenue", "bought", "churned", "rule"]
        if not any(row[-1] for row in rows):  # no written rule (persona, journey stage): drop the column
            header, rows = header[:-1], [row[:-1] for row in rows]
        parts.append(f"<h3>{_e(heading)}</h3>" + _table(header, rows))
    return _section("segments", "\n".join(parts))


def _revenue_words(column: str | None) -> str:
    if not column:
        return "The data has no revenue, so no revenue is shown. "
    window = re.fullmatch(r"value__revenue_(\d+)d", column)
    if window:
        return f"Revenue is what customers spent in the {window.group(1)} days before the snapshot. "
    return f"Revenue is {humanise_feature(column)} before the snapshot. "


def _horizon(record: RunRecord) -> str:
    for target in TARGET_NAMES:
        card = record.children.get(target, ChildRecord()).documents.get("model_card.json")
        if card:
            return str(card.get("labels", {}).get("horizon_days", "?"))
    return "?"


def model_card(record: RunRecord, target: str) -> str:
    anchor = f"card-{target}"
    child = record.children.get(target)
    if child is None:
        reason = _skipped(record, f"models.{target}") or "this run has no record of it"
        return _section(anchor, _note(f"This model was not trained: {reason}"))
    card = child.documents.get("model_card.json") or {}
    m = child.metrics
    parts = []
    auc = _num(m.get("test.roc_auc"))
    letter, meaning = grade(auc, best_baseline(m)[1])
    parts.append(f'<p><span class="grade grade-{letter}">{letter}</span> Quality grade: {_e(meaning)}.</p>')
    if card:
        parts.append(_p(_e(f"It predicts {outcome_definition(target, card.get('labels', {}))}.")))
        rows = card.get("rows", {})
        training = ", ".join(_day(c) for c in card.get("training_snapshots", []))
        parts.append("<h3>Data window</h3>" + _p(_e(
            f"Learned from {_int(rows.get('training'))} customer snapshots taken on {training}; tuned and "
            f"calibrated on {_int(rows.get('validation'))} ({card.get('validation_scheme', '')}); tested on "
            f"{_int(rows.get('test'))} customers as of {_day(card.get('test_snapshot'))}, a later date it never saw.")))
        elig = card.get("eligibility", {})
        data = record.children.get("data", ChildRecord()).metrics
        checks = [("customers with the outcome", elig.get("positives"), elig.get("min_positives")),
                  ("customers without it", elig.get("negatives"), elig.get("min_negatives")),
                  ("days of history", data.get("history_days"), elig.get("min_history_days")),
                  ("snapshot dates", data.get("snapshots"), elig.get("min_snapshots"))]
        erows = [[_e(what), _int(have), _int(need), "yes" if _num(have) >= _num(need) else "no"]
                 for what, have, need in checks]
        parts.append("<h3>Eligibility</h3>" + _p("A model is only trained when the data meets every minimum "
                                                 "in params (models.propensity.min_*):")
                     + _table(["", "this run", "minimum", "met"], erows))
    else:
        parts.append(_note("This run recorded no model card (it was trained before the report existed)."))
    parts.append("<h3>Results in plain words</h3><ul>"
                 + "".join(f"<li>{s}</li>" for s in metric_sentences(target, m, child.tables.get("gains.csv")))
                 + "</ul>")
    table = child.tables.get("buckets.csv")
    if table is not None:
        did = _WORDS[target][0]
        rows = [[_e(bucket), _e(f"percentile {int(r['percentile_above'])}–{int(r['percentile_up_to'])}"),
                 _int(r["customers"]), _pct(r["mean_predicted"], 1), _pct(r["actual_rate"], 1)]
                for bucket, r in table.iterrows()]
        parts.append("<h3>Actual rate per bucket</h3>" + _p(_e(
            "Scored customers get a bucket by their score percentile; this is how many in each bucket actually "
            f"{did} on the test snapshot.")) + _table(["bucket", "scores", "customers", "predicted", f"actually {did}"],
                                                      rows))
    parts.append("<h3>Calibration and lift</h3>" + _p(
        "Calibration: each dot is a group of customers with similar predicted probability; on the dashed line "
        "the prediction matches what happened. Lift: how many times the average rate each tenth of customers "
        "(ranked by score) reached; the line is the share of all outcomes caught so far.")
                 + '<div class="row">' + _image(child.figures.get("calibration.png"), f"{target}: calibration curve")
                 + _image(child.figures.get("gains.png"), f"{target}: lift and gains chart") + "</div>")
    return _section(anchor, "\n".join(parts))


def drivers_section(record: RunRecord) -> str:
    parts = [_p("SHAP values split each customer's score into the contribution of every input. The bar chart "
                "ranks inputs by their average effect; in the beeswarm each dot is a customer, right of the line "
                "raises the score, and red means a high value of that input. The dependence plots show how the "
                "score changes along the three most important inputs.")]
    for target, name in TARGET_NAMES.items():
        child = record.children.get(target)
        parts.append(f"<h3>{_e(name.capitalize())}</h3>")
        if child is None:
            parts.append(_note(f"Not trained: {_skipped(record, f'models.{target}') or 'no record in this run'}"))
            continue
        importance = child.tables.get("shap_importance.csv")
        if importance is not None and len(importance):
            items = []
            for _, row in importance.head(5).iterrows():
                direction = _num(row.get("direction"))
                how = ("higher values raise it" if direction > 0 else "higher values lower it" if direction < 0
                       else "its effect depends on the value")
                name = humanise_feature(row["feature"])
                items.append(f"<li>{_e(name)}: {_pct(row.get('share'))} of the explained effect; {_e(how)}</li>")
            parts.append(_p(f"The five inputs that move {_e(name)} most:") + "<ul>" + "".join(items) + "</ul>")
        parts.append('<div class="row">'
                     + _image(child.figures.get("shap_importance.png"), f"{target}: SHAP importance")
                     + _image(child.figures.get("shap_beeswarm.png"), f"{target}: SHAP beeswarm") + "</div>")
        dependence = sorted((f for f in child.figures if f.startswith("dependence_")), key=_rank)
        if dependence:
            parts.append('<div class="row">' + "".join(
                _image(child.figures[f], f"{target}: dependence on {humanise_feature(f.split('__', 1)[-1][:-4])}")
                for f in dependence) + "</div>")
        else:
            parts.append(_note("This run recorded no dependence plots."))
    return _section("drivers", "\n".join(parts))


def _rank(name: str) -> int:
    found = re.match(r"dependence_(\d+)__", name)
    return int(found.group(1)) if found else 0


def persona_drivers_section(record: RunRecord) -> str:
    parts = []
    profiles = record.children.get("personas", ChildRecord()).tables.get("profiles.csv")
    if profiles is None:
        reason = _skipped(record, "models.personas") or "this run has no personas"
        return _section("persona-drivers", _note(f"No personas: {reason}"))
    parts.append(_p("For each persona, the inputs that push its members' scores up or down most compared with the "
                    "average customer (mean SHAP value over the persona's test customers)."))
    for target, name in TARGET_NAMES.items():
        child = record.children.get(target)
        table = child.tables.get("drivers_by_persona.csv") if child is not None else None
        parts.append(f"<h3>{_e(name.capitalize())}</h3>")
        if table is None:
            parts.append(_note("Not recorded in this run." if child is not None else
                               f"Not trained: {_skipped(record, f'models.{target}') or 'no record in this run'}"))
            continue
        rows = []
        for persona, values in table.iterrows():
            values = pd.to_numeric(values, errors="coerce").dropna()
            up = values[values > 0].sort_values(ascending=False).head(3)
            down = values[values < 0].sort_values().head(3)
            rows.append([_e(persona), _e(", ".join(humanise_feature(f) for f in up.index) or "–"),
                         _e(", ".join(humanise_feature(f) for f in down.index) or "–")])
        parts.append(_table(["persona", f"raise {name}", f"lower {name}"], rows))
    return _section("persona-drivers", "\n".join(parts))


def examples_section(record: RunRecord) -> str:
    parts = [_p("A few customers from the test snapshot, from the highest score to the lowest, with the three "
                "inputs that moved their score most (reason codes) and what they actually did.")]
    for target, name in TARGET_NAMES.items():
        child = record.children.get(target)
        table = child.tables.get("examples.csv") if child is not None else None
        parts.append(f"<h3>{_e(name.capitalize())}</h3>")
        if table is None or table.empty:
            parts.append(_note("Not recorded in this run." if child is not None else
                               f"Not trained: {_skipped(record, f'models.{target}') or 'no record in this run'}"))
            continue
        did, _, did_not = _WORDS[target]
        context = [c for c in ("persona", "journey_stage") if c in table.columns]
        reasons = sorted(c for c in table.columns if c.startswith("reason_") and c.endswith("_text"))
        rows = []
        for customer, row in table.iterrows():
            listed = "".join(f"<li>{_e(row[c])}</li>" for c in reasons if isinstance(row[c], str) and row[c])
            outcome = did if _num(row.get("outcome")) == 1 else did_not
            rows.append([_e(customer), *(_e(row[c]) for c in context), _pct(row.get("probability"), 1),
                         _int(row.get("percentile")), _e(outcome), f"<ul>{listed}</ul>"])
        parts.append(_table(["customer", *(c.replace("_", " ") for c in context), "score", "percentile",
                             "what happened", "reasons"], rows))
    return _section("examples", "\n".join(parts))


def journey_section(record: RunRecord) -> str:
    child = record.children.get("journey")
    if child is None:
        return _section("journey", _note("No journey-stage model: the data has none of the journey inputs "
                                         "(decayed event counts), so customers get no journey stage."))
    m = child.metrics
    if "model.accuracy" not in m:
        return _section("journey", _note(
            "Journey stages come from weighted rules, because the run had no known stages to learn from or check "
            "against (stage labels: models.stage_labels or truth_stages.parquet next to the data)."))
    parts = [_p(_e(
        f"On {_int(m.get('n_test'))} customers whose true stage is known and that the model did not learn from, "
        f"the model gets the stage right {_pct(m.get('model.accuracy'))} of the time; the simple rule 'the stage "
        f"of the last thing they did' gets {_pct(m.get('heuristic.accuracy'))}. Averaged over stages, so that small "
        f"stages count as much as big ones (macro-F1), the model scores {_num(m.get('model.macro_f1')):.2f} and the "
        f"rule {_num(m.get('heuristic.macro_f1')):.2f}. Rows are the true stage, columns the predicted one; "
        "the diagonal is right."))]
    parts.append('<div class="row">' + _image(child.figures.get("confusion_model.png"), "journey stage: model")
                 + _image(child.figures.get("confusion_heuristic.png"), "journey stage: last-event heuristic")
                 + "</div>")
    return _section("journey", "\n".join(parts))


def reading_section() -> str:
    rows = [[f'<span class="grade grade-{g}">{g}</span>', f"{auc:.2f}" if auc else "–",
             f"{gain:+.2f}" if math.isfinite(gain) else "–", _e(meaning)] for g, auc, gain, meaning in GRADES]
    glossary = {
        "Snapshot": "the customers as they were on one date, described only by what they did before it.",
        "Out-of-time test": "results measured on the latest snapshot, which the model never saw while learning.",
        "ROC-AUC": "how often the model ranks a customer with the outcome above one without it (0.5 = chance).",
        "Lift": "how many times the average rate a group of top-scored customers reaches.",
        "Calibration": "whether a predicted 20% really means about 20 in 100.",
        "SHAP value": "how much one input moved one customer's score, up or down.",
        "Reason code": "the inputs with the largest SHAP values for one customer, in words.",
    }
    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in glossary.items())
    body = (_p("Quality grades are given by the first row whose two conditions the model meets on the "
               "out-of-time test: its ROC-AUC, and its ROC-AUC gain over the best simple rule (ranking customers "
               "by days since their last visit, or by RFM score).")
            + _table(["grade", "ROC-AUC at least", "gain over the simple rule at least", "meaning"], rows)
            + f"<ul>{items}</ul>")
    return _section("reading", body)


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1.5rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #4c72b0;padding-bottom:.2rem;margin-top:2.5rem}
nav a{margin-right:.8rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
td ul{margin:0;padding-left:1rem}th{background:#f3f5f9}
.row{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:.5rem 0}figure img{max-width:520px;width:100%}
figcaption{font-size:.8rem;color:#666}.note{color:#775;font-style:italic}
.share{white-space:nowrap}.bar{display:inline-block;width:80px;height:.7rem;background:#eee;vertical-align:middle}
.bar span{display:block;height:100%;background:#4c72b0}
.grade{display:inline-block;min-width:1.6rem;text-align:center;font-weight:bold;border-radius:4px;color:#fff;
padding:0 .3rem}.grade-A{background:#2e7d32}.grade-B{background:#558b2f}.grade-C{background:#f9a825}
.grade-D{background:#c62828}
"""

BUILDERS: tuple[Callable[[RunRecord], str], ...] = (
    glance, segments_section, lambda r: model_card(r, "purchase"), lambda r: model_card(r, "churn"),
    drivers_section, persona_drivers_section, examples_section, journey_section, lambda r: reading_section(),
)


def build_html(record: RunRecord) -> str:
    """Returns the whole report page for a training run (no external resources: images are data URIs)."""
    nav = "".join(f'<a href="#{anchor}">{_e(heading)}</a>' for anchor, heading in SECTIONS.items())
    body = "\n".join(builder(record) for builder in BUILDERS)
    title = f"Customer segmentation report: {record.run_name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{_e(title)}</h1>"
            f'<p class="note">Made from MLflow run {_e(record.run_id)}.</p><nav>{nav}</nav>\n{body}\n</body></html>\n')


def write_report(params: Any, ref: str, out: Path) -> tuple[str, Path]:
    """Writes the report of a training run (`latest` or a run id) to `out` and logs it to that run."""
    import mlflow

    tracking.configure(params.tracking)
    client = mlflow.MlflowClient()
    run_id = resolve_run(client, params.tracking.train_experiment, ref)
    with tempfile.TemporaryDirectory() as tmp:
        record = fetch_run(client, run_id, Path(tmp))
        page = build_html(record)
        write_text_atomic(page, Path(out))
        staged = Path(tmp) / REPORT_ARTIFACT  # the artifact keeps its name whatever --out is called
        staged.write_text(page, encoding="utf-8")
        client.log_artifact(run_id, str(staged))
    return run_id, Path(out)


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.cli import _load

    params = _load(args)
    run_id, path = write_report(params, args.run, Path(args.out))
    print(f"wrote {path} for training run {run_id}; logged to the run as artifact {REPORT_ARTIFACT}")
    return 0


def register_command(sub: argparse._SubParsersAction, common: Callable[..., None],
                     commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    p = sub.add_parser(
        "report", help="write the stakeholder report (one HTML file) of a training run",
        description="Write one self-contained HTML page for non-technical readers from what an MLflow training "
        "run recorded: segment sizes and revenue, a model card per model, what drives the scores, drivers per "
        "persona, example customers with reason codes and the journey-stage comparison. The page is also logged "
        "to the run as report.html.",
    )
    common(p, data=False)
    p.add_argument("--run", metavar="latest|RUN_ID", default="latest",
                   help="training run to report on: 'latest' (newest finished training run, default) or the id of a "
                   "parent training run")
    p.add_argument("--out", metavar="FILE", default="report.html", help="HTML file to write (default: ./report.html)")
    commands["report"] = cmd_report
