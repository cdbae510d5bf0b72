"""Config: params.yaml -> typed sections; unknown keys and bad values fail with the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, Params, apply_overrides, defaults_yaml, load_params, params_to_yaml

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_no_params_file_in_the_working_directory_falls_back_to_built_in_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_params() == Params()


def test_params_yaml_in_the_working_directory_is_the_default_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "run:\n  seed: 3\n")
    assert load_params().run.seed == 3


def _key_paths(node, prefix=""):
    if not isinstance(node, dict) or not node or prefix.endswith(("columns", "event_types", "weights", "persona_shares")):
        return {prefix}
    return set().union(*(_key_paths(v, f"{prefix}.{k}" if prefix else k) for k, v in node.items()))


def test_shipped_params_yaml_validates_and_documents_every_key():
    # The repository's params.yaml shows every key with its description; it must not drift from the model.
    text = (REPO / "params.yaml").read_text()
    shipped = yaml.safe_load(text)
    Params.model_validate(shipped)
    assert _key_paths(shipped) == _key_paths(Params().model_dump(mode="json"))


def test_commented_defaults_are_valid_yaml_equal_to_the_defaults():
    assert yaml.safe_load(defaults_yaml()) == Params().model_dump(mode="json")
    assert "# Seed for every random choice" in defaults_yaml()


def test_unknown_top_level_key_names_the_key_and_the_allowed_keys(tmp_path):
    path = write(tmp_path, "modelz:\n  k: 3\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "modelz: unknown key" in msg
    assert "allowed keys here: data, features, labels, models, run, scoring, simulate, tracking, validation" in msg


def test_unknown_nested_key_names_its_full_path(tmp_path):
    path = write(tmp_path, "data:\n  events:\n    colums: {a: customer_id}\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert "data.events.colums: unknown key" in str(err.value)
    assert "columns" in str(err.value)


def test_bad_choice_names_the_key_the_value_and_the_allowed_values(tmp_path):
    path = write(tmp_path, "run:\n  engine: flink\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "run.engine" in msg and "'duckdb'" in msg and "'spark'" in msg and "'flink'" in msg


def test_bad_policy_value_lists_drop_and_fail(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, "validation:\n  duplicate_event: ignore\n"))
    assert "validation.duplicate_event" in str(err.value) and "'drop' or 'fail'" in str(err.value)


def test_event_type_mapping_onto_a_non_canonical_type_lists_the_canonical_types(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, "data:\n  events:\n    event_types: {order_completed: buy}\n"))
    msg = str(err.value)
    assert "['buy']" in msg and "purchase" in msg and "add_to_cart" in msg


def test_column_mapping_onto_an_unknown_canonical_column_is_rejected(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, "data:\n  events:\n    columns: {Amount: amount}\n"))
    assert "['amount']" in str(err.value) and "revenue" in str(err.value)


def test_unknown_timezone_is_rejected_with_an_example(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, "data:\n  timezone: Mars/Olympus\n"))
    assert "Mars/Olympus" in str(err.value) and "Europe/London" in str(err.value)


def test_set_overrides_are_yaml_typed_and_validated_like_the_file(tmp_path):
    path = write(tmp_path, "run:\n  seed: 1\n")
    params = load_params(path, ["run.seed=9", "labels.horizon_days=60", "run.engine=spark"])
    assert (params.run.seed, params.labels.horizon_days, params.run.engine) == (9, 60, "spark")


def test_set_override_of_an_unknown_key_fails_with_its_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, ""), ["labels.horizon=60"])
    assert "labels.horizon: unknown key" in str(err.value)


@pytest.mark.parametrize("override", ["run.seed", "=3", "run..seed=3"])
def test_malformed_override_explains_the_expected_shape(override):
    with pytest.raises(ConfigError):
        apply_overrides({}, [override])


def test_override_through_a_value_is_rejected():
    with pytest.raises(ConfigError, match="run.seed is a value, not a section"):
        apply_overrides({"run": {"seed": 1}}, ["run.seed.x=2"])


def test_apply_overrides_does_not_modify_the_callers_dict():
    raw = {"run": {"seed": 1}}
    apply_overrides(raw, ["run.seed=2"])
    assert raw == {"run": {"seed": 1}}


def test_missing_params_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")


def test_params_file_that_is_not_a_mapping_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_params(write(tmp_path, "- a\n- b\n"))


def test_effective_params_round_trip_through_yaml(tmp_path):
    params = load_params(write(tmp_path, ""), ["run.seed=5", "data.timezone=Europe/London"])
    again = load_params(write(tmp_path, params_to_yaml(params)))
    assert again == params


def test_naive_reference_time_is_read_as_utc(tmp_path):
    params = load_params(write(tmp_path, "run:\n  reference_time: 2024-05-01 12:00:00\n"))
    assert params.run.reference_time.isoformat() == "2024-05-01T12:00:00+00:00"


def test_commented_params_list_the_values_that_differ_from_the_built_in_defaults(tmp_path):
    assert "differ from the built-in defaults" not in defaults_yaml()
    empty = write(tmp_path, "{}\n")  # not the repository's params.yaml, which has demo values
    text = defaults_yaml(load_params(empty, ["models.propensity.n_trials=10", "labels.horizon_days=60"]))
    listed = [line for line in text.splitlines() if line.startswith("#   ")]
    assert listed == ["#   labels.horizon_days: 60 (built-in: 30)", "#   models.propensity.n_trials: 10 (built-in: 25)"]
    # a user mapping is compared whole, not key by key
    audiences = defaults_yaml(load_params(empty, ["scoring.audiences={}"]))
    assert [line for line in audiences.splitlines() if line.startswith("#   ")][0].startswith("#   scoring.audiences: {}")


def test_spark_conf_and_staging_dir_reach_the_engine(monkeypatch, tmp_path):
    import pipeline.featurize as featurize

    calls: dict[str, object] = {}
    monkeypatch.setattr(featurize, "connect", lambda *args: calls.setdefault("connect", args) and "con")
    monkeypatch.setattr(featurize, "register", lambda con, name, df, staging: calls.setdefault(name, staging))
    params = load_params(None, ["run.engine=spark", "run.spark_master=local[3]",
                                "run.spark_conf={spark.driver.memory: 8g, spark.sql.shuffle.partitions: 64}",
                                f"run.spark_staging_dir={tmp_path}"])
    dataset = type("D", (), {"events": object(), "customers": None, "catalog": object()})()
    featurize.register_dataset(dataset, params)
    assert calls["connect"] == ("spark", "local[3]", {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": 64})
    assert calls["events"] == calls["catalog"] == str(tmp_path) and "customers" not in calls
