"""Times `./dev demo` end to end from a fresh clone and writes bench/results/demo.json (install vs train seconds).

What a new user does: clone, then `./dev demo`, which creates .venv, installs the package and its
dependencies from PyPI, simulates the demo data and trains every model. Nothing may be cached: the
clone is new, HOME (pip's cache, ~/.cache) and PIPELINE_CACHE_DIR are empty folders, and the MLflow
store is the clone's own ./mlflow.db. The split between install and train is the moment the
`python -m pipeline train` process starts (watched in /proc; elsewhere, the first line the pipeline
logs, which comes after the demo data is simulated). Train therefore includes Python's imports and
simulating the demo data. A clone sees committed code only; uncommitted work in the source checkout
is not measured.

Usage: python bench/bench_demo.py [--repeat 2] [--repo .] [--python /path/to/python3.11] [--keep] [-- extra train args]
Needs git, network access to PyPI and about 2 GB of disk in the temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np

from pipeline.io import write_text_atomic

RESULTS = ROOT / "bench" / "results" / "demo.json"
GOAL_SECONDS = 180  # "about 3 minutes" from clone to a trained demo
# The pipeline's log lines (pipeline/cli.py): "12:34:56 INFO pipeline.train: ..."
PIPELINE_LINE = re.compile(r"^\d{2}:\d{2}:\d{2} (DEBUG|INFO|WARNING|ERROR) ")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def real_python(python: str | None) -> str:
    """Returns the interpreter's real path (a pyenv shim needs the real HOME, which the run does not have)."""
    exe = python or shutil.which("python3") or sys.executable
    out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _du_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return round(total / 2**20, 1)


def _train_started(clone: Path) -> bool:
    """Whether a `python -m pipeline train` process runs in the clone (Linux /proc; False elsewhere)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"\x00-m\x00pipeline\x00train" in cmdline and Path(os.readlink(proc / "cwd")) == clone.resolve():
                return True
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return False


def _watch(clone: Path, t0: float, found: list[float], stop: threading.Event) -> None:
    while not stop.is_set() and not found:
        if _train_started(clone):
            found.append(time.perf_counter() - t0)
            _say(f"  install done after {found[0]:.0f} s; training")
            return
        stop.wait(0.2)


def run_demo(repo: Path, python: str, work: Path, train_args: list[str]) -> dict[str, Any]:
    """Clones `repo` into `work`, runs ./dev demo there with empty caches; returns phase timings and the output tail."""
    clone = work / "clone"
    home = work / "home"
    home.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    clone_seconds = time.perf_counter() - started
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "MLFLOW_", "VIRTUAL_ENV", "PYTHON", "PIPELINE_", "PYENV_VERSION"))}
    env.update({"HOME": str(home), "PIPELINE_CACHE_DIR": str(work / "cache"), "PYTHON": python,
                "XDG_CACHE_HOME": str(home / ".cache")})
    lines: list[tuple[float, str]] = []
    found: list[float] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["./dev", "demo", *train_args], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    watcher = threading.Thread(target=_watch, args=(clone, t0, found, stop), daemon=True)
    watcher.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    code = proc.wait()
    total = time.perf_counter() - t0
    stop.set()
    watcher.join()
    first_log = next((t for t, text in lines if PIPELINE_LINE.match(text)), None)
    split = "train process start" if found else "first pipeline log line"
    first_log = found[0] if found else first_log
    result: dict[str, Any] = {
        "exit_code": code,
        "commit": commit,
        "clone_seconds": round(clone_seconds, 1),
        "demo_seconds": round(total, 1),
        "install_seconds": round(first_log, 1) if first_log is not None else None,
        "train_seconds": round(total - first_log, 1) if first_log is not None else None,
        "clone_plus_demo_seconds": round(clone_seconds + total, 1),
        "install_train_split": split,
        "venv_mb": _du_mb(clone / ".venv") if (clone / ".venv").is_dir() else None,
        "output_tail": [text for _, text in lines[-25:]],
    }
    if code != 0:
        _say("./dev demo failed:\n" + "\n".join(text for _, text in lines[-40:]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this checkout)")
    parser.add_argument("--python", default=None, help="interpreter ./dev uses to create .venv (default python3)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to clone (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the clone, venv and caches afterwards")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each from a new clone and empty caches (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON result")
    parser.add_argument("train_args", nargs="*", help="extra arguments passed on to `./dev demo` (after --)")
    args = parser.parse_args(argv)

    if shutil.which("git") is None:
        _say("skipped: git is not installed")
        return 0
    python = real_python(args.python)
    runs: list[dict[str, Any]] = []
    for k in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="bench-demo-", dir=args.workdir))
        load_before = _load()
        _say(f"run {k + 1}/{args.repeat}: cloning {args.repo} into {work}, ./dev demo with {python} (load {load_before})")
        try:
            run = run_demo(args.repo.resolve(), python, work, args.train_args)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        run["load_average_1m"] = {"start": load_before, "end": _load()}
        runs.append(run)
        if run["exit_code"] != 0:
            break
    ok = all(r["exit_code"] == 0 and r["install_seconds"] is not None for r in runs)
    result: dict[str, Any] = {
        "exit_code": 0 if ok else 1,
        "runs": len(runs),
        "median": {key: (float(np.median([r[key] for r in runs])) if ok else None)
                   for key in ("install_seconds", "train_seconds", "clone_plus_demo_seconds")},
        "goal_seconds": GOAL_SECONDS,
        "train_args": args.train_args,
        "cpu_count": os.cpu_count(),
        "python": subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "each": runs,
    }
    result["within_goal"] = ok and result["median"]["clone_plus_demo_seconds"] <= GOAL_SECONDS
    write_text_atomic(json.dumps(result, indent=2) + "\n", args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "each"}
                     | {"each": [{k: v for k, v in r.items() if k != "output_tail"} for r in runs]}, indent=2))
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
