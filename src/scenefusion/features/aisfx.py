"""The pretrained aiSFX sound-effects embedding as an audio feature (512-d per clip).

aiSFX (A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound
Effects Libraries", ISMIR 2022; weights CC-BY 4.0) is a 9-layer CNN trained across several
sound-effects libraries. Only its weight file is used, taken from the PyPI package (install it
with ``pip install --no-deps aisfx==0.1.2``: its pins of numpy 1.23 / librosa 0.9 conflict with
ours) or from a copy named by ``$SCENEFUSION_AISFX_WEIGHTS``. The package is never imported;
the network and the preprocessing below are our own code, written to match the paper's.

Trust note: the checkpoint is a pickle. It is read with ``torch.load(weights_only=True)`` and an
allow-list of exactly the three numpy globals that the official file needs
(:data:`ALLOWED_GLOBALS`); a file naming any other global is refused before it is unpickled,
so loading it cannot run code.

The network runs on ONNX Runtime by default (exported once per weight file into the cache
folder; ~1.4x faster end to end than eager torch here, benchmarks/README.md) or on torch
(``AisfxParams(runtime="torch")``); the runtime is part of the feature-cache key. This module
imports torch and onnxruntime only when a network is needed, so importing it (and
:mod:`.audio`, which registers the feature) stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import pickle
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.validate import read_audio
from ..files import written_atomically

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: Names a copy of aiSFX's ``models/checkpoint.pth`` (used before the installed package's).
ENV_WEIGHTS = "SCENEFUSION_AISFX_WEIGHTS"
INSTALL_COMMAND = "pip install --no-deps aisfx==0.1.2"
#: SHA-256 of ``aisfx/models/checkpoint.pth`` in aisfx 0.1.2 (the weights the cache key names).
OFFICIAL_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
#: The pickle globals the official checkpoint needs beyond plain tensors and containers: its
#: ``ds_dict`` holds numpy int64 scalars (``numpy.core.multiarray.scalar`` of an
#: ``np.dtype("int64")``, whose pickled state is set on an ``Int64DType`` instance). Any other
#: global makes the file refused unread.
ALLOWED_GLOBALS = ("numpy.core.multiarray.scalar", "numpy.dtype", "numpy.dtypes.Int64DType")
EMBEDDING_DIM = 512
#: Channels of the four conv blocks (input: one log-mel "image").
_WIDTHS = (1, 64, 128, 256, 512)
#: Mel bands the network was trained on (the ONNX export's example input).
_N_MELS_TRAINED = 96
RUNTIMES = ("onnx", "torch")
#: The network pools time by 2 three times: fewer frames than this cannot pass through it.
MIN_FRAMES = 8


def _errors() -> Any:
    """The backbone weights' error types (:class:`WeightsNotFoundError`, ``WeightsLoadError``,
    ``WeightsMismatchError``), imported when needed: their module imports torch."""
    from .backbones import weights

    return weights


@functools.cache
def _untrusted_weights_error() -> type:
    class UntrustedWeightsError(_errors().WeightsLoadError):
        """A weight file names pickle globals outside :data:`ALLOWED_GLOBALS`: refused, never
        unpickled (that could run code). A WeightsLoadError, so one ``except`` covers every
        refused weight file."""

    UntrustedWeightsError.__module__ = __name__
    UntrustedWeightsError.__qualname__ = "UntrustedWeightsError"
    return UntrustedWeightsError


def __getattr__(name: str) -> Any:
    """``UntrustedWeightsError`` is defined on first use (its base class's module imports
    torch, which importing this module does not)."""
    if name == "UntrustedWeightsError":
        return _untrusted_weights_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class AisfxParams:
    """Everything that changes the numbers; hashed into the feature-cache key.

    Defaults are the paper's input: 44.1 kHz, 96 HTK mel bands over 0-22050 Hz from 2048-sample
    Hann frames every 1024 samples (43 frames per second), power spectrum, unit-sum bands,
    ``log10(10000 * S + 1)`` and min-max scaling with the constants of the paper's training
    data. ``weights`` names the checkpoint the numbers come from (see :data:`OFFICIAL_SHA256`).
    """

    sample_rate: int = 44100
    n_mels: int = 96
    n_fft: int = 2048
    hop: int = 1024
    fmin: float = 0.0
    fmax: float = 22050.0
    clip_seconds: int = 1
    log_scale: float = 10000.0
    norm_min: float = 0.0
    norm_max: float = 9.457798957824707
    weights: str = "aisfx-0.1.2"
    #: "onnx" (default: ONNX Runtime, ~1.4x faster end to end than eager torch on a 2-core
    #: CPU, see benchmarks/README.md) or "torch"; both agree to ~1e-6.
    runtime: str = "onnx"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown aiSFX runtime {self.runtime!r}; choose one of "
                             f"{', '.join(RUNTIMES)}")

    @property
    def frames(self) -> int:
        """One step: the clip's embedding is a length-1 sequence, so it fits the (T, C) audio
        convention."""
        return 1

    @property
    def channels(self) -> int:
        return EMBEDDING_DIM

    def weights_identity(self) -> str | None:
        """SHA-256 of the checkpoint in use, or None for aisfx 0.1.2's own (so the official
        weights keep one stable cache key): features from another weight file are cached
        apart. Raises the install hint when no checkpoint is found."""
        digest = checkpoint_digest(find_aisfx_checkpoint())
        return None if digest == OFFICIAL_SHA256 else digest


# --- finding and loading the weights -----------------------------------------------------------

def _packaged_checkpoint() -> Path | None:
    """``models/checkpoint.pth`` beside the installed aisfx package, found without importing it
    (its ``__init__`` would import its pinned dependencies)."""
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        folder = Path(spec.origin).parent
    elif spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    else:
        return None
    return folder / "models" / "checkpoint.pth"


def find_aisfx_checkpoint(explicit: Path | str | None = None) -> Path:
    """The aiSFX checkpoint to use: ``explicit``, else ``$SCENEFUSION_AISFX_WEIGHTS``, else the
    installed aisfx package's file. Raises ``WeightsNotFoundError`` (a FileNotFoundError)
    saying how to get it."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise _errors().WeightsNotFoundError(
                f"aiSFX weights file not found: {path} (expected a copy of models/checkpoint.pth "
                f"from the aisfx package; install it with: {INSTALL_COMMAND})")
        return path
    named = os.environ.get(ENV_WEIGHTS)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise _errors().WeightsNotFoundError(
                f"${ENV_WEIGHTS} names {path}, which is not a file: point it at a copy of "
                f"the aisfx package's models/checkpoint.pth, or unset it and run: "
                f"{INSTALL_COMMAND}")
        return path
    packaged = _packaged_checkpoint()
    if packaged is not None and packaged.is_file():
        return packaged
    found = (f" (the installed aisfx package has no {packaged}: reinstall it)"
             if packaged is not None else "")
    raise _errors().WeightsNotFoundError(
        f"the pretrained aiSFX weights for audio feature 'aisfx' are not available{found}.\n"
        f"  Install them with: {INSTALL_COMMAND}\n"
        "  (--no-deps: only its weight file is used, and its pins of numpy 1.23 / librosa 0.9\n"
        "  conflict with ours), or set "
        f"{ENV_WEIGHTS} to the path of a copy of its models/checkpoint.pth.")


