"""The README's Python example runs as written: docs that drift from the code mislead."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from scenefusion.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"## Python API.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["data", "demo", "demo"]).exit_code == 0
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "precision" in printed and "RESTAURANT" in printed


def test_readme_config_block_is_the_default_config(tmp_path):
    from scenefusion.config import ExperimentConfig, load_config

    block = re.search(r"Defaults shown:\n\n```yaml\n(.*?)```", README.read_text(), re.S).group(1)
    path = tmp_path / "readme.yaml"
    path.write_text(block)
    assert load_config(path) == ExperimentConfig()
