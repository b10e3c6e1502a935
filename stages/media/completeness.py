"""Is a demuxed file complete? The truncation checks of :func:`stages.media.probe.probe_video`.

One demux pass (in the probe) counts each stream's packets, where each stream's data ends, the packets the
demuxer flagged as cut short and the error that stopped it early; :func:`check_complete` turns that into a
refusal (the video does not decode to its end: how much is missing) or warnings (another stream lacks a little:
the file is used as players show it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from stages.errors import ProbeError

__all__ = ["MKV_END_TOLERANCE_S", "CutPacket", "Demuxed", "check_complete", "index_units"]

MKV_END_TOLERANCE_S = 0.5
"""How far (seconds, or 5% of the declared duration if more) Matroska media data may end before the declared
duration without the file counting as cut."""


def index_units(packet: av.Packet) -> int:
    """How many entries of an MP4/MOV sample index ``packet`` stands for: one, except for PCM audio, whose index
    counts single samples while the demuxer returns packets of many (their duration, in the stream's time base of
    one tick per sample)."""
    if packet.stream.type == "audio" and packet.stream.codec_context.name.startswith("pcm_") and packet.duration:
        return int(packet.duration)
    return 1


@dataclass(frozen=True)
class CutPacket:
    """A packet the demuxer flagged corrupt (in MP4/MOV and Matroska: its data ends before its declared size)."""

    stream_index: int
    kind: str
    seconds: float | None
    duration: float | None = None

    def describe(self) -> str:
        when = f" at {self.seconds:.2f} s" if self.seconds is not None else ""
        lasting = f" (up to {self.duration:.3f} s of {self.kind})" if self.duration else ""
        return f"the {self.kind} packet of stream #{self.stream_index}{when}{lasting}"


@dataclass(frozen=True)
class Demuxed:
    """What one demux pass found: index units per stream, where each stream's data ends (seconds), the packets
    cut short, the error that stopped the pass early (None: it reached the end) and the video packets read."""

    counts: dict[int, int]
    ends: dict[int, float]
    corrupt: list[CutPacket]
    error: av.error.FFmpegError | None
    video_packets: int


def _boxes_cut(path: Path) -> bool:
    """True when a top-level box of the ISO BMFF file ``path`` declares more bytes than the file holds (the file
    was cut: its media data, or its index, stops early). Only the box headers are read."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                return False  # the last box runs to the end of the file, whatever its length
            if box_size < 8:
                return False  # not a box structure we can follow; other checks decide
            if offset + box_size > size:
                return True
            offset += box_size
    return False


def _stream_seconds(stream: av.stream.Stream, units: int) -> float | None:
    """About how long ``units`` index entries of ``stream`` last: from its declared duration and entry count, else
    its rate. None when the stream says neither."""
    if stream.duration and stream.time_base and stream.frames:
        return float(stream.duration * stream.time_base) * units / stream.frames
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
    if stream.type == "audio" and stream.codec_context is not None and stream.codec_context.sample_rate:
        frame_size = stream.codec_context.frame_size or 1024
        return units * frame_size / stream.codec_context.sample_rate
    return units / float(rate) if rate else None


def check_complete(
    container: av.container.InputContainer,
    video: av.video.stream.VideoStream,
    path: Path,
    found: Demuxed,
) -> list[str]:
    """Raise ProbeError when the demuxed packets show that the video stream was cut; return warnings for what is
    missing elsewhere (the file is used).

    MP4/MOV: a stream with fewer packets than its index declares lacks that many; it was cut when a top-level box
    runs past the end of the file or a packet is cut short, else the index counts samples its edit list leaves out
    (the demuxer, as every player, stops at the edit: nothing is lost). The video stream may lack nothing that
    was cut; other streams warn. A packet cut short refuses the file when it is a video packet, warns otherwise.
    Matroska: the media data must reach the declared duration (with a tolerance), else the file is cut and its
    end is missing. Other containers' headers are not trusted for this, and their damaged packets (e.g. MPEG-TS
    continuity errors) only warn. A demux error refuses the file unless the video stream is known complete.
    """
    is_mov = "mp4" in container.format.name or "mov" in container.format.name
    is_mkv = container.format.name.startswith("matroska")
    warnings: list[str] = []
    name = path.name
    cut_video = [c for c in found.corrupt if c.stream_index == video.index]
    cut_other = [c for c in found.corrupt if c.stream_index != video.index]
    if (is_mov or is_mkv) and cut_video:
        raise ProbeError(
            f"probe: {name} is truncated or damaged ({cut_video[0].describe()} is cut short): its video does not "
            f"decode to its end ({len(cut_video)} video packet(s) damaged, the last frames are missing); copy the "
            "file again or re-export it"
        )
    if cut_other:
        what = "is cut short" if is_mov or is_mkv else "is damaged"
        warnings.append(
            f"probe: {name}: {cut_other[0].describe()} {what} ({len(cut_other)} such packet(s)); the video is "
            "complete, so the file is used, but that stream may click or stop early there; copy the file again "
            "for a complete copy")
    elif found.corrupt and not (is_mov or is_mkv):
        warnings.append(f"probe: {name} has {len(found.corrupt)} damaged packets (first: "
                        f"{found.corrupt[0].describe()}); decoding may show glitches")
    video_complete = False
    if is_mov:
        cut = _boxes_cut(path) or bool(found.corrupt) or found.error is not None
        for candidate in container.streams:
            declared = candidate.frames
            have = found.counts.get(candidate.index, 0)
            if not declared:
                continue
            if candidate.index == video.index:
                video_complete = have >= declared
            if have >= declared:
                continue
            missing = declared - have
            seconds = _stream_seconds(candidate, missing)
            about = f" (about {seconds:.2f} s)" if seconds is not None else ""
            if candidate.index == video.index and cut:
                raise ProbeError(
                    f"probe: {name} is truncated: its index declares {declared} video frames in stream "
                    f"#{candidate.index} but only {have} are in the file, so its video does not decode to its end: "
                    f"the last {missing} frames{about} are missing; copy the file again or re-export it"
                )
            kind = "video frames" if candidate.type == "video" else f"{candidate.type} packets"
            why = ("the file is cut short at the end" if cut
                   else "the index counts samples that its edit list leaves out; players stop there too")
            warnings.append(
                f"probe: {name}: stream #{candidate.index} ({candidate.type}) lacks its last {missing} of {declared} "
                f"{kind}{about}: the file holds {have} ({why}); the video decodes to its end, so the file is used "
                "as players show it")
    if is_mkv and container.duration and found.ends:
        declared_end = container.duration / av.time_base
        found_end = max(found.ends.values())
        if found_end + max(MKV_END_TOLERANCE_S, 0.05 * declared_end) < declared_end:
            raise ProbeError(
                f"probe: {name} is truncated: it declares {declared_end:.2f} s but its media data ends at "
                f"{found_end:.2f} s, so the last {declared_end - found_end:.2f} s of its video are missing; copy the "
                "file again or re-export it"
            )
        video_complete = found.error is None or found.ends.get(video.index, 0.0) + MKV_END_TOLERANCE_S >= declared_end
    if found.error is not None:
        if not video_complete:
            raise ProbeError(
                f"probe: {name} is truncated or damaged ({found.error.strerror or found.error}) after "
                f"{found.video_packets} video frames, so its video does not decode to its end; copy the file again "
                "or re-export it"
            )
        warnings.append(f"probe: {name}: reading stopped early ({found.error.strerror or found.error}) after the "
                        "last video frame; the video is complete, so the file is used, but other streams may end "
                        "early")
    return warnings
