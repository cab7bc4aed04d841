"""Command line: each command parses its options, calls one library function and renders the
result with rich. Errors are turned into messages in one place (:func:`.app.command`).

One module per group of commands: :mod:`.data_commands` (``data ...``),
:mod:`.pipeline_commands` (``extract``, ``run``, ``evaluate``, ``list``),
:mod:`.predict_commands` (``predict``, ``serve``)."""

from . import data_commands, pipeline_commands, predict_commands  # noqa: F401 (registers them)
from .app import app, console, err_console

__all__ = ["app", "console", "err_console"]
