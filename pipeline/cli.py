"""The `python -m pipeline` command line: parses options, loads params, and wires the steps."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from pipeline import __version__

DISTRIBUTION = "behavioural-segmentation"  # the name pip knows the package by (pyproject.toml)
log = logging.getLogger("pipeline")

COMMON_HELP = """
Every command reads params from --params (default ./params.yaml, else the built-in defaults) and
accepts --set key.path=value overrides, e.g. --set labels.horizon_days=60.
"""


def _common(parser: argparse.ArgumentParser, data: bool = True) -> None:
    parser.add_argument(
        "--params", metavar="FILE", default=None,
        help="params YAML file (default: ./params.yaml if present, else the built-in defaults)",
    )
    if data:
        parser.add_argument(
            "--data", metavar="PATH", default=None,
            help="input: an events file (.csv, .csv.gz, .parquet), a glob, a directory holding "
            "events/customers/catalog files, or a DuckDB database (.duckdb); default: data.path in "
            "params, else the built-in demo data",
        )
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
        help="override one params key, e.g. --set run.engine=spark (repeatable; values are YAML)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")


def _load(args: argparse.Namespace):
    from pipeline.config import load_params

    return load_params(args.params, args.overrides)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pipeline.simulate import simulate, write_simulation

    params = _load(args)
    updates = {k: v for k, v in (("customers", args.customers), ("days", args.days), ("seed", args.seed)) if v is not None}
    cfg = params.simulate.model_validate({**params.simulate.model_dump(), **updates})
    log.info("simulating %s customers over %s days (seed %s)", cfg.customers, cfg.days, cfg.seed)
    sim = simulate(cfg)
    paths = write_simulation(sim, Path(args.out))
    print(f"wrote {len(sim.events):,} events for {cfg.customers:,} customers over {cfg.days} days to {args.out}")
    for name, path in paths.items():
        print(f"  {name:<16} {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.data import load_dataset

    params = _load(args)
    dataset = load_dataset(args.data, params, raise_on_error=False)
    print(dataset.report.to_text())
    if args.json:
        Path(args.json).write_text(json.dumps({
            "ok": dataset.report.ok, "errors": dataset.report.errors, "counts": dataset.report.counts(),
        }, indent=2) + "\n")
    return 0 if dataset.report.ok else 1


def cmd_params(args: argparse.Namespace) -> int:
    from pipeline.config import defaults_yaml, params_reference_markdown, params_to_yaml

    params = _load(args)
    if args.reference:  # documents the built-in defaults, whatever the params file says
        print(params_reference_markdown(), end="")
    else:
        print(defaults_yaml(params) if args.commented else params_to_yaml(params), end="")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def package_version() -> str:
    """Returns the installed distribution's version, else the source tree's (a checkout run without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return f"{__version__} (not installed: running from the source tree)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Predictive behavioural segmentation: personas, propensities, journey stages and "
        "segments from customer event data." + COMMON_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("simulate", help="write demo data with ground truth",
                       description="Simulate customers with latent personas, journey stages and habits; "
                       "writes events, customers, catalog and ground truth as Parquet.")
    _common(p, data=False)
    p.add_argument("--customers", type=int, default=None, help="number of customers (default: simulate.customers)")
    p.add_argument("--days", type=int, default=None, help="days of history (default: simulate.days)")
    p.add_argument("--seed", type=int, default=None, help="random seed; same seed, same output (default: simulate.seed)")
    p.add_argument("--out", metavar="DIR", default="demo_data", help="output directory (default: ./demo_data)")
    COMMANDS["simulate"] = cmd_simulate

    p = sub.add_parser("validate", help="load, map and validate the input; print the report",
                       description="Map the input onto the data contract and print the validation report "
                       "(rows read, kept, dropped per rule). Exits 1 when validation fails.")
    _common(p)
    p.add_argument("--json", metavar="FILE", default=None, help="also write the report as JSON to FILE")
    COMMANDS["validate"] = cmd_validate

    p = sub.add_parser("params", help="print the effective params (file + overrides) as YAML",
                       description="Print the effective params after loading the file and applying --set overrides.")
    _common(p, data=False)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--commented", action="store_true",
                      help="print every key with its description as comments (how params.yaml is made)")
    mode.add_argument("--reference", action="store_true",
                      help="print every key as markdown tables (key, type, built-in default, description): "
                      "the README's params reference")
    COMMANDS["params"] = cmd_params

    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:
    """Adds the commands of later stages that live in their own modules."""
    from pipeline import featurize, report, score, train

    featurize.register_command(sub, _common, COMMANDS)
    train.register_command(sub, _common, COMMANDS)
    score.register_command(sub, _common, COMMANDS)
    report.register_command(sub, _common, COMMANDS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    from pipeline.config import ConfigError
    from pipeline.data import DataValidationError
    from pipeline.engine import EngineUnavailable

    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DataValidationError as exc:
        print(exc.report.to_text(), file=sys.stderr)
        return 1
    except (FileNotFoundError, LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EngineUnavailable as exc:  # PySpark or Java missing for engine spark; the message says which
        print(f"error: {exc}", file=sys.stderr)
        return 2
