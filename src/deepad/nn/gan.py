"""GANomaly's networks (Akcay, Atapour-Abarghouei & Breckon, ACCV 2018), sized for any image shape.

The generator is an encoder-decoder-encoder ``x -> z -> x̂ -> ẑ``; the
discriminator is an encoder with a one-logit head, whose last feature map is
the "discriminator feature" used for feature matching and scoring.  Layers
follow DCGAN as the paper does: ``Conv(4, stride 2, pad 1) -> BatchNorm ->
LeakyReLU(0.2)`` going down, ``ConvTranspose(4, 2, 1) -> BatchNorm -> ReLU``
going up, ``tanh`` output for images in ``[-1, 1]`` or a linear one.

Unlike the reference implementation, which needs square power-of-two
images, the number of stride-2 stages is ``len(channels)`` and the last
(or first, when decoding) layer's kernel is whatever spatial size is left,
so 28x28 MNIST works without padding to 32x32.  Odd sizes are restored
with ``output_padding``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["DCGANEncoder", "DCGANDecoder", "GANomalyNet", "down_sizes"]


def down_sizes(height: int, width: int, n_stages: int) -> list[tuple[int, int]]:
    """Spatial size after each ``Conv(4, 2, 1)`` stage, starting with the input size."""
    sizes = [(int(height), int(width))]
    for _ in range(int(n_stages)):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            raise ValueError(
                f"images of {height}x{width} pixels are too small for {n_stages} stride-2 stages; "
                "use fewer hidden_dims (channels per stage) or larger images."
            )
        sizes.append((h // 2, w // 2))
    return sizes


class DCGANEncoder(nn.Module):
    """``(n, C, H, W) -> (n, out_dim)``: stride-2 conv stages, then a conv whose kernel covers what is left.

    ``features(x)`` is the last stage's feature map (before the head); the
    GANomaly discriminator's feature-matching loss and score use it.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        channels: Sequence[int],
        out_dim: int,
        *,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        sizes = down_sizes(*image_size, len(channels))
        layers: list[nn.Module] = []
        prev = int(in_channels)
        for i, width in enumerate(channels):
            layers.append(nn.Conv2d(prev, int(width), 4, 2, 1, bias=not batch_norm or i == 0))
            if batch_norm and i > 0:  # DCGAN: no batch norm on the first layer
                layers.append(nn.BatchNorm2d(int(width)))
            layers.append(nn.LeakyReLU(0.2))
            prev = int(width)
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(prev, int(out_dim), sizes[-1], 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(1)


class DCGANDecoder(nn.Module):
    """``(n, in_dim) -> (n, C, H, W)``: the mirror of :class:`DCGANEncoder`.

    ``output="tanh"`` bounds the output to ``[-1, 1]`` (DCGAN, for images
    scaled to that range); ``None`` leaves it linear (standardised pixels).
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: tuple[int, int],
        channels: Sequence[int],
        *,
        batch_norm: bool = True,
        output: str | None = "tanh",
    ) -> None:
        super().__init__()
        sizes = down_sizes(*image_size, len(channels))
        widths = [int(c) for c in channels][::-1]
        layers: list[nn.Module] = [nn.ConvTranspose2d(int(in_dim), widths[0], sizes[-1], 1, 0, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(widths[0]))
        layers.append(nn.ReLU())
        targets = sizes[:-1][::-1]  # the size each up-stage must produce
        for i, (h, w) in enumerate(targets):
            src_h, src_w = sizes[len(sizes) - 1 - i]
            pad = (h - 2 * src_h, w - 2 * src_w)  # 0 or 1: restores odd sizes
            last = i == len(targets) - 1
            out = int(out_channels) if last else widths[i + 1]
            layers.append(nn.ConvTranspose2d(widths[i], out, 4, 2, 1, output_padding=pad, bias=last or not batch_norm))
            if last:
                if output == "tanh":
                    layers.append(nn.Tanh())
                elif output is not None:
                    raise ValueError(f"output must be 'tanh' or None, got {output!r}.")
            else:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.in_dim = int(in_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.in_dim, 1, 1))


class GANomalyNet(nn.Module):
    """Generator ``G = (encoder, decoder, encoder2)`` and discriminator ``D`` of GANomaly.

    ``forward(x)`` returns ``(x̂, z, ẑ)``: the reconstruction ``x̂ = dec(enc(x))``,
    its code ``z = enc(x)`` and the re-encoded code ``ẑ = enc2(x̂)``.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        channels: Sequence[int],
        latent_dim: int,
        disc_channels: Sequence[int] | None = None,
        *,
        output: str | None = "tanh",
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        channels = [int(c) for c in channels]
        self.encoder = DCGANEncoder(in_channels, image_size, channels, latent_dim)
        self.decoder = DCGANDecoder(latent_dim, in_channels, image_size, channels, output=output)
        self.encoder2 = DCGANEncoder(in_channels, image_size, channels, latent_dim)
        self.discriminator = DCGANEncoder(in_channels, image_size, list(disc_channels or channels), 1)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters(), *self.encoder2.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)

    def discriminate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logit, features)``: logit of shape ``(n,)`` and the last feature map ``(n, C, h, w)``."""
        f = self.discriminator.features(x)
        return self.discriminator.head(f).flatten(), f
