"""AI upscaling of frames and chunks: tiling with seamless blending, batching, precision, OOM back-off.

Frames are ``HxWx3`` RGB arrays, ``uint8`` (8-bit chunks) or ``uint16`` (16-bit chunks). The network is any
spandrel ``ImageModelDescriptor`` (Real-ESRGAN Compact/RRDBNet, SwinIR, SPAN, ...).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stages.device import DeviceChoice, host_free_memory, is_out_of_memory
from stages.errors import DeviceOutOfMemoryError, SettingsError
from stages.ops.writer import MappedChunk, map_chunk

log = logging.getLogger(__name__)

SUPPORTED_SCALES = (2, 4, 8)
NO_UPSCALE = 1  # scale 1: no model, the frames pass through (interpolation-only or re-encode jobs)
BACKENDS = ("auto", "torch", "ncnn")
MAX_OUTPUT_LONG_SIDE = 7680
MAX_OUTPUT_SHORT_SIDE = 4320
MIN_TILE = 64
_BYTES_PER_INPUT_PIXEL = 4096  # conservative activation memory per input pixel for Compact/RRDB-class nets

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class UpscaleSettings:
    """What decides the bytes of an upscaled chunk (besides the model weights and device)."""

    model: str = "auto"  # stages.models.catalog.AUTO_MODEL: build_upscale_op decides (live action or animation)
    scale: int = 4
    tile: int = 0
    tile_overlap: int = 16
    batch: int = 0
    backend: str = "auto"
    compile: bool = False

    def validate(self) -> None:
        """Raises SettingsError for an impossible scale, tile, overlap, batch or backend."""
        if self.scale != NO_UPSCALE and self.scale not in SUPPORTED_SCALES:
            raise SettingsError(f"upscale: scale {self.scale} is not supported; use 2, 4 or 8 (or 1: no upscaling)")
        if self.tile < 0 or (self.tile and (self.tile < MIN_TILE or self.tile % 8)):
            suggestion = max(MIN_TILE, int(math.ceil(max(self.tile, 1) / 8) * 8))
            raise SettingsError(
                f"upscale: tile {self.tile} must be 0 (automatic) or a multiple of 8 of at least {MIN_TILE}; "
                f"use {suggestion}"
            )
        if self.tile_overlap < 0 or (self.tile and self.tile_overlap * 2 >= self.tile):
            raise SettingsError(
                f"upscale: tile overlap {self.tile_overlap} must be >= 0 and less than half the tile; use 16"
            )
        if self.batch < 0:
            raise SettingsError(f"upscale: batch {self.batch} is negative; use 0 (automatic) or a positive number")
        if self.backend not in BACKENDS:
            raise SettingsError(f"upscale: unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.compile and self.backend == "ncnn":
            raise SettingsError("upscale: compile applies to the torch backend only; drop --compile or use "
                                "--backend torch")


def output_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Output size of a ``width``x``height`` input at ``scale``; raises SettingsError above 8K (7680x4320)."""
    out_w, out_h = width * scale, height * scale
    if max(out_w, out_h) > MAX_OUTPUT_LONG_SIDE or min(out_w, out_h) > MAX_OUTPUT_SHORT_SIDE:
        best = max((s for s in SUPPORTED_SCALES if max(width, height) * s <= MAX_OUTPUT_LONG_SIDE
                    and min(width, height) * s <= MAX_OUTPUT_SHORT_SIDE), default=None)
        fix = f"use --scale {best}" if best else "downscale the source first"
        raise SettingsError(
            f"upscale: {width}x{height} at x{scale} gives {out_w}x{out_h}, above the 8K limit (7680x4320); {fix}"
        )
    return out_w, out_h


@dataclass(frozen=True)
class ScaleStep:
    """One step of a scale plan: a model pass (``factor`` = model scale) or a resize (``resize`` = True)."""

    resize: bool
    factor: Fraction


