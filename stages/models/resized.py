"""A network whose output is resized to a smaller whole scale (x4 network -> x2 / x3 model).

This is what the x2 / x3 realesr-animevideov3 ncnn graphs do: run the x4 network, then shrink its output
with a bicubic resize. Here the resize is antialiased (ncnn's is not), which avoids aliasing when halving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor
from torch import nn

from stages.errors import ModelError

__all__ = ["ResizedOutput", "with_output_scale"]


class ResizedOutput(nn.Module):
    """``net`` followed by a bicubic resize of its output to ``scale`` times the input size.

    Input ``(N, C, H, W)``; output ``(N, C_out, H * scale, W * scale)``. The resize runs in float32 and
    the result is cast back to the input dtype, so fp16 / bf16 inference works on every device.
    """

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        out = self.net(x)
        resized = F.interpolate(out.float(), size=(height * self.scale, width * self.scale), mode="bicubic",
                                align_corners=False, antialias=True)
        return resized.to(out.dtype)


def with_output_scale(descriptor: ImageModelDescriptor, scale: int) -> ImageModelDescriptor:
    """A descriptor for ``descriptor``'s network resized to output ``scale`` (smaller than its own scale).

    The result keeps the architecture, tags, precision support and size requirements and reports ``scale``.
    Raises ModelError when ``scale`` is not below the network's scale.
    """
    if not 1 <= scale < descriptor.scale:
        raise ModelError(f"models: cannot resize a x{descriptor.scale} network to x{scale}; only smaller scales "
                         "are supported")
    wrapper = ResizedOutput(descriptor.model, scale)
    return ImageModelDescriptor(
        wrapper,
        wrapper.state_dict(),
        architecture=descriptor.architecture,
        purpose="SR",
        tags=[*descriptor.tags, f"resized-x{scale}"],
        supports_half=descriptor.supports_half,
        supports_bfloat16=descriptor.supports_bfloat16,
        scale=scale,
        input_channels=descriptor.input_channels,
        output_channels=descriptor.output_channels,
        size_requirements=descriptor.size_requirements,
        tiling=descriptor.tiling,
    ).to(descriptor.device)
