"""The bad-input corpus (issue 6): files a user may really hand the enhancer, and what must happen to each.

    python -m benchmarks.badinput [--out DIR] [--only CASE,CASE]      (or: vup bench badinput ...)

:func:`generate_corpus` writes every file into a folder (nothing is committed; each is a few kB, made in a few
seconds with PyAV and the ffmpeg of imageio-ffmpeg) and returns one :class:`Case` per file. Each case is
either **processed** (the output is checked against :class:`Check`) or **refused** before any work with a
one-line message naming the problem and the fix. In neither case is a partial file left at the output path,
and no stack trace reaches the user.

Video cases go through the path a user takes: ``vup enhance`` (``orchestration.cli.commands.main``, in this process).
Settings cases are inbox sidecars (``<video>.json`` next to a good clip) and go through the inbox sensor's own
validation (``orchestration.sensors.inbox``: ``load_settings`` + ``build_request`` + ``validate_request``).

:func:`main` runs every case and prints a Markdown table (case, expected, outcome, message, seconds) with the
machine, the command and the versions; it also writes it under ``benchmarks/results/``. The test table is
``tests/reliability/test_corpus.py``, which asserts each outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from stages.media.ffmpeg import run_ffmpeg
from stages.quality.samples import make_sample_clip

Expect = Literal["process", "refuse"]
Kind = Literal["video", "settings"]

# Every processed case runs with these `vup enhance` options (tiny clips, the default model, CPU, fast encode).
BASE_ARGS: tuple[str, ...] = ("--scale", "2", "--chunk-seconds", "0.5", "--device", "cpu", "--preset", "ultrafast",
                              "--crf", "23", "-q")
SCALE = 2
SEED = 6
_W, _H, _FPS = 64, 48, 12


@dataclass(frozen=True)
class Check:
    """What a processed output must be (``None``: not checked).

    ``width``/``height`` are the stored (coded) size, i.e. the source's coded size x scale: rotation stays a
    display-matrix tag (``rotation``), as the project keeps it. ``frames`` and ``duration`` (seconds) are those of
    the source; the output may differ by at most one frame (``1 / fps`` s; for VFR about the shortest frame) in
    duration and not at all in frame count.
    ``same_timestamps``: every output frame keeps its source time (VFR). ``warning``: words the run must print
    (to stderr) about the input, e.g. that other video streams were ignored. ``progressive``: the output must
    not be flagged interlaced. ``max_combing``: the largest :func:`combing` score of the output, measured at
    the source's size.
    """

    width: int
    height: int
    frames: int
    duration: float
    fps: float
    audio: int = 0
    subtitles: int = 0
    bit_depth: int = 8
    rotation: int = 0
    vfr: bool = False
    same_timestamps: bool = False
    warning: str | None = None
    progressive: bool = True
    max_combing: float | None = None


@dataclass(frozen=True)
class Case:
    """One file of the corpus and its defined outcome.

    ``path`` is the input video (for settings cases: the good clip the sidecar sits next to); ``settings`` is
    the sidecar's content (a dict, or raw text when it is not even JSON); ``args`` are extra ``vup enhance``
    options after :data:`BASE_ARGS`; ``output`` the output file name (its suffix picks the container).
    """

    name: str
    path: Path
    expect: Expect
    description: str
    message_contains: tuple[str, ...] = ()
    check: Check | None = None
    settings: dict[str, Any] | str | None = None
    args: tuple[str, ...] = ()
    output: str = "out.mp4"

    @property
    def kind(self) -> Kind:
        return "settings" if self.settings is not None else "video"


# --------------------------------------------------------------------------------------------------- generation


def _ff(*args: str | Path) -> None:
    run_ffmpeg(["-loglevel", "error", *[str(a) for a in args]], what="badinput")


def _testsrc(size: str = f"{_W}x{_H}", rate: str = str(_FPS), seconds: float = 1.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def _sine(seconds: float = 1.0, freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration={seconds}"]


_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"]


def _top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the top-level boxes of an MP4."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        if size < 8:
            break
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def _video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(byte offset, size, keyframe) of every video packet of ``path``, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(int(p.pos), int(p.size), bool(p.is_keyframe)) for p in container.demux(stream)
                if p.size and p.pos is not None and p.pos >= 0]


def _patch_mpeg2_size(data: bytearray, width: int, height: int) -> None:
    """Rewrite the frame size in every MPEG-2 sequence header (12 bits each) and sequence extension (2 bits
    each more), so the stream declares ``width`` x ``height`` (up to 16383) while its pictures stay small."""
    for match in re.finditer(b"\x00\x00\x01\xb3", bytes(data)):
        p = match.start() + 4
        hv, vv = width & 0xFFF, height & 0xFFF
        data[p], data[p + 1], data[p + 2] = hv >> 4, ((hv & 0xF) << 4) | (vv >> 8), vv & 0xFF
    for match in re.finditer(b"\x00\x00\x01\xb5", bytes(data)):
        p = match.start() + 4
        if data[p] >> 4 != 1:  # only the sequence extension carries the size extension
            continue
        he, ve = (width >> 12) & 3, (height >> 12) & 3
        data[p + 1] = (data[p + 1] & 0xFE) | (he >> 1)
        data[p + 2] = (data[p + 2] & 0x1F) | ((he & 1) << 7) | (ve << 5)


def _write_vfr_screen(path: Path) -> list[float]:
    """A screen-recording-like clip: bursts of frames while something moves, long holds while nothing does
    (1 ms time base, irregular intervals). Returns the frame times in seconds."""
    times_ms = [0, 33, 67, 100, 600, 633, 667, 1400, 1417, 1433, 1450, 1900]
    end_ms = 2000
    rng = np.random.default_rng(SEED)
    canvas = np.full((_H, _W, 3), 235, dtype=np.uint8)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = _W, _H, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.options = {"preset": "veryfast", "crf": "20", "x264-params": "bframes=0"}
        durations = dict(zip(times_ms, [b - a for a, b in zip(times_ms, [*times_ms[1:], end_ms])], strict=True))
        for n, t in enumerate(times_ms):
            x = (n * 5) % (_W - 12)
            canvas[10:22, x:x + 12] = rng.integers(0, 255, size=3, dtype=np.uint8)  # a "window" being dragged
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(_timed(stream.encode(frame), durations))
        container.mux(_timed(stream.encode(None), durations))
    os.replace(tmp, path)
    return [t / 1000 for t in times_ms]


def _write_interlaced(path: Path) -> None:
    """25 interlaced frames/s (1 s), top field first: a bright bar moving 3 pixels per field over grey, each
    frame woven from two fields 1/50 s apart, so a frame shown as it is has combs along the bar's edges."""
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = _W, _H, "yuv420p"
        stream.codec_context.options = {"x264-params": "tff=1", "preset": "veryfast", "crf": "16"}
        for k in range(25):
            woven = np.full((_H, _W), 60, dtype=np.uint8)
            for field in (0, 1):
                x = (3 * (2 * k + field)) % (_W + 16) - 16
                picture = np.full((_H, _W), 60, dtype=np.uint8)
                picture[:, max(0, x):max(0, x + 12)] = 220
                woven[field::2] = picture[field::2]
            frame = av.VideoFrame.from_ndarray(np.stack([woven] * 3, axis=-1), format="rgb24").reformat(
                format="yuv420p")
            frame.pts, frame.time_base = k, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(tmp, path)