def plan_scale(target: int, model_scale: int) -> tuple[ScaleStep, ...]:
    """Model passes and resizes that turn x1 into x``target`` with a x``model_scale`` network.

    Downscaling happens right after the first pass, where the frames are smallest: x8 from a x4 model is
    ``x4 -> resize 1/2 -> x4``; x2 from a x4 model is ``x4 -> resize 1/2``.

    Raises:
        SettingsError: the model does not enlarge (scale 1) or the target is below 1.
    """
    if model_scale < 2:
        raise SettingsError(f"upscale: the model has scale {model_scale}; pick an upscaling model (x2, x3 or x4)")
    if target < 1:
        raise SettingsError(f"upscale: scale {target} is impossible; use 2, 4 or 8")
    passes = max(1, math.ceil(math.log(target) / math.log(model_scale) - 1e-9))
    model = ScaleStep(False, Fraction(model_scale))
    total = Fraction(model_scale) ** passes
    steps = [model]
    if total != target:
        steps.append(ScaleStep(True, Fraction(target) / total))
    steps.extend([model] * (passes - 1))
    return tuple(steps)


def describe_plan(steps: Sequence[ScaleStep]) -> str:
    return " -> ".join(f"resize x{s.factor}" if s.resize else f"model x{s.factor}" for s in steps)


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((length - overlap) / step)
    return sorted({min(i * step, length - tile) for i in range(count)})


