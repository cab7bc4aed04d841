"""Write small test videos with PyAV: frame brightness and tone pitch are known per second."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(path: Path, seconds: float = 3, fps: int = 10, size: int = 64,
                audio_rate: int | None = 44100, freq: float = 440.0) -> Path:
    """Frame i has brightness 8 * i; the audio (stereo) is a sine at `freq`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = None
        if audio_rate:
            audio = out.add_stream("aac", rate=audio_rate)
            audio.layout = "stereo"
        for i in range(int(seconds * fps)):
            image = np.full((size, size, 3), (8 * i) % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        if audio is not None:
            t = np.arange(int(audio_rate * seconds)) / audio_rate
            wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            stereo = np.stack([wave, wave])
            for start in range(0, stereo.shape[1], 1024):
                chunk = np.ascontiguousarray(stereo[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = audio_rate, start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path
