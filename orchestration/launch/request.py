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
from stages.errors import SettingsError
from stages.media.codecs import OUTPUT_CODECS, default_suffix

OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")


def output_for_codec(output: Path | None, codec: str) -> Path | None:
    """``output`` with the container of ``codec`` added when it has no extension (``result`` -> ``result.mov``
    for ProRes; stages.media.codecs.default_suffix); None and names with an extension are returned as they are."""
    if output is None or output.suffix or codec not in OUTPUT_CODECS:
        return output
    return output.with_name(output.name + default_suffix(codec))


def crf_for_codec(codec: str, crf: int | None) -> int:
    """The CRF to encode ``codec`` with: ``crf``, else the codec's default (18 for h264/h265, 30 for AV1).

    Raises:
        SettingsError: a CRF given for ProRes or FFV1, which have none.
    """
    entry = OUTPUT_CODECS.get(codec)
    if entry is None or entry.codec.crf_range is not None:  # an unknown codec is refused by the validation
        if crf is not None:
            return crf
        return entry.codec.default_crf or 18 if entry is not None else 18
    if crf is not None:
        raise SettingsError(f"encode: --crf {crf} does not apply to {codec} ({entry.description.split(',')[0]} has "
                            "no quality setting); leave --crf out")
    return 18  # unused by the encoder


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