def _refusal(path: Path, reason: str) -> str:
    return f"refusing to load {path}: {reason}"


def _allow_listed() -> list[Any]:
    """The :data:`ALLOWED_GLOBALS` as objects for ``torch.serialization.safe_globals``."""
    from numpy._core.multiarray import scalar

    return [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]


def _read_checkpoint(path: Path) -> Any:
    """Unpickle ``path`` with torch's weights-only unpickler and :data:`ALLOWED_GLOBALS`; every
    failure is a named error with the file and the reason."""
    import torch

    try:  # list what the pickle names, without running it: refuse before reading anything
        named = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, OSError):
        named = set()  # not a zip checkpoint: torch.load below says what it is
    extra = sorted(named - set(ALLOWED_GLOBALS))
    if extra:
        raise _untrusted_weights_error()(_refusal(
            path, f"it holds object types outside the allow-list ({', '.join(extra)}); not "
                  "unpickled, since that could run code"))
    try:
        with torch.serialization.safe_globals(_allow_listed()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message: a page of advice; keep the finding
        lines = [ln.strip() for ln in str(exc).splitlines()
                 if re.search(r"(?i)unsupported global|allowlisted|but got|blocked", ln)]
        raise _untrusted_weights_error()(_refusal(
            path, "not a plain weight file: it holds objects outside the allow-list "
                  f"({(lines or ['unsupported pickle content'])[0]}); not loaded, since that "
                  "could run code")) from None
    except EOFError:
        raise _errors().WeightsLoadError(_refusal(path, "the file is empty or cut short")) from None
    except Exception as exc:  # noqa: BLE001 (zip, storage and format errors share no base)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise _errors().WeightsLoadError(_refusal(
            path, f"not a PyTorch checkpoint ({type(exc).__name__}: {first[:200]})")) from None


