"""Where image backbones run: the CPU or a CUDA GPU, for either runtime.

``auto`` takes a GPU when the chosen runtime can use one (torch built with CUDA and a device
present; ONNX Runtime with its CUDA execution provider, i.e. the ``onnxruntime-gpu`` package);
asking for ``cuda`` where there is none is an error rather than a silent CPU run, since a run
planned for a GPU would otherwise take hours without saying why. The device does not change
what an embedding means (only float rounding), so it is not part of the feature-cache key.
"""

from __future__ import annotations

from ..errors import InvalidValue

DEVICES = ("auto", "cpu", "cuda")
#: ONNX Runtime execution providers per device, in order of preference.
ONNX_PROVIDERS = {"cpu": ("CPUExecutionProvider",),
                  "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider")}


def cuda_available(runtime: str) -> bool:
    """Whether ``runtime`` ("torch" or "onnx") can run on a CUDA GPU here."""
    if runtime == "torch":
        import torch

        return bool(torch.cuda.is_available())
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def choose_device(requested: str, cuda_available: bool) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested ``auto | cpu | cuda``."""
    if requested not in DEVICES:
        raise InvalidValue(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise InvalidValue("device 'cuda' was asked for but no CUDA device is available to "
                           "this runtime (torch: torch.cuda.is_available() is False; ONNX "
                           "Runtime: no CUDAExecutionProvider, install onnxruntime-gpu); use "
                           "--device cpu or auto")
    return requested
