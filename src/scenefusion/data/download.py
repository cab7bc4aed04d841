"""Fetch the reference data set with kagglehub when online; explain the manual route otherwise."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..errors import ScenefusionError
from ..paths import default_cache_dir
from .layouts.reference import REFERENCE_CSV

log = logging.getLogger(__name__)

KAGGLE_HANDLE = "birdy654/scene-classification-images-and-audio"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_HANDLE}"
MANUAL_STEPS = (
    f"Download it by hand from {KAGGLE_URL} (about 1.6 GB zip; the authors' copyright: do not "
    "redistribute), unzip it, and pass the folder that holds dataset.csv and images/ to "
    "`scenefusion run --data PATH`."
)


class DownloadError(ScenefusionError, RuntimeError):
    """The data set could not be fetched; the message says how to get it by hand."""


def find_reference_root(path: Path) -> Path:
    """The folder under `path` that holds dataset.csv (archives may nest one level or two)."""
    path = Path(path)
    for candidate in [path, *sorted(p.parent for p in path.rglob(REFERENCE_CSV))]:
        if (candidate / REFERENCE_CSV).is_file():
            return candidate
    raise DownloadError(f"{path}: no {REFERENCE_CSV} found in the download. {MANUAL_STEPS}")


def kaggle_cache_dir() -> Path:
    """Where kagglehub keeps downloads for scenefusion: inside scenefusion's cache folder."""
    return default_cache_dir() / "kagglehub"


def cached_reference_root() -> Path | None:
    """The reference data set if `scenefusion data download` already fetched it, else None."""
    base = kaggle_cache_dir()
    if not base.is_dir():
        return None
    for csv in sorted(base.rglob(REFERENCE_CSV)):
        if (csv.parent / "images").is_dir():
            return csv.parent
    return None


def download_reference(dest: Path | None = None) -> Path:
    """Download (or reuse the cached copy of) the reference data set; return its root.

    kagglehub stores it under scenefusion's cache folder (`kaggle_cache_dir()`), where
    `scenefusion run` finds it when no data path is given. With `dest`, it is copied there too.
    """
    try:
        import kagglehub
    except ImportError:
        raise DownloadError(
            "kagglehub is not installed: pip install 'scenefusion[download]'. " + MANUAL_STEPS
        ) from None
    previous = os.environ.get("KAGGLEHUB_CACHE")
    os.environ["KAGGLEHUB_CACHE"] = previous or str(kaggle_cache_dir())
    try:
        path = Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as exc:  # network, auth and HTTP errors all mean the same to the user
        raise DownloadError(f"could not download {KAGGLE_HANDLE} ({exc}). {MANUAL_STEPS}") from None
    finally:
        if previous is None:
            del os.environ["KAGGLEHUB_CACHE"]
    root = find_reference_root(path)
    if dest is not None:
        dest = Path(dest)
        if not (dest / REFERENCE_CSV).is_file():
            shutil.copytree(root, dest, dirs_exist_ok=True)
        root = dest
    log.info("reference data set at %s", root)
    return root
