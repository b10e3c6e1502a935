"""The edit op of production plans: the master's frames (a slice of stages.production.edit.plan_edit per chunk)
rendered from the scenes' chunks onto the canvas, with cuts and crossfades; with ``mattes``, the master's alpha
for the same frames instead. Its inputs are slices of the edit plan, not chunks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stages.ops.contract import ChunkOp, ChunkShape, ChunkTask
from stages.ops.registry import register_op
from stages.production.edit import (
    EditFrame,
    SceneChunk,
    SceneMatte,
    plan_edit,
    render_edit_chunk,
    render_matte_chunk,
)
from stages.store.chunk_store import ChunkContent, content_key

Piece = Sequence[EditFrame]


@register_op
class EditOp(ChunkOp[Piece]):
    """Render each piece of the edit plan at ``canvas`` and ``bit_depth`` from ``scenes`` (each scene's chunks);
    ``scene_keys`` are those chunks' content keys, per scene. With ``mattes`` (and their keys) the op renders the
    alpha matte of the same frames."""

    name = "edit"

    def __init__(self, scenes: Sequence[Sequence[SceneChunk]], scene_keys: Sequence[Any], canvas: tuple[int, int],
                 bit_depth: int, *, names: Sequence[str] | None = None,
                 mattes: Sequence[SceneMatte] | None = None) -> None:
        self.scenes, self.scene_keys, self.mattes = scenes, list(scene_keys), mattes
        self.canvas, self.bit_depth, self.names = (int(canvas[0]), int(canvas[1])), bit_depth, names

    def chunk_key(self, task: ChunkTask[Piece]) -> str:
        piece = task.upstream
        used = sorted({f.a_scene for f in piece} | {f.b_scene for f in piece if f.b_scene is not None})
        parts: dict[str, Any] = {
            "frames": hashlib.sha256(json.dumps([asdict(f) for f in piece]).encode()).hexdigest(),
            "scenes": {str(k): self.scene_keys[k] for k in used}, "canvas": list(self.canvas),
            "depth": self.bit_depth, "version": self.version}
        if self.mattes is not None:
            parts["alpha"] = {str(k): [self.mattes[k].width, self.mattes[k].height] for k in used}
        return content_key(self.name, parts)

    def index(self, task: ChunkTask[Piece]) -> int:
        return task.position

    def start_frame(self, task: ChunkTask[Piece]) -> int:
        return task.upstream[0].index

    def expect(self, task: ChunkTask[Piece]) -> ChunkShape:
        return ChunkShape(len(task.upstream), *self.canvas)

    def manifest_params(self) -> Mapping[str, Any]:
        return {"alpha": True} if self.mattes is not None else {}

    def produce(self, task: ChunkTask[Piece], tmp: Path) -> ChunkContent:
        piece = task.upstream
        if self.mattes is not None:
            count = render_matte_chunk(piece, self.mattes, tmp, self.canvas, self.bit_depth, names=self.names)
        else:
            count = render_edit_chunk(piece, self.scenes, tmp, self.canvas, self.bit_depth, names=self.names)
        return ChunkContent(count, tuple(f.index for f in piece), self.canvas[0], self.canvas[1], self.bit_depth)

    @classmethod
    def example_inputs(cls, clip: Any) -> list[Piece]:
        frames = plan_edit([sum(r.frame_count for r in clip.records)], [0])
        return [frames[i:i + 5] for i in range(0, len(frames), 5)]

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        scenes = [[SceneChunk(r.start_frame, r.frame_count, r.path) for r in clip.records]]
        keys = [[r.key for r in clip.records]]
        first = clip.records[0]
        return (cls(scenes, keys, (first.width, first.height), 8),
                cls(scenes, keys, (first.width * 2, first.height * 2), 8))
