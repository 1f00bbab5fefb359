"""Normalisation and training augmentation in plain torch (no torchvision).

* ``ChannelNormalize``: ``(x · scale - mean_c) / std_c`` per channel, for stored
  examples of any leading batch shape, image-shaped or flattened.
* ``RandomCropFlip``: the standard CIFAR augmentation (He et al., 2016; used by
  ITOP21 and FS23): pad 4 on every side, take a random 32×32 crop, flip
  horizontally with probability 1/2. It works on whole batches with one
  advanced-indexing gather, and draws its randomness only from the
  ``torch.Generator`` it is given, so a loader seed reproduces every crop.
  Padding uses each channel's normalised value of a black pixel, which is what
  torchvision's ``RandomCrop(padding=4)`` before ``Normalize`` produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChannelNormalize:
    """Per-channel affine normalisation of examples stored as ``(..., C, *spatial)`` or ``(..., C·spatial)``."""

    mean: tuple[float, ...]
    """Per-channel mean after scaling."""
    std: tuple[float, ...]
    """Per-channel standard deviation after scaling."""
    image_shape: tuple[int, ...]
    """One example's unflattened shape ``(C, *spatial)``."""
    scale: float = 1.0
    """Applied first, e.g. ``1/255`` for ``uint8`` pixels."""
    flat: bool = False
    """Examples are stored flattened to ``C·spatial`` values."""

    def __post_init__(self) -> None:
        # (x·scale - mean) / std folded into one multiply-add per channel, shape (C, 1)
        channels = self.image_shape[0]
        mean = torch.tensor(self.mean, dtype=torch.float32).view(channels, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(channels, 1)
        object.__setattr__(self, "_gain", self.scale / std)
        object.__setattr__(self, "_offset", -mean / std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        example_dims = 1 if self.flat else len(self.image_shape)
        lead = x.shape[: x.dim() - example_dims]
        gain, offset = self._gain.to(x.device), self._offset.to(x.device)
        out = x.to(torch.float32).reshape(*lead, self.image_shape[0], -1)  # (..., C, H*W)
        return torch.addcmul(offset, out, gain).reshape(x.shape)

    def black(self) -> tuple[float, ...]:
        """The normalised value of a zero pixel in each channel."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop of the original size from a ``padding``-padded image, then a random horizontal flip."""

    image_shape: tuple[int, int, int]
    """One example's shape ``(C, H, W)``; flat batches ``(B, C·H·W)`` are reshaped to it and back."""
    padding: int = 4
    """Pixels added on every side before cropping."""
    fill: tuple[float, ...] = (0.0,)
    """Padding value per channel (one value is broadcast)."""
    flip: bool = True
    """Also flip horizontally with probability 1/2."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        channels, height, width = self.image_shape
        batch = x.shape[0]
        images = x.reshape(batch, channels, height, width)
        pad = self.padding
        fill = torch.tensor(self.fill, dtype=images.dtype, device=images.device)
        padded = (
            fill.expand(channels).view(1, channels, 1, 1).repeat(batch, 1, height + 2 * pad, width + 2 * pad)
        )
        padded[:, :, pad : pad + height, pad : pad + width] = images  # (B, C, H+2p, W+2p)
        # randomness: drawn on the CPU generator, in a fixed order, then moved to the data's device
        offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
        flips = (
            torch.rand(batch, generator=generator) < 0.5
            if self.flip
            else torch.zeros(batch, dtype=torch.bool)
        )
        rows = offsets[:, :1] + torch.arange(height)  # (B, H)
        cols = (
            torch.where(flips[:, None], torch.arange(width - 1, -1, -1), torch.arange(width)) + offsets[:, 1:]
        )
        padded_width = width + 2 * pad
        source = (rows[:, :, None] * padded_width + cols[:, None, :]).reshape(batch, 1, height * width)
        source = source.to(images.device).expand(batch, channels, height * width)  # flat positions in the pad
        out = padded.reshape(batch, channels, -1).gather(2, source)  # (B, C, H*W)
        return out.reshape(x.shape)

    def describe(self) -> str:
        _, height, width = self.image_shape
        flip = " + horizontal flip" if self.flip else ""
        return f"random crop {height}x{width} padding {self.padding}{flip}"
