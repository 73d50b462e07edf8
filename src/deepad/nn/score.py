"""Residual MLP that maps a row to a vector of the same width: the score network of denoising score matching."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``h + Linear(SiLU(Linear(h)))``, with optional dropout after the inner activation.

    No layer norm: it would divide out the magnitude of ``h``, and the
    magnitude of the output -- how far a row lies from the data -- is the
    anomaly signal.
    """

    def __init__(self, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        self.drop = nn.Dropout(float(dropout)) if dropout and dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.outer(self.drop(nn.functional.silu(self.inner(h))))


class ScoreNet(nn.Module):
    """``d -> width``, ``n_blocks`` residual blocks, ``SiLU -> width -> d``.

    A smooth activation (SiLU) because the output is read as the gradient
    of a log-density, which should vary smoothly with the input; residual
    blocks as in the tabular ResNet of Gorishniy et al. (NeurIPS 2021) that
    K-DSM uses, without its normalisation and at a width a CPU trains in
    seconds.
    """

    def __init__(self, n_features: int, width: int = 128, n_blocks: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.first = nn.Linear(int(n_features), int(width))
        self.blocks = nn.Sequential(*(ResidualBlock(int(width), dropout) for _ in range(int(n_blocks))))
        self.head = nn.Linear(int(width), int(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.first(x))
        return self.head(nn.functional.silu(h))
