"""The typed value passed between chunk steps: the chunk records, the output timing once a step changed the frame
rate, and what each step did (its provenance), so later steps read fields instead of reaching into dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from stages.media.deinterlace import decoded_view
from stages.media.probe import VideoInfo
from stages.store.chunk_store import ChunkRecord


@dataclass(frozen=True)
class Retiming:
    """The constant output rate a step (interpolation) gave the frames, on the output's own timeline (one tick per
    frame): pts from ``start_pts`` to ``end_pts``."""

    fps: Fraction
    start_pts: int
    end_pts: int


@dataclass(frozen=True)
class RecordSet:
    """Chunk records of one step, in order, with the timing and each step's provenance up to here; ``sources`` are
    the decoded source chunks the chain started from (the coherence filter's and the report's low-resolution
    frames); ``deinterlace`` is how they were decoded (stages.media.deinterlace: ``off``, ``frame`` or ``field``,
    which doubles the frames and their rate)."""

    records: tuple[ChunkRecord, ...]
    sources: tuple[ChunkRecord, ...] = ()
    retiming: Retiming | None = None
    provenance: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    deinterlace: str = "off"

    @property
    def frames(self) -> int:
        return sum(r.frame_count for r in self.records)

    @property
    def retimed(self) -> bool:
        return self.retiming is not None

    def step(self, name: str) -> Mapping[str, Any]:
        """What step ``name`` did ({} when it is not in the chain or passed through)."""
        return self.provenance.get(name, {})

    def then(self, name: str, records: Sequence[ChunkRecord] | None = None, *, retiming: Retiming | None = None,
             **provenance: Any) -> RecordSet:
        """This set after step ``name``: its records (the same when None, a pass-through), a new timing if it
        retimed, and what it did."""
        return replace(self, records=tuple(self.records if records is None else records),
                       retiming=retiming or self.retiming,
                       provenance={**self.provenance, name: dict(provenance)})

    def decoded_info(self, info: VideoInfo) -> VideoInfo:
        """The VideoInfo of the decoded frames of the source ``info`` (its probe): the source's, or at field rate
        twice the frames on a doubled timeline (stages.media.deinterlace.decoded_view)."""
        return decoded_view(info, self.deinterlace)

    def output_info(self, info: VideoInfo) -> VideoInfo:
        """The source's VideoInfo as decoded (:meth:`decoded_info`), retimed to the constant output rate when a step
        retimed the frames (time base 1/fps, one tick per frame); unchanged otherwise. Audio and subtitles still come
        from the source."""
        info = self.decoded_info(info)
        if self.retiming is None:
            return info
        t = self.retiming
        return replace(info, time_base_num=t.fps.denominator, time_base_den=t.fps.numerator,
                       start_pts=t.start_pts, end_pts=t.end_pts, avg_fps=float(t.fps), real_fps=float(t.fps),
                       is_vfr=False, frame_count=self.frames)
