"""The chunk-op contract: what an op is (name, version, state, key, how it makes one chunk) and the per-frame op.

An op turns input chunks into output chunks, one output chunk per input chunk. The driver (stages.ops.driver)
gives it one :class:`ChunkTask` at a time; the op says what decides the bytes (:meth:`ChunkOp.key_parts`), what
the chunk will be (:meth:`ChunkOp.expect`) and writes it (:meth:`ChunkOp.produce`). A stateful op (coherence)
carries state from the chunk before; it starts fresh at a shot (a chunk that starts at a scene cut), so the shots
of a video are independent units of work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from stages.ops.writer import map_chunk
from stages.store.chunk_store import ChunkContent, ChunkRecord, content_key
from stages.store.versions import stage_version

In = TypeVar("In")


@dataclass(frozen=True)
class ChunkTask(Generic[In]):
    """One output chunk to make: the input at ``position`` of ``inputs``; ``previous`` is this op's own output for
    the chunk before in the same shot (stateful ops only; None at the start of a shot)."""

    position: int
    inputs: tuple[In, ...]
    previous: ChunkRecord | None = None

    @property
    def upstream(self) -> In:
        return self.inputs[self.position]

    @property
    def following(self) -> In | None:
        return self.inputs[self.position + 1] if self.position + 1 < len(self.inputs) else None


@dataclass(frozen=True)
class ChunkShape:
    """What an op declares its output chunk will be; None leaves a figure undeclared."""

    frames: int | None
    width: int | None
    height: int | None


class ChunkOp(ABC, Generic[In]):
    """One step of the chunk pipeline. Subclasses set ``name`` (its store folder, asset, config, CLI and progress
    name) and implement :meth:`produce`; ``version`` comes from stages.store.versions unless the op sets its own."""

    name: ClassVar[str]
    stateful: ClassVar[bool] = False

    @property
    def version(self) -> str:
        return stage_version(self.name)

    def key_parts(self, task: ChunkTask[In]) -> Mapping[str, Any]:
        """The op's own parameters that decide the bytes of ``task``'s chunk (JSON-able)."""
        return {}

    def chunk_key(self, task: ChunkTask[In]) -> str:
        """The content key of ``task``'s chunk: the upstream chunk, the op's parts, its version and, for a
        stateful op, its previous chunk in the shot."""
        parts: dict[str, Any] = {"upstream": task.upstream.key, **self.key_parts(task), "version": self.version}
        if self.stateful:
            parts["previous"] = task.previous.key if task.previous is not None else None
        return content_key(self.name, parts)

    def wants(self, task: ChunkTask[In]) -> bool:
        """False when ``task`` makes no chunk (e.g. a lower frame rate leaves a short chunk without a frame)."""
        return True

    def index(self, task: ChunkTask[In]) -> int:
        """The chunk's index in the video's chunk plan (kept through every op)."""
        return task.upstream.index

    def start_frame(self, task: ChunkTask[In]) -> int:
        return task.upstream.start_frame

    def expect(self, task: ChunkTask[In]) -> ChunkShape:
        """The output chunk's frame count and size; the driver refuses a chunk that differs. Default: as the input."""
        up = task.upstream
        return ChunkShape(up.frame_count, up.width, up.height)

    def manifest_params(self) -> Mapping[str, Any]:
        """A few words kept in each chunk's manifest (what made it)."""
        return {}

    @abstractmethod
    def produce(self, task: ChunkTask[In], tmp: Path) -> ChunkContent:
        """Write ``task``'s chunk to ``tmp`` and say what it holds. Raise to abandon it: nothing is committed."""

    @classmethod
    def example_inputs(cls, clip: Any) -> Sequence[Any]:
        """What the contract test feeds the op: the tiny clip's decoded chunks, unless the op consumes a plan."""
        return clip.records

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        """Two instances that differ in one parameter, for the contract test on a tiny clip (``clip``: see
        tests/stages/test_ops_contract.py). Every registered op provides them."""
        raise NotImplementedError(f"op {cls.__name__} gives no examples for the contract test")


class FrameOp(ChunkOp[ChunkRecord]):
    """An op that maps each frame to one frame (a filter, a look). Subclasses write :meth:`map_frame` (or
    :meth:`map_frames` for batches) and :meth:`key_parts`; decoding, the writer thread, frame-count checks and
    atomic writes come from here and the driver."""

    batch: int = 1

    def map_frame(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"op {self.name} maps no frame: write map_frame or map_frames")

    def map_frames(self, frames: Sequence[np.ndarray], first_index: int) -> Sequence[np.ndarray]:
        return [self.map_frame(frame) for frame in frames]

    def produce(self, task: ChunkTask[ChunkRecord], tmp: Path) -> ChunkContent:
        up = task.upstream
        result = map_chunk(up.path, tmp, self.map_frames, batch=self.batch, expected_frames=up.frame_count,
                           bit_depth=up.bit_depth, what=self.name)
        return ChunkContent(result.frame_count, up.pts, result.width, result.height, result.bit_depth)
