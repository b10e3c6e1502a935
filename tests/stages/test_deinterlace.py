"""Interlaced sources (issue 16): detected by the probe, deinterlaced by default with bwdif before the model, at frame
rate or (asked) field rate with exact timestamps, and the mode is part of the decoded chunks' keys. The interlaced
clip is generated with ffmpeg (tinterlace + setfield + interlaced H.264)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import av
import numpy as np
import pytest

from orchestration.cli import main
from stages.errors import SettingsError
from stages.media.chunking import ChunkSpec, decoded_plan, extract_chunk, plan_chunks, source_spec
from stages.media.chunkio import read_frames
from stages.media.deinterlace import (
    decoded_timestamps,
    decoded_view,
    deinterlace_key,
    field_pts,
    resolve_deinterlace,
    source_view,
)
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import frame_timestamps, probe_video
from stages.ops.contract import ChunkTask
from stages.ops.frames import FramesOp
from stages.store.chunk_store import content_key
from stages.store.versions import stage_version


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory) -> Path:
    """1 s of 25 interlaced frames/s, top field first, 96x64: a white bar moving 3 px per field over grey (each
    frame woven from two fields 1/50 s apart, so it combs along the bar's edges), with 1 s of audio."""
    path = tmp_path_factory.mktemp("interlaced") / "tff.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=96x64:r=50:d=1",
                "-f", "lavfi", "-i", "color=c=white:s=10x64:r=50:d=1", "-f", "lavfi", "-i", "sine=duration=1",
                "-filter_complex",
                "[0:v][1:v]overlay=x='mod(n*3,86)':y=0,tinterlace=mode=interleave_top,setfield=tff[v]",
                "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
                "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-c:a", "aac", "-shortest", str(path)],
               what="test: interlaced clip")
    return path


def combing(frames) -> float:
    """Mean absolute difference between each line and the mean of its two neighbours (luma 0-255), over
    ``frames`` (RGB arrays): high on woven frames with motion, near 0 on progressive flat content."""
    scores = []
    for frame in frames:
        luma = frame.astype(np.float32).mean(axis=2)
        scores.append(float(np.abs(luma[1:-1] - 0.5 * (luma[:-2] + luma[2:])).mean()))
    return float(np.mean(scores))


