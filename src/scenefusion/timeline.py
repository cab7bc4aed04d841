"""A video classified second by second: one :class:`~scenefusion.predict.Prediction` per
second, optional smoothing over neighbouring seconds, and the verdict for the whole video."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InvalidValue, ScenefusionError
from .evaluation.calibration import near_tie
from .predict import PREDICTION_COLUMNS, Bundle, Prediction, pairs_in_folder, predict_rows


class NothingClassified(ScenefusionError, ValueError):
    """A readable video of which no second could be classified: the "no usable input"
    exit (2)."""

    exit_code = 2


def predict_video(bundle: Bundle, video: Path, top_k: int = 3, smooth: int = 1,
                  max_seconds: float | None = None) -> list[Prediction]:
    """Classify a video second by second (a frame + its second of audio); row ``i`` is second
    ``i``. ``smooth`` > 1 averages each second's probabilities with its neighbours' over a
    centred window of that many seconds (see :func:`smooth_timeline`). ``max_seconds``
    classifies only the first seconds, and decoding stops there whatever the file's header
    says (a server's bound on the work one request makes)."""
    from .data.video import video_to_pairs

    if smooth < 1:
        raise InvalidValue(f"smooth must be a whole number of seconds >= 1, got {smooth}")
    with tempfile.TemporaryDirectory() as tmp:
        video_to_pairs(video, Path(tmp), "video", max_seconds=max_seconds)
        images, audios = pairs_in_folder(Path(tmp))
        rows = predict_rows(bundle, images, audios, top_k=top_k)
    rows = [dataclasses.replace(r, image=None, audio=None) for r in rows]  # paths are gone
    return smooth_timeline(rows, smooth, top_k)


def timeline_frame(rows: list[Prediction]) -> pd.DataFrame:
    """The per-second CSV ``predict --video`` writes: ``second`` and the prediction columns
    without the (temporary) file paths."""
    frame = pd.DataFrame([r.csv_row() for r in rows], columns=[*PREDICTION_COLUMNS])
    frame.insert(0, "second", range(len(rows)))
    return frame.drop(columns=["image", "audio"])


def smooth_timeline(rows: list[Prediction], window: int, top_k: int = 3) -> list[Prediction]:
    """Average each classified second's probabilities over a centred window of ``window``
    seconds and re-derive its prediction, top-k and low-margin warning.

    A scene rarely changes from one second to the next, so a lone second that disagrees with
    its neighbours (a passing bus on a beach) is usually the model's error, not the scene's.
    Seconds that could not be classified stay errors and are left out of their neighbours'
    averages; classes a fallback model does not know count as probability 0. ``window`` 1
    returns ``rows`` unchanged.
    """
    if window < 1:
        raise InvalidValue(f"smoothing window must be >= 1 second, got {window}")
    good = [i for i, r in enumerate(rows) if not r.error]
    if window == 1 or not good:
        return rows
    classes = sorted({c for i in good for c in rows[i].probabilities})
    raw = np.full((len(rows), len(classes)), np.nan)
    for i in good:
        raw[i] = [rows[i].probabilities.get(c, 0.0) for c in classes]
    smoothed = pd.DataFrame(raw).rolling(window, center=True, min_periods=1).mean().to_numpy()
    out = list(rows)
    for i in good:
        p = smoothed[i] / smoothed[i].sum()
        top = np.argsort(-p)[:top_k]
        old_tie = near_tie(raw[i], classes)
        warnings = [w for w in rows[i].warnings if w != old_tie]
        tie = near_tie(p, classes)
        out[i] = dataclasses.replace(
            rows[i], predicted=classes[top[0]], probability=float(p[top[0]]),
            top_k=[(classes[t], float(p[t])) for t in top],
            probabilities=dict(zip(classes, map(float, p), strict=True)),
            warnings=[*warnings, tie] if tie else warnings)
    return out


def video_verdict(rows: list[Prediction]) -> tuple[str, dict[str, float], dict[str, int]]:
    """The class of a whole video from its per-second rows: the class predicted in most
    classified seconds, ties broken by the mean probability. Returns it, the mean probability
    of every class over those seconds, and the seconds per predicted class (most first).
    Raises :class:`NothingClassified` when no second was classified."""
    good = [r for r in rows if not r.error]
    if not good:
        raise NothingClassified("no second of the video could be classified")
    totals: dict[str, float] = {}
    for row in good:  # a fallback model may know fewer classes
        for c, p in row.probabilities.items():
            totals[c] = totals.get(c, 0.0) + p / len(good)
    counts: dict[str, int] = {}
    for row in good:
        counts[row.predicted] = counts.get(row.predicted, 0) + 1
    best = max(counts, key=lambda c: (counts[c], totals.get(c, 0.0)))
    order = sorted(counts, key=lambda c: (-counts[c], -totals.get(c, 0.0)))
    return best, totals, {c: counts[c] for c in order}


def decisive_seconds(rows: list[Prediction], label: str, n: int = 3, seconds_per_row: float = 1
                     ) -> dict[str, list[tuple[float, float]]]:
    """Why a video (or a long sound) got ``label``: the ``n`` classified rows whose
    probability of it is highest ("toward": they pushed hardest for it) and lowest
    ("against"), as (start second, probability) pairs, most decisive first; row ``i`` starts
    at ``i * seconds_per_row``. A row in both lists (a short video) is kept in "toward"
    only."""
    scored = [(i * seconds_per_row, float(r.probabilities.get(label, 0.0)))
              for i, r in enumerate(rows) if not r.error]
    toward = sorted(scored, key=lambda sp: (-sp[1], sp[0]))[:n]
    taken = {i for i, _ in toward}
    against = [sp for sp in sorted(scored, key=lambda sp: (sp[1], sp[0]))[:n]
               if sp[0] not in taken]
    return {"toward": toward, "against": against}


def predict_audio_windows(bundle: Bundle, audio: Path, top_k: int = 3
                          ) -> tuple[list[Prediction], float]:
    """A sound longer than the model's window, classified window by window (consecutive
    windows of the audio feature's length; a last piece under half a window is left out).
    Returns the rows and the window length in seconds; no rows when the sound is not longer
    than two windows. A fused model answers through its audio-only fallback, as for any pair
    without an image."""
    import soundfile as sf

    from .data.validate import audio_info, read_audio

    window = float(bundle.audio_feature.params.clip_seconds)
    if audio_info(Path(audio)).duration <= 2 * window:
        return [], window
    samples, rate = read_audio(Path(audio))
    step = int(round(window * rate))
    starts = [s for s in range(0, len(samples), step) if len(samples) - s >= step / 2]
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for k, start in enumerate(starts):
            clip = Path(tmp) / f"window_{k:05d}.wav"
            sf.write(clip, samples[start:start + step], rate)
            clips.append(clip)
        rows = predict_rows(bundle, [None] * len(clips), clips, top_k=top_k)
    return [dataclasses.replace(r, audio=None) for r in rows], window
