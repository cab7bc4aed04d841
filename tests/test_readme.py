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


def _install_block() -> list[str]:
    block = re.search(r"## Three commands.*?```bash\n(.*?)```", README.read_text(), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_install_block_is_what_ci_runs():
    """A newcomer follows the README; CI follows .ci/run: the two must be the same steps."""
    lines = _install_block()
    ci = (README.parent / ".ci" / "run").read_text()
    ci_commands = [c.strip() for c in ci.splitlines() if c.strip() and not c.startswith("#")]
    assert lines[0].startswith("python3 -m venv .venv && source .venv/bin/activate")
    assert "python3 -m venv .venv" in ci_commands and "source .venv/bin/activate" in ci_commands
    torch = next(line for line in lines if line.startswith("pip install torch=="))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in torch  # the CPU build
    assert torch.split()[2] in (README.parent / "pyproject.toml").read_text()  # same pin
    assert "README's CPU torch line is left out" in ci  # and CI says why it has none
    for step in next(line for line in lines if line.startswith("pip install -e")).split(" && "):
        assert step in ci_commands, step
    apt = next(line for line in lines if "apt-get install" in line)
    packages = set(apt.split("install -y")[1].split())
    ci_apt = re.search(r"apt-get install -y -q ([^\n]*\\\n[^\n]*)", ci).group(1)
    assert packages == set(ci_apt.replace("\\", " ").split()) == {
        "chromium", "chromium-driver", "fonts-wqy-microhei"}
    assert lines[-2] == "scenefusion run" and lines[-1] == "python -m pytest"
    assert ci_commands[-1] == "python -m pytest"


def test_the_test_command_names_what_it_skipped_and_why(tmp_path):
    """pytest as the README runs it ends with each skipped test and its reason."""
    import subprocess
    import sys

    (tmp_path / "test_one.py").write_text(
        "import pytest\n\n@pytest.mark.skip(reason='needs chromium: apt-get install chromium')\n"
        "def test_page():\n    pass\n\ndef test_sum():\n    assert 1 + 1 == 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(README.parent / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", str(tmp_path / "test_one.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SKIPPED [1]" in out.stdout
    assert "needs chromium: apt-get install chromium" in out.stdout
    assert "1 passed, 1 skipped" in out.stdout


def test_readme_demo_table_is_ranked_as_the_run_chose():
    """The README's demo table reads as the run chose: by cross-validation, best/ first, the
    saved single-modality models being the best of their kind by that figure, not by test."""
    table = re.search(r"\| run \| CV accuracy \(chose\) \|.*?\n\n", README.read_text(), re.S)
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in table.group(0).splitlines()[2:] if line.startswith("|")]
    cv = [float(r[1]) for r in rows]
    assert cv == sorted(cv, reverse=True)
    assert "(`best/`)" in rows[0][0]
    for kind in ("image", "audio"):
        saved = next(r for r in rows if f"`best-{kind}/`" in r[0])
        assert f"best {kind}-only: {kind}:" in saved[0]
        assert all(float(r[1]) <= float(saved[1]) for r in rows if r[0].startswith(f"{kind}:"))
