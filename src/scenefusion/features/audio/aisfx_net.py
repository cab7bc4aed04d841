"""The aiSFX embedding network (our own code, written to match the paper's 9-layer CNN): the
module class, defined on first use so that importing this module does not import torch."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

EMBEDDING_DIM = 512
#: Channels of the four conv blocks (input: one log-mel "image").
_WIDTHS = (1, 64, 128, 256, EMBEDDING_DIM)
#: The network pools time by 2 three times: fewer frames than this cannot pass through it.
MIN_FRAMES = 8


@functools.cache
def _network_classes() -> type:
    """The embedding network's module class, defined on first use so that importing this
    module does not import torch."""
    from torch import nn
    from torch.nn import functional as F

    class ConvBlock(nn.Module):
        """Two 3x3 convolutions (no bias), each followed by batch norm and ReLU."""

        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(x)))

    class AisfxEmbeddingNet(nn.Module):
        """(B, T, n_mels) scaled log-mel frames -> (B, 512): four conv blocks, 2x2 max pooling
        after the first three, then the mean over frequency and the max over time. Fully
        convolutional: any T >= 8 frames."""

        def __init__(self) -> None:
            super().__init__()
            for i, (cin, cout) in enumerate(zip(_WIDTHS, _WIDTHS[1:], strict=False), start=1):
                self.add_module(f"conv_block{i}", ConvBlock(cin, cout))

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames.unsqueeze(1)
            x = F.max_pool2d(self.conv_block1(x), 2)
            x = F.max_pool2d(self.conv_block2(x), 2)
            x = F.max_pool2d(self.conv_block3(x), 2)
            x = self.conv_block4(x)
            return x.mean(dim=3).amax(dim=2)

    return AisfxEmbeddingNet


def build_embedding_net() -> nn.Module:
    """A fresh, randomly initialised aiSFX embedding network (eval mode)."""
    return _network_classes()().eval()
