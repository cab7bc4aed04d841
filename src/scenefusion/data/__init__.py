"""Data layer: items, loaders for every supported layout, validation and leakage-free splits."""

from .datasets import (
    detect_layout,
    load_dataset,
    load_manifest,
    load_pairs_folder,
    load_reference,
    loading_stage,
)
from .items import Dataset, Item, Skip
from .splits import Split, SplitError, make_split
from .validate import DataError
from .video_folder import VideoOptions, load_video_folder

__all__ = [
    "DataError", "Dataset", "Item", "Skip", "Split", "SplitError", "VideoOptions",
    "detect_layout", "load_dataset", "load_manifest", "load_pairs_folder", "load_reference",
    "load_video_folder", "loading_stage", "make_split",
]
