"""RIFE IFNet v4.x (Practical-RIFE), one parameterised network for the v4.6 to v4.26 family.

Every v4.x IFNet is a coarse-to-fine cascade of ``IFBlock`` s. Block ``i`` sees the two frames (warped by the
flow so far) downsampled by ``block_scales[i] / scale``, estimates a flow update and a blend mask, and the
last mask blends the two warped frames. The versions differ in:

- the block widths and how many blocks there are (4, or 5 from v4.25 on);
- the ``encode`` Head (from v4.13 in this family of names: ``encode.cnn0`` .. ``encode.cnn3``), a small CNN
  whose per-frame features are warped and fed to every block;
- whether blocks hand 8 feature channels to the next one (v4.21 on) and whether the mask is refined as a
  residual (v4.6) or replaced by each block (later versions).

Module and parameter names are those of the official ``train_log/IFNet_HDv3.py`` of each version, so a
checkpoint (``flownet.pkl``, after removing its ``module.`` prefix and the training-only ``teacher`` /
``caltime`` modules) loads with ``load_state_dict(strict=True)``. The numerics follow the official inference
path: bilinear resizes with ``align_corners=False``, backward warping with ``grid_sample`` (bilinear,
border padding, ``align_corners=True``, flow normalised by ``(size - 1) / 2``), LeakyReLU(0.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stages.errors import SettingsError

__all__ = [
    "ARCHITECTURES",
    "SCALES",
    "VERSIONS",
    "Head",
    "IFBlock",
    "IFNet",
    "IFNetSpec",
    "ResConv",
    "get_spec",
    "normalise_version",
]

SCALES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
"""The flow scales the official code accepts (0.5 is the recommendation for 4K)."""

_SLOPE = 0.2


@dataclass(frozen=True)
class IFNetSpec:
    """The shape of one IFNet architecture.

    ``block_widths``: channels ``c`` of each IFBlock (``block0`` first). ``block_scales``: the downsampling of
    each block at ``scale=1.0``. ``head_width`` / ``encode_channels``: hidden and output channels of the
    ``encode`` Head (0 / 0 when there is none). ``block_features``: feature channels one block hands to the
    next (0 or 8). ``residual_mask``: each block adds to the mask (v4.6) instead of replacing it.
    ``pad_multiple_base``: what H and W are padded to at ``scale=1.0`` (vs-rife's ``modulo``).
    ``versions``: the release names that share this very architecture (same shapes and forward).
    """

    name: str
    block_widths: tuple[int, ...]
    block_scales: tuple[float, ...]
    head_width: int
    encode_channels: int
    block_features: int
    residual_mask: bool
    pad_multiple_base: int
    versions: tuple[str, ...]

    def pad_multiple(self, scale: float = 1.0) -> int:
        """What H and W must be a multiple of at flow ``scale``: ``max(m, int(m / scale))``, ``m = pad_multiple_base``.

        Raises SettingsError for a scale outside :data:`SCALES`.
        """
        if scale not in SCALES:
            raise SettingsError(f"rife: scale {scale:g} is not supported; use one of "
                                f"{', '.join(f'{s:g}' for s in SCALES)} (0.5 for 4K)")
        return max(self.pad_multiple_base, int(self.pad_multiple_base / scale))

    @property
    def has_head(self) -> bool:
        """Whether the architecture has the ``encode`` Head."""
        return self.encode_channels > 0

    @property
    def block_outputs(self) -> int:
        """Channels after each block's PixelShuffle: 4 flow, 1 mask, then features (one spare when none)."""
        return 5 + max(self.block_features, 1)

    @property
    def first_block_inputs(self) -> int:
        """Input channels of ``block0``: both frames, both encodings, the timestep."""
        return 6 + 2 * self.encode_channels + 1

    @property
    def later_block_inputs(self) -> int:
        """Input channels of the other blocks: warped frames and encodings, timestep, mask, features, flow."""
        return 6 + 2 * self.encode_channels + 1 + 1 + self.block_features + 4


def _spec(name: str, widths: tuple[int, ...], scales: tuple[float, ...], head: int, encode: int, features: int,
          residual_mask: bool, pad: int, versions: tuple[str, ...]) -> IFNetSpec:
    return IFNetSpec(name, widths, scales, head, encode, features, residual_mask, pad, versions)


_FOUR = (8.0, 4.0, 2.0, 1.0)
_FIVE = (16.0, 8.0, 4.0, 2.0, 1.0)

# Checked against the per-version IFNet_HDv3.py files packaged by HolyWu/vs-rife (vsrife/IFNet_HDv3_v4_*.py,
# @2a7f2c8) and its padding table (vsrife/__init__.py): versions listed together have identical files.
ARCHITECTURES: Mapping[str, IFNetSpec] = MappingProxyType({spec.name: spec for spec in (
    _spec("4.6", (192, 128, 96, 64), _FOUR, 0, 0, 0, True, 32, ("4.6",)),
    _spec("4.24", (192, 128, 96, 64), _FOUR, 32, 8, 0, False, 32,
          ("4.13", "4.14", "4.15", "4.17", "4.18", "4.19", "4.24")),
    _spec("4.22", (256, 192, 96, 48), _FOUR, 32, 8, 8, False, 32, ("4.21", "4.22", "4.23")),
    _spec("4.22.lite", (192, 128, 64, 32), _FOUR, 16, 4, 8, False, 32, ("4.22.lite",)),
    _spec("4.25", (192, 128, 96, 64, 32), _FIVE, 16, 4, 8, False, 64, ("4.25", "4.26")),
    _spec("4.25.lite", (192, 128, 96, 64, 24), (32.0, 16.0, 8.0, 4.0, 1.0), 16, 4, 8, False, 128,
          ("4.25.lite",)),
    _spec("4.25.heavy", (384, 256, 192, 128, 64), _FIVE, 16, 4, 8, False, 64, ("4.25.heavy",)),
    _spec("4.26.heavy", (192, 128, 96, 64, 32), _FIVE, 16, 16, 8, False, 64, ("4.26.heavy",)),
)})
"""Every supported architecture by its canonical name."""

VERSIONS: Mapping[str, str] = MappingProxyType(
    {version: spec.name for spec in ARCHITECTURES.values() for version in spec.versions})
"""Release name (``"4.26"``) -> canonical architecture name (``"4.25"``)."""


def normalise_version(version: str) -> str:
    """``"v4.26"``, ``"rife-4.26"``, ``"4.25-lite"`` -> ``"4.26"``, ``"4.26"``, ``"4.25.lite"``."""
    return str(version).strip().lower().removeprefix("rife-").removeprefix("rife").removeprefix("v").replace("-", ".")


def get_spec(version: str) -> IFNetSpec:
    """The architecture of release ``version`` (``"4.6"``, ``"4.25"``, ``"4.26.heavy"``...; see
    :func:`normalise_version` for the spellings accepted).

    Raises SettingsError naming the supported versions when ``version`` is not one of them.
    """
    name = normalise_version(version)
    try:
        return ARCHITECTURES[VERSIONS[name]]
    except KeyError:
        raise SettingsError(f"rife: version {version!r} is not supported; use one of "
                            f"{', '.join(sorted(VERSIONS, key=_version_key))}") from None


def _version_key(version: str) -> tuple[int, ...]:
    parts = version.split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts[:2]) + (len(parts),)


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 convolution (padding 1) + LeakyReLU(0.2), as a Sequential so the keys are ``N.0.weight``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(_SLOPE))


