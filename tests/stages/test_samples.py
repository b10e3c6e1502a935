"""Sample clips: real photo content, every option the pipeline's tests rely on."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stages.errors import SettingsError
from stages.media.probe import frame_timestamps, probe_video
from stages.quality.samples import make_sample_clip


def _frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_default_clip_is_a_moving_photo_with_audio(tmp_path):
    path = make_sample_clip(tmp_path / "demo.mp4")
    assert path == tmp_path / "demo.mp4"
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (320, 180, 48)
    assert info.avg_fps == pytest.approx(24.0) and info.real_fps == pytest.approx(24.0)
    assert info.duration == pytest.approx(2.0)
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)
    assert (info.color_primaries, info.color_transfer, info.color_matrix, info.color_range) == (
        "bt709", "bt709", "bt709", "tv")
    assert len(info.audio_streams) == 1 and info.audio_streams[0].codec == "aac"
    assert info.subtitle_streams == ()
    frames = _frames(path)
    # A textured photo, not a flat test card.
    assert frames[0].std() > 30
    # The camera moves: consecutive frames are close, the first and last are clearly different.
    step = np.abs(frames[1].astype(int) - frames[0].astype(int)).mean()
    span = np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean()
    assert 0 < step < span
    assert span > 5
    assert [p.name for p in tmp_path.iterdir()] == ["demo.mp4"]


@pytest.mark.parametrize(("width", "height", "pix_fmt"), [(33, 17, "yuv444p"), (64, 48, "yuv420p"), (7, 9, "yuv444p")])
def test_any_size(tmp_path, width, height, pix_fmt):
    info = probe_video(make_sample_clip(tmp_path / "c.mp4", width=width, height=height, seconds=0.5, audio=False))
    assert (info.width, info.height, info.pix_fmt) == (width, height, pix_fmt)
    assert info.audio_streams == ()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_ten_bit(tmp_path, codec):
    info = probe_video(make_sample_clip(tmp_path / "t.mkv", width=64, height=48, seconds=0.5, bit_depth=10,
                                        codec=codec, audio=False))
    assert info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    assert info.codec == {"h264": "h264", "h265": "hevc"}[codec]


@pytest.mark.parametrize(
    ("fps", "expected"), [(25, 25.0), (29.97, 30000 / 1001), (Fraction(24000, 1001), 24000 / 1001)]
)
def test_frame_rates(tmp_path, fps, expected):
    info = probe_video(make_sample_clip(tmp_path / "r.mp4", width=32, height=32, seconds=1.0, fps=fps, audio=False))
    assert info.real_fps == pytest.approx(expected, rel=1e-6)
    assert not info.is_vfr


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_vfr_has_irregular_timestamps(tmp_path, suffix):
    path = make_sample_clip(tmp_path / f"v{suffix}", width=32, height=32, seconds=1.5, vfr=True, audio=False)
    info = probe_video(path)
    assert info.is_vfr
    intervals = np.diff(frame_timestamps(path, info)) * float(info.time_base)
    assert intervals.min() < 0.03 and intervals.max() > 0.1


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "mov_text"), (".mov", "mov_text"), (".mkv", "subrip")])
def test_subtitles(tmp_path, suffix, codec):
    info = probe_video(make_sample_clip(tmp_path / f"s{suffix}", width=32, height=32, seconds=1.0, subtitles=True))
    assert [(s.codec, s.language) for s in info.subtitle_streams] == [(codec, "eng")]
    assert len(info.audio_streams) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{suffix}"]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata(tmp_path, rotation):
    info = probe_video(make_sample_clip(tmp_path / "r.mov", width=32, height=32, seconds=0.3, rotation=rotation,
                                        audio=False))
    assert info.rotation == rotation
    assert (info.width, info.height) == (32, 32)


def test_scene_cut_switches_photo(tmp_path):
    path = make_sample_clip(tmp_path / "cut.mp4", width=64, height=48, seconds=1.0, scene_cut_at=0.5, audio=False)
    frames = _frames(path)
    jumps = [np.abs(b.astype(int) - a.astype(int)).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert int(np.argmax(jumps)) + 1 == 12
    assert max(jumps) > 5 * np.median(jumps)


def test_untagged_clip(tmp_path):
    info = probe_video(make_sample_clip(tmp_path / "u.mp4", width=32, height=32, seconds=0.3, color_tags=False,
                                        audio=False))
    assert (info.color_primaries, info.color_transfer, info.color_matrix) == (None, None, None)


def test_other_photo(tmp_path):
    a = _frames(make_sample_clip(tmp_path / "a.mp4", width=32, height=32, seconds=0.2, audio=False))
    b = _frames(make_sample_clip(tmp_path / "b.mp4", width=32, height=32, seconds=0.2, audio=False, image="coffee"))
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() > 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codec": "vp9"},
        {"bit_depth": 12},
        {"rotation": 45},
        {"seconds": 0},
        {"fps": 0},
        {"width": 1},
        {"image": "no_such_photo"},
        {"codec": "h265", "width": 64, "height": 16},
    ],
)
def test_bad_options(tmp_path, kwargs):
    with pytest.raises(SettingsError):
        make_sample_clip(tmp_path / "x.mp4", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix(tmp_path):
    with pytest.raises(SettingsError, match=r"\.avi"):
        make_sample_clip(tmp_path / "x.avi")
