"""The errors a user can cause, under one base class, so that every front end reports them
the same way: one sentence naming the file, field or id and the problem, exit code 1 (or the
class's ``exit_code``), never a traceback.

Each concrete error also derives from the built-in type its callers expect (a missing file is
a FileNotFoundError, bad input a ValueError). The module imports nothing heavy: weight-loading
errors live here, not beside the torch code that raises them, so that code paths without torch
can catch them.
"""

from __future__ import annotations


class ScenefusionError(Exception):
    """Base of every user-facing error; ``str(err)`` is the whole message for the user."""

    #: Process exit status a command ends with when this error stops it.
    exit_code: int = 1


class WeightsNotFoundError(ScenefusionError, FileNotFoundError):
    """The official weight file is neither given, nor cached, nor downloadable."""


class WeightsLoadError(ScenefusionError, RuntimeError):
    """The weight file exists but could not be read as a state_dict."""


class WeightsMismatchError(WeightsLoadError):
    """The weight file's keys/shapes do not match the architecture (strict loading failed)."""


class UntrustedWeightsError(WeightsLoadError):
    """A weight file names pickle globals outside an allow-list: refused, never unpickled
    (that could run code)."""


class InvalidValue(ScenefusionError, ValueError):
    """A name, option or setting the user gave that cannot be used (the message says which
    and why)."""
