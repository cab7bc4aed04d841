"""Where image backbones run: ``--device auto|cpu|cuda`` reaches both runtimes, and asking
for a GPU that is not there is one sentence, not a silent CPU run."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.features import image as image_mod
from scenefusion.features import onnx as onnx_mod
from scenefusion.features.device import ONNX_PROVIDERS, cuda_available
from scenefusion.features.image import ImageExtractor


def test_auto_is_the_cpu_here_and_cuda_without_a_gpu_is_refused():
    if cuda_available("torch") or cuda_available("onnx"):
        pytest.skip("this machine has a GPU")
    assert ImageExtractor("effnet_lite0", device="auto").device == "cpu"
    with pytest.raises(ValueError, match="'cuda' was asked for but no CUDA device"):
        ImageExtractor("effnet_lite0", device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        ImageExtractor("effnet_lite0", device="gpu")


def test_onnx_sessions_get_the_cuda_provider_first_when_the_device_is_cuda(monkeypatch,
                                                                          tmp_path):
    seen = {}
    monkeypatch.setattr(image_mod, "cuda_available", lambda runtime: True)

    def fake_session(model, threads, *, spinning=True, providers=()):
        seen["providers"] = providers
        raise RuntimeError("stop here")

    monkeypatch.setattr(onnx_mod, "new_session", fake_session)
    extractor = ImageExtractor("effnet_lite0", runtime="onnx", device="cuda",
                               cache_dir=tmp_path)
    assert extractor.device == "cuda" and extractor._torch_device == "cpu"  # export on CPU
    with pytest.raises(Exception, match="stop here"):
        extractor.embed(torch.zeros(1, 3, 224, 224))
    assert seen["providers"] == ONNX_PROVIDERS["cuda"] == ("CUDAExecutionProvider",
                                                           "CPUExecutionProvider")


@pytest.mark.parametrize("command", [["extract", "."], ["run"], ["predict", "--model", "."],
                                     ["serve", "."]])
def test_every_command_that_embeds_images_takes_device(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--device" in result.output
