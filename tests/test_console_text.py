"""Untrusted text reaches the terminal as written but harmless: a class label holding a
terminal escape is shown escaped, rich markup in it is not interpreted, and files keep it
verbatim."""

from __future__ import annotations

import logging

from rich.console import Console
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.cli.text import PlainFormatter, plain, shown
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder

runner = CliRunner()
RED = "\x1b[31mRED"
BOLD = "[bold]X"


def rendered(text: str) -> str:
    console = Console(record=True, width=200, force_terminal=False)
    console.print(text)
    return console.export_text().rstrip("\n")


def test_control_characters_are_shown_as_escapes_and_markup_as_written():
    assert rendered(shown(RED)) == "\\x1b[31mRED"
    assert rendered(shown(BOLD)) == "[bold]X"
    assert rendered(shown("a\x07b\x9bc\u202ed")) == "a\\x07b\\x9bc\\u202ed"
    assert plain("two\nlines\tand a tab") == "two\nlines\tand a tab"  # layout is kept
    assert plain("ok ÉTÉ 夏") == "ok ÉTÉ 夏"


def test_log_lines_show_control_characters_escaped():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "label %s", (RED,), None)
    assert PlainFormatter("%(message)s").format(record) == "label \\x1b[31mRED"


def test_inspect_prints_labels_with_escapes_escaped_and_keeps_them_verbatim(tmp_path):
    data = make_pairs_folder(tmp_path / "pairs", classes=(RED, BOLD), groups_per_class=2,
                             frames_per_group=1)
    assert load_dataset(data).classes == sorted([RED, BOLD])  # verbatim in the data set
    result = runner.invoke(app, ["data", "inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "\\x1b[31mRED" in result.output and BOLD in result.output
