"""The audio-feature registry: what an audio feature is, the ids configs name, and the
``ID@Ns`` form that asks for N seconds of context.

Feature modules import this module (never the package ``__init__``, which imports them) and
register their ids where they define them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidValue
from ...registry import Registry


@dataclass(frozen=True)
class AudioFeature:
    """An audio representation: its parameters and the function from a file to its array.

    ``key()`` identifies the numbers it produces (the function, every parameter and, for a
    feature with a weight file, that file's content), so the feature cache never serves values
    computed differently. ``fn_id`` names the function in that key (default: its module and
    qualified name); registered features pin the name they were first cached under, so moving
    a function between modules keeps their caches valid. ``licence`` names the terms of the
    pretrained weights it runs (None for plain signal processing): ``scenefusion list``, run
    reports and ``bundle.json`` state it, since a model trained on such features inherits them.
    """

    params: Any
    extract: Callable[[Path, Any], np.ndarray]
    fn_id: str | None = None
    licence: str | None = None
    #: the id it was resolved from (``mfcc``, ``aisfx@3s``): set by :func:`audio_feature`,
    #: for display and the feature table's name; not part of :meth:`key`
    id: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-item array shape: (frames, channels) for a sequence."""
        return (self.params.frames, self.params.channels)

    def key(self) -> str:
        identity = getattr(self.params, "weights_identity", None)
        extra = {"weights_sha256": identity()} if identity is not None else {}
        fn = self.fn_id or f"{self.extract.__module__}.{self.extract.__qualname__}"
        blob = json.dumps({"fn": fn, **asdict(self.params), **extra}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def __call__(self, path: Path) -> np.ndarray:
        return self.extract(path, self.params)


#: Audio feature id -> :class:`AudioFeature`; configs and the CLI use these ids.
AUDIO_FEATURES: Registry[AudioFeature] = Registry("audio feature")

#: Longest audio context an item may use (``ID@Ns``); a video frame's sound rarely needs more.
MAX_CLIP_SECONDS = 30
_CONTEXT = re.compile(r"^(?P<id>[^@]+)@(?P<seconds>\d+)s$")


def audio_feature(feature_id: str) -> AudioFeature:
    """The audio feature a config, bundle or CLI names: a registered id (1 s of audio per item),
    or ``ID@Ns`` for the same representation of N seconds around the item (e.g. ``aisfx@3s``
    with clips written by ``data from-video --audio-seconds 3``). The seconds are a parameter,
    so they are part of the cache key; an unknown id or a bad suffix names what is valid."""
    match = _CONTEXT.match(feature_id)
    if match is None:
        if "@" in feature_id:
            raise InvalidValue(f"audio feature {feature_id!r}: write the context as ID@Ns, "
                             f"e.g. {feature_id.split('@')[0]}@3s")
        return dataclasses.replace(AUDIO_FEATURES.get(feature_id), id=feature_id)
    base = AUDIO_FEATURES.get(match["id"])
    seconds = int(match["seconds"])
    if not 1 <= seconds <= MAX_CLIP_SECONDS:
        raise InvalidValue(f"audio feature {feature_id!r}: context must be 1 to "
                         f"{MAX_CLIP_SECONDS} seconds")
    return dataclasses.replace(base, id=feature_id, params=dataclasses.replace(
        base.params, clip_seconds=seconds))


def audio_licence(feature_id: str) -> str | None:
    """The licence of the pretrained weights behind ``feature_id`` (``ID`` or ``ID@Ns``), or
    None for plain signal processing: runs, bundles and ``scenefusion list`` state it."""
    return audio_feature(feature_id).licence
