"""Data layer: items, loaders for every supported layout, validation and leakage-free splits."""

from .items import Dataset, Item, Skip
from .layouts import (
    LAYOUTS,
    detect_layout,
    load_dataset,
    load_manifest,
    load_pairs_folder,
    load_reference,
    load_video_folder,
    loading_stage,
    register_layout,
)
from .splits import Split, SplitError, make_split
from .validate import DataError
from .video_folder import VideoOptions

__all__ = [
    "LAYOUTS", "DataError", "Dataset", "Item", "Skip", "Split", "SplitError", "VideoOptions",
    "detect_layout", "load_dataset", "load_manifest", "load_pairs_folder", "load_reference",
    "load_video_folder", "loading_stage", "make_split", "register_layout",
]
