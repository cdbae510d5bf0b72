"""Typed configuration: params.yaml -> nested pydantic models; every part receives only its section.

Unknown keys and bad values fail with the key path and, where the key has a fixed set of values,
the allowed ones. `--set a.b.c=value` overrides are applied before validation, so they are checked
exactly like the file.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.config import FeaturesConfig
from features.labels import LabelsConfig
from features.schema import EVENT_TYPES, TABLE_COLUMNS, check_timezone
from models.activation import Audience, TransitionsConfig, default_audiences
from models.drift import DriftConfig
from models.journey import JourneyModelConfig
from models.personas import PersonasConfig
from models.propensity import PropensityConfig
from models.segments import SegmentsConfig
from pipeline.simulate import SimulateConfig
from pipeline.tracking import TrackingConfig

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """A params file or override that does not fit the config model; the message names the keys."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunConfig(_Section):
    seed: int = Field(42, description="Seed for every random choice (sampling, tuning, clustering).")
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="Where features are computed: in-process DuckDB, or PySpark for data beyond one machine."
    )
    spark_master: str = Field("local[*]", description="Spark master URL when engine is spark.")
    spark_conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Spark settings for the session when engine is spark, e.g. {spark.driver.memory: 8g, "
        "spark.sql.shuffle.partitions: 64}. Settings read when Spark starts (driver memory) take effect only "
        "if no Spark session is running in the process yet.",
    )
    spark_staging_dir: str | None = Field(
        None,
        description="Directory the driver and every executor can read (a shared mount) where the validated "
        "tables, and the feature rows `score` spreads, are written as Parquet for Spark to read. Empty: a "
        "temporary directory with a local master; with another master, they go through the driver's memory.",
    )
    reference_time: datetime | None = Field(
        None,
        description="The run's 'now': events after it are future events (see validation.future_event). "
        "Empty means the current time. Naive values are read as UTC.",
    )

    @field_validator("reference_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    def now(self) -> datetime:
        """Returns the reference time, or the current UTC time when none is configured."""
        return self.reference_time or datetime.now(timezone.utc)


class CsvOptions(_Section):
    delimiter: str = Field(",", description="Field separator of CSV input.")
    header: bool = Field(True, description="Whether the first CSV line holds column names.")


class TableMapping(_Section):
    path: str | None = Field(
        None,
        description="File, directory or glob of this table. Empty: found in --data / data.path "
        "(a file named <table>.parquet|.csv|.csv.gz, or a <table>/ folder).",
    )
    table: str | None = Field(
        None, description="Table name when the source is a DuckDB database file (.duckdb / .db)."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Your column name -> canonical column name, e.g. {CustomerID: customer_id}. "
        "Columns already named canonically need no entry; unmapped extra columns are kept on "
        "customers (traits) and ignored elsewhere.",
    )

    def _check_targets(self, table: str) -> None:
        allowed = [c.name for c in TABLE_COLUMNS[table]]
        if table == "customers":
            return  # customers keep arbitrary trait columns
        bad = sorted(v for v in self.columns.values() if v not in allowed)
        if bad:
            raise ValueError(
                f"data.{table}.columns maps onto unknown canonical column(s) {bad}; allowed: {allowed}"
            )
        seen: dict[str, str] = {}
        for src, dst in self.columns.items():
            if dst in seen:
                raise ValueError(
                    f"data.{table}.columns maps both {seen[dst]!r} and {src!r} onto {dst!r}; keep one"
                )
            seen[dst] = src


class EventsMapping(TableMapping):
    event_types: dict[str, str] = Field(
        default_factory=dict,
        description="Your event name -> canonical event type, e.g. {order_completed: purchase}. "
        "Names already canonical need no entry.",
    )
    default_event_type: str | None = Field(
        None,
        description="Event type for every row when the data has no event-type column "
        "(a transactions-only export: set it to purchase).",
    )
    negative_quantity_as_return: bool = Field(
        False,
        description="Turn purchase rows with negative quantity or revenue (cancellations, credit "
        "notes) into return events with positive amounts, instead of rejecting them as negative values.",
    )

    @model_validator(mode="after")
    def _known_types(self) -> "EventsMapping":
        self._check_targets("events")
        allowed = list(EVENT_TYPES)
        bad = sorted({v for v in self.event_types.values() if v not in EVENT_TYPES})
        if bad:
            raise ValueError(f"data.events.event_types maps onto unknown event type(s) {bad}; allowed: {allowed}")
        if self.default_event_type is not None and self.default_event_type not in EVENT_TYPES:
            raise ValueError(
                f"data.events.default_event_type {self.default_event_type!r} is not an event type; allowed: {allowed}"
            )
        return self


class CustomersMapping(TableMapping):
    pass


class CatalogMapping(TableMapping):
    @model_validator(mode="after")
    def _known(self) -> "CatalogMapping":
        self._check_targets("catalog")
        return self


class DemoConfig(_Section):
    customers: int = Field(2000, ge=50, description="Customers in the cached demo data used when no data is configured.")
    days: int = Field(365, ge=60, description="Days of history in the demo data.")
    seed: int = Field(7, description="Seed of the demo data.")


class DataConfig(_Section):
    path: str | None = Field(
        None,
        description="Default input when --data is not given: an events file (CSV, CSV.gz, Parquet), "
        "a glob, a directory with events/customers/catalog files, or a DuckDB database. "
        "Empty: the built-in demo data (simulated once and cached).",
    )
    timezone: str = Field(
        "UTC", description="IANA timezone of timestamps without an offset; values with an offset are converted to UTC."
    )
    timestamp_format: str | None = Field(
        None,
        description="strftime format of timestamp text, or epoch_s / epoch_ms for numbers. "
        "Empty: ISO 8601 and common formats are recognised.",
    )
    csv: CsvOptions = Field(default_factory=CsvOptions, description="How CSV input is read.")
    events: EventsMapping = Field(default_factory=EventsMapping, description="Where events come from and how they map.")
    customers: CustomersMapping = Field(default_factory=CustomersMapping, description="Optional customers table.")
    catalog: CatalogMapping = Field(default_factory=CatalogMapping, description="Optional product catalog.")
    demo: DemoConfig = Field(default_factory=DemoConfig, description="The demo data used when no input is configured.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value, "data.timezone")


RowPolicy = Literal["drop", "fail"]


class ValidationConfig(_Section):
    """What to do with each kind of bad row: drop it (counted and reported) or fail the run."""

    null_customer_id: RowPolicy = Field("drop", description="Rows without a customer id.")
    unparseable_timestamp: RowPolicy = Field("drop", description="Rows whose timestamp cannot be read.")
    unknown_event_type: RowPolicy = Field(
        "drop", description="Rows whose event type is not canonical after data.events.event_types mapping."
    )
    unparseable_number: RowPolicy = Field("drop", description="Rows whose revenue, quantity, discount or rating is not a number.")
    negative_value: RowPolicy = Field("drop", description="Rows with negative revenue or quantity.")
    future_event: RowPolicy = Field("drop", description="Events later than the run's reference time.")
    duplicate_event: RowPolicy = Field("drop", description="Exact duplicate events (every canonical column equal).")
    null_key: RowPolicy = Field("drop", description="Rows of customers or catalog without their key (customer_id, product_id).")
    duplicate_key: RowPolicy = Field(
        "drop", description="Repeated customer_id in customers or product_id in catalog (the first row is kept)."
    )
    max_dropped_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Fail when more than this share of a table's rows would be dropped: a mapping mistake "
        "looks like that, and a model trained on the rest would be silently wrong.",
    )


class ModelsConfig(_Section):
    """Settings of each model trained by `pipeline train`."""

    personas: PersonasConfig = Field(default_factory=PersonasConfig, description="Persona clustering and naming.")
    propensity: PropensityConfig = Field(
        default_factory=PropensityConfig, description="Purchase and churn propensity: tuning, calibration, buckets, eligibility."
    )
    journey: JourneyModelConfig = Field(default_factory=JourneyModelConfig, description="Journey-stage classifier.")
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig, description="Rule segments and their thresholds.")
    stage_labels: str | None = Field(
        None,
        description="Stage labels to learn journey weights from: a CSV/Parquet file with customer_id, as_of, stage "
        "(e.g. from a CRM) or stage intervals customer_id, stage, start, end. Empty: a truth_stages.parquet next "
        "to the data (the demo's ground truth) if present, else the weight matrix in journey.weights.",
    )


