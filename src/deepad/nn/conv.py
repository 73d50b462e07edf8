"""Convolutional encoder and decoder for images of any height, width and channel count.

Both are plain ``nn.Module`` blocks that know nothing about training or
scoring; the image detectors (:mod:`deepad.detectors.images`) and the GAN
detector build their networks from them.

Arbitrary sizes.  Each of the ``len(channels)`` stages halves the spatial
size (``conv -> [BatchNorm] -> activation -> 2x2 max-pool``), so the
encoder zero-pads the input on the bottom/right up to a multiple of
``2 ** len(channels)`` first (MNIST's 28 x 28 with two stages needs no
padding, with three it is padded to 32 x 32).  The decoder mirrors it
(``nearest 2x upsample -> conv -> [BatchNorm] -> activation`` per stage, a
final ``conv`` to the image's channels) and crops the padding away, so its
output has exactly the input's ``(C, H, W)``.

Grey images are ``C = 1``, colour ``C = 3``; nothing else depends on ``C``.

``bias=False`` removes every bias and batch-norm's affine parameters, as
Deep SVDD needs (Ruff et al., 2018, Prop. 2: a network with biases can map
every input to the centre and learn nothing).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from deepad.nn.mlp import activation_layer

__all__ = ["ConvEncoder", "ConvDecoder", "ConvAutoEncoderNet", "padded_size"]


def padded_size(size: int, n_stages: int) -> int:
    """``size`` rounded up to a multiple of ``2 ** n_stages``."""
    m = 2 ** int(n_stages)
    return -(-int(size) // m) * m


def _check(image_shape: Sequence[int], channels: Sequence[int], kernel_size: int) -> tuple[int, int, int]:
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}.")
    c, h, w = (int(v) for v in image_shape)
    if min(c, h, w) < 1:
        raise ValueError(f"image_shape must be positive, got {(c, h, w)}.")
    if not channels or any(int(k) < 1 for k in channels):
        raise ValueError(f"channels must be a non-empty sequence of positive widths, got {tuple(channels)}.")
    if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}.")
    return c, h, w


class ConvEncoder(nn.Module):
    """``(N, C, H, W) -> (N, latent_dim)``: conv stages that halve the size, then one linear layer."""

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        latent_dim: int,
        *,
        kernel_size: int = 3,
        activation: str = "leaky_relu",
        batch_norm: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        c, h, w = _check(image_shape, channels, kernel_size)
        self.image_shape = (c, h, w)
        self.n_stages = len(channels)
        self.padded = (padded_size(h, self.n_stages), padded_size(w, self.n_stages))
        layers: list[nn.Module] = []
        prev = c
        for width in channels:
            layers.append(nn.Conv2d(prev, int(width), int(kernel_size), padding=int(kernel_size) // 2, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(width), eps=1e-4, affine=bias))
            layers.append(activation_layer(activation))
            layers.append(nn.MaxPool2d(2))
            prev = int(width)
        self.features = nn.Sequential(*layers)
        self.feature_shape = (prev, self.padded[0] // 2**self.n_stages, self.padded[1] // 2**self.n_stages)
        self.fc = nn.Linear(prev * self.feature_shape[1] * self.feature_shape[2], int(latent_dim), bias=bias)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        dh, dw = self.padded[0] - x.shape[-2], self.padded[1] - x.shape[-1]
        return F.pad(x, (0, dw, 0, dh)) if dh or dw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.pad(x)).flatten(1))


class ConvDecoder(nn.Module):
    """``(N, latent_dim) -> (N, C, H, W)``: the mirror of :class:`ConvEncoder`, cropped to the image size."""

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        latent_dim: int,
        *,
        kernel_size: int = 3,
        activation: str = "leaky_relu",
        batch_norm: bool = True,
        bias: bool = True,
        final_activation: str | None = None,
    ) -> None:
        super().__init__()
        c, h, w = _check(image_shape, channels, kernel_size)
        self.image_shape = (c, h, w)
        n = len(channels)
        widths = [int(k) for k in channels][::-1]
        self.start_shape = (widths[0], padded_size(h, n) // 2**n, padded_size(w, n) // 2**n)
        self.fc = nn.Linear(int(latent_dim), widths[0] * self.start_shape[1] * self.start_shape[2], bias=bias)
        self.fc_act = activation_layer(activation)
        layers: list[nn.Module] = []
        prev = widths[0]
        for width in widths[1:] + [widths[-1]]:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers.append(nn.Conv2d(prev, width, int(kernel_size), padding=int(kernel_size) // 2, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width, eps=1e-4, affine=bias))
            layers.append(activation_layer(activation))
            prev = width
        layers.append(nn.Conv2d(prev, c, int(kernel_size), padding=int(kernel_size) // 2, bias=bias))
        if final_activation:
            layers.append(activation_layer(final_activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc_act(self.fc(z)).view(z.shape[0], *self.start_shape)
        x = self.features(x)
        return x[..., : self.image_shape[1], : self.image_shape[2]]


class ConvAutoEncoderNet(nn.Module):
    """:class:`ConvEncoder` followed by :class:`ConvDecoder`; ``forward`` returns the reconstruction."""

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        latent_dim: int,
        *,
        kernel_size: int = 3,
        activation: str = "leaky_relu",
        batch_norm: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        kw = dict(kernel_size=kernel_size, activation=activation, batch_norm=batch_norm, bias=bias)
        self.encoder = ConvEncoder(image_shape, channels, latent_dim, **kw)
        self.decoder = ConvDecoder(image_shape, channels, latent_dim, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
