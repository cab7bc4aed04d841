"""Where scenefusion keeps what it computes: one place, read by every layer (data downloads,
the feature store, ONNX exports)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "SCENEFUSION_CACHE"


def default_cache_dir() -> Path:
    """`$SCENEFUSION_CACHE`, else `$XDG_CACHE_HOME/scenefusion`, else `~/.cache/scenefusion`."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scenefusion"
