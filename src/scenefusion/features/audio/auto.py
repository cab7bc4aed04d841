"""``features.audio: auto``: the audio representation that measured best for each kind of data.

The reference layout ships its audio as 8 x 13 MFCC rows, so it keeps them (``mfcc``). Raw audio
gets MFCC sequences over the whole clip up to 4 s (``mfcc@Ns``, N the clips' typical length):
on UrbanSound8K folds 1+2, held out by upload cluster, pooled MFCCs over the whole clip beat the
1 s centre crop by 3-8 points with every model and beat pooled log-mel statistics, per-clip
normalised or not (benchmarks/README.md, "Audio that carries").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...data.validate import DataError, audio_info

AUTO = "auto"
#: the longest context ``auto`` uses: longer clips are centre-cropped to it
AUTO_MAX_SECONDS = 4
#: files whose length is read (from the header only) to decide the clip length
AUTO_PROBE_FILES = 64


def resolve_audio_feature(feature_id: str, dataset: Any) -> tuple[str, str | None]:
    """The feature id a run uses for ``dataset`` and, for ``auto``, a note saying why."""
    if feature_id != AUTO:
        return feature_id, None
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
    chosen = "mfcc" if seconds == 1 else f"mfcc@{seconds}s"
    return chosen, (f"features.audio auto -> {chosen} (raw audio, clips of {typical:.1f} s "
                    f"typical: MFCC sequences over the whole clip up to {AUTO_MAX_SECONDS} s)")