class ResConv(nn.Module):
    """``LeakyReLU(conv3x3(x) * beta + x)`` with a learnt per-channel ``beta`` of shape ``(1, C, 1, 1)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, h, w) -> (N, C, h, w)``."""
        return F.leaky_relu(self.conv(x) * self.beta + x, _SLOPE)


class Head(nn.Module):
    """The ``encode`` feature extractor: ``(N, 3, H, W)`` in [0, 1] -> ``(N, encode_channels, H, W)``.

    Three 3x3 convolutions (the first with stride 2) with LeakyReLU between them, then a 4x4 transposed
    convolution back to full resolution; no activation at the end.
    """

    def __init__(self, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out_channels, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W) -> (N, out_channels, H, W)`` for even H and W."""
        x = F.leaky_relu(self.cnn0(x.clamp(0.0, 1.0)), _SLOPE)
        x = F.leaky_relu(self.cnn1(x), _SLOPE)
        x = F.leaky_relu(self.cnn2(x), _SLOPE)
        return self.cnn3(x)


def _resize(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize by ``factor`` (``align_corners=False``); the identity for a factor of 1."""
    if factor == 1.0:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class IFBlock(nn.Module):
    """One flow block: ``conv0`` (two stride-2 convs), 8 ``ResConv`` s, ``lastconv`` (x2 deconv + PixelShuffle).

    The input is resized by ``1 / scale`` first and the output back by ``scale``, so the body runs at
    ``1 / (4 * scale)`` of the frame size.
    """

    def __init__(self, in_channels: int, width: int, outputs: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_channels, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(ResConv(width) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * outputs, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor, Tensor]:
        """``x (N, C, H, W)``, ``flow (N, 4, H, W)`` or None -> flow ``(N, 4, H, W)``, mask ``(N, 1, H, W)``,
        features ``(N, outputs - 5, H, W)`` (in pixels of the full-size frame)."""
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        out = _resize(self.lastconv(self.convblock(self.conv0(x))), scale)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


def _base_grid(height: int, width: int, device: torch.device) -> Tensor:
    """The identity sampling grid ``(1, H, W, 2)`` in [-1, 1] (x first), float32."""
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)


def _warp(image: Tensor, flow: Tensor, grid: Tensor) -> Tensor:
    """Backward-warp ``image (N, C, H, W)`` by ``flow (N, 2, H, W)`` (pixels, x then y); computed in float32."""
    height, width = image.shape[-2:]
    norm = torch.tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0], device=flow.device).view(1, 2, 1, 1)
    offset = (flow.float() / norm).permute(0, 2, 3, 1)
    warped = F.grid_sample(image.float(), grid + offset, mode="bilinear", padding_mode="border",
                           align_corners=True)
    return warped.to(image.dtype)