def load_aisfx_state(path: Path | str) -> dict[str, torch.Tensor]:
    """The embedding network's state_dict from an aiSFX checkpoint (the package's
    ``(state_dict, datasets)`` tuple, or a bare state_dict), checked tensor by tensor.

    Refused with a named error naming the file: other pickle globals
    (:class:`UntrustedWeightsError`), an unreadable file (:class:`WeightsLoadError`), missing,
    extra, misshaped, non-float or non-finite tensors (:class:`WeightsMismatchError`). The
    classifier heads (``fc.*``) are ignored.
    """
    import torch

    path = Path(path)
    content = _read_checkpoint(path)
    if isinstance(content, (tuple, list)) and content and isinstance(content[0], Mapping):
        state = content[0]
    elif isinstance(content, Mapping):
        state = content
    else:
        raise _errors().WeightsLoadError(_refusal(
            path, f"it holds a {type(content).__name__}, not aiSFX's (state_dict, datasets) "
                  "tuple"))
    prefix = "embedding_net." if any(str(k).startswith("embedding_net.") for k in state) else ""
    mine = {str(k)[len(prefix):]: v for k, v in state.items()
            if str(k).startswith(prefix + "conv_block")}
    expected = build_embedding_net().state_dict()
    missing = [k for k in expected if k not in mine and not k.endswith("num_batches_tracked")]
    problems = []
    if missing:
        problems.append(f"missing tensors {_few(prefix + k for k in missing)}")
    extra = [k for k in mine if k not in expected]
    if extra:
        problems.append(f"unexpected tensors {_few(prefix + k for k in extra)}")
    for key, value in mine.items():
        if key not in expected:
            continue
        want = expected[key]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{prefix}{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(want.shape):
            problems.append(f"{prefix}{key} has shape {tuple(value.shape)}, the network "
                            f"needs {tuple(want.shape)}")
        elif want.is_floating_point() and not value.is_floating_point():
            problems.append(f"{prefix}{key} is {value.dtype}, not floating point")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problems.append(f"{prefix}{key} holds NaN or infinite values")
    if problems:
        raise _errors().WeightsMismatchError(_refusal(
            path, "not the aiSFX embedding network's weights: " + "; ".join(problems[:5])
                  + (f"; ... (+{len(problems) - 5} more)" if len(problems) > 5 else "")))
    out = {k: v.to(expected[k].dtype) for k, v in mine.items()}
    for key, value in expected.items():  # BatchNorm's counter does not affect inference
        out.setdefault(key, value)
    return out


def _few(keys) -> str:
    keys = list(keys)
    more = f", ... (+{len(keys) - 5} more)" if len(keys) > 5 else ""
    return ", ".join(keys[:5]) + more


# --- the network -------------------------------------------------------------------------------

@functools.cache
def _network_classes() -> type:
    """The embedding network's module class, defined on first use so that importing this
    module does not import torch."""
    from torch import nn
    from torch.nn import functional as F

    class ConvBlock(nn.Module):
        """Two 3x3 convolutions (no bias), each followed by batch norm and ReLU."""

        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(x)))

    class AisfxEmbeddingNet(nn.Module):
        """(B, T, n_mels) scaled log-mel frames -> (B, 512): four conv blocks, 2x2 max pooling
        after the first three, then the mean over frequency and the max over time. Fully
        convolutional: any T >= 8 frames."""

        def __init__(self) -> None:
            super().__init__()
            for i, (cin, cout) in enumerate(zip(_WIDTHS, _WIDTHS[1:], strict=False), start=1):
                self.add_module(f"conv_block{i}", ConvBlock(cin, cout))

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames.unsqueeze(1)
            x = F.max_pool2d(self.conv_block1(x), 2)
            x = F.max_pool2d(self.conv_block2(x), 2)
            x = F.max_pool2d(self.conv_block3(x), 2)
            x = self.conv_block4(x)
            return x.mean(dim=3).amax(dim=2)

    return AisfxEmbeddingNet


def build_embedding_net() -> nn.Module:
    """A fresh, randomly initialised aiSFX embedding network (eval mode)."""
    return _network_classes()().eval()


