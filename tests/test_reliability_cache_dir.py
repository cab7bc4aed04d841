"""Everything a run writes goes under the cache it was given (``--cache DIR``,
``features.cache_dir``): a weight file the cache derives, too, never the user's home cache."""

from __future__ import annotations

from pathlib import Path

import torch

from scenefusion.features.backbones import effnet
from scenefusion.features.image import ImageExtractor


def test_the_merged_lite_weights_go_to_the_extractors_cache_not_the_home_one(tmp_path,
                                                                              monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("SCENEFUSION_CACHE", str(home / "env-cache"))
    # stand-ins for the two packages' files: the architectures' own (random) weights
    for name, build in (("lite0", effnet.effnet_lite0), ("lite2", effnet.effnet_lite2)):
        torch.manual_seed(0)
        torch.save(build().state_dict(), tmp_path / f"{name}.pth")
        monkeypatch.setattr(effnet, f"{name}_file", lambda n=name: str(tmp_path / f"{n}.pth"))
    extractor = ImageExtractor("effnet_lite0_lite2", runtime="torch", cache_dir=tmp_path / "c")
    out = extractor.embed(torch.zeros(1, 3, 260, 260))
    assert out.shape == (1, 2560)
    merged = tmp_path / "c" / "weights" / "effnet_lite0_lite2.pth"
    assert merged.is_file() and Path(extractor.model.weights_path) == merged
    assert not home.exists() or not [p for p in home.rglob("*") if p.is_file()]
