"""Mastering deliverables: every kind encoded from a generated master and read back with PyAV; the thumbnail and
the contact sheet compared with the master's frames; failures leave nothing behind."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stages.errors import ChunkError, EncodeError, InputError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.media.ffmpeg import run_ffmpeg
from stages.production import deliver, stills
from stages.production.deliver import encode_deliverable
from stages.production.deliverables import (
    DELIVERABLE_KINDS,
    DELIVERABLES,
    DeliverableSpec,
    default_filename,
)
from stages.production.stills import (
    format_timecode,
    write_contact_sheet,
    write_thumbnail,
)

FRAMES = 14
WIDTH, HEIGHT = 64, 48
RATES = {8: Fraction(30000, 1001), 16: Fraction(25)}


def _colour(index: int) -> tuple[int, int, int]:
    """A distinct flat 8-bit colour per frame."""
    return 20 + 15 * index, 200 - 11 * index, (40 + 53 * index) % 200 + 30


def _frame(index: int, depth: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame ``index``: its flat colour with a 6x6 white square moving along the top (the median ignores it)."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = _colour(index)
    x = (index * 4) % (width - 6)
    frame[1:7, x:x + 6] = 255
    return frame.astype(np.uint16) * 257 if depth == 16 else frame


def _alpha(index: int, depth: int) -> np.ndarray:
    """A horizontal alpha ramp, shifted per frame, as a grey frame in 3 channels."""
    ramp = (np.arange(WIDTH, dtype=np.int64) * 4099 + index * 997) % 65536
    plane = np.broadcast_to(ramp, (HEIGHT, WIDTH)).astype(np.uint16)
    if depth == 8:
        plane = (plane >> 8).astype(np.uint8)
    return np.repeat(plane[:, :, None], 3, axis=2)


def _write_chunks(folder: Path, name: str, frames: list[np.ndarray], depth: int, split: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    height, width = frames[0].shape[:2]
    for number, part in enumerate((frames[:split], frames[split:])):
        path = folder / f"{name}_{number}.nut"
        with ChunkWriter(path, width, height, depth) as writer:
            for frame in part:
                writer.write(frame)
        paths.append(path)
    return paths


def _noise_wav(path: Path, seconds: float) -> Path:
    """Stereo PCM s24le 48 kHz noise of ``seconds`` (two independent channels, so AAC needs its bit rate)."""
    args = []
    for seed in (1, 2):
        args += ["-f", "lavfi", "-i", f"anoisesrc=r=48000:a=0.3:seed={seed}:d={seconds:.6f}"]
    run_ffmpeg([*args, "-filter_complex", "[0][1]amerge=inputs=2", "-c:a", "pcm_s24le", "-ar", "48000", str(path)])
    return path


@dataclass(frozen=True)
class Master:
    chunks: list[Path]
    alpha: list[Path]
    depth: int
    fps: Fraction
    wav: Path


@pytest.fixture(scope="module", params=[8, 16], ids=["8bit", "16bit"])
def master(request, tmp_path_factory) -> Master:
    depth = request.param
    root = tmp_path_factory.mktemp(f"master{depth}")
    chunks = _write_chunks(root, "rgb", [_frame(i, depth) for i in range(FRAMES)], depth)
    alpha = _write_chunks(root, "alpha", [_alpha(i, depth) for i in range(FRAMES)], depth)
    wav = _noise_wav(root / "audio.wav", float(FRAMES / RATES[depth]))
    return Master(chunks, alpha, depth, RATES[depth], wav)


@pytest.fixture(scope="module")
def master8(tmp_path_factory) -> Master:
    root = tmp_path_factory.mktemp("master8")
    chunks = _write_chunks(root, "rgb", [_frame(i, 8) for i in range(FRAMES)], 8)
    wav = _noise_wav(root / "audio.wav", float(FRAMES / RATES[8]))
    return Master(chunks, [], 8, RATES[8], wav)


@dataclass(frozen=True)
class ReadBack:
    codec: str
    profile: str | None
    pix_fmt: str
    width: int
    height: int
    rate: Fraction
    frames: int
    duration: float
    tag: str
    tags: tuple[int, int, int, int]  # primaries, transfer, matrix, range of the first decoded frame
    audio: list[tuple[str, int, int, int]]  # codec, sample rate, channels, bit rate
    middle: av.VideoFrame


def _read_back(path: Path) -> ReadBack:
    """Everything checked about a deliverable, read with PyAV (independent of stages.media.probe)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = [(s.codec_context.name, s.codec_context.sample_rate, s.codec_context.channels,
                  int(s.bit_rate or s.codec_context.bit_rate or 0)) for s in container.streams.audio]
        ends = [(p.pts, p.pts + p.duration) for p in container.demux(video) if p.size]
        container.seek(0)
        decoded = list(container.decode(video))
        ctx = video.codec_context
        first = decoded[0]
        return ReadBack(
            codec=ctx.codec.name, profile=ctx.profile, pix_fmt=first.format.name, width=first.width,
            height=first.height, rate=video.average_rate, frames=len(decoded),
            duration=float((max(e for _, e in ends) - min(s for s, _ in ends)) * video.time_base),
            tag=ctx.codec_tag.strip("\x00"),
            tags=(first.color_primaries, first.color_trc, first.colorspace, first.color_range), audio=audio,
            middle=decoded[FRAMES // 2] if len(decoded) > FRAMES // 2 else decoded[-1],
        )


def _to_rgb8(frame: av.VideoFrame) -> np.ndarray:
    from av.video.reformatter import ColorRange, Colorspace

    if frame.format.name in ("bgr0", "gbrp16le"):
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(format="rgb24", src_colorspace=Colorspace.ITU709, src_color_range=ColorRange.MPEG,
                          dst_color_range=ColorRange.JPEG).to_ndarray()


# kind -> (codec, pix_fmt of 8-bit master, of 16-bit master, profile) as FFmpeg's decoders report them.
# FFmpeg decodes ProRes 4444 as 12-bit (yuva444p12le) although prores_ks encodes it from yuva444p10le.
EXPECTED = {
    "mp4": ("hevc", "yuv420p", "yuv420p10le", {8: "Main", 16: "Main 10"}),
    "mov": ("prores", "yuv422p10le", "yuv422p10le", {8: "HQ", 16: "HQ"}),
    "prores4444": ("prores", "yuva444p12le", "yuva444p12le", {8: "4444", 16: "4444"}),
    "h264": ("h264", "yuv420p", "yuv420p10le", {8: "High", 16: "High 10"}),
    "av1": ("av1", "yuv420p10le", "yuv420p10le", {8: "Main", 16: "Main"}),
    "ffv1": ("ffv1", "bgr0", "gbrp16le", {8: None, 16: None}),
}
DECODERS = {"av1": ("av1", "libdav1d")}


def test_tables_and_filenames():
    assert tuple(DELIVERABLES) == DELIVERABLE_KINDS
    assert [default_filename("film", kind) for kind in DELIVERABLE_KINDS] == [
        "film.mp4", "film.mov", "film_4444.mov", "film_h264.mp4", "film_av1.mp4", "film_ffv1.mkv"]
    for kind, entry in DELIVERABLES.items():
        assert default_filename("x", kind).endswith(entry.suffix)
    with pytest.raises(SettingsError, match="unknown deliverable kind 'webm'"):
        default_filename("film", "webm")
    with pytest.raises(SettingsError, match="not a file name"):
        default_filename("a/b", "mp4")


@pytest.mark.parametrize(("spec", "message"), [
    (DeliverableSpec("webm"), "unknown deliverable kind"),
    (DeliverableSpec("mp4", codec="vp9"), "codec 'vp9' is not offered"),
    (DeliverableSpec("h264", codec="h265"), "not offered by the h264"),
    (DeliverableSpec("mp4", crf=52), "crf 52 is outside 0..51"),
    (DeliverableSpec("av1", crf=64), "outside 0..63"),
    (DeliverableSpec("mp4", crf=True), "crf True"),
    (DeliverableSpec("mov", crf=10), "prores_hq has no CRF"),
    (DeliverableSpec("ffv1", preset="fast"), "ffv1 has no preset"),
    (DeliverableSpec("mp4", preset="warp"), "unknown preset 'warp'"),
    (DeliverableSpec("av1", preset="medium"), "unknown preset 'medium' for av1"),
    (DeliverableSpec("mp4", audio_bitrate=1_000), "audio bit rate 1000"),
])
def test_spec_validate_refuses(spec, message):
    with pytest.raises(SettingsError, match=message):
        spec.validate()


def test_spec_defaults():
    for spec in (DeliverableSpec("mp4"), DeliverableSpec("mp4", codec="av1", crf=40, preset="10"),
                 DeliverableSpec("mov"), DeliverableSpec("ffv1", codec="ffv1")):
        spec.validate()
    assert (DeliverableSpec("mp4").video_codec.encoder, DeliverableSpec("mp4").effective_crf) == ("libx265", 18)
    assert DeliverableSpec("mp4").effective_preset == "medium"
    av1 = DeliverableSpec("av1")
    assert (av1.video_codec.encoder, av1.effective_crf, av1.effective_preset) == ("libsvtav1", 30, "8")
    assert DeliverableSpec("mov").effective_crf is None


@pytest.mark.parametrize("kind", DELIVERABLE_KINDS)
def test_every_kind_with_audio(master, kind, tmp_path):
    out = tmp_path / default_filename("film", kind)
    calls: list[tuple[int, int]] = []
    result = encode_deliverable(master.chunks, master.fps, out, DeliverableSpec(kind), audio=master.wav,
                                progress=lambda done, total: calls.append((done, total)))
    codec, pix8, pix16, profiles = EXPECTED[kind]
    pix_fmt = pix16 if master.depth == 16 else pix8
    back = _read_back(out)
    assert back.codec in DECODERS.get(codec, (codec,))
    assert (back.pix_fmt, back.profile, back.width, back.height) == (pix_fmt, profiles[master.depth], WIDTH, HEIGHT)
    assert back.rate == master.fps
    assert back.frames == FRAMES
    assert abs(back.duration - float(FRAMES / master.fps)) <= float(1 / master.fps)
    audio_codec = DELIVERABLES[kind].audio_codec
    assert [a[:3] for a in back.audio] == [(audio_codec, 48_000, 2)]
    if audio_codec == "aac":
        assert 0.85 * 320_000 <= back.audio[0][3] <= 1.15 * 320_000
    if kind in ("mp4", "mov", "prores4444", "h264", "av1"):
        assert back.tags == (1, 1, 1, 1)  # BT.709 primaries, transfer, matrix; limited range
    else:
        assert back.tags == (1, 1, 0, 2)  # RGB, full range
    if kind == "mp4":
        assert back.tag == "hvc1"
    # the picture survives: FFV1 exactly, the others within a few levels of the flat colour
    middle = _to_rgb8(back.middle)
    expected = np.asarray(_colour(FRAMES // 2))
    if kind == "ffv1":
        want = _frame(FRAMES // 2, master.depth)
        got = back.middle.to_ndarray(format="rgb48le" if master.depth == 16 else "rgb24")
        assert np.array_equal(got, want)
    else:
        assert np.all(np.abs(np.median(middle[12:, :], axis=(0, 1)) - expected) <= 4)
    assert result.path == str(out) and result.kind == kind
    assert (result.codec, result.pix_fmt, result.width, result.height) == (codec, pix_fmt, WIDTH, HEIGHT)
    assert result.fps == f"{master.fps.numerator}/{master.fps.denominator}"
    assert result.frame_count == FRAMES
    assert abs(result.duration - float(FRAMES / master.fps)) <= float(1 / master.fps)
    assert (result.audio_codec, result.audio_sample_rate, result.audio_channels) == (audio_codec, 48_000, 2)
    assert result.size_bytes == out.stat().st_size
    assert result.profile == profiles[master.depth]
    assert calls[-1] == (FRAMES, FRAMES) and len(calls) == FRAMES
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize(("codec", "probed"), [("h264", "h264"), ("av1", "av1")])
def test_mp4_codec_switch_without_audio(master8, tmp_path, codec, probed):
    out = tmp_path / "film.mp4"
    result = encode_deliverable(master8.chunks, master8.fps, out, DeliverableSpec("mp4", codec=codec))
    back = _read_back(out)
    assert back.codec in DECODERS.get(probed, (probed,))
    assert back.audio == []
    assert (result.codec, result.audio_codec, result.audio_sample_rate, result.audio_channels) == (
        probed, None, None, None)
    assert result.frame_count == FRAMES and back.frames == FRAMES


def test_h265_without_audio_has_no_audio_stream_and_replaces_old_file(master8, tmp_path):
    out = tmp_path / "film.mp4"
    out.write_bytes(b"old")
    result = encode_deliverable(master8.chunks, master8.fps, out, DeliverableSpec("mp4", preset="ultrafast"))
    back = _read_back(out)
    assert (back.codec, back.tag, back.audio, back.frames) == ("hevc", "hvc1", [], FRAMES)
    assert result.audio_codec is None and result.codec_tag == "hvc1"


def test_aac_bit_rate_follows_the_spec(master8, tmp_path):
    out = tmp_path / "film_h264.mp4"
    encode_deliverable(master8.chunks, master8.fps, out, DeliverableSpec("h264", audio_bitrate=128_000),
                       audio=master8.wav)
    assert 0.85 * 128_000 <= _read_back(out).audio[0][3] <= 1.15 * 128_000


def _decoded_alpha(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.reformat(format="rgba64le").to_ndarray()[..., 3] for frame in container.decode(video=0)]


def test_prores4444_carries_the_alpha(master, tmp_path):
    out = tmp_path / "film_4444.mov"
    result = encode_deliverable(master.chunks, master.fps, out, DeliverableSpec("prores4444"),
                                alpha_chunks=master.alpha)
    alphas = _decoded_alpha(out)
    assert len(alphas) == FRAMES
    full = 65535 if master.depth == 16 else 255
    for index in (0, 5, FRAMES - 1):
        want = _alpha(index, master.depth)[..., 0].astype(np.float64) * 65535 / full
        assert np.abs(alphas[index] - want).max() <= 65535 / 1023  # one 10-bit step
    assert any("alpha chunks" in note for note in result.notes)


def test_prores4444_without_alpha_is_opaque(master8, tmp_path):
    out = tmp_path / "film_4444.mov"
    result = encode_deliverable(master8.chunks, master8.fps, out, DeliverableSpec("prores4444"))
    assert all(alpha.min() >= 65535 - 64 for alpha in _decoded_alpha(out))
    assert any("fully opaque" in note for note in result.notes)


def test_alpha_ignored_for_other_kinds_and_checked_for_prores(master, tmp_path):
    result = encode_deliverable(master.chunks, master.fps, tmp_path / "film.mov", DeliverableSpec("mov"),
                                alpha_chunks=master.alpha)
    assert any("alpha chunks ignored" in note for note in result.notes)
    with pytest.raises(ChunkError, match="alpha chunks hold"):
        encode_deliverable(master.chunks, master.fps, tmp_path / "x_4444.mov", DeliverableSpec("prores4444"),
                           alpha_chunks=master.alpha[:1])
    assert not (tmp_path / "x_4444.mov").exists()


def test_audio_of_another_length_is_noted(master8, tmp_path):
    wav = _noise_wav(tmp_path / "long.wav", 1.0)
    result = encode_deliverable(master8.chunks, master8.fps, tmp_path / "film.mov", DeliverableSpec("mov"),
                                audio=wav)
    assert any("out of sync" in note for note in result.notes)


def test_av1_falls_back_to_ffmpeg(master8, tmp_path, monkeypatch):
    monkeypatch.setattr(deliver, "_pyav_has_encoder", lambda name: False)
    result = encode_deliverable(master8.chunks, master8.fps, tmp_path / "a_av1.mp4", DeliverableSpec("av1"),
                                audio=master8.wav)
    assert result.encoder == "libsvtav1" and any("PyAV has no libsvtav1" in note for note in result.notes)
    monkeypatch.setattr(deliver, "_ffmpeg_encoders", lambda exe: frozenset({"libaom-av1", "libx264"}))
    result = encode_deliverable(master8.chunks, master8.fps, tmp_path / "b_av1.mp4", DeliverableSpec("av1"))
    assert result.encoder == "libaom-av1" and any("libaom-av1" in note for note in result.notes)
    for name in ("a_av1.mp4", "b_av1.mp4"):
        back = _read_back(tmp_path / name)
        assert back.codec in DECODERS["av1"]
        assert (back.pix_fmt, back.frames, back.rate, back.tags) == ("yuv420p10le", FRAMES, master8.fps, (1, 1, 1, 1))
        assert abs(back.duration - float(FRAMES / master8.fps)) <= float(1 / master8.fps)
    monkeypatch.setattr(deliver, "_ffmpeg_encoders", lambda exe: frozenset({"libx264"}))
    with pytest.raises(EncodeError, match="no AV1 encoder"):
        encode_deliverable(master8.chunks, master8.fps, tmp_path / "c_av1.mp4", DeliverableSpec("av1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_av1.mp4", "b_av1.mp4"]


def test_frame_sizes_the_codec_cannot_hold(tmp_path):
    odd = _write_chunks(tmp_path / "odd", "rgb", [_frame(i, 8, 63, 47) for i in range(4)], 8, split=2)
    for kind in ("mp4", "h264", "av1"):
        with pytest.raises(SettingsError, match="63x47 cannot be stored as yuv420p.*even"):
            encode_deliverable(odd, Fraction(24), tmp_path / default_filename("odd", kind), DeliverableSpec(kind))
    with pytest.raises(SettingsError, match="4:2:2 needs an even width"):
        encode_deliverable(odd, Fraction(24), tmp_path / "odd.mov", DeliverableSpec("mov"))
    result = encode_deliverable(odd, Fraction(24), tmp_path / "odd_ffv1.mkv", DeliverableSpec("ffv1"))
    assert (result.width, result.height, result.frame_count) == (63, 47, 4)
    small = _write_chunks(tmp_path / "small", "rgb", [_frame(i, 8, 32, 16) for i in range(4)], 8, split=2)
    with pytest.raises(SettingsError, match="libx265 cannot encode 32x16"):
        encode_deliverable(small, Fraction(24), tmp_path / "small.mp4", DeliverableSpec("mp4"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd", "odd_ffv1.mkv", "small"]


def test_bad_inputs(master8, tmp_path):
    spec = DeliverableSpec("h264")
    with pytest.raises(SettingsError, match="unknown deliverable kind"):
        encode_deliverable(master8.chunks, master8.fps, tmp_path / "a.mp4", DeliverableSpec("webm"))
    with pytest.raises(SettingsError, match="does not end in .mp4"):
        encode_deliverable(master8.chunks, master8.fps, tmp_path / "a.mkv", spec)
    with pytest.raises(SettingsError, match="fps 0 is outside"):
        encode_deliverable(master8.chunks, 0, tmp_path / "a.mp4", spec)
    with pytest.raises(ChunkError, match="no chunks given"):
        encode_deliverable([], master8.fps, tmp_path / "a.mp4", spec)
    with pytest.raises(ChunkError, match="does not exist"):
        encode_deliverable([tmp_path / "missing.nut"], master8.fps, tmp_path / "a.mp4", spec)
    with pytest.raises(InputError, match="audio file .* does not exist"):
        encode_deliverable(master8.chunks, master8.fps, tmp_path / "a.mp4", spec, audio=tmp_path / "none.wav")
    assert list(tmp_path.iterdir()) == []


def _fake_ffmpeg(folder: Path, body: str) -> str:
    script = folder / "ffmpeg"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize(("body", "message"), [
    ('echo "mux exploded" >&2\nexit 1', "mux exploded"),  # the mux fails
    ('for last in "$@"; do :; done\necho garbage > "$last"\nexit 0', "cannot be read back"),  # a broken file
])
def test_failure_leaves_nothing_behind(master8, tmp_path, body, message):
    tools = tmp_path / "tools"
    tools.mkdir()
    exe = _fake_ffmpeg(tools, body)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    keep = out_dir / "film.mp4"
    keep.write_bytes(b"previous master")
    with pytest.raises(EncodeError, match=message):
        encode_deliverable(master8.chunks, master8.fps, keep, DeliverableSpec("mp4"), audio=master8.wav, ffmpeg=exe)
    fresh = out_dir / "film_ffv1.mkv"
    with pytest.raises(EncodeError, match=message):
        encode_deliverable(master8.chunks, master8.fps, fresh, DeliverableSpec("ffv1"), ffmpeg=exe)
    assert keep.read_bytes() == b"previous master"
    assert sorted(p.name for p in out_dir.iterdir()) == ["film.mp4"]  # no .film*.part folder left


def _master_frames(chunks: list[Path]) -> list[np.ndarray]:
    return [frame for chunk in chunks for frame in read_frames(chunk)]


def _to8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    return ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _imread_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_thumbnail_is_the_frame(master, tmp_path):
    frames = _master_frames(master.chunks)
    result = write_thumbnail(master.chunks, master.fps, tmp_path / "thumb.png")
    assert (result.frame_index, result.width, result.height) == (FRAMES // 2, WIDTH, HEIGHT)
    assert result.time_seconds == pytest.approx(float(FRAMES // 2 / master.fps))
    assert np.array_equal(_imread_rgb(tmp_path / "thumb.png"), _to8(frames[FRAMES // 2]))
    assert write_thumbnail(master.chunks, master.fps, tmp_path / "a.png", at=0).frame_index == 0
    assert write_thumbnail(master.chunks, master.fps, tmp_path / "b.png", at=1).frame_index == FRAMES - 1
    at_seconds = float(9 / master.fps)  # the start of frame 9 (a float just below or above it)
    last = write_thumbnail(master.chunks, master.fps, tmp_path / "c.jpg", at_seconds=at_seconds, width=32)
    assert (last.frame_index, last.width, last.height) == (9, 32, 24)
    jpeg = _imread_rgb(tmp_path / "c.jpg")
    assert jpeg.shape == (24, 32, 3)
    assert np.all(np.abs(np.median(jpeg[8:], axis=(0, 1)) - np.asarray(_colour(9))) <= 4)


def test_thumbnail_refuses(master8, tmp_path):
    for kwargs, message in (({"at": 1.5}, "at 1.5 is outside 0..1"), ({"at": -0.1}, "outside 0..1"),
                            ({"at_seconds": 5.0}, "outside the video"), ({"at_seconds": -1.0}, "outside the video"),
                            ({"width": 4}, "width 4 is outside")):
        with pytest.raises(SettingsError, match=message):
            write_thumbnail(master8.chunks, master8.fps, tmp_path / "t.png", **kwargs)
    with pytest.raises(SettingsError, match="not a .png, .jpg or .jpeg"):
        write_thumbnail(master8.chunks, master8.fps, tmp_path / "t.gif")
    assert list(tmp_path.iterdir()) == []


def _tile(sheet: np.ndarray, tile: int, columns: int, tile_w: int, cell_h: int, tile_h: int) -> np.ndarray:
    gap = stills.CONTACT_SHEET_GAP
    top = gap + (tile // columns) * (cell_h + gap)
    left = gap + (tile % columns) * (tile_w + gap)
    return sheet[top:top + tile_h, left:left + tile_w], sheet[top + tile_h:top + cell_h, left:left + tile_w]


def test_contact_sheet_grid_order_and_labels(master, tmp_path):
    columns, rows, tile_w, tile_h = 4, 3, 96, 72
    result = write_contact_sheet(master.chunks, master.fps, tmp_path / "sheet.png", columns=columns, rows=rows,
                                 tile_width=tile_w)
    plain = write_contact_sheet(master.chunks, master.fps, tmp_path / "plain.png", columns=columns, rows=rows,
                                tile_width=tile_w, labels=False)
    gap = stills.CONTACT_SHEET_GAP
    sheet = _imread_rgb(tmp_path / "sheet.png")
    width = columns * tile_w + (columns + 1) * gap
    assert (result.width, result.height) == (sheet.shape[1], sheet.shape[0])
    assert (plain.width, plain.height) == (width, rows * tile_h + (rows + 1) * gap)
    strip = (result.height - (rows + 1) * gap) // rows - tile_h
    assert result.width == width and strip >= 8
    assert result.height == rows * (tile_h + strip) + (rows + 1) * gap
    # tile k is the middle of the k-th of 12 equal spans of 14 frames
    assert result.frame_indices == tuple(((2 * k + 1) * FRAMES) // (2 * columns * rows) for k in range(12))
    assert result.frame_indices == plain.frame_indices == (0, 1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13)
    labels = []
    for tile, index in enumerate(result.frame_indices):
        picture, label = _tile(sheet, tile, columns, tile_w, tile_h + strip, tile_h)
        assert np.all(np.abs(np.median(picture[8:], axis=(0, 1)) - np.asarray(_colour(index))) <= 2), tile
        assert label.max() > 150 and np.median(label) < 40  # white text on a dark strip
        labels.append(label)
    assert not np.array_equal(labels[0], labels[1])  # each tile has its own timecode
    plain_sheet = _imread_rgb(tmp_path / "plain.png")
    picture, _ = _tile(plain_sheet, 4, columns, tile_w, tile_h, tile_h)
    assert np.all(np.abs(np.median(picture[8:], axis=(0, 1)) - np.asarray(_colour(5))) <= 2)


def test_contact_sheet_with_fewer_frames_than_tiles(master8, tmp_path):
    result = write_contact_sheet(master8.chunks, master8.fps, tmp_path / "sheet.jpg", columns=5, rows=4,
                                 tile_width=32, labels=False)
    assert result.frame_indices == tuple(range(FRAMES))
    sheet = _imread_rgb(tmp_path / "sheet.jpg")
    assert sheet.shape == (result.height, result.width, 3) == (4 * 24 + 5 * 4, 5 * 32 + 6 * 4, 3)
    for tile in range(FRAMES, 20):
        picture, _ = _tile(sheet, tile, 5, 32, 24, 24)
        assert picture.max() < 50  # dark
    picture, _ = _tile(sheet, FRAMES - 1, 5, 32, 24, 24)
    assert np.all(np.abs(np.median(picture[8:], axis=(0, 1)) - np.asarray(_colour(FRAMES - 1))) <= 4)


def test_contact_sheet_refuses(master8, tmp_path):
    for kwargs, message in (({"columns": 0}, "columns 0 is outside 1..16"), ({"rows": 17}, "rows 17 is outside"),
                            ({"tile_width": 8}, "tile width 8 is outside")):
        with pytest.raises(SettingsError, match=message):
            write_contact_sheet(master8.chunks, master8.fps, tmp_path / "s.png", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_format_timecode():
    assert format_timecode(0, 30) == "00:00:00:00"
    assert format_timecode(29, Fraction(30000, 1001)) == "00:00:00:29"
    assert format_timecode(30, Fraction(30000, 1001)) == "00:00:01:00"
    assert format_timecode((3600 + 61) * 25 + 7, 25) == "01:01:01:07"