def _ramp(size: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """Blend weights along one tile axis (output pixels).

    On a side shared with a neighbour, the outer quarter of the overlap gets weight 0 (pixels that see the
    tile's zero padding), the middle half a linear ramp, so two neighbours' weights are complementary.
    """
    weight = torch.ones(size)
    overlap = min(overlap, size // 2)
    margin = overlap // 4
    ramp = overlap - 2 * margin
    values = (torch.arange(ramp, dtype=torch.float32) + 0.5) / max(ramp, 1)
    if rise and overlap:
        weight[:margin] = 0
        weight[margin:margin + ramp] = values
    if fall and overlap:
        weight[size - margin:] = 0
        weight[size - margin - ramp:size - margin] = values.flip(0)
    return weight


def _available_memory(device: DeviceChoice) -> int:
    if device.kind == "cuda":
        free, _total = torch.cuda.mem_get_info(device.torch_device)
        return int(free)
    return host_free_memory()


class Upscaler:
    """Runs a spandrel SR model on batches of frames with tiling, precision per device and OOM back-off.

    Args:
        descriptor: a spandrel ``ImageModelDescriptor`` (scale >= 2, 3 input and output channels).
        device: the run's DeviceChoice.
        tile: input tile size in pixels (0 = from free memory; whole frames when they fit).
        overlap: overlap between tiles in input pixels; blended with linear ramps.
        batch: frames (or tiles) per forward call (0 = automatic: 1 on CPU, from memory on GPUs).
        compile: wrap the network in ``torch.compile`` (inductor; with weight freezing on the CPU). Off by
            default: on the reference CPU it saved about 8% per frame but took 17 s to compile (4 s from a warm
            cache) and needs a C++ compiler (README, "torch.compile"). If compiling fails, the run goes on
            eagerly with a warning.
    """

    def __init__(self, descriptor, device: DeviceChoice, *, tile: int = 0, overlap: int = 16, batch: int = 0,
                 compile: bool = False) -> None:
        if descriptor.input_channels != 3 or descriptor.output_channels != 3:
            raise SettingsError(
                f"upscale: the model takes {descriptor.input_channels} and gives {descriptor.output_channels} "
                "channels; pick an RGB model"
            )
        self.device = device
        self.scale = int(descriptor.scale)
        self.overlap = overlap
        self.model_calls = 0
        precision = device.precision
        if precision == "fp16" and not descriptor.supports_half:
            log.warning("upscale: %s does not support fp16; running fp32", descriptor.architecture.name)
            precision = "fp32"
        if precision == "bf16" and not descriptor.supports_bfloat16:
            log.warning("upscale: %s does not support bf16; running fp32", descriptor.architecture.name)
            precision = "fp32"
        self.precision = precision
        descriptor = descriptor.to(device.torch_device).eval()
        descriptor = descriptor.half() if precision == "fp16" else descriptor.float()
        self._channels_last = device.kind in ("cuda", "cpu")
        if self._channels_last:
            descriptor.model.to(memory_format=torch.channels_last)
        self.descriptor = descriptor
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self.tile = tile
        self.batch = batch if batch > 0 else (1 if device.kind == "cpu" else 4)
        self._per_pixel = _BYTES_PER_INPUT_PIXEL * (2 if precision == "fp32" else 1)
        self._eager_model = descriptor.model
        self.compiled = False
        if compile:
            self._compile()

    def _compile(self) -> None:
        """Replace the network's forward with a ``torch.compile`` one (compiled lazily on the first call)."""
        try:
            if self.device.kind == "cpu":
                import torch._inductor.config as inductor_config

                # Freezing folds the weights into the graph so oneDNN can pre-pack them: on the reference CPU
                # compile + freezing was ~8% faster than eager bf16; compile alone ~4%.
                inductor_config.freezing = True
            self.descriptor.model.forward = torch.compile(self._eager_model.forward, dynamic=False)
            self.compiled = True
        except Exception as exc:  # noqa: BLE001 - compile support varies by platform; eager always works
            log.warning("upscale: torch.compile is not available here (%s); running eagerly", exc)

    def _auto_tile(self, height: int, width: int) -> int:
        if self.tile:
            return self.tile
        budget = _available_memory(self.device) * (0.6 if self.device.kind == "cuda" else 0.25)
        pixels = budget / (self._per_pixel * self.batch)
        if pixels >= height * width:
            return 0
        side = int(math.sqrt(pixels)) // 8 * 8
        return max(MIN_TILE, min(side, 2048))

    def _autocast(self):
        if self.precision == "bf16" and self.device.kind == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """One model call on ``x`` (N,3,h,w) float32 in [0, 1]; returns (N,3,h*s,w*s) float32."""
        x = x.to(self._dtype)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.model_calls += 1
        try:
            with torch.inference_mode(), self._autocast():
                out = self.descriptor(x)
        except Exception as exc:
            if not self.compiled or is_out_of_memory(exc):
                raise
            # A compile failure (no C++ compiler, unsupported op) shows up on the first call: run eagerly.
            log.warning("upscale: torch.compile failed (%s: %s); running eagerly", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            del self.descriptor.model.forward
            self.compiled = False
            with torch.inference_mode(), self._autocast():
                out = self.descriptor(x)
        return out.float().contiguous()

    def _forward_batched(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return torch.cat([self._forward(x[i:i + batch]) for i in range(0, x.shape[0], batch)], dim=0)

    def _forward_tiled(self, x: torch.Tensor, tile: int, batch: int) -> torch.Tensor:
        n, _c, height, width = x.shape
        s = self.scale
        if tile <= 0 or (height <= tile and width <= tile):
            return self._forward_batched(x, batch)
        th, tw = min(tile, height), min(tile, width)
        ys, xs = _tile_starts(height, tile, self.overlap), _tile_starts(width, tile, self.overlap)
        out = torch.zeros((n, 3, height * s, width * s), dtype=torch.float32, device=x.device)
        weight_sum = torch.zeros((1, 1, height * s, width * s), dtype=torch.float32, device=x.device)
        positions = [(y, xx) for y in ys for xx in xs]
        per_call = max(1, batch // n) if n < batch else 1
        for start in range(0, len(positions), per_call):
            group = positions[start:start + per_call]
            crops = torch.cat([x[:, :, y:y + th, xx:xx + tw] for y, xx in group], dim=0)
            results = self._forward_batched(crops, batch)
            for k, (y, xx) in enumerate(group):
                wy = _ramp(th * s, self.overlap * s, y > 0, y + th < height)
                wx = _ramp(tw * s, self.overlap * s, xx > 0, xx + tw < width)
                w = (wy[:, None] * wx[None, :]).to(x.device)[None, None]
                out[:, :, y * s:(y + th) * s, xx * s:(xx + tw) * s] += results[k * n:(k + 1) * n] * w
                weight_sum[:, :, y * s:(y + th) * s, xx * s:(xx + tw) * s] += w
        return out / weight_sum

    def model_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (N,3,H,W) float32 in [0,1] by the model scale, backing off on out-of-memory.

        Raises:
            DeviceOutOfMemoryError: even batch 1 and a 64 px tile do not fit.
        """
        tile = self._auto_tile(x.shape[2], x.shape[3])
        batch = self.batch
        while True:
            try:
                return self._forward_tiled(x, tile, batch)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if self.device.kind == "cuda":
                    torch.cuda.empty_cache()
                current = tile or max(x.shape[2], x.shape[3])
                if batch > 1:
                    batch //= 2
                    log.warning("upscale: out of memory; retrying with batch %d", batch)
                elif current > MIN_TILE:
                    tile = max(MIN_TILE, current // 2 // 8 * 8)
                    log.warning("upscale: out of memory; retrying with tile %d", tile)
                else:
                    raise DeviceOutOfMemoryError(
                        f"upscale: out of memory on {self.device.device} even with batch 1 and {MIN_TILE} px tiles; "
                        "close other programs using the device, use --device cpu, or pick a smaller model"
                    ) from exc
            finally:
                # keep what worked for the next frames
                self.batch, self.tile = batch, (tile if tile else self.tile)

    def upscale(self, frames: Sequence[np.ndarray], steps: Sequence[ScaleStep]) -> list[np.ndarray]:
        """Upscale frames (each ``HxWx3`` uint8 or uint16, all the same shape) along a scale plan.

        Returns frames of the same dtype, ``(H*scale)x(W*scale)x3``.
        """
        return apply_scale_plan(frames, steps, self.model_pass, self.device.torch_device)


def apply_scale_plan(frames: Sequence[np.ndarray], steps: Sequence[ScaleStep],
                     model_pass: Callable[[torch.Tensor], torch.Tensor],
                     device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Run a scale plan on frames (``HxWx3`` uint8/uint16, same shape) with any backend's ``model_pass``.

    ``model_pass`` takes and returns ``(N,3,h,w)`` float32 tensors in [0, 1] (the output ``scale`` times
    larger); resize steps are an antialiased bicubic resize done here, so every backend resizes alike.
    Returns frames of the input dtype.
    """
    if not frames:
        return []
    dtype = frames[0].dtype
    peak = float(np.iinfo(dtype).max)
    height, width = frames[0].shape[:2]
    x = torch.from_numpy(np.stack(frames)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(peak)
    total = Fraction(1)
    for step in steps:
        total *= step.factor
        if step.resize:
            size = (int(height * total), int(width * total))
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
        else:
            x = model_pass(x)
    out = x.mul_(peak).round_().clamp_(0, peak).permute(0, 2, 3, 1).cpu().numpy()
    return [frame.astype(dtype) for frame in out]


@dataclass(frozen=True)
class UpscaledChunk(MappedChunk):
    """What :func:`upscale_chunk` wrote (see MappedChunk), and how many times the model ran."""

    model_calls: int = 0

    @property
    def model_seconds(self) -> float:
        return self.map_seconds


def upscale_chunk(
    in_path: str | Path,
    out_path: str | Path,
    upscaler: Upscaler,
    steps: Sequence[ScaleStep],
    *,
    expected_frames: int | None = None,
    bit_depth: int = 8,
    progress: ProgressFn | None = None,
) -> UpscaledChunk:
    """Upscale every frame of a lossless chunk file into a new chunk file.

    Three stages overlap, joined by bounded queues: frames are decoded in a background thread, upscaled
    here in batches of ``upscaler.batch``, and written (same bit depth) by another background thread, so the
    model never waits on I/O while the queues have room. ``upscaler`` is any backend with ``batch``,
    ``model_calls`` and ``upscale(frames, steps)`` (the torch ``Upscaler`` or the ncnn one). On failure no
    file is left at ``out_path``.

    Raises:
        ChunkError: the input chunk is unreadable or its frame count differs from ``expected_frames``.
        DeviceOutOfMemoryError: see ``Upscaler.model_pass``.
    """
    calls_before = upscaler.model_calls
    result = map_chunk(in_path, out_path, lambda frames, _first: upscaler.upscale(frames, steps),
                       batch=upscaler.batch, expected_frames=expected_frames, bit_depth=bit_depth, what="upscale",
                       progress=progress)
    return UpscaledChunk(**asdict(result), model_calls=upscaler.model_calls - calls_before)
