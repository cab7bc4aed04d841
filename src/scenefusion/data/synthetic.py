"""Deterministic synthetic data in the supported layouts, for tests and the offline demo.

Images and sounds depend on the class (colour, stripe direction, tone pitch) with per-video
variation and noise, so models can learn them. Results on this data prove that the pipeline runs
end to end; they say nothing about accuracy on real scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from .datasets import REFERENCE_MFCC_COLUMNS

DEFAULT_CLASSES = ("BEACH", "CITY", "FOREST")


def _image(rng: np.random.Generator, k: int, n_classes: int, group_shift: float, size: int):
    hue = np.array([np.cos(2 * np.pi * k / n_classes), np.sin(2 * np.pi * k / n_classes), 0.3])
    base = 128 + 90 * hue + 20 * group_shift
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = np.pi * k / n_classes
    stripes = np.sin(2 * np.pi * 6 * (np.cos(angle) * xx + np.sin(angle) * yy))
    pixels = base[None, None, :] + 40 * stripes[..., None] + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _tone(rng: np.random.Generator, k: int, group_shift: float, sr: int, seconds: float):
    t = np.arange(int(sr * seconds)) / sr
    f0 = 220.0 * 2 ** (k * 0.5) * (1 + 0.12 * group_shift)
    wave = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2.5 * f0 * t)
    return (wave + rng.normal(0, 0.25, t.shape)).astype(np.float32)


def make_pairs_folder(
    root: Path,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    groups_per_class: int = 3,
    frames_per_group: int = 4,
    image_size: int = 64,
    sample_rate: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    looks: tuple[int, ...] | None = None,
    sounds: tuple[int, ...] | None = None,
) -> Path:
    """Write ROOT/<class>/<video>_<frame>.png + .wav pairs.

    `looks` / `sounds` map each class to an appearance / a sound; giving two classes the same
    one makes them separable only by the other modality (the demo uses this to show fusion).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    looks = looks or tuple(range(len(classes)))
    sounds = sounds or tuple(range(len(classes)))
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for g in range(groups_per_class):
            shift = rng.normal()
            for f in range(frames_per_group):
                stem = f"{name.lower()}{g}_{f:03d}"
                image = _image(rng, looks[k], len(classes), shift, image_size)
                image.save(root / name / f"{stem}.png")
                tone = _tone(rng, sounds[k], shift, sample_rate, seconds)
                sf.write(root / name / f"{stem}.wav", tone, sample_rate)
    return root


def write_manifest(pairs_root: Path, csv_path: Path, with_group: bool = True) -> Path:
    """A manifest CSV for a pairs folder (paths relative to the CSV)."""
    rows = []
    for image in sorted(Path(pairs_root).glob("*/*.png")):
        row = {
            "image": image.relative_to(csv_path.parent).as_posix(),
            "audio": image.with_suffix(".wav").relative_to(csv_path.parent).as_posix(),
            "label": image.parent.name,
        }
        if with_group:
            row["group"] = image.stem.rsplit("_", 1)[0]
        rows.append(row)
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return csv_path


def make_reference_like(
    root: Path,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    groups_per_class: int = 3,
    frames_per_group: int = 6,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write the reference layout: dataset.csv (IMAGE, mfcc_1..104, CLASS1, CLASS2) + images/."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    class_means = rng.normal(0, 8, (len(classes), 8, 13))
    rows = []
    for k, name in enumerate(classes):
        for g in range(groups_per_class):
            source = f"{name.lower()}{g + 1}" if g else name.lower()
            folder = root / "images" / source
            folder.mkdir(parents=True, exist_ok=True)
            shift = rng.normal()
            group_offset = rng.normal(0, 2, (8, 13))
            for f in range(frames_per_group):
                rel = f"images/{source}/{source}{f}.png"
                _image(rng, k, len(classes), shift, image_size).save(root / rel)
                mfcc = class_means[k] + group_offset + rng.normal(0, 3, (8, 13))
                rows.append(
                    {"IMAGE": rel, **dict(zip(REFERENCE_MFCC_COLUMNS, mfcc.ravel(), strict=True)),
                     "CLASS1": "OUTDOORS" if k % 2 == 0 else "INDOORS", "CLASS2": name}
                )
    pd.DataFrame(rows).to_csv(root / "dataset.csv", index=False)
    return root
