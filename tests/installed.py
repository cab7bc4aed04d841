"""What `features.audio: auto` picks for raw 1 s clips (the test data's) on this installation:
aiSFX where its weights are installed (BirdNET joins it only for clips of 3 s or more), else
BirdNET alone where that is installed, MFCCs where neither is."""

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
RAW_AUDIO = {(True, True): "aisfx", (True, False): "aisfx", (False, True): "birdnet",
             (False, False): "mfcc"}[AISFX_INSTALLED, BIRDNET_INSTALLED]
