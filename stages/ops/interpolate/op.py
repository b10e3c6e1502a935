"""The interpolate op: each chunk's share of an output-frame plan (stages.ops.interpolate.timing) written from its source
frames, the last pairs using the next chunk's first frame; and the two things the three graphs share around it:
choosing the interpolator (RIFE when its weights are here, else optical flow) and planning a frame-rate change."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stages.device import DeviceChoice
from stages.media.chunkio import first_frame
from stages.models.catalog import DEFAULT_INTERPOLATION_MODEL
from stages.models.store import ModelStore
from stages.ops.contract import ChunkOp, ChunkShape, ChunkTask
from stages.ops.interpolate.chunk import interpolate_chunk
from stages.ops.interpolate.interpolators import Interpolator, make_interpolator
from stages.ops.interpolate.timing import (
    OutputFrame,
    choose_method,
    chunk_output_frames,
    plan_output_frames,
)
from stages.ops.registry import register_op
from stages.store.chunk_store import ChunkContent, ChunkRecord


@register_op
class InterpolateOp(ChunkOp[ChunkRecord]):
    """Write ``per_chunk[i]`` (chunk i's share of the plan, see :func:`plan_retime`) from input chunk i with
    ``interpolator``; output pts count from ``start_pts``. ``extra`` adds key parts (e.g. an alpha matte)."""

    name = "interpolate"

    def __init__(self, interpolator: Interpolator, per_chunk: Sequence[Sequence[OutputFrame]], start_pts: int = 0,
                 *, params: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        self.interpolator, self.per_chunk, self.start_pts = interpolator, [list(p) for p in per_chunk], start_pts
        self.params, self.extra = dict(params or {}), dict(extra or {})
        self.synthesized = 0

    def _share(self, task: ChunkTask[ChunkRecord]) -> list[OutputFrame]:
        return self.per_chunk[task.position]

    def wants(self, task: ChunkTask[ChunkRecord]) -> bool:
        return bool(self._share(task))  # a lower output rate can leave a short chunk without an output frame

    def key_parts(self, task: ChunkTask[ChunkRecord]) -> Mapping[str, Any]:
        digest = hashlib.sha256(json.dumps([asdict(f) for f in self._share(task)]).encode()).hexdigest()
        following = task.following
        return {"next": following.key if following is not None else None, "plan": digest,
                "interpolator": self.interpolator.key, **self.extra}

    def start_frame(self, task: ChunkTask[ChunkRecord]) -> int:
        return self._share(task)[0].index

    def expect(self, task: ChunkTask[ChunkRecord]) -> ChunkShape:
        up = task.upstream
        return ChunkShape(len(self._share(task)), up.width, up.height)

    def manifest_params(self) -> Mapping[str, Any]:
        return self.params

    def produce(self, task: ChunkTask[ChunkRecord], tmp: Path) -> ChunkContent:
        up, following, share = task.upstream, task.following, self._share(task)
        next_first = first_frame(following.path) if following is not None else None
        result = interpolate_chunk(up.path, tmp, share, up.start_frame, next_first, self.interpolator,
                                   bit_depth=up.bit_depth)
        self.synthesized += result.interpolated
        return ChunkContent(result.frame_count, tuple(self.start_pts + f.index for f in share), result.width,
                            result.height, result.bit_depth)

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        starts = [r.start_frame for r in clip.records]
        count = sum(r.frame_count for r in clip.records)
        times = np.arange(count, dtype=np.float64) / 10.0
        ops = []
        for factor in (2, 3):
            plan = plan_retime(times, count / 10.0, Fraction(10 * factor), starts)
            ops.append(cls(make_interpolator("blend"), plan.per_chunk))
        return ops[0], ops[1]


@dataclass(frozen=True)
class RetimePlan:
    """A frame-rate change: every output frame (:class:`stages.ops.interpolate.timing.OutputFrame`) and each chunk's share."""

    frames: tuple[OutputFrame, ...]
    per_chunk: tuple[tuple[OutputFrame, ...], ...]


def plan_retime(times: np.ndarray, end: float, out_fps: Fraction, chunk_starts: Sequence[int], *,
                cuts: Collection[int] = (), duplicates: Collection[int] = ()) -> RetimePlan:
    """Plan the output frames at ``out_fps`` of source frames shown at ``times`` (seconds) until ``end``, never
    across a scene cut in ``cuts``, skipping ``duplicates``, and split it at the chunks starting at
    ``chunk_starts`` (source frame indices). Shared by the enhance, production and reframe graphs."""
    frames = plan_output_frames(times, end, out_fps, list(cuts), set(duplicates), keep=list(chunk_starts))
    return RetimePlan(tuple(frames), tuple(tuple(c) for c in chunk_output_frames(frames, list(chunk_starts))))


def rife_factory(models: ModelStore, choice: DeviceChoice) -> tuple[bool, Callable[[], Interpolator]]:
    """Whether RIFE weights are on this machine (never downloads here), and a factory for its interpolator."""
    entry = models.entry(DEFAULT_INTERPOLATION_MODEL)
    status = models.status(entry.id)
    present = status.available and status.source not in ("download", None)

    def factory() -> Interpolator:
        from stages.models.rife import RifeInterpolator
        from stages.models.rife.load import load_rife

        model = load_rife(models.resolve(entry.id).path, version=entry.variant)
        precision = "fp16" if choice.kind == "cuda" else "fp32"
        return RifeInterpolator(model, device=choice.device, precision=precision)

    return present, factory


@dataclass(frozen=True)
class InterpolatorChoice:
    """The interpolator chosen, its method, why, and a warning when a requested RIFE fell back to optical flow."""

    interpolator: Interpolator
    method: str
    reason: str
    fallback: str | None = None


def choose_interpolator(models: ModelStore, choice: DeviceChoice, requested: str = "auto", *,
                        flow_preset: str = "medium", rife_fallback: bool = False) -> InterpolatorChoice:
    """The interpolator for ``requested`` (auto, rife, flow, blend, minterpolate) on this machine, and why. With
    ``rife_fallback``, a requested RIFE whose weights are not here becomes the optical-flow interpolator, and
    ``fallback`` says so (otherwise choose_method refuses it)."""
    present, factory = rife_factory(models, choice)
    fallback = None
    if rife_fallback and requested == "rife" and not present:
        fallback = ("no RIFE weights on this machine; using the optical-flow interpolator instead "
                    "(`vup models download` gets RIFE)")
        requested = "flow"
    method, reason = choose_method(requested, present, choice.kind)
    return InterpolatorChoice(make_interpolator(method, flow_preset=flow_preset, rife_factory=factory), method,
                              reason, fallback)
