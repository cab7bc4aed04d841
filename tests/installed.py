"""What `features.audio: auto` picks for raw 1 s clips on this installation: aiSFX and BirdNET
side by side where both are installed (the README's install does so), else the one installed,
MFCCs where neither is."""

from __future__ import annotations

from scenefusion.features.audio.aisfx_weights import find_aisfx_checkpoint
from scenefusion.features.audio.birdnet_model import birdnet_available


def _aisfx_installed() -> bool:
    try:
        find_aisfx_checkpoint()
    except FileNotFoundError:
        return False
    return True


AISFX_INSTALLED = _aisfx_installed()
BIRDNET_INSTALLED = birdnet_available()
#: the audio feature id a default run uses for raw 1 s clips
RAW_AUDIO = {(True, True): "aisfx_birdnet", (True, False): "aisfx", (False, True): "birdnet",
             (False, False): "mfcc"}[AISFX_INSTALLED, BIRDNET_INSTALLED]