_NETS: dict[tuple[str, int, int], nn.Module] = {}
_DIGESTS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.RLock()


def _file_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content cheaply: a rewritten file gets a new key."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def checkpoint_digest(path: Path) -> str:
    """SHA-256 of a checkpoint file (computed once per process and file version)."""
    key = _file_key(path)
    with _LOCK:
        if key not in _DIGESTS:
            with open(path, "rb") as fh:
                _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
            if _DIGESTS[key] != OFFICIAL_SHA256:
                log.info("aiSFX weights %s are not aisfx 0.1.2's checkpoint; their features "
                         "are cached apart (keyed by the file's SHA-256)", path)
        return _DIGESTS[key]


def load_aisfx_net(path: Path | str | None = None) -> nn.Module:
    """The embedding network with the weights of ``path`` (default: :func:`find_aisfx_checkpoint`),
    loaded once per process and file (a changed file is loaded again)."""
    checkpoint = find_aisfx_checkpoint(path)
    key = _file_key(checkpoint)
    with _LOCK:
        net = _NETS.get(key)
        if net is None:
            net = build_embedding_net()
            net.load_state_dict(load_aisfx_state(checkpoint), strict=True)
            net.eval().requires_grad_(False)
            checkpoint_digest(checkpoint)  # warns once about other weights than the official
            log.info("loaded aiSFX weights from %s", checkpoint)
            _NETS[key] = net
    return net


# --- ONNX Runtime ------------------------------------------------------------------------------
#: Bump when the network code changes the exported graph: old cached exports are then ignored.
GRAPH_VERSION = 1
_SESSIONS: dict[tuple[str, int], Any] = {}


def onnx_path(checkpoint: Path | str | None = None) -> Path:
    """Where the ONNX export of a checkpoint's embedding network is cached: the scenefusion
    cache folder's ``onnx/`` (beside the image backbones' exports), named by the checkpoint's
    content, so other weights get their own graph."""
    from ..paths import default_cache_dir

    digest = checkpoint_digest(find_aisfx_checkpoint(checkpoint))
    return default_cache_dir() / "onnx" / f"aisfx-{digest[:16]}-g{GRAPH_VERSION}.onnx"


def _export_bytes(checkpoint: Path) -> bytes:
    """The embedding network as an ONNX graph (dynamic batch and time axes). Loading the
    checkpoint here checks it (allow-list, tensors) before anything is written."""
    import io

    import torch

    net = load_aisfx_net(checkpoint)
    buffer = io.BytesIO()
    example = torch.zeros(1, 44, _N_MELS_TRAINED)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), buffer, input_names=["frames"],
                          output_names=["embedding"],
                          dynamic_axes={"frames": {0: "n", 1: "t"}, "embedding": {0: "n"}},
                          opset_version=17, dynamo=False)
    return buffer.getvalue()