def combing(path: Path, width: int, height: int) -> float:
    """Mean absolute difference between each line and the average of its two neighbours (luma, 0-255), over
    every frame of ``path`` resized (area) to ``width`` x ``height``: high on combed (woven) frames with motion,
    near 0 on progressive frames of vertically smooth content."""
    import cv2

    scores = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray").astype(np.float32)
            if luma.shape != (height, width):
                luma = cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)
            scores.append(float(np.abs(luma[1:-1] - 0.5 * (luma[:-2] + luma[2:])).mean()))
    return float(np.mean(scores))


def _timed(packets: list[av.Packet], durations: dict[int, int]) -> list[av.Packet]:
    """Give each packet its frame's duration, so the last frame lasts until the clip's end."""
    for packet in packets:
        if packet.pts in durations:
            packet.duration = durations[packet.pts]
    return packets


def _flip_bits(data: bytearray, offset: int, size: int, rng: random.Random, flips: int) -> None:
    """Flip ``flips`` random bits in the second half of one packet (its slice data, not its NAL headers)."""
    start = offset + max(5, size // 2)
    for _ in range(flips):
        position = rng.randrange(start, offset + size)
        data[position] ^= 1 << rng.randrange(8)


def generate_corpus(folder: Path) -> list[Case]:
    """Write every file of the corpus into ``folder`` and return the cases (at least 25), in a stable order.

    Raises:
        EncodeError / SettingsError: ffmpeg or PyAV could not write a file (a broken installation).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    cases: list[Case] = []

    # --- a good clip: the control, and the video every settings sidecar sits next to
    good = make_sample_clip(folder / "good.mp4", width=_W, height=_H, seconds=1.0, fps=_FPS, audio=True)
    cases.append(Case("good", good, "process", "a good 64x48 H.264 clip with AAC audio (the control)",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=1)))

    # --- files that are not a usable video at all
    missing = folder / "missing.mp4"
    cases.append(Case("missing-file", missing, "refuse", "a path that does not exist",
                      ("does not exist", "check the path")))
    empty = folder / "zero_bytes.mp4"
    empty.write_bytes(b"")
    cases.append(Case("zero-bytes", empty, "refuse", "an empty file (0 bytes) named .mp4",
                      ("empty", "get the file again")))
    noise = folder / "random_bytes.mp4"
    noise.write_bytes(rng.randbytes(64 * 1024))
    cases.append(Case("random-bytes", noise, "refuse", "64 kB of random bytes named .mp4",
                      ("not a media file", "give a video file")))

    # --- an MP4 cut in the middle of its media data (index at the front: faststart)
    whole = folder / "_whole_faststart.mp4"
    _ff(*_testsrc(seconds=2.0), *_sine(2.0), *_X264, "-g", "12", "-c:a", "aac", "-movflags", "+faststart",
        "-shortest", whole)
    data = whole.read_bytes()
    mdat = next(box for box in _top_level_boxes(data) if box[0] == b"mdat")
    truncated = folder / "truncated_mdat.mp4"
    truncated.write_bytes(data[: mdat[1] + mdat[2] // 2])
    whole.unlink()
    cases.append(Case("truncated-mdat", truncated, "refuse",
                      "an MP4 (index first) cut in the middle of its media data: half the frames are missing",
                      ("truncated", "copy the file again")))

    # --- an MP4 whose index (moov) is missing: recorded with the index last, cut before it
    late = folder / "_whole_moov_last.mp4"
    _ff(*_testsrc(seconds=1.0), *_X264, late)
    data = late.read_bytes()
    moov = next(box for box in _top_level_boxes(data) if box[0] == b"moov")
    no_moov = folder / "missing_moov.mp4"
    no_moov.write_bytes(data[: moov[1]])
    late.unlink()
    cases.append(Case("missing-moov", no_moov, "refuse",
                      "an MP4 whose index (moov) is missing: a recording that was never finalised",
                      ("moov", "untrunc")))

    # --- a container whose extension lies: Matroska named .mp4
    lying = folder / "_mkv.mkv"
    make_sample_clip(lying, width=_W, height=_H, seconds=1.0, fps=_FPS, audio=True)
    mkv_as_mp4 = folder / "mkv_named_mp4.mp4"
    os.replace(lying, mkv_as_mp4)
    cases.append(Case("mkv-named-mp4", mkv_as_mp4, "process", "a Matroska file named .mp4 (FFmpeg reads the "
                      "content, not the name)", check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=1)))

    # --- audio only, a still image
    audio = folder / "audio_only.mp4"
    _ff(*_sine(1.0), "-c:a", "aac", audio)
    cases.append(Case("audio-only", audio, "refuse", "an MP4 with one AAC stream and no video",
                      ("no video stream", "give a video file")))
    still = folder / "still_image.png"
    av.VideoFrame.from_ndarray(np.full((_H, _W, 3), 128, dtype=np.uint8), format="rgb24").to_image().save(still)
    cases.append(Case("still-image", still, "refuse", "a PNG photo handed to the video enhancer",
                      ("still image", "image upscaler")))

    # --- sizes
    tiny = folder / "tiny_1x1.mkv"
    _ff("-f", "lavfi", "-i", f"color=c=red:size=1x1:rate={_FPS}:duration=0.5", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
        tiny)
    cases.append(Case("size-1x1", tiny, "refuse", "a 1x1 video (FFV1 in Matroska)",
                      ("1x1", "at least")))
    odd = folder / "odd_321x181.mp4"
    make_sample_clip(odd, width=321, height=181, seconds=0.5, fps=8, audio=False)
    cases.append(Case("odd-321x181", odd, "process",
                      "321x181 (odd both ways; stored 4:4:4 since 4:2:0 cannot hold odd sizes); x2 gives an even "
                      "642x362 that is encoded 4:2:0", check=Check(642, 362, 4, 0.5, 8)))

    # --- chroma and bit depth
    h264_422 = folder / "h264_422.mp4"
    _ff(*_testsrc(), *_X264, "-pix_fmt", "yuv422p", h264_422)
    cases.append(Case("h264-422", h264_422, "process", "8-bit 4:2:2 H.264 (High 4:2:2 profile)",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS)))
    hevc = folder / "hevc_422_10bit.mkv"
    _ff(*_testsrc(), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-pix_fmt", "yuv422p10le", hevc)
    cases.append(Case("hevc-422-10bit", hevc, "process", "10-bit 4:2:2 HEVC in Matroska: 16-bit chunks, 10-bit "
                      "output (yuv420p10le, the project's default for >8-bit sources)",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, bit_depth=10)))
    hevc420 = folder / "hevc_10bit.mp4"
    make_sample_clip(hevc420, width=_W, height=_H, seconds=1.0, fps=_FPS, bit_depth=10, codec="h265", audio=True)
    cases.append(Case("hevc-10bit-to-h265", hevc420, "process", "10-bit 4:2:0 HEVC with audio, encoded back to "
                      "10-bit HEVC (--codec h265)", args=("--codec", "h265"),
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=1, bit_depth=10)))

    # --- interlaced, rotation, timing
    interlaced = folder / "interlaced_tff.mp4"
    _write_interlaced(interlaced)
    cases.append(Case("interlaced", interlaced, "process", "interlaced H.264, top field first, 25 frames/s of a bar "
                      "that moves between the two fields (combing): deinterlaced (bwdif, one frame per frame) "
                      "before upscaling, written progressive without combing",
                      check=Check(_W * SCALE, _H * SCALE, 25, 1.0, 25, warning="interlaced", max_combing=2.0)))
    rotated = folder / "rotation_90.mp4"
    make_sample_clip(rotated, width=_W, height=_H, seconds=1.0, fps=_FPS, rotation=90, audio=False)
    cases.append(Case("rotation-90", rotated, "process", "a phone clip stored 64x48 with a 90-degree display "
                      "matrix: frames are upscaled as stored and the matrix is kept (players show 96x128)",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, rotation=90)))
    vfr = folder / "vfr_screen.mp4"
    _write_vfr_screen(vfr)
    cases.append(Case("vfr-screen", vfr, "process", "a screen recording: 12 frames over 2 s in bursts and holds "
                      "(1 ms time base); every frame keeps its own time",
                      check=Check(_W * SCALE, _H * SCALE, 12, 2.0, 60, vfr=True, same_timestamps=True)))
    slow = folder / "fps_0_5.mp4"
    _ff(*_testsrc(rate="1/2", seconds=6.0), *_X264, slow)
    cases.append(Case("fps-0.5", slow, "process", "0.5 frames/s: 3 frames over 6 s",
                      check=Check(_W * SCALE, _H * SCALE, 3, 6.0, 0.5)))
    fast = folder / "fps_240.mp4"
    _ff(*_testsrc(rate="240", seconds=0.25), *_X264, "-g", "240", fast)
    cases.append(Case("fps-240", fast, "process", "240 frames/s: 60 frames over 0.25 s",
                      check=Check(_W * SCALE, _H * SCALE, 60, 0.25, 240)))

    # --- damaged video data
    base = folder / "_base.mp4"
    _ff(*_testsrc(seconds=2.0), *_X264, "-g", "12", "-bf", "0", base)
    packets = _video_packets(base)
    data = bytearray(base.read_bytes())
    for offset, size, _key in packets:
        data[offset:offset + size] = b"\xff" * size
    dead = folder / "zero_decodable.mp4"
    dead.write_bytes(bytes(data))
    cases.append(Case("zero-decodable-frames", dead, "refuse", "a valid MP4 index over 24 video packets that are "
                      "all garbage: no frame decodes", ("no decodable video frame", "re-export")))
    data = bytearray(base.read_bytes())
    for offset, size, key in packets[7:10]:
        if not key:
            _flip_bits(data, offset, size, rng, flips=8)
    flipped = folder / "bitflip_middle.mp4"
    flipped.write_bytes(bytes(data))
    base.unlink()
    cases.append(Case("bitflip-middle", flipped, "process", "24 frames, bits flipped in 3 P-frames in the middle: "
                      "the decoder conceals the damage, every frame is kept and the damage is reported",
                      check=Check(_W * SCALE, _H * SCALE, 24, 2.0, _FPS, warning="damaged frame")))

    # --- several streams
    second = folder / "_second.mp4"
    _ff(*_testsrc(size="32x24", seconds=1.0), *_X264, second)
    first = folder / "_first.mp4"
    make_sample_clip(first, width=_W, height=_H, seconds=1.0, fps=_FPS, audio=True)
    multi = folder / "two_video_streams.mkv"
    _ff("-i", first, "-i", second, "-map", "0:v", "-map", "1:v", "-map", "0:a", "-c", "copy", multi)
    cases.append(Case("two-video-streams", multi, "process", "two video streams (64x48 and 32x24) and audio: the "
                      "first is enhanced, the other is reported and left out",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=1, warning="video stream")))
    cover_png = folder / "_cover.png"
    av.VideoFrame.from_ndarray(np.full((120, 120, 3), 40, dtype=np.uint8), format="rgb24").to_image().save(cover_png)
    cover = folder / "cover_art.mp4"
    _ff("-i", cover_png, "-i", first, "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:0", "attached_pic",
        cover)
    cases.append(Case("cover-art", cover, "process", "cover art (an attached PNG) next to the real video and audio: "
                      "the picture is left out, the video enhanced",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=1)))
    srt = folder / "_subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nfirst\n\n2\n00:00:00,500 --> 00:00:00,900\nsecond\n\n",
                   encoding="utf-8")
    tracks = folder / "two_audio_two_subs.mkv"
    _ff("-i", first, *_sine(1.0, 660), "-i", srt, "-i", srt, "-map", "0:v", "-map", "0:a", "-map", "1:a",
        "-map", "2", "-map", "3", "-c:v", "copy", "-c:a", "aac", "-c:s", "srt",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
        "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=deu", tracks)
    cases.append(Case("two-audio-two-subtitles", tracks, "process", "two audio tracks (eng, fra) and two SRT "
                      "subtitle tracks in Matroska, written to .mkv: all four kept",
                      check=Check(_W * SCALE, _H * SCALE, 12, 1.0, _FPS, audio=2, subtitles=2), output="out.mkv"))
    for path in (second, first, cover_png, srt):
        path.unlink()

    # --- a huge declared resolution: an MPEG-2 stream whose headers say 16000x16000 (its pictures are 64x48)
    small = folder / "_mpeg2.mkv"
    _ff(*_testsrc(seconds=1.0), "-c:v", "mpeg2video", "-g", "12", small)
    data = bytearray(small.read_bytes())
    _patch_mpeg2_size(data, 16000, 16000)
    huge = folder / "huge_declared_16000.mkv"
    huge.write_bytes(bytes(data))
    small.unlink()
    cases.append(Case("huge-declared-resolution", huge, "refuse", "an MPEG-2 stream whose headers declare "
                      "16000x16000: refused from the header, before any frame is decoded", ("16000x16000", "8K")))

    # --- inbox settings files (sidecar NAME.json next to the good clip)
    settings_cases: list[tuple[str, dict[str, Any] | str, tuple[str, ...], str]] = [
        ("settings-unknown-key", {"scael": 2}, ("unknown key 'scael'", "use one of"), "a misspelt key"),
        ("settings-wrong-type", {"scale": "2"}, ("scale must be an integer", "e.g."), "a number given as a string"),
        ("settings-negative-scale", {"scale": -2}, ("scale -2", "use 2, 4 or 8"), "a negative scale"),
        ("settings-fps-above-120", {"fps": 240}, ("120",), "interpolation to 240 fps"),
        ("settings-output-outside", {"output": "../../outside.mp4"}, ("plain file name",),
         "an output path that climbs out of the workspace"),
        ("settings-output-absolute", {"output": "/tmp/vup-outside.mp4"}, ("plain file name",),
         "an absolute output path outside the workspace"),
        ("settings-crf-out-of-range", {"crf": 99}, ("crf 99", "use 18"), "a CRF above 51"),
        ("settings-not-json", "{scale: 2", ("not valid JSON", "fix it"), "a sidecar that is not JSON"),
    ]
    for name, content, words, description in settings_cases:
        cases.append(Case(name, good, "refuse", f"inbox sidecar with {description}: {json.dumps(content)}",
                          words, settings=content))
    return cases


# -------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Outcome:
    """What running a case gave: ``processed``, ``refused`` or ``crashed``; the first line of the message."""

    case: str
    expect: Expect
    outcome: str
    ok: bool
    message: str
    seconds: float
    problems: tuple[str, ...] = field(default_factory=tuple)


class _CurrentStderr(logging.StreamHandler):
    """A log handler that writes to whatever ``sys.stderr`` is at the time (so redirected runs capture logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def run_cli(case: Case, workspace_root: Path, output: Path) -> tuple[int, str, str]:
    """Run ``vup enhance`` on ``case`` in this process; (exit code, stdout, stderr). Exceptions that escape the
    CLI are caught here and reported as a traceback on stderr with exit code 70 (what a user would see)."""
    import traceback

    from orchestration.cli import main as cli_main
    argv = ["enhance", str(case.path), "-o", str(output), "--workspace", str(workspace_root), *BASE_ARGS,
            *case.args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - a crash is an outcome to report, not to hide
            traceback.print_exc()
            code = 70
    return code, out.getvalue(), err.getvalue()


def check_sidecar(case: Case, workspace_root: Path) -> tuple[bool, str]:
    """Drop the case's video and sidecar into a fresh inbox and let the inbox sensor look twice (the first look
    only sees the file arrive). Returns (a run was requested, the one-line reason written to failed/)."""
    from dagster import DagsterInstance, build_sensor_context

    from orchestration.resources.core import WorkspaceResource
    from orchestration.resources.workspace import Workspace, prepare_dagster_home
    from orchestration.sensors.inbox import inbox_sensor

    workspace = Workspace(workspace_root).ensure()
    prepare_dagster_home(workspace)
    inbox = workspace.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    video = inbox / f"{case.name}.mp4"
    sidecar = video.with_suffix(".json")
    sidecar.write_text(case.settings if isinstance(case.settings, str) else json.dumps(case.settings),
                       encoding="utf-8")
    shutil.copyfile(case.path, video)
    cursor = None
    requested = False
    with DagsterInstance.get() as instance:
        for _ in range(2):
            context = build_sensor_context(instance=instance, cursor=cursor, sensor_name="inbox_sensor",
                                           resources={"workspace": WorkspaceResource(root=str(workspace.root))})
            result = inbox_sensor(context)
            cursor = result.cursor
            requested = requested or bool(result.run_requests)
    note = workspace.inbox_failed / f"{case.name}.error.txt"
    return requested, note.read_text(encoding="utf-8").strip() if note.exists() else ""


def leftovers(output: Path) -> list[str]:
    """Files at or next to ``output`` that a run must not leave: the output itself (for refusals, checked by the
    caller), temporary and partial files."""
    folder = output.parent
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name != output.name and (p.name.startswith(".") or ".part" in p.name or ".tmp" in p.name))


def chunk_files(workspace_root: Path) -> list[Path]:
    chunks = workspace_root / "chunks"
    return [p for p in chunks.rglob("*") if p.is_file()] if chunks.is_dir() else []


def verify_output(case: Case, output: Path) -> list[str]:
    """Problems of a processed case's output against its :class:`Check` (empty: all good)."""
    from stages.media.probe import frame_timestamps, probe_video

    check = case.check
    assert check is not None
    info = probe_video(output)
    problems = []
    if (info.width, info.height) != (check.width, check.height):
        problems.append(f"size {info.width}x{info.height}, expected {check.width}x{check.height}")
    if info.frame_count != check.frames:
        problems.append(f"{info.frame_count} frames, expected {check.frames}")
    if abs(info.duration - check.duration) > 1 / check.fps + 1e-3:
        problems.append(f"duration {info.duration:.3f} s, expected {check.duration:.3f} s within one frame")
    if len(info.audio_streams) != check.audio:
        problems.append(f"{len(info.audio_streams)} audio streams, expected {check.audio}")
    if len(info.subtitle_streams) != check.subtitles:
        problems.append(f"{len(info.subtitle_streams)} subtitle streams, expected {check.subtitles}")
    if info.bit_depth != check.bit_depth:
        problems.append(f"{info.bit_depth}-bit, expected {check.bit_depth}-bit")
    if info.rotation != check.rotation:
        problems.append(f"rotation {info.rotation}, expected {check.rotation}")
    if check.progressive and info.interlaced:
        problems.append("the output is interlaced, expected progressive frames")
    if check.max_combing is not None:
        source = probe_video(case.path)
        before, after = combing(case.path, source.width, source.height), combing(output, source.width, source.height)
        if after > check.max_combing:
            problems.append(f"combing {after:.2f} (source {before:.2f}), expected at most {check.max_combing}")
    if check.vfr and not info.is_vfr:
        problems.append("constant frame rate, expected the source's variable timing")
    if check.same_timestamps:
        source = probe_video(case.path)
        src = frame_timestamps(case.path, source) * float(source.time_base)
        got = frame_timestamps(output, info) * float(info.time_base)
        if len(src) != len(got) or np.abs((src - src[0]) - (got - got[0])).max() > 0.002:
            problems.append("frame times differ from the source's")
    return problems


def run_case(case: Case, root: Path) -> Outcome:
    """Run one case in a fresh workspace under ``root`` and judge it against its defined outcome."""
    workspace_root = root / f"ws-{case.name}"
    shutil.rmtree(workspace_root, ignore_errors=True)
    os.environ["DAGSTER_HOME"] = str(workspace_root / "dagster")
    started = time.perf_counter()
    if case.kind == "settings":
        requested, reason = check_sidecar(case, workspace_root)
        seconds = time.perf_counter() - started
        problems = []
        if requested:
            problems.append("a run was requested")
        if not reason:
            problems.append("no reason in failed/")
        elif len(reason.splitlines()) != 1:
            problems.append("the reason is not one line")
        problems += [f"missing {w!r}" for w in case.message_contains if w not in reason]
        outcome = "refused" if not requested and reason else "processed"
        return Outcome(case.name, case.expect, outcome, not problems, reason.splitlines()[0] if reason else "",
                       seconds, tuple(problems))

    output = root / f"out-{case.name}" / case.output
    shutil.rmtree(output.parent, ignore_errors=True)
    output.parent.mkdir(parents=True)
    code, stdout, stderr = run_cli(case, workspace_root, output)
    seconds = time.perf_counter() - started
    err_lines = [line for line in stderr.splitlines() if line.strip()]
    problems: list[str] = []
    if any(trace in text for trace in ("Traceback", "Stack Trace") for text in (stdout, stderr)):
        outcome = "crashed"
        problems.append("a stack trace reached the user")
    elif code == 0:
        outcome = "processed"
    else:
        outcome = "refused" if code == 2 else "failed"
    message = err_lines[0] if err_lines else (stdout.splitlines()[0] if stdout.strip() else "")
    problems += [f"left behind: {name}" for name in leftovers(output)]
    if case.expect == "refuse":
        if code != 2:
            problems.append(f"exit code {code}, expected 2")
        if len(err_lines) != 1 or stdout.strip():
            problems.append(f"{len(err_lines)} lines on stderr and {len(stdout.splitlines())} on stdout, expected "
                            "exactly one line")
        problems += [f"missing {w!r}" for w in case.message_contains if w not in stderr]
        if output.exists():
            problems.append("a file is at the output path")
        if chunk_files(workspace_root):
            problems.append("chunks were written (work was done)")
    else:
        if code != 0:
            problems.append(f"exit code {code}: {message}")
        elif not output.is_file():
            problems.append("no output file")
        else:
            problems += verify_output(case, output)
            if case.check is not None and case.check.warning and case.check.warning not in stderr:
                problems.append(f"no warning about {case.check.warning!r}")
            lines = stdout.splitlines()
            summary = lines[1].strip() if len(lines) > 1 else ""
            warned = next((line for line in err_lines if case.check and case.check.warning
                           and case.check.warning in line), None)
            message = f"{summary}; {warned}" if warned else summary
    return Outcome(case.name, case.expect, outcome, not problems, message, seconds, tuple(problems))


def to_markdown(results: list[Outcome], header: list[str]) -> str:
    lines = [*header, "", "| case | expected | outcome | ok | message / first line | seconds |",
             "|---|---|---|---|---|---|"]
    for r in results:
        text = r.message.replace("|", "\\|")
        if r.problems:
            text += " **(" + "; ".join(r.problems).replace("|", "\\|") + ")**"
        lines.append(f"| {r.case} | {r.expect} | {r.outcome} | {'yes' if r.ok else 'NO'} | {text} | {r.seconds:.1f} |")
    passed = sum(r.ok for r in results)
    lines += ["", f"{passed} of {len(results)} cases met their defined outcome."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.badinput", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the corpus, workspaces and outputs (default: a temporary folder, removed)")
    parser.add_argument("--only", default=None, help="comma-separated case names to run (default: all)")
    args = parser.parse_args(argv)
    from benchmarks.common import RESULTS, command_line, versions
    from stages.device import cpu_name

    root_logger = logging.getLogger()
    saved_logging = (root_logger.handlers[:], root_logger.level)
    root_logger.handlers[:] = [_CurrentStderr()]  # what each run logs goes to the stderr it captures
    root_logger.setLevel(logging.WARNING)
    saved_env = {name: os.environ.get(name) for name in ("DAGSTER_HOME", "VUP_WORKSPACE")}  # each run sets them
    with contextlib.ExitStack() as stack:
        if args.out is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vup-badinput-")))
        else:
            root = args.out.expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        cases = generate_corpus(root / "corpus")
        made = time.perf_counter() - started
        wanted = set(args.only.split(",")) if args.only else None
        results = []
        try:
            for case in cases:
                if wanted is not None and case.name not in wanted:
                    continue
                result = run_case(case, root / "runs")
                print(f"{case.name}: {result.outcome} ({'ok' if result.ok else 'NOT OK'}) in {result.seconds:.1f} s",
                      file=sys.stderr)
                results.append(result)
        finally:
            root_logger.handlers[:], level = saved_logging
            root_logger.setLevel(level)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    header = [
        f"# Bad-input corpus ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores), {platform.platform()}",
        f"- command: `{command_line('benchmarks.badinput', argv)}`",
        f"- versions: {versions(('torch', 'av', 'dagster'))}",
        (f"- {len(cases)} cases generated in {made:.1f} s; every video case runs `vup enhance FILE -o OUT "
         f"{' '.join(BASE_ARGS)}` in this process, every settings case through the inbox sensor"),
    ]
    text = to_markdown(results, header)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"badinput-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"badinput-{stamp}.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2, default=list), encoding="utf-8")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
