"""Run settings as Dagster ``Config`` classes; each converts to the plain settings of its stage."""

from __future__ import annotations

from dagster import Config

from stages.media.encode import EncodeSettings
from stages.models.catalog import DEFAULT_UPSCALE_MODEL
from stages.ops.cohere.temporal import TemporalSettings
from stages.ops.interpolate.timing import InterpolationSettings, rational_fps
from stages.ops.upscale.engine import UpscaleSettings


class ChunkPlanConfig(Config):
    """How the video is cut into chunks, and how it is decoded into them: ``deinterlace`` is auto (bwdif, one frame
    per frame, when the source is interlaced), off, frame or field (one frame per field, at twice the rate); see
    stages.media.deinterlace."""

    chunk_seconds: float = 10.0
    scene_detection: bool = True
    deinterlace: str = "auto"


class UpscaleConfig(Config):
    """Which model, at which scale, with which tiling."""

    model: str = DEFAULT_UPSCALE_MODEL
    model_path: str | None = None
    scale: int = 4
    tile: int = 0
    tile_overlap: int = 16
    batch: int = 0
    backend: str = "auto"
    compile: bool = False

    def to_settings(self) -> UpscaleSettings:
        return UpscaleSettings(
            model=self.model, scale=self.scale, tile=self.tile, tile_overlap=self.tile_overlap, batch=self.batch,
            backend=self.backend, compile=self.compile,
        )


class InterpolateConfig(Config):
    """Frame interpolation: method, and a factor (2, 4, 8) or a target fps (never above 120)."""

    method: str = "none"
    factor: int | None = None
    fps: str | None = None  # e.g. "60", "59.94" or "60000/1001"
    dedup: bool = False
    flow_preset: str = "medium"

    def to_settings(self) -> InterpolationSettings:
        return InterpolationSettings(
            method=self.method, factor=self.factor,
            target_fps=rational_fps(self.fps) if self.fps is not None else None,
            dedup=self.dedup, flow_preset=self.flow_preset,
        )


class MetricsConfig(Config):
    """Full-reference figures against a reference video the user supplies (PSNR, SSIM on Y and RGB, VMAF)."""

    reference_path: str | None = None
    vmaf: bool = True


class TemporalConfig(Config):
    """Temporal coherence against flicker: auto (the default; resolves to flow), flow, ema or none (seedvr2 is
    listed but unavailable)."""

    method: str = "auto"
    strength: float = 0.6

    def to_settings(self) -> TemporalSettings:
        return TemporalSettings(method=self.method, strength=self.strength)


class EncodeConfig(Config):
    """Codec, quality and where the result goes (default: under the workspace's outputs)."""

    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None
    output_path: str | None = None
    square_pixels: bool = False  # resample non-square pixels to square ones (default: carry the pixel aspect)

    def to_settings(self) -> EncodeSettings:
        return EncodeSettings(codec=self.codec, crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt,
                              square_pixels=self.square_pixels)
