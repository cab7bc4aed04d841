"""Where scenefusion keeps what it computes: one place, read by every layer (data downloads,
the feature store, ONNX exports)."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

ENV_CACHE = "SCENEFUSION_CACHE"

#: The cache folder chosen for the current block of work (``--cache``), see cache_dir_in_use.
_CHOSEN: contextvars.ContextVar[Path | None] = contextvars.ContextVar("scenefusion_cache",
                                                                       default=None)


def default_cache_dir() -> Path:
    """The cache folder in use: the one chosen for the current block (:func:`cache_dir_in_use`),
    else `$SCENEFUSION_CACHE`, else `$XDG_CACHE_HOME/scenefusion`, else `~/.cache/scenefusion`."""
    chosen = _CHOSEN.get()
    if chosen is not None:
        return chosen
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scenefusion"


@contextlib.contextmanager
def cache_dir_in_use(path: Path) -> Iterator[None]:
    """Within the block, :func:`default_cache_dir` is ``path``: what a feature computes on the
    side (e.g. an ONNX export of an audio network, which sees only a file and its parameters)
    then goes to the feature store's folder that ``--cache`` chose, like its features."""
    token = _CHOSEN.set(Path(path))
    try:
        yield
    finally:
        _CHOSEN.reset(token)
