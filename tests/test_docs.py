"""User documentation stays true: the README's params reference, every key's description, --version, CHANGELOG.

Run `python -m tests.test_docs` to regenerate the README's params reference in place.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from pydantic import BaseModel

import pipeline
from pipeline.cli import main
from pipeline.config import Params, params_reference_markdown

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- params-reference:start -->", "<!-- params-reference:end -->"
REGENERATE = "python -m tests.test_docs"


def readme_block(text: str) -> str:
    """Returns what the README holds between the params-reference markers."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"README.md must hold {START} and {END} exactly once each")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def regenerate_readme(path: Path = README) -> None:
    """Replaces the README's params reference with the one generated from the config model."""
    text = path.read_text(encoding="utf-8")
    readme_block(text)  # checks the markers
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{START}\n{params_reference_markdown().strip()}\n{END}{tail}", encoding="utf-8")


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        out.append((path, info.description))
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, path)
    return out


def test_readme_params_reference_is_generated_from_the_config_model():
    block = readme_block(README.read_text(encoding="utf-8"))
    assert block == params_reference_markdown().strip(), (
        f"the README's params reference is out of date with pipeline/config.py; regenerate it with `{REGENERATE}`"
    )


def test_every_params_key_and_section_has_a_description():
    undocumented = [path for path, description in _keys(Params) if not (description or "").strip()]
    assert not undocumented, f"params keys without a description (add Field(description=...)): {undocumented}"


def test_the_reference_lists_every_leaf_key_once_with_its_default():
    text = params_reference_markdown()
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| ([^|]*?) \| (.*?) \| .+ \|$", text, flags=re.MULTILINE)
    listed = [path for path, _, _ in rows]
    assert len(listed) == len(set(listed))
    assert {"run.seed", "data.events.columns", "validation.max_dropped_share", "tracking.promotion_tolerance",
            "models.segments.lifecycle.lost_after_days"} <= set(listed)
    sections = {path for path, _ in _keys(Params) if "." not in path}
    assert {path.split(".")[0] for path in listed} == sections
    by_key = {path: (kind, default) for path, kind, default in rows}
    assert by_key["run.engine"] == ("one of: duckdb, spark", "`duckdb`")
    assert by_key["run.reference_time"] == ("datetime or empty", "empty")
    assert by_key["validation.max_dropped_share"] == ("float", "`0.5`")


def test_params_reference_command_prints_the_readme_text(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("labels:\n  horizon_days: 60\n")  # the reference ignores the file
    assert main(["params", "--reference"]) == 0
    out = capsys.readouterr().out
    assert out == params_reference_markdown()
    assert "| `labels.horizon_days` | int | `30` |" in out


def test_version_flag_prints_the_installed_version():
    try:
        expected = version("behavioural-segmentation")
    except PackageNotFoundError:
        expected = pipeline.__version__
    done = subprocess.run([sys.executable, "-m", "pipeline", "--version"], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"python -m pipeline {expected}")


def test_version_falls_back_to_the_source_tree_when_not_installed(monkeypatch, capsys):
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"python -m pipeline {pipeline.__version__} (not installed: running from the source tree)")


def test_the_source_version_is_the_one_pyproject_declares():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert pipeline.__version__ == declared, (
        f"pipeline/__init__.py says {pipeline.__version__} but pyproject.toml says {declared}; bump both together"
    )


def test_changelog_has_a_section_for_the_current_version():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "Keep a Changelog" in text
    assert re.search(rf"^## \[{re.escape(pipeline.__version__)}\]", text, flags=re.MULTILINE), (
        f"CHANGELOG.md has no '## [{pipeline.__version__}]' section for the version in pipeline/__init__.py"
    )


if __name__ == "__main__":
    regenerate_readme()
    print(f"regenerated the params reference in {README}")
