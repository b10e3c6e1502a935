"""Non-square pixels (issue 16): the sample aspect ratio (SAR) is probed, carried into the encode (or resampled to
square pixels when asked), into the report, the reframe target and the page's output size. Clips are generated."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from orchestration.cli import main
from orchestration.launch.options import plan_output
from orchestration.launch.runner import ReframeRequest, validate_reframe
from stages.media.aspect import square_pixel_size
from stages.media.chunking import ChunkSpec, extract_chunk
from stages.media.chunkio import ChunkWriter, read_frames
from stages.media.encode import EncodeInput, EncodeSettings, encode_video, output_geometry
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import VideoInfo, probe_video
from stages.ops.reframe.chunk import reframe_chunk
from stages.ops.reframe.crops import CropBox, display_aspect, target_size
from stages.quality.report import geometry_summary

FAST = EncodeSettings(preset="ultrafast")


def _clip(path: Path, size: str, sar: str, seconds: float, audio: bool) -> Path:
    """A testsrc2 clip of ``size`` tagged with pixel aspect ``sar`` (setsar's max raised so 128/117 stays exact)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:a", "aac", "-shortest"]
    args += ["-vf", f"setsar=sar={sar}:max=1000", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
             str(path)]
    run_ffmpeg(args, what="test: sar clip")
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("geometry")
    return {
        "dv": _clip(root / "dv_ntsc.mp4", "720x480", "8/9", 0.5, audio=True),
        "qcif": _clip(root / "qcif.mkv", "176x144", "128/117", 1.0, audio=False),
    }


def _enhance(clip: Path, out: Path, workspace: Path, *extra: str) -> int:
    return main(["enhance", str(clip), "-o", str(out), "--scale", "1", "--preset", "ultrafast", "--no-vmaf",
                 "--workspace", str(workspace), "-q", *extra])


def _report(workspace: Path) -> dict:
    [latest] = list((workspace / "reports").glob("*/latest.json"))
    return json.loads(latest.read_text(encoding="utf-8"))


def test_the_probe_reads_the_pixel_aspect(clips):
    dv = probe_video(clips["dv"])
    assert (dv.width, dv.height, dv.sample_aspect) == (720, 480, Fraction(8, 9))
    assert dv.display_aspect == Fraction(4, 3)
    assert dv.square_pixel_size == (640, 480)
    qcif = probe_video(clips["qcif"])
    assert qcif.sample_aspect == Fraction(128, 117)
    assert qcif.square_pixel_size == (192, 144)
    assert VideoInfo.from_dict(json.loads(json.dumps(qcif.to_dict()))) == qcif
    # an info stored before the field existed reads as square pixels
    old = {k: v for k, v in dv.to_dict().items() if not k.startswith("sample_aspect")}
    assert VideoInfo.from_dict(old).sample_aspect == 1


def test_square_pixel_size_rounds_to_even():
    assert square_pixel_size(720, 576, Fraction(16, 15)) == (768, 576)
    assert square_pixel_size(720, 480, Fraction(32, 27)) == (854, 480)  # 16:9 NTSC DV
    assert square_pixel_size(64, 48, Fraction(1)) == (64, 48)


def test_output_geometry_keeps_the_display_aspect(clips):
    dv = probe_video(clips["dv"])
    assert output_geometry(dv, 2880, 1920) == (2880, 1920, Fraction(8, 9))
    assert output_geometry(dv, 2880, 1920, square_pixels=True) == (2560, 1920, Fraction(1))
    square = probe_video(clips["dv"])
    square = VideoInfo.from_dict({**square.to_dict(), "sample_aspect_num": 1, "sample_aspect_den": 1})
    assert output_geometry(square, 1440, 960, square_pixels=True) == (1440, 960, Fraction(1))


@pytest.mark.parametrize("name", ["dv", "qcif"])
def test_enhance_keeps_the_display_aspect(name, clips, tmp_path):
    source = probe_video(clips[name])
    out = tmp_path / f"out{clips[name].suffix}"
    assert _enhance(clips[name], out, tmp_path / "ws") == 0
    result = probe_video(out)
    assert (result.width, result.height) == (source.width, source.height)
    assert result.sample_aspect == source.sample_aspect
    assert result.display_aspect == source.display_aspect
    assert result.frame_count == source.frame_count
    assert len(result.audio_streams) == len(source.audio_streams)
    report = _report(tmp_path / "ws")
    assert report["geometry"]["handling"] == "carried"
    assert report["geometry"]["source_sample_aspect"] == f"{source.sample_aspect_num}:{source.sample_aspect_den}"
    assert report["output"]["sample_aspect"] == report["input"]["sample_aspect"]
    assert "carried" in report["geometry"]["note"]


def test_square_pixels_option(clips, tmp_path):
    source = probe_video(clips["qcif"])
    out = tmp_path / "square.mp4"
    assert _enhance(clips["qcif"], out, tmp_path / "ws", "--square-pixels") == 0
    result = probe_video(out)
    assert (result.width, result.height) == (192, 144)
    assert result.sample_aspect == 1
    assert abs(float(result.display_aspect / source.display_aspect) - 1) < 0.005
    report = _report(tmp_path / "ws")
    assert report["geometry"]["handling"] == "square pixels"
    assert report["geometry"]["measured_at"] == "176x144"


def test_upscaled_frames_keep_the_pixel_aspect(clips, tmp_path):
    """The encode of frames twice the source's size (what an x2 model gives) carries 8:9, or resamples to square
    pixels at the display size."""
    info = probe_video(clips["dv"])
    chunk = tmp_path / "frames.nut"
    extracted = extract_chunk(clips["dv"], info, ChunkSpec(0, 0, info.frame_count, info.start_pts, None), chunk)
    bigger = tmp_path / "x2.nut"
    with ChunkWriter(bigger, info.width * 2, info.height * 2) as writer:
        for frame in read_frames(chunk):
            writer.write(np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1))
    inputs = [EncodeInput(str(bigger), extracted.pts)]
    carried = encode_video(inputs, info, tmp_path / "carried.mkv", FAST)
    assert (carried.width, carried.height, carried.sample_aspect) == (1440, 960, "8:9")
    square = encode_video(inputs, info, tmp_path / "square.mp4", EncodeSettings(preset="ultrafast", square_pixels=True))
    assert (square.width, square.height, square.sample_aspect) == (1280, 960, "1:1")
    assert probe_video(tmp_path / "square.mp4").display_aspect == Fraction(4, 3)


