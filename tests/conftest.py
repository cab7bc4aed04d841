"""Shared fixtures: small synthetic data sets in every layout, generated deterministically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenefusion.data.synthetic import make_pairs_folder, make_reference_like, write_manifest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["COLUMNS"] = "200"  # rich wraps long file names at 80 columns otherwise


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Keep the feature cache and exported ONNX graphs out of the user's home folder."""
    path = tmp_path_factory.mktemp("scenefusion-cache")
    os.environ["SCENEFUSION_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def pairs_root(tmp_path_factory) -> Path:
    return make_pairs_folder(tmp_path_factory.mktemp("pairs") / "data")


@pytest.fixture(scope="session")
def reference_root(tmp_path_factory) -> Path:
    return make_reference_like(tmp_path_factory.mktemp("reference") / "data")


@pytest.fixture()
def pairs_copy(tmp_path) -> Path:
    """A private pairs folder a test may damage."""
    return make_pairs_folder(tmp_path / "data", groups_per_class=2, frames_per_group=2)


@pytest.fixture()
def manifest_csv(tmp_path) -> Path:
    root = make_pairs_folder(tmp_path / "pairs", groups_per_class=2, frames_per_group=2)
    return write_manifest(root, tmp_path / "manifest.csv")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for every test that needs one (starting Ray and warming its
    workers costs ~15 s on 2 cores, so it is paid once per test session)."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
