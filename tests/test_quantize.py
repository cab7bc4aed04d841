"""int8 / bf16 image embedding and the device choice.

A tiny random-weight conv net stands in for a backbone (same export, quantisation and caching
code, a fraction of the time); real backbones are measured in benchmarks/extract_speed.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scenefusion.features import image as image_mod
from scenefusion.features.device import choose_device
from scenefusion.features.image import ImageExtractor
from scenefusion.features.quantize import (
    CHECK_IMAGES,
    Int8Diverges,
    calibration_batches,
    evenly_spaced,
    generated_images,
    quantize_int8,
    split_check_images,
)

#: Per-channel int8 weights and uint8 activations each add ~0.4 % relative error (1/256) per
#: quantised layer, bf16 ~0.4 % per op (8-bit mantissa); over the tiny net's three layers the
#: centred cosine to fp32 measures 0.998 (int8) and 0.995 (bf16), while two different images
#: score below 0.5: 0.98 fails only on a real fault (wrong scales, broken calibration).
MIN_COSINE = 0.98


class TinyNet(nn.Module):
    """Three convolutions to the backbone's 1280-d embedding, random but fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 1280, 1))  # no ReLU: signed embeddings, so cosine discriminates

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class OutlierNet(TinyNet):
    """A net whose int8 graph cannot follow fp32 on any CPU: one hidden channel is about 10^5
    times the others, so the layer's per-tensor uint8 activations (scale ~400) round every
    other channel to zero, while the embedding reads only those other channels."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.body[2].bias[0] = 1e5
            self.body[4].weight[:, 0] = 0.0


def _tiny(cache: Path, precision: str = "fp32", runtime: str = "auto", net: type = TinyNet,
          **kw) -> ImageExtractor:
    extractor = ImageExtractor("effnet_lite0", runtime=runtime, cache_dir=cache, threads=1,
                               precision=precision, **kw)
    extractor._model = net().eval()
    return extractor


@pytest.fixture(scope="module")
def photos_batch() -> torch.Tensor:
    """Preprocessed images the calibration never saw (another seed)."""
    extractor = ImageExtractor("effnet_lite0")
    return torch.stack([extractor.preprocess(im) for im in generated_images(6, seed=99)])


def _cosines(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-row cosine after removing ref's batch mean: the random net's embeddings share a large
    common component that would make any two images look alike."""
    a, ref = a - ref.mean(0), ref - ref.mean(0)
    return (a * ref).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1))


def test_int8_embeds_with_the_right_shape_close_to_fp32(tmp_path, photos_batch):
    fp32 = _tiny(tmp_path).embed(photos_batch)
    int8 = _tiny(tmp_path, "int8", calibration_images=list(generated_images(24)))
    embedded = int8.embed(photos_batch)
    assert embedded.shape == (6, 1280) and embedded.dtype == np.float32
    assert _cosines(embedded, fp32).min() > MIN_COSINE
    assert _cosines(np.roll(fp32, 1, axis=0), fp32).max() < 0.5  # the measure discriminates
    assert not np.allclose(embedded, fp32, rtol=1e-5)  # really the int8 graph
    assert int8.int8_path().is_file() and int8.int8_path().parent == int8.onnx_path().parent


def test_int8_that_diverges_from_fp32_is_refused_in_one_sentence(tmp_path, photos_batch):
    fp32 = _tiny(tmp_path, net=OutlierNet).embed(photos_batch)
    assert _cosines(np.roll(fp32, 1, axis=0), fp32).max() < 0.5  # fp32 itself discriminates
    int8 = _tiny(tmp_path, "int8", net=OutlierNet, calibration_images=list(generated_images(24)))
    with pytest.raises(Int8Diverges, match=r"^int8 embedding of effnet_lite0 diverges from fp32 "
                                           r"on this CPU \(cosine -?\d\.\d\d\): "
                                           r"use --precision fp32$"):
        int8.embed(photos_batch)
    # refused on every later load too, not only right after quantising
    with pytest.raises(Int8Diverges):
        _tiny(tmp_path, "int8", net=OutlierNet,
              calibration_images=list(generated_images(24))).embed(photos_batch)


def test_int8_check_holds_back_calibration_images_and_is_rebuilt_when_missing(tmp_path,
                                                                             photos_batch):
    given = list(generated_images(40, seed=5))
    calibration, check = split_check_images(given)
    held = [im for im in given if any(im is c for c in check)]
    assert len(held) == 5 and len(calibration) == 35 and len(check) == 5 + CHECK_IMAGES
    assert not any(im is c for im in calibration for c in held)  # held back, not calibrated on
    assert split_check_images(given[:3]) == (given[:3], check[5:])  # too few to hold any back
    int8 = _tiny(tmp_path, "int8", calibration_images=given)
    expected = int8.embed(photos_batch)
    int8.int8_check_path().unlink()
    again = _tiny(tmp_path, "int8", calibration_images=given)
    np.testing.assert_allclose(again.embed(photos_batch), expected, rtol=1e-5, atol=1e-6)
    assert again.int8_check_path().is_file()


