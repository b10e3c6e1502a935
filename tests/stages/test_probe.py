"""probe_video / frame_timestamps on real clips, and every way a file can be unusable."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from stages.errors import InputError, ProbeError
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import (
    AudioStreamInfo,
    SubtitleStreamInfo,
    VideoInfo,
    frame_timestamps,
    probe_video,
)
from stages.quality.samples import make_sample_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    return {
        "cfr": make_sample_clip(root / "cfr.mp4", width=64, height=48, seconds=1.0, subtitles=True),
        "mkv": make_sample_clip(root / "subs.mkv", width=64, height=48, seconds=1.0, subtitles=True),
        "vfr_mp4": make_sample_clip(root / "vfr.mp4", width=32, height=32, seconds=1.5, vfr=True, audio=False),
        "vfr_mkv": make_sample_clip(root / "vfr.mkv", width=32, height=32, seconds=1.5, vfr=True, audio=False),
        "ten": make_sample_clip(root / "ten.mkv", width=64, height=48, seconds=0.5, bit_depth=10, codec="h265",
                                audio=False),
        "silent": make_sample_clip(root / "silent.mp4", width=64, height=48, seconds=1.0, audio=False),
        "silent_mkv": make_sample_clip(root / "silent.mkv", width=64, height=48, seconds=1.0, audio=False),
    }


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("probe: ")
    return message


def test_cfr_fields(clips):
    info = probe_video(clips["cfr"])
    assert info.path == str(clips["cfr"])
    assert info.size_bytes == clips["cfr"].stat().st_size
    assert "mp4" in info.container
    assert (info.stream_index, info.codec, info.width, info.height) == (0, "h264", 64, 48)
    assert info.frame_count == 24
    assert info.avg_fps == pytest.approx(24) and info.real_fps == pytest.approx(24)
    assert not info.is_vfr and not info.interlaced
    assert info.time_base == Fraction(info.time_base_num, info.time_base_den)
    assert info.start_pts == 0
    assert info.end_pts * info.time_base == Fraction(1)
    assert info.duration == pytest.approx(1.0)
    assert (info.pix_fmt, info.bit_depth, info.rotation) == ("yuv420p", 8, 0)
    assert (info.color_primaries, info.color_transfer, info.color_matrix, info.color_range) == (
        "bt709", "bt709", "bt709", "tv")
    stamps = frame_timestamps(clips["cfr"], info)
    assert stamps.dtype == np.int64 and len(stamps) == info.frame_count
    assert np.all(np.diff(stamps) == stamps[1] - stamps[0])
    assert stamps[0] == info.start_pts


def test_audio_and_subtitle_streams(clips):
    mp4 = probe_video(clips["cfr"])
    assert mp4.audio_streams == (AudioStreamInfo(index=1, codec="aac", channels=2, sample_rate=48000,
                                                 language="eng", title=None),)
    assert mp4.subtitle_streams == (SubtitleStreamInfo(index=2, codec="mov_text", language="eng", title=None),)
    mkv = probe_video(clips["mkv"])
    assert [s.codec for s in mkv.subtitle_streams] == ["subrip"]
    assert mkv.frame_count == 24 and mkv.time_base == Fraction(1, 1000)


def test_dict_round_trip_is_json(clips):
    info = probe_video(clips["cfr"])
    data = json.loads(json.dumps(info.to_dict()))
    assert VideoInfo.from_dict(data) == info
    with pytest.raises(ProbeError):
        VideoInfo.from_dict({**data, "unknown": 1})


@pytest.mark.parametrize("name", ["vfr_mp4", "vfr_mkv"])
def test_vfr(clips, name):
    info = probe_video(clips[name])
    assert info.is_vfr
    stamps = frame_timestamps(clips[name], info)
    seconds = (stamps - stamps[0]) * float(info.time_base)
    # The sample's interval pattern, in frames of 1/24 s: 1, 1, 2, 0.5, 1.5, ...
    assert np.allclose(np.diff(seconds)[:5], np.array([1, 1, 2, 0.5, 1.5]) / 24, atol=0.001)
    assert info.real_fps == pytest.approx(info.frame_count / info.duration)
    assert info.real_fps < info.avg_fps + 10


def test_ten_bit(clips):
    info = probe_video(clips["ten"])
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("hevc", "yuv420p10le", 10)


@pytest.mark.parametrize(("suffix", "rotation"), [(".mp4", 90), (".mkv", 270), (".mov", 180)])
def test_rotation(tmp_path, suffix, rotation):
    info = probe_video(make_sample_clip(tmp_path / f"r{suffix}", width=32, height=32, seconds=0.2, audio=False,
                                        rotation=rotation))
    assert info.rotation == rotation


@pytest.mark.parametrize(("width", "height"), [(33, 17), (17, 33), (2, 2)])
def test_odd_sizes(tmp_path, width, height):
    info = probe_video(make_sample_clip(tmp_path / "o.mp4", width=width, height=height, seconds=0.3, audio=False))
    assert (info.width, info.height, info.frame_count) == (width, height, 7)


def test_one_frame_video(tmp_path):
    info = probe_video(make_sample_clip(tmp_path / "one.mp4", width=32, height=32, seconds=0.01, audio=False))
    assert info.frame_count == 1 and not info.is_vfr
    assert info.duration == pytest.approx(1 / 24)


def test_untagged_colour(tmp_path):
    info = probe_video(make_sample_clip(tmp_path / "u.mp4", width=32, height=32, seconds=0.2, audio=False,
                                        color_tags=False))
    assert (info.color_primaries, info.color_transfer, info.color_matrix) == (None, None, None)


def test_interlaced(tmp_path):
    path = tmp_path / "tff.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = {"x264-params": "tff=1", "preset": "ultrafast"}
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert probe_video(path).interlaced


def test_cover_art_is_not_the_video(clips, tmp_path):
    cover = tmp_path / "cover.png"
    cv2.imwrite(str(cover), np.full((20, 20, 3), 200, np.uint8))
    mp4 = tmp_path / "with_cover.mp4"
    run_ffmpeg(["-i", str(cover), "-i", str(clips["silent"]), "-map", "0", "-map", "1", "-c", "copy",
                "-disposition:v:0", "attached_pic", str(mp4)])
    info = probe_video(mp4)
    assert (info.codec, info.width, info.frame_count) == ("h264", 64, 24)
    # A song with cover art has a "video" stream that is only a picture: that is not a video.
    song = tmp_path / "song.m4a"
    run_ffmpeg(["-i", str(clips["cfr"]), "-i", str(cover), "-map", "0:a", "-map", "1", "-c", "copy",
                "-disposition:v:0", "attached_pic", str(song)])
    with av.open(str(song)) as container:
        assert [s.type for s in container.streams] == ["audio", "video"]
    with pytest.raises(ProbeError, match="no video stream"):
        probe_video(song)


# ---- unusable inputs -------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(ProbeError) as exc:
        probe_video(tmp_path / "nope.mp4")
    assert "does not exist" in _one_line(exc)


def test_directory(tmp_path):
    with pytest.raises(ProbeError) as exc:
        probe_video(tmp_path)
    assert "directory" in _one_line(exc)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ProbeError) as exc:
        probe_video(tmp_path / "empty.mp4")
    assert "empty" in _one_line(exc)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "not a media file" in _one_line(exc)


def test_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(ValueError):
        probe_video(tmp_path / "nope.mp4")


def test_audio_only(clips, tmp_path):
    audio = tmp_path / "audio.m4a"
    run_ffmpeg(["-i", str(clips["cfr"]), "-vn", "-sn", "-c", "copy", str(audio)])
    with pytest.raises(ProbeError) as exc:
        probe_video(audio)
    assert "no video stream (audio only?)" in _one_line(exc)


def test_unsupported_codec(clips, tmp_path):
    data = clips["silent_mkv"].read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    path = tmp_path / "unknown.mkv"
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "unsupported video codec" in _one_line(exc)


def test_truncated_media_data(clips, tmp_path):
    data = clips["cfr"].read_bytes()  # faststart: the index comes first, the media data after it
    assert data.find(b"moov") < data.find(b"mdat")
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "truncated" in _one_line(exc)


def _pcm_mov(clips, path):
    run_ffmpeg(["-i", str(clips["cfr"]), "-c:v", "copy", "-c:a", "pcm_s24le", "-f", "mov", str(path)],
               what="test: pcm mov")
    return path


def test_mov_with_pcm_audio_is_complete(clips, tmp_path):
    """A MOV's index counts PCM audio sample by sample while the demuxer returns packets of many samples (a camera
    or ProRes master): that is not a truncation."""
    info = probe_video(_pcm_mov(clips, tmp_path / "pcm.mov"))
    assert info.audio_streams[0].codec == "pcm_s24le" and info.frame_count == probe_video(clips["cfr"]).frame_count


def test_truncated_mov_with_pcm_audio(clips, tmp_path):
    data = _pcm_mov(clips, tmp_path / "pcm.mov").read_bytes()
    assert data.find(b"mdat") < data.find(b"moov")  # no faststart: cut inside the media data, index kept
    start = data.find(b"mdat")
    cut = tmp_path / "cut.mov"
    cut.write_bytes(data[:start] + data[start:data.find(b"moov")][: (data.find(b"moov") - start) // 2]
                    + data[data.find(b"moov") - 8:])
    with pytest.raises(ProbeError):
        probe_video(cut)


def test_truncated_last_bytes(clips, tmp_path):
    data = clips["silent"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[:-100])
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "truncated" in _one_line(exc)


def test_moov_missing(clips, tmp_path):
    plain = tmp_path / "plain.mp4"  # no faststart: the index is written last
    run_ffmpeg(["-i", str(clips["cfr"]), "-c", "copy", str(plain)])
    data = plain.read_bytes()
    assert data.find(b"mdat") < data.find(b"moov")
    path = tmp_path / "nomoov.mp4"
    path.write_bytes(data[: data.find(b"moov") - 4])
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "moov atom missing" in _one_line(exc)


def test_truncated_mkv(clips, tmp_path):
    data = clips["silent_mkv"].read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "truncated" in _one_line(exc)


def test_no_decodable_frame(clips, tmp_path):
    data = bytearray(clips["silent"].read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)  # the index survives, every frame is zeros
    path = tmp_path / "zeros.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    assert "no decodable video frame" in _one_line(exc)


def test_frame_timestamps_detects_a_changed_file(clips):
    info = probe_video(clips["silent"])
    with pytest.raises(ProbeError, match="changed"):
        frame_timestamps(clips["silent"], dataclasses.replace(info, frame_count=info.frame_count + 1))