class ScoringConfig(_Section):
    """Settings of `pipeline score`: chunking, reason codes, drift, transitions and audiences."""

    chunk_size: int = Field(50_000, ge=100, description="Customers scored per chunk; bounds the memory of models and SHAP.")
    reasons: int = Field(3, ge=0, le=20, description="Reason codes per propensity model and customer (0: none, much faster).")
    threads: int | None = Field(
        None, ge=1, description="Threads LightGBM predicts and explains with; empty: every core. Scores do not depend on it.")
    spark_partitions: int | None = Field(
        None, ge=1, description="Output partitions when run.engine is spark; empty: one per ~20,000 customers, "
        "at most twice the default parallelism.")
    drift: DriftConfig = Field(
        default_factory=DriftConfig,
        description="Population stability of the top features and the scores against training (reference saved at training).")
    transitions: TransitionsConfig = Field(
        default_factory=TransitionsConfig, description="Segment transitions against --previous scores.")
    audiences: dict[str, Audience] = Field(
        default_factory=default_audiences,
        description="Named audiences written by `score --audiences`: conditions on score columns (one_of, none_of, "
        "min, max; all must hold), optional order_by and limit, extra columns.")


class Params(_Section):
    run: RunConfig = Field(default_factory=RunConfig, description="Run-wide settings.")
    data: DataConfig = Field(default_factory=DataConfig, description="Inputs and their mapping onto the data contract.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="Validation policies.")
    simulate: SimulateConfig = Field(default_factory=SimulateConfig, description="Defaults of `pipeline simulate`.")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Feature families and windows.")
    labels: LabelsConfig = Field(default_factory=LabelsConfig, description="Training labels and snapshots.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="Model settings.")
    scoring: ScoringConfig = Field(default_factory=ScoringConfig, description="Batch scoring and its outputs.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking and registry.")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Splits `a.b.c=value` into a key path and a YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value, e.g. run.seed=7")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"override {text!r} has an empty key segment; write e.g. labels.horizon_days=60")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Returns a copy of the raw params with each `key.path=value` set (intermediate keys created)."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid params ({source}):"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(Params, err["loc"][:-1])
            allowed = sorted(parent.model_fields) if parent is not None else []
            lines.append(f"  {path}: unknown key; allowed keys here: {', '.join(allowed)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
            lines.append(f"  {path}: {msg}{shown}")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walks the config model along a key path to the section model there, if any."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def load_params(path: str | Path | None = None, overrides: list[str] | None = None) -> Params:
    """Loads params from a YAML file (default ./params.yaml, else built-in defaults) plus overrides."""
    source = "built-in defaults"
    raw: dict[str, Any] = {}
    if path is None and Path(DEFAULT_PARAMS_FILE).is_file():
        path = DEFAULT_PARAMS_FILE
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"params file {str(p)!r} not found; pass an existing file with --params")
        source = str(p)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"params file {source!r} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"params file {source!r} must hold a mapping of sections at the top level")
        raw = loaded
    if overrides:
        raw = apply_overrides(raw, overrides)
        source += " + --set " + " ".join(overrides)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def params_to_yaml(params: Params) -> str:
    """Returns the params as YAML text (the effective configuration of a run)."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    import textwrap

    return [f"{indent}# {line}" for line in textwrap.wrap(" ".join(text.split()), 96 - len(indent))]


def _yaml_value(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10_000).strip()
    return dumped.removesuffix("\n...").strip()


def _section_lines(model: BaseModel, indent: str) -> list[str]:
    lines: list[str] = []
    data = model.model_dump(mode="json")
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        lines.extend(_comment(info.description, indent))
        if isinstance(value, BaseModel):
            lines.append(f"{indent}{name}:")
            lines.extend(_section_lines(value, indent + "  "))
        elif isinstance(data[name], dict) and any(isinstance(v, dict) for v in data[name].values()):
            # Nested mappings (audiences, signatures, weights) read better as blocks.
            block = yaml.safe_dump(data[name], default_flow_style=None, sort_keys=False,
                                   allow_unicode=True, width=100)
            lines.append(f"{indent}{name}:")
            lines.extend(f"{indent}  {line}" for line in block.rstrip("\n").splitlines())
        else:
            lines.append(f"{indent}{name}: {_yaml_value(data[name])}")
    return lines


def defaults_yaml(params: Params | None = None) -> str:
    """Returns params as commented YAML: every key with its description (the shipped params.yaml)."""
    params = params or Params()
    header = [
        "# Every setting of the pipeline, with its meaning. Generated by `python -m pipeline params --commented`;",
        "# edit values freely, keys are checked (unknown keys and bad values fail with the key path).",
    ]
    changed = _differences(params, Params())
    if changed:
        header += ["#", "# These values differ from the built-in defaults (a `--params FILE` of your own starts from the",
                   "# built-in defaults, not from this file; `params --reference` lists them all):"]
        header += [f"#   {key}: {_yaml_value(mine)} (built-in: {_yaml_value(default)})"
                   for key, (mine, default) in changed.items()]
    return "\n".join(header + _section_lines(params, "")) + "\n"


def _differences(mine: BaseModel, default: BaseModel, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Returns dotted key -> (value, built-in value) for every setting that differs.

    Sections are walked; any other value (a user mapping such as the audiences) is compared whole.
    """
    out: dict[str, tuple[Any, Any]] = {}
    for name in type(mine).model_fields:
        key, value, base = f"{prefix}{name}", getattr(mine, name), getattr(default, name)
        if isinstance(value, BaseModel) and isinstance(base, BaseModel):
            out.update(_differences(value, base, f"{key}."))
        else:
            dumped, dumped_base = (mine.model_dump(mode="json", include={name})[name],
                                   default.model_dump(mode="json", include={name})[name])
            if dumped != dumped_base:
                out[key] = (dumped, dumped_base)
    return out


# --------------------------------------------------------------------------- reference (README)


def _type_text(annotation: Any) -> str:
    """Writes a field's type in words for the params reference, e.g. 'int or empty', 'one of: drop, fail'."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a) for a in kept)
        return f"{text} or empty" if len(kept) < len(args) else text
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]" if args else name
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    return getattr(annotation, "__name__", str(annotation))


def _cell(text: str) -> str:
    """Makes text safe inside one markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _default_text(value: Any, limit: int = 60) -> str:
    """Writes a default as inline YAML in backticks; long ones are shortened with a pointer to params.yaml."""
    text = "" if value is None else _yaml_value(value)
    if not text:
        return "empty"
    if len(text) > limit:
        size = f"{len(value)} entries, " if isinstance(value, (list, dict)) else ""
        return f"({size}see `params --commented`)"
    return f"`{text}`"


def _reference_rows(model: BaseModel, prefix: str) -> list[str]:
    rows: list[str] = []
    data = model.model_dump(mode="json")
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            rows.extend(_reference_rows(value, path))
            continue
        rows.append(
            f"| `{path}` | {_cell(_type_text(info.annotation))} | {_cell(_default_text(data[name]))} "
            f"| {_cell(info.description or '')} |"
        )
    return rows


def params_reference_markdown(params: Params | None = None) -> str:
    """Writes every params key as markdown: one table per top-level section (key, type, default, description).

    The README's Configuration reference is this text (`python -m pipeline params --reference`), so
    the documentation cannot drift from the config model.
    """
    params = params or Params()
    out: list[str] = []
    for name, info in Params.model_fields.items():
        section = getattr(params, name)
        out += [f"#### `{name}`: {_cell(info.description or '')}", "",
                "| key | type | default | description |", "| --- | --- | --- | --- |"]
        out += _reference_rows(section, name) + [""]
    return "\n".join(out)