def test_bf16_embeds_close_to_fp32(tmp_path, photos_batch):
    fp32 = _tiny(tmp_path, runtime="torch").embed(photos_batch)
    bf16 = _tiny(tmp_path, "bf16")
    assert bf16.runtime == "torch"
    assert _cosines(bf16.embed(photos_batch), fp32).min() > MIN_COSINE


def test_precision_and_calibration_set_are_in_the_cache_key(tmp_path):
    fp32 = ImageExtractor("effnet_lite0", runtime="onnx", cache_dir=tmp_path)
    int8 = ImageExtractor("effnet_lite0", precision="int8", cache_dir=tmp_path)
    bf16 = ImageExtractor("effnet_lite0", precision="bf16", cache_dir=tmp_path)
    keys = {fp32.params_key(), int8.params_key(), bf16.params_key()}
    assert len(keys) == 3
    own = ImageExtractor("effnet_lite0", precision="int8", cache_dir=tmp_path,
                         calibration_images=list(generated_images(2)))
    assert own.params_key() != int8.params_key()  # another calibration, another int8 model
    assert int8.onnx_path() == fp32.onnx_path()  # both built from the one fp32 export
    assert int8.int8_path() != own.int8_path()


def test_int8_on_runtime_torch_and_bf16_on_onnx_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="int8 runs on ONNX Runtime.*not on runtime torch"):
        ImageExtractor("effnet_lite0", runtime="torch", precision="int8", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="bf16 runs on runtime torch"):
        ImageExtractor("effnet_lite0", runtime="onnx", precision="bf16", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown precision 'fp16'.*fp32, int8, bf16"):
        ImageExtractor("effnet_lite0", precision="fp16", cache_dir=tmp_path)


def _count_calls(monkeypatch, name: str, real) -> list:
    calls: list = []
    monkeypatch.setattr(image_mod, name, lambda *a: calls.append(a) or real(*a))
    return calls


def test_truncated_int8_model_is_rebuilt_once(tmp_path, photos_batch, caplog, monkeypatch):
    calibration = list(generated_images(8))
    first = _tiny(tmp_path, "int8", calibration_images=calibration)
    expected = first.embed(photos_batch)
    path = first.int8_path()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    quantised = _count_calls(monkeypatch, "quantize_int8", quantize_int8)
    exported = _count_calls(monkeypatch, "export_onnx", image_mod.export_onnx)
    with caplog.at_level(logging.WARNING, logger="scenefusion.features.image"):
        healed = _tiny(tmp_path, "int8", calibration_images=calibration).embed(photos_batch)
    np.testing.assert_allclose(healed, expected, rtol=1e-5, atol=1e-6)
    assert len(quantised) == 1 and not exported  # the fp32 export was sound: reused
    assert f"cached int8 model {path} cannot be loaded" in caplog.text
    assert "quantising it again" in caplog.text
    assert not list(path.parent.glob("*.tmp"))


def test_truncated_fp32_export_is_exported_again_before_quantising(tmp_path, caplog, monkeypatch):
    first = _tiny(tmp_path)
    first.embed(torch.zeros(1, 3, 224, 224))
    export = first.onnx_path()
    export.write_bytes(export.read_bytes()[:100])
    exported = _count_calls(monkeypatch, "export_onnx", image_mod.export_onnx)
    int8 = _tiny(tmp_path, "int8", calibration_images=list(generated_images(4)))
    with caplog.at_level(logging.WARNING, logger="scenefusion.features.image"):
        assert int8.embed(torch.zeros(2, 3, 224, 224)).shape == (2, 1280)
    assert len(exported) == 1 and f"cached ONNX export {export}" in caplog.text


def test_calibration_skips_unreadable_files_and_spreads_over_the_data(tmp_path, caplog):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    good = tmp_path / "good.png"
    next(generated_images(1)).save(good)
    with caplog.at_level(logging.WARNING, logger="scenefusion.features.quantize"):
        batches = list(calibration_batches([bad, good], ImageExtractor("effnet_lite0").preprocess))
    assert [b.shape for b in batches] == [(1, 3, 224, 224)]
    assert str(bad) in caplog.text and "skipped" in caplog.text
    assert evenly_spaced(list(range(10)), 4) == [0, 2, 5, 7]
    assert evenly_spaced([1, 2], 4) == [1, 2]


@pytest.mark.parametrize(("requested", "cuda", "expected"), [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cpu", False, "cpu"),
    ("cuda", True, "cuda"),
])
def test_choose_device(requested, cuda, expected):
    assert choose_device(requested, cuda) == expected


def test_choose_device_errors():
    with pytest.raises(ValueError, match="'cuda' was asked for but no CUDA device is available"):
        choose_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="unknown device 'gpu'; choose one of auto, cpu, cuda"):
        choose_device("gpu", cuda_available=True)