def _decoded(path: Path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def test_the_probe_detects_interlacing(interlaced, tiny_clip):
    info = probe_video(interlaced)
    assert info.interlaced and info.deinterlace == "off"
    assert (info.frame_count, info.avg_fps) == (25, 25.0)
    assert resolve_deinterlace("auto", info) == "frame"
    assert resolve_deinterlace("auto", probe_video(tiny_clip)) == "off"
    assert resolve_deinterlace("field", probe_video(tiny_clip)) == "field"
    with pytest.raises(SettingsError, match="auto, off, frame, field"):
        resolve_deinterlace("yadif", info)


def test_views_and_field_timestamps(interlaced):
    info = probe_video(interlaced)
    field = decoded_view(info, "field")
    assert (field.frame_count, field.avg_fps, field.real_fps) == (50, 50.0, 50.0)
    assert field.time_base == info.time_base / 2 and field.end_pts == 2 * info.end_pts
    assert field.duration == info.duration
    assert source_view(field) == info and source_view(decoded_view(info, "frame")) == info
    assert decoded_view(info, "off") is info and decoded_view(field, "frame") is field
    assert field_pts(np.array([0, 10, 20]), 30).tolist() == [0, 10, 20, 30, 40, 50]
    assert field_pts(np.array([0, 10, 30]), 32).tolist() == [0, 10, 20, 40, 60, 62]  # VFR: half of each duration
    stamps = decoded_timestamps(frame_timestamps(interlaced, info), field)
    assert len(stamps) == 50 and np.all(np.diff(stamps) > 0) and stamps[-1] < field.end_pts


@pytest.mark.parametrize(("mode", "frames"), [("off", 25), ("frame", 25), ("field", 50)])
def test_extract_deinterlaces(mode, frames, interlaced, tmp_path):
    info = probe_video(interlaced)
    view = decoded_view(info, mode)
    [spec], _ = decoded_plan([ChunkSpec(0, 0, info.frame_count, info.start_pts, None)], [], view)
    chunk = tmp_path / "c.nut"
    extracted = extract_chunk(interlaced, view, spec, chunk)
    assert extracted.frame_count == frames
    expected = decoded_timestamps(frame_timestamps(interlaced, info), view)
    assert list(extracted.pts) == expected.tolist()
    raw = combing(_decoded(interlaced))
    measured = combing(read_frames(chunk))
    if mode == "off":
        assert measured == pytest.approx(raw, rel=0.05)
    else:
        assert measured < 0.5 * raw, (mode, measured, raw)


def test_field_rate_chunks_join_exactly(interlaced, tmp_path):
    """Two field-rate chunks give the same frames' pts as one: each chunk starts on a whole source frame and the
    second field of a chunk's last frame ends where the next chunk starts."""
    info = probe_video(interlaced)
    view = decoded_view(info, "field")
    stamps = frame_timestamps(interlaced, info)
    specs, cuts = decoded_plan(plan_chunks(stamps, info.time_base, 0.5), [12], view)
    assert len(specs) == 2 and cuts == [24] and all(s.start_frame % 2 == 0 for s in specs)
    assert source_spec(specs[1], view).start_frame * 2 == specs[1].start_frame
    pts: list[int] = []
    for spec in specs:
        extracted = extract_chunk(interlaced, view, spec, tmp_path / f"{spec.index}.nut")
        assert extracted.frame_count == spec.frame_count
        pts += extracted.pts
    assert pts == decoded_timestamps(stamps, view).tolist()


def test_the_deinterlace_mode_is_in_the_chunk_keys(interlaced):
    info = probe_video(interlaced)
    spec = ChunkSpec(0, 0, info.frame_count, info.start_pts, None)
    keys = {}
    for mode in ("off", "frame", "field"):
        view = decoded_view(info, mode)
        [planned], _ = decoded_plan([spec], [], view)
        keys[mode] = FramesOp(str(interlaced), "a" * 64, view).chunk_key(ChunkTask(0, (planned,)))
    assert len(set(keys.values())) == 3
    # auto on an interlaced source keeps the key decoded chunks always had (the cache stays valid)
    legacy = content_key("frames", {"source": "a" * 64, "spec": asdict(spec), "bit_depth": info.bit_depth,
                                    "version": stage_version("frames"), "deinterlace": "bwdif"})
    assert keys["frame"] == legacy
    assert keys["off"] == content_key("frames", {"source": "a" * 64, "spec": asdict(spec), "bit_depth": info.bit_depth,
                                                 "version": stage_version("frames")})
    unflagged = replace(info, interlaced=False)  # forced on a source whose flags say progressive: every frame
    assert deinterlace_key(decoded_view(unflagged, "frame")) == {"deinterlace": "bwdif:all"}


def _audio_span(path: Path) -> tuple[float, float]:
    """(first, end) seconds of the first audio stream's packets."""
    with av.open(str(path)) as container:
        times = [(float(p.pts * p.time_base), float((p.pts + (p.duration or 0)) * p.time_base))
                 for p in container.demux(audio=0) if p.size and p.pts is not None]
    return min(t[0] for t in times), max(t[1] for t in times)


def _enhance(clip: Path, out: Path, workspace: Path, *extra: str) -> int:
    return main(["enhance", str(clip), "-o", str(out), "--scale", "1", "--preset", "ultrafast", "--no-vmaf",
                 "--workspace", str(workspace), "-q", *extra])


def _report(workspace: Path) -> dict:
    [latest] = list((workspace / "reports").glob("*/latest.json"))
    return json.loads(latest.read_text(encoding="utf-8"))


def test_enhance_deinterlaces_by_default(interlaced, tmp_path, caplog):
    out = tmp_path / "frame.mp4"
    with caplog.at_level(logging.WARNING):
        assert _enhance(interlaced, out, tmp_path / "ws") == 0
    assert "deinterlaced with bwdif, one frame per frame" in caplog.text
    source, result = probe_video(interlaced), probe_video(out)
    assert (result.frame_count, result.avg_fps) == (source.frame_count, source.avg_fps)
    assert not result.interlaced
    assert combing(_decoded(out)) < 0.5 * combing(_decoded(interlaced))
    report = _report(tmp_path / "ws")
    assert report["deinterlace"]["mode"] == "frame" and "bwdif" in report["deinterlace"]["note"]
    assert report["input"]["interlaced"] is True


def test_enhance_at_field_rate(interlaced, tmp_path):
    out = tmp_path / "field.mkv"
    assert _enhance(interlaced, out, tmp_path / "ws", "--deinterlace", "field") == 0
    source, result = probe_video(interlaced), probe_video(out)
    assert result.frame_count == 2 * source.frame_count
    assert result.avg_fps == pytest.approx(2 * source.avg_fps) and not result.is_vfr
    assert abs(result.duration - source.duration) <= 1 / result.avg_fps
    assert len(result.audio_streams) == 1
    assert _audio_span(out) == pytest.approx(_audio_span(interlaced), abs=0.05)  # audio keeps its clock
    assert combing(_decoded(out)) < 0.5 * combing(_decoded(interlaced))
    report = _report(tmp_path / "ws")
    assert report["deinterlace"]["mode"] == "field" and "one frame per field" in report["deinterlace"]["note"]
    assert report["output"]["frames"] == 50
