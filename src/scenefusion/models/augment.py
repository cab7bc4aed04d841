"""Training-batch augmentation for the audio networks (``audio_cnn``, ``lstm``).

Why: split by recording, audio models learn what identifies one recording (its level, its
microphone's colouring, its steady background) rather than the scene. Each transform here
imitates hearing the same scene somewhere else: a different level (gain), a different
microphone or room (a smooth random EQ curve across bands), another place's background mixed in
(a little of another clip of the batch, label kept), a different moment (circular time shift),
and missing bands or moments (SpecAugment masks). Inputs are standardised (N, T, C) batches, so
gain and EQ are offsets in standard deviations. Every function draws from the given
``torch.Generator`` only: the same seed gives the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

#: control points of the random EQ curve: low enough that it stays smooth across bands
_EQ_POINTS = 4


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return 2 * torch.rand(n, generator=generator) - 1


def random_gain(x: torch.Tensor, generator: torch.Generator, amount: float) -> torch.Tensor:
    """Add one offset in [-amount, amount] per row: a louder or quieter recording."""
    return x + amount * _uniform(len(x), generator)[:, None, None]


def random_eq(x: torch.Tensor, generator: torch.Generator, amount: float) -> torch.Tensor:
    """Add a smooth random curve across channels (the same at every step) per row: another
    microphone or room. The curve interpolates a few points drawn in [-amount, amount]."""
    n, _, c = x.shape
    if amount <= 0 or c < 2:
        return x
    points = amount * _uniform(n * _EQ_POINTS, generator).reshape(n, 1, _EQ_POINTS)
    curve = F.interpolate(points, size=c, mode="linear", align_corners=True)  # (n, 1, c)
    return x + curve


def mix_background(x: torch.Tensor, generator: torch.Generator, amount: float,
                   lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Blend each row with another row of the batch at a weight in [0, amount], keeping the
    row's own label: the scene heard over someone else's background. With ``lengths``
    (padded sequences) only the valid steps of both rows are blended."""
    n = len(x)
    if amount <= 0 or n < 2:
        return x
    other = torch.randperm(n, generator=generator)
    weight = amount * torch.rand(n, generator=generator)[:, None, None]
    mixed = (1 - weight) * x + weight * x[other]
    if lengths is None:
        return mixed
    steps = torch.arange(x.shape[1])[None, :]
    valid = (steps < lengths[:, None]) & (steps < lengths[other][:, None])
    return torch.where(valid[:, :, None], mixed, x)


def time_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate each row by a random number of steps: the same sound at another moment."""
    n, t, c = x.shape
    if t < 2:
        return x
    offsets = torch.randint(0, t, (n,), generator=generator)
    index = (torch.arange(t)[None, :] + offsets[:, None]) % t
    return torch.gather(x, 1, index[:, :, None].expand(n, t, c))


def mask_bands_and_steps(x: torch.Tensor, generator: torch.Generator, *, time_mask: int,
                         freq_mask: int) -> torch.Tensor:
    """One time and one frequency mask (SpecAugment) per row, up to the given widths and at
    most a quarter of the axis, set to 0 (the mean after standardising)."""
    n, t, c = x.shape
    for axis, width, size in ((1, time_mask, t), (2, freq_mask, c)):
        width = min(width, size // 4)
        if width < 1:
            continue
        w = torch.randint(0, width + 1, (n,), generator=generator)
        start = (torch.rand(n, generator=generator) * (size - w + 1)).long()
        pos = torch.arange(size)[None, :]
        mask = (pos >= start[:, None]) & (pos < (start + w)[:, None])
        x = x.masked_fill(mask[:, :, None] if axis == 1 else mask[:, None, :], 0.0)
    return x


def mixup(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, alpha: float,
          n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup: one Beta(alpha, alpha) weight per batch, inputs and one-hot targets blended."""
    if alpha <= 0 or len(y) < 2:
        return x, y
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(len(y), generator=generator)
    soft = F.one_hot(y, n_classes).float()
    return lam * x + (1 - lam) * x[perm], lam * soft + (1 - lam) * soft[perm]


@dataclass(frozen=True)
class NewPlace:
    """The audio networks' augmentation settings; ``apply`` transforms one training batch.

    ``shift`` and ``time_mask`` are for fixed-length inputs (the CNN); with ``lengths`` they
    are skipped, since rotating a padded sequence would move padding into it.
    """

    gain: float = 0.0
    eq: float = 0.0
    background: float = 0.0
    shift: bool = False
    time_mask: int = 0
    freq_mask: int = 0

    def apply(self, x: torch.Tensor, generator: torch.Generator,
              lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = mix_background(x, generator, self.background, lengths)
        x = random_gain(x, generator, self.gain) if self.gain > 0 else x
        x = random_eq(x, generator, self.eq)
        if lengths is None:
            x = time_shift(x, generator) if self.shift else x
            return mask_bands_and_steps(x, generator, time_mask=self.time_mask,
                                        freq_mask=self.freq_mask)
        x = mask_bands_and_steps(x, generator, time_mask=0, freq_mask=self.freq_mask)
        steps = torch.arange(x.shape[1])[None, :]
        return x.masked_fill((steps >= lengths[:, None])[:, :, None], 0.0)  # padding stays 0
