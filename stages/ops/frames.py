"""The decode op: each planned chunk of the source decoded once to a lossless chunk, deinterlaced as the run asked
(stages.media.deinterlace: its ``info`` is the source's decoded view). Its inputs are the chunk plan's specs, not
chunks; the enhance and reframe graphs share them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from stages.media.chunking import ChunkSpec, extract_chunk
from stages.media.deinterlace import deinterlace_key
from stages.media.probe import VideoInfo
from stages.ops.contract import ChunkOp, ChunkShape, ChunkTask
from stages.ops.registry import register_op
from stages.store.chunk_store import ChunkContent, content_key


@register_op
class FramesOp(ChunkOp[ChunkSpec]):
    """Decode chunk specs of the source ``path`` (content ``sha256``) whose decoded view is ``info`` (the probe, or
    stages.media.deinterlace.decoded_view of it: the deinterlace mode is part of every chunk's key)."""

    name = "frames"

    def __init__(self, path: str, sha256: str, info: VideoInfo) -> None:
        self.path, self.sha256, self.info = path, sha256, info

    def chunk_key(self, task: ChunkTask[ChunkSpec]) -> str:
        return content_key(self.name, {
            "source": self.sha256, "spec": asdict(task.upstream), "bit_depth": self.info.bit_depth,
            "version": self.version, **deinterlace_key(self.info)})

    def expect(self, task: ChunkTask[ChunkSpec]) -> ChunkShape:
        return ChunkShape(None, None, None)  # a damaged source may decode fewer frames: the asset warns

    def produce(self, task: ChunkTask[ChunkSpec], tmp: Path) -> ChunkContent:
        ex = extract_chunk(self.path, self.info, task.upstream, tmp)
        return ChunkContent(ex.frame_count, tuple(ex.pts), ex.width, ex.height, ex.bit_depth)

    @classmethod
    def example_inputs(cls, clip: Any) -> list[ChunkSpec]:
        return clip.specs

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        return cls(clip.path, clip.sha256, clip.info), cls(clip.path, "0" * 64, clip.info)
