"""``features.audio: auto``: the audio representation that measured best for each kind of data.

The reference layout ships its audio as 8 x 13 MFCC rows, so it keeps them (``mfcc``). Raw audio
gets pretrained embeddings over the whole clip up to 4 s (N the clips' typical length):
``aisfx_birdnet@Ns`` (aiSFX and BirdNET side by side) where the [birdnet] extra is installed
and clips last 3 s or more (BirdNET's window), else ``aisfx@Ns`` (``birdnet@Ns`` with BirdNET
alone, ``mfcc@Ns`` with neither). On UrbanSound8K folds 1+2, held out by upload cluster, aiSFX
beat every MFCC and log-mel representation by 9+ points, the pair beat aiSFX alone by 7 (logreg
0.718 against 0.641; BirdNET alone 0.677), and the whole clip beat the 1 s centre crop with
every model (benchmarks/README.md, "Audio that carries"). BirdNET's model is non-commercial
(CC BY-NC-SA 4.0): the note says so when it is used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...data.validate import DataError, audio_info
from ...errors import InvalidValue
from .aisfx_weights import INSTALL_COMMAND as AISFX
from .aisfx_weights import find_aisfx_checkpoint
from .birdnet_model import LICENCE as BIRDNET_LICENCE
from .birdnet_model import birdnet_available
from .registry import AudioFeature, audio_feature

AUTO = "auto"
#: what `scenefusion list` says of ``auto``
AUTO_DESCRIPTION = ("the default: mfcc for the reference layout's MFCC rows; for raw audio "
                    "aisfx_birdnet@Ns, aiSFX and BirdNET embeddings side by side over the whole "
                    "clip (N = the clips' typical length, at most 4 s), which measured best on "
                    "recordings never heard, where the [birdnet] extra is installed and clips "
                    "last 3 s or more (BirdNET's window; its "
                    "model is non-commercial, CC BY-NC-SA 4.0); else aisfx@Ns (mfcc@Ns where "
                    "aiSFX's weights are not installed either)")
#: the longest context ``auto`` uses: longer clips are centre-cropped to it
AUTO_MAX_SECONDS = 4
#: files whose length is read (from the header only) to decide the clip length
AUTO_PROBE_FILES = 64


def check_audio_id(feature_id: str) -> str:
    """``feature_id`` when it names an audio feature (``auto``, an id or ``ID@Ns``), else an
    InvalidValue naming the valid ones. ``auto`` takes no ``@Ns``: choosing the clip length
    from the data is half of what it does, so a fixed length means naming the feature."""
    if feature_id == AUTO:
        return feature_id
    if feature_id.split("@")[0] == AUTO:
        raise InvalidValue(f"audio feature {feature_id!r}: auto takes no length (it picks the "
                           f"clips' typical length, at most {AUTO_MAX_SECONDS} s); write auto, "
                           "or name a feature with its length, e.g. aisfx@3s or mfcc@3s")
    return resolved(feature_id).id or feature_id


def resolved(feature_id: str) -> AudioFeature:
    """The audio feature ``feature_id`` names (never ``auto``): the one place outside the
    registry where a run's or a tool's audio id becomes the object that computes it."""
    return audio_feature(feature_id)  # raises, naming the valid ids (or the ID@Ns form)


def context_seconds(feature_id: str) -> int:
    """Seconds of sound one item of ``feature_id`` reads: N for ``ID@Ns``, 1 for a plain id,
    and for ``auto`` the longest context it may choose (so that clips cut for it, e.g. from
    videos, hold enough sound whatever it picks)."""
    if check_audio_id(feature_id) == AUTO:
        return AUTO_MAX_SECONDS
    return resolved(feature_id).params.clip_seconds


def resolve_audio_feature(feature_id: str, dataset: Any) -> tuple[AudioFeature, str | None]:
    """The feature a run computes for ``dataset`` and a note for the run (None when there is
    nothing to say): for ``auto``, why it chose that feature; for a feature that runs
    pretrained weights, their licence, which a model trained on it inherits."""
    chosen, why = _choose(dataset) if check_audio_id(feature_id) == AUTO else (feature_id, None)
    feature = resolved(chosen)
    if feature.licence is None:
        return feature, why
    terms = (f"audio feature {chosen}: {feature.licence}; a model trained on it inherits "
             "these terms")
    return feature, f"{why}; {terms}" if why else terms


def audio_recipe(feature: AudioFeature, layout: str) -> dict[str, str | None]:
    """What a saved model's ``bundle.json`` records of its audio input: the feature, where the
    sound comes from, and the licence of the weights behind the feature (None for none)."""
    return {"audio_features": feature.id,
            "audio_source": "reference-csv-mfcc" if layout == "reference" else "raw-audio",
            "audio_licence": feature.licence}


#: BirdNET reads 3 s windows: a shorter clip would be mostly zero padding, and the pair was
#: measured on 4 s clips only; on the demo's 1 s clips it doubled feature time (9 -> 18 s).
BIRDNET_MIN_SECONDS = 3


def _pretrained(seconds: int) -> tuple[str, str, str]:
    """The best representation installed for clips of ``seconds`` (id, what it is, what
    better one is missing): aiSFX + BirdNET side by side, else one of them, else MFCCs."""
    try:
        find_aisfx_checkpoint()
        aisfx = True
    except FileNotFoundError:
        aisfx = False
    if seconds < BIRDNET_MIN_SECONDS and aisfx:
        return ("aisfx", "the pretrained aiSFX embedding", f"; BirdNET is added for clips of "
                f"{BIRDNET_MIN_SECONDS} s or more, its window")
    if birdnet_available() and seconds >= BIRDNET_MIN_SECONDS:
        if aisfx:
            return ("aisfx_birdnet", "aiSFX and BirdNET embeddings side by side, since the "
                    "[birdnet] extra is installed", "")
        return "birdnet", "the BirdNET embedding", f"; aisfx_birdnet measured better: {AISFX}"
    if aisfx:
        return ("aisfx", "the pretrained aiSFX embedding", "; aisfx_birdnet measured better: "
                f"the [birdnet] extra ({BIRDNET_LICENCE}) adds it")
    return "mfcc", "MFCC sequences", f"; aisfx, which measured better, needs its weights: {AISFX}"


def _choose(dataset: Any) -> tuple[str, str]:
    """``auto``'s choice for ``dataset`` and why."""
    if dataset.layout == "reference" or all(i.audio is None for i in dataset.items[:1]):
        return "mfcc", "features.audio auto -> mfcc (the reference layout's 8 x 13 MFCC rows)"
    paths = [i.audio for i in dataset.items if i.audio is not None]
    step = max(1, len(paths) // AUTO_PROBE_FILES)
    lengths = []
    for path in paths[::step][:AUTO_PROBE_FILES]:
        try:
            info = audio_info(path)
        except DataError:
            continue  # extraction skips and reports it
        if info.samplerate > 0:
            lengths.append(info.frames / info.samplerate)
    typical = float(np.median(lengths)) if lengths else 1.0
    seconds = int(min(AUTO_MAX_SECONDS, max(1, math.floor(typical + 0.25))))
    base, what, missing = _pretrained(seconds)
    chosen = base if seconds == 1 else f"{base}@{seconds}s"
    return chosen, (f"features.audio auto -> {chosen} (raw audio, clips of {typical:.1f} s "
                    f"typical: {what} over the whole clip up to {AUTO_MAX_SECONDS} s{missing})")
