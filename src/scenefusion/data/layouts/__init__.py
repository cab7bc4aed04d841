"""Data layouts: a registry of ids -> loaders, one layout per module.

Each module registers its layout where it defines it, with :func:`register_layout`
(:mod:`.registry`); the shared rules every layout applies are in
:mod:`scenefusion.data.datasets`. A layout defined outside this package registers itself the
same way, in any module imported before the data is loaded.
"""

from __future__ import annotations

# isort: off
# importing a layout module registers it: this is the order `scenefusion list` and the
# "valid layouts" message show (not alphabetical); `auto` is registered by .registry, first
from .registry import (
    AUTO,
    LAYOUTS,
    Layout,
    LoadRequest,
    Probe,
    check_layout,
    detect_layout,
    layouts,
    load_dataset,
    loading_stage,
    register_layout,
)
from . import reference, manifest, pairs, videos
# isort: on
from .manifest import load_manifest
from .pairs import load_pairs_folder
from .reference import REFERENCE_CSV, REFERENCE_MFCC_COLUMNS, load_reference
from .videos import load_video_folder

__all__ = [
    "AUTO", "LAYOUTS", "REFERENCE_CSV", "REFERENCE_MFCC_COLUMNS", "Layout", "LoadRequest",
    "Probe", "check_layout", "detect_layout", "layouts", "load_dataset", "load_manifest",
    "load_pairs_folder", "load_reference", "load_video_folder", "loading_stage", "manifest",
    "pairs", "reference", "register_layout", "videos",
]
