"""What `features.audio: auto` picks for raw 1 s clips on this installation: the aiSFX
embedding where its weights are installed (the README's install does so), MFCCs otherwise."""

from __future__ import annotations

from scenefusion.features.audio.aisfx_weights import find_aisfx_checkpoint


def _aisfx_installed() -> bool:
    try:
        find_aisfx_checkpoint()
    except FileNotFoundError:
        return False
    return True


AISFX_INSTALLED = _aisfx_installed()
#: the audio feature id a default run uses for raw 1 s clips
RAW_AUDIO = "aisfx" if AISFX_INSTALLED else "mfcc"
