"""The command line: every subcommand's help, exit codes, and the demo-data fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["simulate", "validate", "params", "features", "train", "score", "report"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_explains_every_option_in_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        for flag in action.option_strings:
            assert flag in out
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"
    for common in ("--params", "--set"):
        assert common in out


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "python -m pipeline 0." in capsys.readouterr().out


def test_validate_exits_zero_on_clean_data_and_writes_the_json_report(tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text("customer_id,timestamp,event_type\nc1,2024-01-01,purchase\nc1,2024-01-01,purchase\nc2,2024-01-02,login\n")
    code = main(["validate", "--data", str(path), "--json", str(tmp_path / "report.json")])
    assert code == 0
    assert "duplicate_event" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True
    assert report["counts"]["events.duplicate_event"] == 1
    assert report["counts"]["events.rows_out"] == 2


def test_validate_exits_one_when_a_fail_policy_triggers(tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text("customer_id,timestamp,event_type\n,2024-01-01,purchase\nc2,2024-01-02,login\n")
    assert main(["validate", "--data", str(path), "--set", "validation.null_customer_id=fail"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bad_params_exit_two_with_the_key_path_on_stderr(capsys):
    assert main(["params", "--set", "run.engine=flink"]) == 2
    assert "run.engine" in capsys.readouterr().err


def test_params_prints_the_effective_configuration_with_overrides(capsys):
    assert main(["params", "--set", "labels.horizon_days=45"]) == 0
    assert "horizon_days: 45" in capsys.readouterr().out


def test_simulate_writes_the_demo_tables_and_ground_truth(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--customers", "120", "--days", "60", "--seed", "3", "--out", str(out)]) == 0
    for name in ("events", "customers", "catalog", "truth_personas", "truth_stages"):
        assert (out / f"{name}.parquet").is_file(), name
    assert pd.read_parquet(out / "customers.parquet")["customer_id"].nunique() == 120
    # what simulate writes, validate accepts with nothing dropped
    assert main(["validate", "--data", str(out)]) == 0
    assert "dropped 0" in capsys.readouterr().out


def test_without_data_commands_use_cached_demo_data_generated_once(tmp_path, capsys):
    small = ["--set", "data.demo.customers=60", "--set", "data.demo.days=60"]
    assert main(["validate", *small]) == 0
    cached = list((tmp_path / "cache").glob("demo-*/events.parquet"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert main(["validate", *small]) == 0
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not regenerated


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline", "params"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "engine: duckdb" in done.stdout


class _NoJava:
    """Stands in for SparkSession.builder on a machine without Java: the gateway never starts."""

    def master(self, *_):
        return self

    appName = config = master

    def getOrCreate(self):
        raise RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.")


def _without_pyspark(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # the import fails as if PySpark were absent


def _without_java(monkeypatch):
    pyspark_sql = pytest.importorskip("pyspark.sql")
    monkeypatch.setattr(pyspark_sql.SparkSession, "builder", _NoJava())


@pytest.mark.parametrize(
    ("missing", "expected"),
    [(_without_pyspark, "needs PySpark"), (_without_java, "needs Java 17")],
    ids=["pyspark-missing", "java-missing"],
)
def test_a_missing_spark_prerequisite_is_a_clear_error_not_a_traceback(missing, expected, monkeypatch, capsys):
    from pipeline import featurize
    from pipeline.engine import connect

    missing(monkeypatch)
    monkeypatch.setattr(featurize, "cmd_features", lambda args: connect("spark"))  # build_parser registers it anew
    assert main(["features", "--list"]) == 2
    assert expected in capsys.readouterr().err


def test_an_unexpected_error_is_not_swallowed(monkeypatch):
    from pipeline import featurize

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(featurize, "cmd_features", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["features", "--list"])
