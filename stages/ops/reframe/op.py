"""The reframe op: each frame's crop taken at native resolution, upscaled by the AI model (or not) and resized to
the target (stages.ops.reframe.chunk.reframe_chunk)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from stages.ops.contract import ChunkOp, ChunkShape, ChunkTask
from stages.ops.reframe.chunk import reframe_chunk
from stages.ops.reframe.crops import CropBox
from stages.ops.registry import register_op
from stages.store.chunk_store import ChunkContent, ChunkRecord

UpscaleFn = Callable[[list[np.ndarray]], Sequence[np.ndarray]]


@register_op
class ReframeOp(ChunkOp[ChunkRecord]):
    """Crop input frame ``i`` (counted over all input chunks) to ``boxes[i]``, upscale with ``upscale`` (None: no
    model) and resize to ``target`` = (width, height), square pixels. ``model_key`` says what decides the upscaled
    bytes; ``pixel_aspect`` is the source's sample aspect ratio (the crops' display aspect is ``aspect * it``), used
    to tell a stretched target from a pixel-aspect correction."""

    name = "reframe"

    def __init__(self, boxes: Sequence[CropBox], target: tuple[int, int], upscale: UpscaleFn | None = None,
                 model_key: Mapping[str, Any] | None = None, *, pixel_aspect: float = 1.0) -> None:
        self.boxes, self.target, self.upscale = list(boxes), (int(target[0]), int(target[1])), upscale
        self.model_key = dict(model_key or {"model": "none"})
        self.pixel_aspect = float(pixel_aspect)

    def _boxes(self, task: ChunkTask[ChunkRecord]) -> list[CropBox]:
        offset = sum(r.frame_count for r in task.inputs[:task.position])
        return self.boxes[offset:offset + task.upstream.frame_count]

    def key_parts(self, task: ChunkTask[ChunkRecord]) -> Mapping[str, Any]:
        return {"boxes": [asdict(b) for b in self._boxes(task)], "target": list(self.target), **self.model_key}

    def expect(self, task: ChunkTask[ChunkRecord]) -> ChunkShape:
        return ChunkShape(task.upstream.frame_count, *self.target)

    def produce(self, task: ChunkTask[ChunkRecord], tmp: Path) -> ChunkContent:
        up = task.upstream
        result = reframe_chunk(up.path, tmp, self._boxes(task), self.target, upscale=self.upscale,
                               bit_depth=up.bit_depth, pixel_aspect=self.pixel_aspect)
        return ChunkContent(result.frame_count, up.pts, result.width, result.height, result.bit_depth)

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        first = clip.records[0]
        frames = sum(r.frame_count for r in clip.records)
        box = CropBox(x=0.0, y=0.0, width=first.width / 2, height=first.height / 2)
        return cls([box] * frames, (first.width, first.height)), cls([box] * frames, (first.width * 2, first.height * 2))
