"""Learnable toy feature arrays shared by the model, fusion and persistence tests."""

from __future__ import annotations

import numpy as np


def make_modalities(
    n: int, seed: int, n_classes: int = 3, dim: int = 64, center_scale: float = 1.0,
    noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (N, dim) Gaussian blobs, audio (N, 8, 13) noisy class-pitched sinusoids, y).

    Class centres come from a fixed seed so that every split shares them; `seed` varies only
    the rows. Each modality alone is imperfect at the default noise levels.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    centers = center_scale * np.random.default_rng(123).normal(size=(n_classes, dim))
    image = (centers[y] + noise * rng.normal(size=(n, dim))).astype(np.float32)
    t = np.arange(8)[None, :, None]
    c = np.arange(13)[None, None, :]
    audio = np.sin(0.6 * (1 + y)[:, None, None] * t + 0.3 * c) + 0.8 * rng.normal(size=(n, 8, 13))
    return image, audio.astype(np.float32), y.astype(np.int64)
