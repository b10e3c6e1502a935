"""encode_video end to end (chunks -> final file), its settings, and the ffmpeg helpers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stages.errors import ChunkError, EncodeError, SettingsError
from stages.media.chunking import (
    color_conversion,
    extract_chunk,
    frame_to_rgb,
    plan_chunks,
)
from stages.media.chunkio import ChunkWriter, read_frames
from stages.media.encode import EncodeInput, EncodeResult, EncodeSettings, encode_video
from stages.media.ffmpeg import find_ffmpeg, run_ffmpeg
from stages.media.probe import frame_timestamps, probe_video
from stages.quality.samples import make_sample_clip

FAST = EncodeSettings(preset="ultrafast")


def _extract(path: Path, out_dir: Path, chunk_seconds: float = 0.5):
    info = probe_video(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for spec in plan_chunks(frame_timestamps(path, info), info.time_base, chunk_seconds):
        chunk = out_dir / f"{spec.index:03d}.mkv"
        extracted = extract_chunk(path, info, spec, chunk)
        inputs.append(EncodeInput(str(chunk), extracted.pts))
    return info, inputs


def _seconds(path: Path) -> np.ndarray:
    info = probe_video(path)
    return (frame_timestamps(path, info) - info.start_pts) * float(info.time_base)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """A 2 s clip with audio, subtitles, rotation and colour tags, and its chunks."""
    root = tmp_path_factory.mktemp("rich")
    path = make_sample_clip(root / "rich.mp4", width=64, height=48, seconds=2.0, subtitles=True, rotation=90)
    info, inputs = _extract(path, root / "chunks")
    return path, info, inputs


@pytest.mark.parametrize(("suffix", "subtitle_codec"), [(".mp4", "mov_text"), (".mkv", "subrip"), (".mov", "mov_text")])
def test_everything_is_kept(rich, tmp_path, suffix, subtitle_codec):
    path, info, inputs = rich
    calls = []
    result = encode_video(inputs, info, tmp_path / f"out{suffix}", FAST, progress=lambda d, t: calls.append((d, t)))
    out = probe_video(result.path)
    assert result == EncodeResult(path=str(tmp_path / f"out{suffix}"), frame_count=info.frame_count, width=64,
                                  height=48, duration=out.duration, codec="h264", pix_fmt="yuv420p", audio_streams=1,
                                  subtitle_streams=1)
    assert out.frame_count == info.frame_count
    assert abs(out.duration - info.duration) <= 1 / info.avg_fps
    assert [(a.codec, a.language) for a in out.audio_streams] == [("aac", "eng")]
    assert [(s.codec, s.language) for s in out.subtitle_streams] == [(subtitle_codec, "eng")]
    assert (out.color_primaries, out.color_transfer, out.color_matrix, out.color_range) == (
        "bt709", "bt709", "bt709", "tv")
    assert out.rotation == 90
    with av.open(result.path) as container:
        assert container.metadata.get("title") == "Video Upscaler Pro sample (astronaut)"
    assert np.allclose(_seconds(Path(result.path)), _seconds(path), atol=0.5 / info.avg_fps)
    assert calls[-1] == (info.frame_count, info.frame_count)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]


def test_pixels_survive_the_round_trip(rich, tmp_path):
    path, info, inputs = rich
    result = encode_video(inputs, info, tmp_path / "out.mp4", EncodeSettings(crf=10, preset="ultrafast"))
    out = probe_video(result.path)
    conversion = color_conversion(out)
    with av.open(result.path) as container:
        decoded = [frame_to_rgb(f, conversion, 8) for f in container.decode(container.streams.video[0])]
    originals = [frame for chunk in inputs for frame in read_frames(chunk.path)]
    assert len(decoded) == len(originals)
    error = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(decoded, originals, strict=True)])
    assert error < 2.5  # a wrong matrix or range would be off by far more


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_vfr_timestamps_are_kept(tmp_path, suffix):
    path = make_sample_clip(tmp_path / f"vfr{suffix}", width=64, height=48, seconds=2.0, vfr=True)
    info, inputs = _extract(path, tmp_path / "chunks", 0.4)
    assert info.is_vfr
    result = encode_video(inputs, info, tmp_path / f"out{suffix}", FAST)
    out = probe_video(result.path)
    assert out.is_vfr and out.frame_count == info.frame_count
    source_seconds, out_seconds = _seconds(path), _seconds(Path(result.path))
    assert np.abs(out_seconds - source_seconds).max() <= 0.5 / info.avg_fps
    assert abs(out.duration - info.duration) <= 1 / info.avg_fps


def test_h265_ten_bit_and_untagged_source(tmp_path):
    path = make_sample_clip(tmp_path / "ten.mp4", width=64, height=48, seconds=1.0, bit_depth=10, color_tags=False,
                            audio=False)
    info, inputs = _extract(path, tmp_path / "chunks")
    result = encode_video(inputs, info, tmp_path / "out.mkv", EncodeSettings(codec="h265", preset="ultrafast"))
    assert (result.codec, result.pix_fmt, result.frame_count, result.audio_streams) == (
        "hevc", "yuv420p10le", info.frame_count, 0)
    out = probe_video(result.path)
    # Untagged SD source: converted with BT.601, and the output says so.
    assert (out.color_primaries, out.color_transfer, out.color_matrix, out.color_range) == (
        "smpte170m", "smpte170m", "smpte170m", "tv")


def test_upscaled_chunks_and_h265_in_mp4(rich, tmp_path):
    path, info, inputs = rich
    bigger = []
    for i, chunk in enumerate(inputs):
        target = tmp_path / f"up{i}.mkv"
        with ChunkWriter(target, 128, 96) as writer:
            for frame in read_frames(chunk.path):
                writer.write(cv2.resize(frame, (128, 96), interpolation=cv2.INTER_CUBIC))
        bigger.append(EncodeInput(str(target), chunk.pts))
    result = encode_video(bigger, info, tmp_path / "out" / "big.mp4", EncodeSettings(codec="h265", preset="ultrafast"))
    assert (result.width, result.height, result.codec, result.frame_count) == (128, 96, "hevc", info.frame_count)
    with av.open(result.path) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1"


def test_odd_size_output(tmp_path):
    path = make_sample_clip(tmp_path / "odd.mp4", width=33, height=17, seconds=0.5, audio=False)
    info, inputs = _extract(path, tmp_path / "chunks")
    result = encode_video(inputs, info, tmp_path / "auto.mp4", FAST)
    assert (result.width, result.height, result.pix_fmt) == (33, 17, "yuv444p")
    with pytest.raises(SettingsError, match="even"):
        encode_video(inputs, info, tmp_path / "forced.mp4", EncodeSettings(preset="ultrafast", pix_fmt="yuv420p"))
    assert not (tmp_path / "forced.mp4").exists()


@pytest.mark.parametrize(
    "settings",
    [
        EncodeSettings(codec="vp9"),
        EncodeSettings(crf=-1),
        EncodeSettings(crf=52),
        EncodeSettings(crf="18"),  # type: ignore[arg-type]
        EncodeSettings(preset="warp"),
        EncodeSettings(pix_fmt="rgb24"),
        EncodeSettings(codec="h264", pix_fmt="yuv420p12le"),
    ],
)
def test_bad_settings(rich, tmp_path, settings):
    with pytest.raises(SettingsError):
        settings.validate()
    path, info, inputs = rich
    with pytest.raises(SettingsError):
        encode_video(inputs, info, tmp_path / "out.mp4", settings)
    assert list(tmp_path.iterdir()) == []


def test_good_settings_validate():
    for settings in (EncodeSettings(), EncodeSettings(codec="h265", crf=0, preset="veryslow", pix_fmt="yuv444p12le"),
                     EncodeSettings(crf=51, pix_fmt="yuv420p10le")):
        settings.validate()


def test_unknown_suffix(rich, tmp_path):
    path, info, inputs = rich
    with pytest.raises(SettingsError, match="suffix"):
        encode_video(inputs, info, tmp_path / "out.avi", FAST)


def _failing_ffmpeg(tmp_path: Path) -> str:
    script = tmp_path / "bin" / "ffmpeg"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho 'mux: simulated failure' >&2\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_failed_mux_leaves_nothing(rich, tmp_path):
    path, info, inputs = rich
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(EncodeError, match="simulated failure"):
        encode_video(inputs, info, out_dir / "video.mp4", FAST, ffmpeg=_failing_ffmpeg(tmp_path))
    assert list(out_dir.iterdir()) == []


def test_stale_chunk_manifest_leaves_nothing(rich, tmp_path):
    path, info, inputs = rich
    broken = [*inputs[:-1], EncodeInput(inputs[-1].path, inputs[-1].pts[:-1])]
    with pytest.raises(ChunkError, match="stale"):
        encode_video(broken, info, tmp_path / "video.mp4", FAST)
    assert list(tmp_path.iterdir()) == []


def test_chunk_problems(rich, tmp_path):
    path, info, inputs = rich
    with pytest.raises(ChunkError):
        encode_video([], info, tmp_path / "a.mp4", FAST)
    with pytest.raises(ChunkError, match="does not exist"):
        encode_video([EncodeInput(str(tmp_path / "gone.mkv"), (0,))], info, tmp_path / "a.mp4", FAST)
    with pytest.raises(ChunkError, match="increasing"):
        encode_video(list(reversed(inputs)), info, tmp_path / "a.mp4", FAST)
    assert list(tmp_path.iterdir()) == []


# ---- ffmpeg helpers ---------------------------------------------------------------------------------------------


def test_find_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.delenv("VUP_FFMPEG", raising=False)
    bundled = find_ffmpeg()
    assert os.access(bundled, os.X_OK)
    monkeypatch.setenv("VUP_FFMPEG", bundled)
    assert find_ffmpeg() == bundled
    with pytest.raises(SettingsError, match="does not exist"):
        find_ffmpeg(str(tmp_path / "nope"))
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(SettingsError, match="not executable"):
        find_ffmpeg(str(plain))
    monkeypatch.setenv("VUP_FFMPEG", str(tmp_path / "nope"))
    with pytest.raises(SettingsError, match="VUP_FFMPEG"):
        find_ffmpeg()


def test_run_ffmpeg(tmp_path):
    done = run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=32x32:d=0.1", "-f", "null", "-"])
    assert done.returncode == 0
    with pytest.raises(EncodeError) as exc:
        run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), "-f", "null", "-"], what="test step")
    message = str(exc.value)
    assert message.startswith("test step: ffmpeg failed") and "missing.mp4" in message


def test_audio_the_container_cannot_hold_is_transcoded(rich, tmp_path):
    path, _, inputs = rich
    pcm = tmp_path / "pcm.mkv"
    run_ffmpeg(["-i", str(path), "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-c:a", "pcm_s16le", str(pcm)])
    info = probe_video(pcm)
    assert [a.codec for a in info.audio_streams] == ["pcm_s16le"]
    result = encode_video(inputs, info, tmp_path / "out.mp4", FAST)
    out = probe_video(result.path)
    assert [(a.codec, a.channels, a.sample_rate) for a in out.audio_streams] == [("aac", 2, 48000)]
    kept = encode_video(inputs, info, tmp_path / "out.mkv", FAST)
    assert [a.codec for a in probe_video(kept.path).audio_streams] == ["pcm_s16le"]


@pytest.mark.parametrize(
    ("codec", "fmt", "action"),
    [
        ("subrip", "matroska", "copy"),
        ("ass", "matroska", "copy"),
        ("mov_text", "matroska", "srt"),
        ("hdmv_pgs_subtitle", "matroska", "copy"),
        ("subrip", "mp4", "mov_text"),
        ("mov_text", "mov", "copy"),
        ("dvd_subtitle", "mp4", "copy"),
        ("hdmv_pgs_subtitle", "mp4", None),
        ("dvb_subtitle", "mov", None),
        ("eia_608", "mp4", None),
    ],
)
def test_subtitle_rules(codec, fmt, action):
    from stages.media.encode import _subtitle_action

    assert _subtitle_action(codec, fmt) == action


def test_h265_high_depth_narrow_frames_are_refused_before_libx265_runs():
    """libx265 at 10 bits aborts the whole process on frames narrower than 64 px: refuse instead."""
    from stages.media.encode import check_frame_size

    with pytest.raises(SettingsError, match="at 10 bits.*use codec h264"):
        check_frame_size("h265", 48, 48, 10)
    check_frame_size("h265", 48, 48, 8)
    check_frame_size("h265", 64, 32, 10)
    check_frame_size("h264", 48, 48, 10)