def _batch(name: str, tensor: Tensor, size: int) -> Tensor:
    if tensor.shape[0] == size:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(size, *tensor.shape[1:])
    raise SettingsError(f"rife: {name} has a batch of {tensor.shape[0]}, the others {size}; pass batches of the "
                        "same size (or of 1, which is broadcast)")


class IFNet(nn.Module):
    """The RIFE v4.x flow network of ``spec`` (see :data:`ARCHITECTURES`), randomly initialised.

    Submodules: ``block0`` .. ``block{n-1}`` (:class:`IFBlock`) and, for versions with one, ``encode``
    (:class:`Head`), named as in the official state dicts.
    """

    def __init__(self, spec: IFNetSpec) -> None:
        super().__init__()
        self.spec = spec
        for index, width in enumerate(spec.block_widths):
            inputs = spec.first_block_inputs if index == 0 else spec.later_block_inputs
            self.add_module(f"block{index}", IFBlock(inputs, width, spec.block_outputs))
        if spec.has_head:
            self.encode = Head(spec.head_width, spec.encode_channels)

    @property
    def blocks(self) -> list[IFBlock]:
        """The flow blocks, coarsest first."""
        return [getattr(self, f"block{index}") for index in range(len(self.spec.block_widths))]

    def pad_multiple(self, scale: float = 1.0) -> int:
        """What H and W must be a multiple of at flow ``scale`` (see :meth:`IFNetSpec.pad_multiple`)."""
        return self.spec.pad_multiple(scale)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float | Tensor, scale: float = 1.0) -> Tensor:
        """The frame at ``timestep`` between ``img0`` (t=0) and ``img1`` (t=1).

        Args:
            img0, img1: ``(N, 3, H, W)`` (or ``(1, 3, H, W)``, broadcast) in [0, 1]; H and W multiples of
                :meth:`pad_multiple` ``(scale)`` (pad right/bottom first).
            timestep: a float, or a tensor of ``N`` values (shape ``(N,)`` or ``(N, 1, 1, 1)``), in (0, 1).
            scale: the flow resolution, one of :data:`SCALES` (0.5 for 4K; 2.0 for small or fine motion).

        Returns:
            ``(N, 3, H, W)`` in [0, 1], in the dtype of ``img0``.

        Raises:
            SettingsError: unsupported scale, sizes that are not padded, mismatched shapes or batches.
        """
        multiple = self.pad_multiple(scale)
        if img0.ndim != 4 or img0.shape[1] != 3 or img0.shape[1:] != img1.shape[1:]:
            raise SettingsError(f"rife: frames must be (N, 3, H, W) tensors of one size, got {tuple(img0.shape)} "
                                f"and {tuple(img1.shape)}")
        height, width = img0.shape[-2:]
        if height % multiple or width % multiple:
            raise SettingsError(f"rife: {width}x{height} is not a multiple of {multiple} (version {self.spec.name}, "
                                f"scale {scale:g}); pad right and bottom to "
                                f"{-(-width // multiple) * multiple}x{-(-height // multiple) * multiple}")
        dtype = img0.dtype
        t = torch.as_tensor(timestep, dtype=dtype, device=img0.device).reshape(-1, 1, 1, 1)
        size = max(img0.shape[0], img1.shape[0], t.shape[0])
        img0, img1 = img0.clamp(0.0, 1.0), img1.clamp(0.0, 1.0)
        t = _batch("timestep", t, size).expand(size, 1, height, width)
        encoded = [_batch(name, self.encode(img), size) for name, img in (("img0", img0), ("img1", img1))] \
            if self.spec.has_head else []
        img0, img1 = _batch("img0", img0, size), _batch("img1", img1, size)
        grid = _base_grid(height, width, img0.device)
        blocks, levels = self.blocks, [block_scale / scale for block_scale in self.spec.block_scales]
        flow, mask, features = blocks[0](torch.cat([img0, img1, *encoded, t], 1), None, levels[0])
        warped0, warped1 = _warp(img0, flow[:, :2], grid), _warp(img1, flow[:, 2:4], grid)
        for block, level in zip(blocks[1:], levels[1:]):
            parts = [warped0, warped1]
            if encoded:
                parts += [_warp(encoded[0], flow[:, :2], grid), _warp(encoded[1], flow[:, 2:4], grid)]
            parts += [t, mask]
            if self.spec.block_features:
                parts.append(features)
            delta, block_mask, features = block(torch.cat(parts, 1), flow, level)
            flow = flow + delta
            mask = mask + block_mask if self.spec.residual_mask else block_mask
            warped0, warped1 = _warp(img0, flow[:, :2], grid), _warp(img1, flow[:, 2:4], grid)
        weight = torch.sigmoid(mask)
        return (warped0 * weight + warped1 * (1 - weight)).clamp(0.0, 1.0)