def _new_session(model: Path | bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # One small graph per clip, between spectrograms: idle threads that spin (the default)
    # steal the cores that the next clip's spectrogram needs (measured on 2 cores: ~1.7x
    # slower end to end).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def load_aisfx_session(checkpoint: Path | str | None = None) -> Any:
    """An ONNX Runtime session over the embedding network of ``checkpoint`` (default:
    :func:`find_aisfx_checkpoint`), one per process, file and thread budget.

    The graph is exported once into the cache folder (:func:`onnx_path`) and reused by later
    processes without building the torch network. A cached graph that does not load is logged,
    deleted and exported again; a cache folder that cannot be written only costs the export
    in each process (the graph is then used from memory). Threads: the active
    :func:`scenefusion.cpu.limit_threads` cap, else the cores this process may use.
    """
    from ..cpu import thread_budget

    found = find_aisfx_checkpoint(checkpoint)
    path = onnx_path(found)
    threads = thread_budget()
    key = (str(path), threads)
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = _cached_session(found, path, threads)
    return session


def _cached_session(checkpoint: Path, path: Path, threads: int) -> Any:
    if path.is_file():
        try:
            return _new_session(path, threads)
        except Exception as exc:  # noqa: BLE001 (onnxruntime's errors share no base class)
            log.warning("cached ONNX export %s cannot be loaded (%s: %s); exporting it again",
                        path, type(exc).__name__, str(exc).strip()[:200])
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    log.info("exporting the aiSFX network to ONNX at %s (once per cache)", path)
    graph = _export_bytes(checkpoint)
    try:
        with written_atomically(path) as tmp:
            tmp.write_bytes(graph)
    except OSError as exc:
        log.warning("cannot cache the aiSFX ONNX export at %s (%s); using it from memory, so "
                    "each process exports it again", path, exc)
    try:
        return _new_session(graph, threads)
    except Exception as exc:  # noqa: BLE001
        from .store import CacheError

        raise CacheError(path, "ONNX Runtime cannot load the fresh aiSFX export "
                               f"({str(exc).strip()[:200]}); use AisfxParams(runtime='torch')"
                         ) from exc


# --- preprocessing and the feature -------------------------------------------------------------

@functools.cache
def _blas_controller() -> Any:
    """BLAS thread control for the spectrogram's one small matrix product, which runs on one
    thread: OpenBLAS's worker threads otherwise keep spinning on every core after it returns
    and starve torch's threads in the network that follows (measured on 2 cores: the network
    took ~120 ms per clip right after a 2-thread BLAS call instead of ~15 ms). Built once (it
    scans the loaded libraries), after librosa and scipy have loaded theirs."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def aisfx_frames(audio: np.ndarray, params: AisfxParams = AisfxParams()) -> np.ndarray:
    """(frames, n_mels) float32 network input from a mono clip at ``params.sample_rate``:
    peak-normalised, mel power spectrogram, ``log10(scale * S + 1)``, min-max scaled."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio / peak
    with warnings.catch_warnings(), _blas_controller().limit(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        # norm=1.0: in librosa >= 0.8 a number is the p of an L_p normalisation of each mel
        # filter (librosa.util.normalize), so 1.0 makes each band's (non-negative) weights sum
        # to 1: Essentia's MelBands normalize="unit_sum", which the paper's spectrograms used.
        # (In librosa < 0.8, norm=1 meant Slaney area normalisation instead.)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop,
            win_length=params.n_fft, window="hann", center=True, pad_mode="constant",
            n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax, htk=True, norm=1.0,
            power=2.0,
        )
    logmel = np.log10(params.log_scale * mel + 1.0)
    scaled = (logmel - params.norm_min) / (params.norm_max - params.norm_min)
    return np.ascontiguousarray(scaled.T, dtype=np.float32)


def embed_frames(frames: np.ndarray, weights: Path | str | None = None) -> np.ndarray:
    """(B, 512) float32 embeddings of (B, T, n_mels) frames (T >= 8), with the weights of
    ``weights`` (default: :func:`find_aisfx_checkpoint`)."""
    return _embed(load_aisfx_net(weights), frames)


def _embed(net: nn.Module, frames: np.ndarray) -> np.ndarray:
    import torch

    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3 or frames.shape[1] < MIN_FRAMES:
        raise ValueError(f"aiSFX needs (B, T >= {MIN_FRAMES}, n_mels) frames, got {frames.shape}")
    # torch's intra-op threads are the caller's: scenefusion.cpu.limit_threads sets them
    with torch.inference_mode():
        return net(torch.from_numpy(frames)).numpy().astype(np.float32, copy=False)


def _embedder(runtime: str):
    """``frames (B, T, n_mels) -> (B, 512)`` on the runtime asked for; loads (or finds) the
    weights now, so that missing weights fail before any audio is read."""
    if runtime == "torch":
        net = load_aisfx_net()
        return lambda frames: _embed(net, frames)
    session = load_aisfx_session()
    return lambda frames: session.run(None, {"frames": np.asarray(frames, np.float32)})[0]


def aisfx_embedding(path: Path, params: AisfxParams = AisfxParams()) -> np.ndarray:
    """A file's (1, 512) aiSFX embedding: the clip of ``clip_seconds`` (centre-cropped, short
    audio looped, as for every audio feature) through the pretrained network. Raises DataError
    for unusable audio, ``WeightsNotFoundError`` / ``WeightsLoadError`` for missing or refused
    weights."""
    from .audio import fit_clip  # .audio imports this module to register the feature

    embed = _embedder(params.runtime)
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    # peak normalisation (in aisfx_frames) applies to this clip, the audio that is embedded
    return embed(aisfx_frames(clip, params)[None]).astype(np.float32, copy=False)


__all__ = ["ALLOWED_GLOBALS", "ENV_WEIGHTS", "INSTALL_COMMAND", "AisfxParams", "aisfx_embedding",
           "aisfx_frames", "build_embedding_net", "embed_frames", "find_aisfx_checkpoint",
           "checkpoint_digest", "load_aisfx_net", "load_aisfx_session", "load_aisfx_state",
           "onnx_path"]
