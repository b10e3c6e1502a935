"""What a user asks for: one video to enhance and how (the CLI, the page and the inbox build it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster import Config

from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    MetricsConfig,
    TemporalConfig,
    UpscaleConfig,
)

OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class EnhanceRequest:
    """One video to enhance and how."""

    input: Path
    output: Path | None = None
    chunk: ChunkPlanConfig = field(default_factory=ChunkPlanConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    interpolate: InterpolateConfig = field(default_factory=InterpolateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    device: str = "auto"
    precision: str = "auto"
    max_runtime_hours: float | None = None  # None: VUP_MAX_RUNTIME_HOURS, else 24; 0: no limit

    def step_configs(self) -> dict[str, Config]:
        """The configs of the enhance chain's steps, by op name."""
        return {"upscale": self.upscale, "interpolate": self.interpolate, "cohere": self.temporal}
