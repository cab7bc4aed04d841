"""The pretrained aiSFX sound-effects embedding as an audio feature (512-d per clip).

aiSFX (A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound
Effects Libraries", ISMIR 2022; weights CC-BY 4.0) is a 9-layer CNN trained across several
sound-effects libraries. Only its weight file is used (:mod:`.aisfx_weights` finds, reads and
checks it); the network (:mod:`.aisfx_net`) and the preprocessing below are our own code,
written to match the paper's.

The network runs on ONNX Runtime by default (exported once per weight file into the cache
folder; ~1.4x faster end to end than eager torch here, benchmarks/README.md) or on torch
(``AisfxParams(runtime="torch")``); the runtime is part of the feature-cache key. This module
imports torch and onnxruntime only when a network is needed, so importing it (and registering
the feature) stays cheap.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...data.validate import read_audio
from ...errors import InvalidValue, UntrustedWeightsError
from ...files import file_key
from ..onnx import cached_session, write_or_keep
from .aisfx_net import EMBEDDING_DIM, MIN_FRAMES, build_embedding_net
from .aisfx_weights import (
    ALLOWED_GLOBALS,
    ENV_WEIGHTS,
    INSTALL_COMMAND,
    OFFICIAL_SHA256,
    checkpoint_digest,
    find_aisfx_checkpoint,
    load_aisfx_state,
)
from .framing import fit_clip
from .registry import AUDIO_FEATURES, AudioFeature

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

#: Mel bands the network was trained on (the ONNX export's example input).
_N_MELS_TRAINED = 96
#: the terms of the weights (aisfx 0.1.2's checkpoint), stated wherever the feature is named
LICENCE = "aiSFX weights CC BY 4.0 (credit A. B. Ma and A. Lerch)"
RUNTIMES = ("onnx", "torch")


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
            raise InvalidValue(f"unknown aiSFX runtime {self.runtime!r}; choose one of "
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


# --- the network with its weights --------------------------------------------------------------

_NETS: dict[tuple[str, int, int], nn.Module] = {}
_LOCK = threading.RLock()


def load_aisfx_net(path: Path | str | None = None) -> nn.Module:
    """The embedding network with the weights of ``path`` (default: :func:`find_aisfx_checkpoint`),
    loaded once per process and file (a changed file is loaded again)."""
    checkpoint = find_aisfx_checkpoint(path)
    key = file_key(checkpoint)
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
    from ...paths import default_cache_dir

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


def load_aisfx_session(checkpoint: Path | str | None = None) -> Any:
    """An ONNX Runtime session over the embedding network of ``checkpoint`` (default:
    :func:`find_aisfx_checkpoint`), one per process, file and thread budget.

    The graph is exported once into the cache folder (:func:`onnx_path`) and reused by later
    processes without building the torch network. A cached graph that does not load is logged,
    deleted and exported again; a cache folder that cannot be written only costs the export
    in each process (the graph is then used from memory). Threads: the active
    :func:`scenefusion.cpu.limit_threads` cap, else the cores this process may use. Idle
    threads do not spin: one small graph runs per clip, between spectrograms, and spinning
    threads steal the cores that the next clip's spectrogram needs (measured on 2 cores:
    ~1.7x slower end to end).
    """
    from ...cpu import thread_budget

    found = find_aisfx_checkpoint(checkpoint)
    path = onnx_path(found)
    threads = thread_budget()
    key = (str(path), threads)

    def export(target: Path) -> bytes | None:
        log.info("exporting the aiSFX network to ONNX at %s (once per cache)", target)
        return write_or_keep(target, _export_bytes(found), "aiSFX ONNX export")

    with _LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = cached_session(
                path, export, threads, name="aiSFX export",
                hint="use AisfxParams(runtime='torch')", spinning=False)
    return session


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


def frame_embedder(runtime: str):
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
    embed = frame_embedder(params.runtime)
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    # peak normalisation (in aisfx_frames) applies to this clip, the audio that is embedded
    return embed(aisfx_frames(clip, params)[None]).astype(np.float32, copy=False)


AUDIO_FEATURES.register(
    "aisfx", AudioFeature(AisfxParams(), aisfx_embedding,
                          # the name its cache keys were first computed under (kept valid)
                          "scenefusion.features.aisfx.aisfx_embedding", licence=LICENCE),
    description="pretrained aiSFX sound-effects CNN embedding (512-d per clip, ISMIR 2022; "
    "weights from `pip install --no-deps aisfx==0.1.2`)",
)

__all__ = ["ALLOWED_GLOBALS", "ENV_WEIGHTS", "INSTALL_COMMAND", "OFFICIAL_SHA256", "AisfxParams",
           "UntrustedWeightsError", "aisfx_embedding", "aisfx_frames", "build_embedding_net",
           "checkpoint_digest", "embed_frames", "find_aisfx_checkpoint", "frame_embedder",
           "load_aisfx_net", "load_aisfx_session", "load_aisfx_state", "onnx_path"]