def test_reframe_targets_follow_the_display_aspect(clips):
    whole = CropBox(0.0, 0.0, 720.0, 480.0)
    assert display_aspect(whole, Fraction(8, 9)) == pytest.approx(4 / 3)
    assert target_size(display_aspect(whole, Fraction(8, 9))) == (2880, 2160)  # 4:3, not 3:2
    keyframes = [{"time": 0, "x": 0, "y": 0, "width": 720, "height": 480}]
    info, _, target, _ = validate_reframe(ReframeRequest(input=clips["dv"], keyframes=keyframes))
    assert info.sample_aspect == Fraction(8, 9) and target == (2880, 2160)


def test_reframe_resizes_to_square_pixels_without_a_stretch_warning(tmp_path, caplog):
    """A whole 72x48 frame of 8:9 pixels shows as 4:3: resized to 64x48 it is corrected, not stretched."""
    chunk = tmp_path / "in.nut"
    with ChunkWriter(chunk, 72, 48) as writer:
        for _ in range(2):
            writer.write(np.full((48, 72, 3), 100, dtype=np.uint8))
    boxes = [CropBox(0.0, 0.0, 72.0, 48.0)] * 2
    with caplog.at_level(logging.WARNING):
        result = reframe_chunk(chunk, tmp_path / "out.nut", boxes, (64, 48), upscale=None,
                               pixel_aspect=8 / 9)
    assert (result.width, result.height) == (64, 48) and "stretched" not in caplog.text
    with caplog.at_level(logging.WARNING):
        reframe_chunk(chunk, tmp_path / "square.nut", boxes, (64, 48), upscale=None)
    assert "stretched" in caplog.text


def test_the_page_shows_the_pixel_aspect():
    plan = plan_output(720, 480, 29.97, 2, sample_aspect=Fraction(8, 9))
    assert plan.size == "1440x960 (pixels 8:9, shown 4:3)"
    assert plan_output(64, 48, 24, 2).size == "128x96"


def test_geometry_summary_says_what_was_carried(clips):
    dv = probe_video(clips["dv"])
    carried = geometry_summary(dv, 1440, 960, {"width": 1440, "height": 960, "sample_aspect": "8:9"})
    assert carried["handling"] == "carried" and carried["output_display_aspect"] == "4:3"
    square = geometry_summary(dv, 1440, 960, {"width": 1280, "height": 960, "sample_aspect": "1:1"})
    assert square["handling"] == "square pixels" and "1440x960 -> 1280x960" in square["note"]


def test_square_pixels_above_8k_are_refused_before_any_work(tmp_path, capsys):
    """720x540 at 2:1 x8 is 5760x4320 with its pixel aspect kept, but 11520x4320 in square pixels: refused."""
    clip = _clip(tmp_path / "wide.mp4", "720x540", "2/1", 0.2, audio=False)
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(clip), "-o", str(out), "--scale", "8", "--square-pixels", "--workspace",
                 str(tmp_path / "ws"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "11520x4320" in err and "above the 8K limit" in err and "drop --square-pixels" in err
