"""Chunk planning (pure), scene detection and frame-exact chunk extraction."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import numpy as np
import pytest

from stages.errors import ChunkError, InputError, SettingsError
from stages.media.chunking import (
    ChunkSpec,
    ExtractedChunk,
    color_conversion,
    detect_scene_cuts,
    extract_chunk,
    frame_to_rgb,
    plan_chunks,
)
from stages.media.chunkio import count_frames, read_frames
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import frame_timestamps, probe_video
from stages.quality.samples import make_sample_clip

TB = Fraction(1, 1000)


def _check_partition(plan: list[ChunkSpec], stamps) -> None:
    stamps = list(stamps)
    assert plan[0].start_frame == 0 and plan[-1].end_frame == len(stamps)
    for i, spec in enumerate(plan):
        assert spec.index == i
        assert spec.frame_count >= 1
        assert spec.start_pts == stamps[spec.start_frame]
        if i + 1 < len(plan):
            assert plan[i + 1].start_frame == spec.end_frame
            assert spec.end_pts == stamps[spec.end_frame]
        else:
            assert spec.end_pts is None
    assert sum(s.frame_count for s in plan) == len(stamps)


# ---- plan_chunks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 23, 25, 97, 241])
def test_every_frame_in_exactly_one_chunk(count):
    stamps = np.arange(count) * 40  # 25 fps in ms
    plan = plan_chunks(stamps, TB, 1.0)
    _check_partition(plan, stamps)


def test_boundaries_every_chunk_seconds():
    stamps = np.arange(250) * 40  # 10 s at 25 fps
    plan = plan_chunks(stamps, TB, 2.0)
    assert [s.start_frame for s in plan] == [0, 50, 100, 150, 200]
    assert [s.frame_count for s in plan] == [50] * 5


def test_odd_frame_count_and_fractional_rate():
    stamps = np.arange(61) * 1001  # 29.97 fps, time base 1/30000
    plan = plan_chunks(stamps, Fraction(1, 30000), 0.5)
    _check_partition(plan, stamps)
    assert [s.frame_count for s in plan[:-1]] == [15] * (len(plan) - 1)
    assert plan[-1].frame_count in range(1, 20)


def test_short_tail_joins_the_last_chunk():
    stamps = np.arange(53) * 40  # 2.12 s: a 0.12 s tail after two 1 s chunks
    plan = plan_chunks(stamps, TB, 1.0)
    assert [s.frame_count for s in plan] == [25, 28]


def test_one_frame_chunks():
    stamps = np.arange(7) * 40
    plan = plan_chunks(stamps, TB, 0.001)
    assert [s.frame_count for s in plan] == [1] * 7
    _check_partition(plan, stamps)


def test_one_frame_video():
    plan = plan_chunks([1234], TB, 5.0)
    assert plan == [ChunkSpec(index=0, start_frame=0, end_frame=1, start_pts=1234, end_pts=None)]


def test_whole_video_shorter_than_a_chunk():
    plan = plan_chunks(np.arange(10) * 40 + 500, TB, 60.0)
    assert len(plan) == 1 and plan[0].frame_count == 10 and plan[0].start_pts == 500


def test_scene_cut_inside_the_snap_window_moves_the_boundary():
    stamps = np.arange(250) * 40
    plan = plan_chunks(stamps, TB, 2.0, scene_cuts=[45, 140, 230])
    # 45 and 140 lie within 0.5 s of the 2 s targets (50, 145); 230 is 0.4 s before the end: its own chunk.
    assert [s.start_frame for s in plan] == [0, 45, 95, 140, 190, 230]
    _check_partition(plan, stamps)


def test_scene_cut_outside_the_snap_window_is_ignored():
    stamps = np.arange(250) * 40
    plan = plan_chunks(stamps, TB, 2.0, scene_cuts=[30], snap_seconds=0.2)
    assert [s.start_frame for s in plan] == [0, 50, 100, 150, 200]
    assert plan_chunks(stamps, TB, 2.0, scene_cuts=[45], snap_seconds=0)[1].start_frame == 50


def test_nearest_scene_cut_wins_and_invalid_cuts_are_ignored():
    stamps = np.arange(100) * 40
    plan = plan_chunks(stamps, TB, 2.0, scene_cuts=[0, 44, 52, 500, -3])
    assert plan[1].start_frame == 52


def test_vfr_boundaries_follow_real_time():
    # 1 s of 10 fps frames, then 1 s of 50 fps frames, then 1 s of 10 fps.
    seconds = np.concatenate([np.arange(10) * 0.1, 1 + np.arange(50) * 0.02, 2 + np.arange(10) * 0.1])
    stamps = np.round(seconds * 90000).astype(np.int64)
    plan = plan_chunks(stamps, Fraction(1, 90000), 1.0)
    _check_partition(plan, stamps)
    assert [s.frame_count for s in plan] == [10, 50, 10]


def test_randomised_plans_are_partitions():
    rng = np.random.default_rng(7)
    for _ in range(200):
        count = int(rng.integers(1, 400))
        stamps = np.cumsum(rng.integers(1, 90, size=count))
        cuts = rng.integers(-5, count + 5, size=int(rng.integers(0, 8)))
        plan = plan_chunks(stamps, TB, float(rng.uniform(0.01, 5)), scene_cuts=cuts.tolist(),
                           snap_seconds=float(rng.uniform(0, 2)))
        _check_partition(plan, stamps)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_bad_chunk_seconds(seconds):
    with pytest.raises(SettingsError, match="chunk_seconds"):
        plan_chunks([0, 40], TB, seconds)


def test_bad_timestamps():
    with pytest.raises(InputError):
        plan_chunks([], TB, 1.0)
    with pytest.raises(InputError, match="increasing"):
        plan_chunks([0, 40, 40, 80], TB, 1.0)
    with pytest.raises(SettingsError):
        plan_chunks([0, 40], TB, 1.0, snap_seconds=-1)


# ---- colour conversion ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_info(tmp_path_factory):
    path = make_sample_clip(tmp_path_factory.mktemp("info") / "i.mp4", width=32, height=32, seconds=0.1,
                            audio=False)
    return probe_video(path)


def test_colour_conversion_rules(base_info):
    untagged = dataclasses.replace(base_info, color_primaries=None, color_transfer=None, color_matrix=None,
                                   color_range=None)
    small = color_conversion(dataclasses.replace(untagged, height=576))
    assert (small.matrix, small.range, small.primaries, small.transfer) == ("smpte170m", "tv", "smpte170m",
                                                                           "smpte170m")
    hd = color_conversion(dataclasses.replace(untagged, height=720))
    assert (hd.matrix, hd.range, hd.primaries, hd.transfer) == ("bt709", "tv", "bt709", "bt709")
    tagged = color_conversion(dataclasses.replace(base_info, height=480, color_range="pc"))
    assert (tagged.matrix, tagged.range) == ("bt709", "pc")
    assert color_conversion(dataclasses.replace(untagged, pix_fmt="yuvj420p")).range == "pc"


@pytest.mark.parametrize(
    ("matrix", "kr", "kb", "color_range"),
    [("bt709", 0.2126, 0.0722, "tv"), ("smpte170m", 0.299, 0.114, "tv"), ("bt709", 0.2126, 0.0722, "pc"),
     ("bt2020nc", 0.2627, 0.0593, "tv")],
)
def test_frame_to_rgb_uses_the_matrix_and_range(base_info, matrix, kr, kb, color_range):
    y, u, v = 126, 100, 180
    frame = av.VideoFrame(16, 16, "yuv420p")
    for plane, value in zip(frame.planes, (y, u, v), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    info = dataclasses.replace(base_info, color_matrix=matrix, color_range=color_range)
    rgb = frame_to_rgb(frame, color_conversion(info), 8)
    full = color_range == "pc"
    luma = y / 255 if full else (y - 16) / 219
    cb, cr = ((u - 128) / 255, (v - 128) / 255) if full else ((u - 128) / 224, (v - 128) / 224)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    expected = np.clip(np.round(np.array([r, g, b]) * 255), 0, 255)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    assert np.abs(rgb[8, 8].astype(int) - expected).max() <= 1


# ---- scene detection --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_clip(tmp_path_factory):
    path = make_sample_clip(tmp_path_factory.mktemp("scene") / "cut.mp4", width=96, height=64, seconds=2.0,
                            scene_cut_at=1.0, audio=False)
    return path, probe_video(path)


def test_detects_the_scene_cut(scene_clip):
    path, info = scene_clip
    calls = []
    cuts = detect_scene_cuts(path, info, progress=lambda done, total: calls.append((done, total)))
    assert cuts == [24]
    assert calls[-1] == (info.frame_count, info.frame_count)


def test_camera_motion_is_not_a_cut(tmp_path):
    path = make_sample_clip(tmp_path / "pan.mp4", width=96, height=64, seconds=2.0, audio=False, image="coffee")
    assert detect_scene_cuts(path, probe_video(path)) == []


def test_scene_cuts_snap_the_plan(scene_clip):
    path, info = scene_clip
    stamps = frame_timestamps(path, info)
    plan = plan_chunks(stamps, info.time_base, 0.9, detect_scene_cuts(path, info))
    # The first boundary (0.9 s) snaps to the cut at 1.0 s; the 0.08 s left after 1.9 s joins the last chunk.
    assert [s.start_frame for s in plan] == [0, 24]


def test_bad_scene_settings(scene_clip):
    path, info = scene_clip
    with pytest.raises(SettingsError):
        detect_scene_cuts(path, info, threshold=0)
    with pytest.raises(SettingsError):
        detect_scene_cuts(path, info, analysis_width=2)


# ---- extract_chunk ----------------------------------------------------------------------------------------------


def _straight_decode(path, info):
    conversion = color_conversion(info)
    with av.open(str(path)) as container:
        return [(frame.pts, frame_to_rgb(frame, conversion, info.bit_depth))
                for frame in container.decode(container.streams[info.stream_index])]


def _extract_all(path, info, chunk_seconds, out_dir):
    stamps = frame_timestamps(path, info)
    plan = plan_chunks(stamps, info.time_base, chunk_seconds)
    frames, pts = [], []
    for spec in plan:
        out = out_dir / f"chunk{spec.index:03d}.mkv"
        extracted = extract_chunk(path, info, spec, out)
        assert extracted.frame_count == spec.frame_count == count_frames(out)
        assert (extracted.width, extracted.height) == (info.width, info.height)
        frames += list(read_frames(out))
        pts += list(extracted.pts)
    assert sorted(p.name for p in out_dir.iterdir()) == [f"chunk{i:03d}.mkv" for i in range(len(plan))]
    return plan, frames, pts, stamps


@pytest.mark.parametrize(
    ("name", "kwargs", "chunk_seconds"),
    [
        ("cfr.mp4", {"width": 64, "height": 48, "seconds": 3.0}, 0.7),
        ("vfr_odd.mkv", {"width": 33, "height": 17, "seconds": 2.0, "vfr": True}, 0.3),
        ("one_frame_chunks.mov", {"width": 32, "height": 32, "seconds": 0.5, "fps": 29.97, "color_tags": False},
         0.001),
    ],
)
def test_chunks_concatenate_to_a_straight_decode(tmp_path, name, kwargs, chunk_seconds):
    path = make_sample_clip(tmp_path / name, audio=False, **kwargs)
    info = probe_video(path)
    out_dir = tmp_path / "chunks"
    out_dir.mkdir()
    plan, frames, pts, stamps = _extract_all(path, info, chunk_seconds, out_dir)
    reference = _straight_decode(path, info)
    assert len(plan) > 1
    assert len(frames) == len(reference) == info.frame_count
    assert pts == [p for p, _ in reference] == stamps.tolist()
    for got, (_, expected) in zip(frames, reference, strict=True):
        assert got.dtype == np.uint8
        assert np.array_equal(got, expected)


def test_mpegts_source_where_seeking_lands_late(tmp_path):
    clip = make_sample_clip(tmp_path / "c.mp4", width=64, height=48, seconds=2.0, audio=False)
    ts = tmp_path / "c.ts"
    run_ffmpeg(["-i", str(clip), "-c", "copy", "-f", "mpegts", str(ts)])
    info = probe_video(ts)
    assert info.start_pts > 0
    out_dir = tmp_path / "chunks"
    out_dir.mkdir()
    _, frames, pts, stamps = _extract_all(ts, info, 0.5, out_dir)
    reference = _straight_decode(ts, info)
    assert pts == stamps.tolist() == [p for p, _ in reference]
    assert all(np.array_equal(a, b) for a, (_, b) in zip(frames, reference, strict=True))


def test_ten_bit_source_gives_sixteen_bit_chunks(tmp_path):
    path = make_sample_clip(tmp_path / "ten.mkv", width=64, height=48, seconds=1.0, bit_depth=10, codec="h265",
                            audio=False)
    info = probe_video(path)
    out_dir = tmp_path / "chunks"
    out_dir.mkdir()
    plan, frames, _, _ = _extract_all(path, info, 0.4, out_dir)
    spec = plan[1]
    extracted = extract_chunk(path, info, spec, tmp_path / "again.mkv")
    assert extracted == ExtractedChunk(frame_count=spec.frame_count, pts=extracted.pts, width=64, height=48,
                                       bit_depth=16)
    reference = _straight_decode(path, info)
    assert all(f.dtype == np.uint16 and f.shape == (48, 64, 3) for f in frames)
    assert all(np.array_equal(a, b) for a, (_, b) in zip(frames, reference, strict=True))
    # Real 10-bit content: more than 256 distinct levels in a channel.
    assert len(np.unique(frames[0][..., 1])) > 256


def test_progress_and_rotation_stays_metadata(tmp_path):
    path = make_sample_clip(tmp_path / "r.mp4", width=64, height=32, seconds=0.5, rotation=90, audio=False)
    info = probe_video(path)
    spec = plan_chunks(frame_timestamps(path, info), info.time_base, 10.0)[0]
    calls = []
    extracted = extract_chunk(path, info, spec, tmp_path / "c.mkv", progress=lambda d, t: calls.append((d, t)))
    assert (extracted.width, extracted.height) == (64, 32)
    assert next(read_frames(tmp_path / "c.mkv")).shape == (32, 64, 3)
    assert calls == [(i, spec.frame_count) for i in range(1, spec.frame_count + 1)]


def test_chunk_past_the_end_fails_cleanly(tmp_path):
    path = make_sample_clip(tmp_path / "c.mp4", width=32, height=32, seconds=0.5, audio=False)
    info = probe_video(path)
    spec = ChunkSpec(index=5, start_frame=info.frame_count, end_frame=info.frame_count + 3,
                     start_pts=info.end_pts + 10_000, end_pts=None)
    out = tmp_path / "out" / "c.mkv"
    with pytest.raises(ChunkError, match="decoded to no frame"):
        extract_chunk(path, info, spec, out)
    assert list(out.parent.iterdir()) == []


def test_missing_source(tmp_path, base_info):
    spec = ChunkSpec(0, 0, 1, 0, None)
    with pytest.raises(InputError):
        extract_chunk(tmp_path / "gone.mp4", base_info, spec, tmp_path / "c.mkv")
    assert list(tmp_path.iterdir()) == []
