"""Image-sequence input: patterns, gaps, missing-frame policies, bit depths, the EXR display transform, chunks."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from stages.errors import InputError, SettingsError
from stages.media import chunkio
from stages.production.images import (
    display_to_linear,
    linear_to_display,
    read_image,
    write_image,
)
from stages.production.sequence import (
    MISSING_POLICIES,
    describe_gaps,
    find_sequence,
    frame_file_name,
    plan_timeline,
)
from stages.production.sequence_chunk import write_sequence_chunk
from stages.quality.samples import make_sample_sequence

W, H = 64, 48


def _display(number: int, width: int = W, height: int = H, offset: int = 0, alpha: bool = False) -> np.ndarray:
    """The display values (float64, [0, 1]) make_sample_sequence documents for frame ``number``: the test oracle."""
    x = np.tile(np.arange(width) / (width - 1), (height, 1))
    y = np.tile((np.arange(height) / (height - 1))[:, None], (1, width))
    image = np.stack([0.15 + 0.7 * x, 0.15 + 0.7 * y, 0.6 - 0.4 * x * y], axis=-1)
    side = max(2, min(width, height) // 6)
    left = (3 * number + 5 * offset) % (width - side + 1)
    top = (2 * number + 3 * offset) % (height - side + 1)
    image[top:top + side, left:left + side] = 0.95
    if alpha:
        image = np.concatenate([image, (0.25 + 0.75 * x)[:, :, None]], axis=-1)
    return image


def _quantise(values: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(values * ((1 << bits) - 1)).astype(np.int64)


def _square_corner(rgb: np.ndarray) -> tuple[int, int]:
    """(column, row) of the top-left corner of the bright square (the only pixels that are bright in all 3
    channels: the gradient's blue is below 0.6 where red and green are high)."""
    top = np.iinfo(rgb.dtype).max
    bright = (rgb.astype(np.int64) >= int(0.9 * top)).all(axis=-1)
    rows, cols = np.nonzero(bright)
    return int(cols.min()), int(rows.min())


def _expected_corner(number: int) -> tuple[int, int]:
    side = max(2, min(W, H) // 6)
    return (3 * number) % (W - side + 1), (2 * number) % (H - side + 1)


# --- patterns -------------------------------------------------------------------------------------------------


def test_hash_pattern_sorts_numerically_past_the_padding(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=8, start_number=9996)
    # not frames of shot_####.png: too few digits, a longer run with a leading zero, another prefix
    make_sample_sequence(tmp_path, "shot_###.png", count=1, start_number=5)
    (tmp_path / "shot_00001.png").write_bytes((tmp_path / "shot_9996.png").read_bytes())
    make_sample_sequence(tmp_path, "take_####.png", count=1)

    seq = find_sequence(tmp_path / "shot_####.png")

    assert seq.numbers == tuple(range(9996, 10004))
    assert [Path(p).name for p in seq.paths] == [f"shot_{n}.png" for n in range(9996, 10004)]
    assert (seq.first, seq.last, seq.missing, seq.frame_count_with_gaps) == (9996, 10003, (), 8)
    assert (seq.format, seq.width, seq.height, seq.bit_depth, seq.storage_depth) == ("png", W, H, 8, 8)
    assert (seq.has_alpha, seq.transfer, seq.directory) == (False, "srgb", str(tmp_path))
    for number, path in zip(seq.numbers, seq.paths, strict=True):
        assert _square_corner(read_image(path).rgb) == _expected_corner(number)


def test_printf_patterns(tmp_path):
    make_sample_sequence(tmp_path, "plate_%04d.dpx", count=3, start_number=7, bit_depth=16)
    seq = find_sequence(tmp_path / "plate_%04d.dpx")
    assert seq.numbers == (7, 8, 9)
    assert [Path(p).name for p in seq.paths] == ["plate_0007.dpx", "plate_0008.dpx", "plate_0009.dpx"]

    # %d: any number of digits, sorted by number (by name 10, 11, 12 would come before 2)
    make_sample_sequence(tmp_path, "raw_%d.png", count=12, start_number=1)
    seq = find_sequence(str(tmp_path / "raw_%d.png"))
    assert seq.numbers == tuple(range(1, 13))
    assert Path(seq.paths[1]).name == "raw_2.png" and Path(seq.paths[-1]).name == "raw_12.png"
    assert _square_corner(read_image(seq.paths[9]).rgb) == _expected_corner(10)


def test_glob_pattern_takes_the_last_digit_run_in_the_star(tmp_path):
    written = make_sample_sequence(tmp_path, "graded_scene_001_*.exr", count=4, start_number=98)
    assert [p.name for p in written] == [f"graded_scene_001_{n:04d}.exr" for n in range(98, 102)]
    seq = find_sequence(tmp_path / "graded_scene_001_*.exr")
    assert seq.numbers == (98, 99, 100, 101)
    assert seq.format == "exr" and seq.transfer == "linear" and seq.bit_depth == 32 and seq.storage_depth == 16

    # the * covers "v2_0003": the last run of digits is the frame number, the 2 of v2 is not
    make_sample_sequence(tmp_path / "plates", "plate_v2_*.png", count=3, start_number=3)
    (tmp_path / "plates" / "plate_notes.png").write_bytes(b"not a frame, no number")
    seq = find_sequence("plates/plate_*.png", base_dir=tmp_path)
    assert seq.numbers == (3, 4, 5)
    assert [_square_corner(read_image(p).rgb) for p in seq.paths] == [_expected_corner(n) for n in (3, 4, 5)]


def test_trailing_star_takes_the_extension_from_the_files(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.tif", count=3, bit_depth=16)
    seq = find_sequence(tmp_path / "shot_*")
    assert seq.format == "tiff" and seq.numbers == (1, 2, 3) and seq.bit_depth == 16


def test_relative_pattern_uses_base_dir_then_cwd_and_extension_case(tmp_path, monkeypatch):
    make_sample_sequence(tmp_path / "scene", "SHOT_####.PNG", count=2)
    seq = find_sequence("scene/SHOT_####.png", base_dir=tmp_path)
    assert seq.numbers == (1, 2) and seq.directory == str(tmp_path / "scene")
    assert seq.pattern == "scene/SHOT_####.png"
    monkeypatch.chdir(tmp_path / "scene")
    assert find_sequence("SHOT_####.PNG").paths == seq.paths


def test_a_percent_in_the_folder_name_is_literal(tmp_path):
    make_sample_sequence(tmp_path / "100%_%d", "shot_####.png", count=2)
    seq = find_sequence(tmp_path / "100%_%d" / "shot_####.png")
    assert seq.numbers == (1, 2)
    assert read_image(seq.paths[1]).rgb.shape == (H, W, 3)


def test_frame_file_name():
    assert frame_file_name("shot_####.exr", 42) == "shot_0042.exr"
    assert frame_file_name("shot_####.exr", 12345) == "shot_12345.exr"
    assert frame_file_name("/x/shot_%06d.dpx", 7) == "shot_000007.dpx"
    assert frame_file_name("shot_%d.png", 7) == "shot_7.png"
    assert frame_file_name("graded_scene_001_*.exr", 3) == "graded_scene_001_0003.exr"


# --- gaps and policies ----------------------------------------------------------------------------------------


def test_gaps_are_detected_and_described(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=24, start_number=1, missing=(12, 20, 21))
    seq = find_sequence(tmp_path / "shot_####.png")
    assert seq.missing == (12, 20, 21)
    assert len(seq.numbers) == 21 and seq.frame_count_with_gaps == 24
    assert describe_gaps(seq) == "3 missing frames: 12, 20-21"
    assert describe_gaps(dataclasses.replace(seq, missing=(5,))) == "1 missing frame: 5"
    assert describe_gaps(dataclasses.replace(seq, missing=())) == "no missing frames"
    many = dataclasses.replace(seq, missing=tuple(range(0, 60, 2)))
    assert describe_gaps(many) == "30 missing frames: 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, ..."


def test_skip_and_hold_timelines(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=24, missing=(12, 20, 21))
    seq = find_sequence(tmp_path / "shot_####.png")

    skip = plan_timeline(seq, "skip", fps=24)
    assert skip.frame_count == 21 and skip.numbers == seq.numbers and skip.paths == seq.paths
    assert (skip.skipped, skip.held, skip.policy) == ((12, 20, 21), (), "skip")
    assert skip.warning == (
        "sequence shot_####.png: 3 missing frames (12, 20-21) skipped; the scene is 3 frames (0.125 s at 24 fps) "
        "shorter"
    )
    assert plan_timeline(seq, "skip").warning.endswith("skipped; the scene is 3 frames shorter")

    hold = plan_timeline(seq, "hold")
    assert hold.frame_count == 24 and (hold.held, hold.skipped) == ((12, 20, 21), ())
    assert hold.numbers[10:13] == (11, 11, 13)
    assert hold.numbers[18:22] == (19, 19, 19, 22)
    assert hold.paths[11] == hold.paths[10] == str(tmp_path / "shot_0011.png")
    assert hold.warning == (
        "sequence shot_####.png: 3 missing frames (12, 20-21) held on the previous frame; the timing is kept"
    )

    complete = dataclasses.replace(seq, missing=(), numbers=(1,), paths=(seq.paths[0],), last=1)
    assert plan_timeline(complete, "hold").warning is None
    assert plan_timeline(complete, "skip").warning is None


def test_unknown_policy_and_bad_fps(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=2)
    seq = find_sequence(tmp_path / "shot_####.png")
    with pytest.raises(SettingsError, match=r"^sequence: unknown missing-frame policy 'repeat'; use one of skip, hold"):
        plan_timeline(seq, "repeat")
    with pytest.raises(SettingsError, match="fps must be a positive number"):
        plan_timeline(seq, "skip", fps=0)
    assert MISSING_POLICIES == ("skip", "hold")


# --- bit depths and the display transform ---------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["shot_####.png", "shot_####.tif", "shot_####.dpx"])
def test_16_bit_formats_read_back_at_16_bits(tmp_path, pattern):
    make_sample_sequence(tmp_path, pattern, count=2, bit_depth=16, alpha=True)
    seq = find_sequence(tmp_path / pattern)
    assert (seq.bit_depth, seq.storage_depth, seq.has_alpha) == (16, 16, True)
    frame = read_image(seq.paths[1], expect=(W, H), storage_depth=16)
    assert frame.rgb.dtype == np.uint16 and frame.rgb.shape == (H, W, 3)
    expected = _quantise(_display(2, alpha=True), 16)
    assert np.abs(frame.rgb.astype(np.int64) - expected[:, :, :3]).max() <= 1
    assert frame.alpha is not None and frame.alpha.dtype == np.uint16
    assert np.abs(frame.alpha.astype(np.int64) - expected[:, :, 3]).max() <= 1
    # the 16-bit values are not 8-bit values scaled up
    assert np.any(frame.rgb % 257)


@pytest.mark.parametrize("bits", [10, 12])
def test_10_and_12_bit_dpx_are_scaled_to_the_full_16_bit_range(tmp_path, bits):
    make_sample_sequence(tmp_path, "plate_####.dpx", count=1, bit_depth=bits)
    seq = find_sequence(tmp_path / "plate_####.dpx")
    assert (seq.bit_depth, seq.storage_depth, seq.has_alpha) == (bits, 16, False)
    frame = read_image(seq.paths[0], storage_depth=16)
    codes = _quantise(_display(1), bits)
    top = (1 << bits) - 1
    expected = np.floor(codes * 65535 / top + 0.5).astype(np.int64)
    assert np.array_equal(frame.rgb.astype(np.int64), expected)


def test_10_bit_dpx_extremes(tmp_path):
    codes = np.zeros((2, 4, 3), dtype=np.uint16)
    codes[0] = [[0, 1, 2], [511, 512, 513], [1022, 1023, 1023], [64, 940, 100]]
    codes[1] = 1023
    write_image(tmp_path / "x_0001.dpx", codes, bit_depth=10)
    rgb = read_image(tmp_path / "x_0001.dpx", storage_depth=16).rgb
    assert rgb[0, 0].tolist() == [0, 64, 128]
    assert rgb[0, 1].tolist() == [32735, 32800, 32864]
    assert rgb[0, 2].tolist() == [65471, 65535, 65535]
    assert (rgb[1] == 65535).all()
    assert read_image(tmp_path / "x_0001.dpx", storage_depth=8).rgb[0, 1].tolist() == [127, 128, 128]


def test_8_bit_png_at_16_bits_is_scaled_by_257(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=1)
    path = find_sequence(tmp_path / "shot_####.png").paths[0]
    eight = read_image(path).rgb
    sixteen = read_image(path, storage_depth=16).rgb
    assert eight.dtype == np.uint8 and sixteen.dtype == np.uint16
    assert np.array_equal(eight.astype(np.int64), _quantise(_display(1), 8))
    assert np.array_equal(sixteen, eight.astype(np.uint16) * 257)


def test_linear_to_display_known_values():
    values = np.array([0.0, 1.0, 0.0031308, 0.001, 0.18, 2.0, -1.0, np.nan, 0.5])
    out = linear_to_display(values)
    assert out.dtype == np.float64
    assert out[0] == 0.0 and out[1] == 1.0
    assert out[2] == pytest.approx(12.92 * 0.0031308, abs=1e-6)
    assert out[3] == pytest.approx(0.01292, abs=1e-12)
    assert out[4] == pytest.approx(0.4613561, abs=1e-6)
    assert out[5] == 1.0 and out[6] == 0.0 and out[7] == 0.0
    assert out[8] == pytest.approx(1.055 * 0.5 ** (1 / 2.4) - 0.055, abs=1e-12)
    assert linear_to_display(np.float32([0.18])).dtype == np.float32
    # the inverse
    ramp = np.linspace(0, 1, 1001)
    assert np.abs(linear_to_display(display_to_linear(ramp)) - ramp).max() < 1e-9
    assert display_to_linear(np.array([0.4613561]))[0] == pytest.approx(0.18, abs=1e-6)


def test_exr_gets_the_display_transform(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.exr", count=1, alpha=True)
    seq = find_sequence(tmp_path / "shot_####.exr")
    assert (seq.bit_depth, seq.storage_depth, seq.has_alpha, seq.transfer) == (32, 16, True, "linear")
    frame = read_image(seq.paths[0], storage_depth=16)
    written = _display(1, alpha=True).astype(np.float32)  # EXR floats written as they are (linear=False)
    expected = linear_to_display(written[:, :, :3].astype(np.float64)) * 65535
    assert np.abs(frame.rgb.astype(np.float64) - expected).max() <= 2
    # darker values get brighter: the transfer function was applied, not a plain scale
    assert frame.rgb[0, 0, 0] > _quantise(written[0, 0, 0], 16) + 10000
    # alpha is coverage: not transformed
    assert np.abs(frame.alpha.astype(np.int64) - _quantise(written[:, :, 3], 16)).max() <= 1


def test_linear_exr_reads_back_as_the_intended_display_values(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.exr", count=1, linear=True)
    frame = read_image(find_sequence(tmp_path / "shot_####.exr").paths[0], storage_depth=16)
    assert np.abs(frame.rgb.astype(np.int64) - _quantise(_display(1), 16)).max() <= 2
    assert frame.alpha is None


def test_exr_out_of_range_values_clip(tmp_path):
    values = np.array([[[-0.5, 0.18, 4.0], [np.inf, 0.0031308, 1.0]]], dtype=np.float32)
    write_image(tmp_path / "hdr_0001.exr", values)
    rgb = read_image(tmp_path / "hdr_0001.exr", storage_depth=16).rgb
    assert rgb[0, 0, 0] == 0 and rgb[0, 0, 2] == 65535 and abs(int(rgb[0, 0, 1]) - 30235) <= 1
    assert rgb[0, 1].tolist()[1:] == [round(12.92 * 0.0031308 * 65535), 65535]


def test_jpeg_sequence_reads_as_8_bit(tmp_path):
    make_sample_sequence(tmp_path, "cam_####.jpg", count=2)
    seq = find_sequence(tmp_path / "cam_####.jpg")
    assert (seq.format, seq.bit_depth, seq.storage_depth, seq.has_alpha) == ("jpeg", 8, 8, False)
    frame = read_image(seq.paths[0])
    assert frame.rgb.dtype == np.uint8
    assert np.abs(frame.rgb.astype(np.int64) - _quantise(_display(1), 8)).mean() < 3


# --- chunks ---------------------------------------------------------------------------------------------------


def test_write_chunk_with_held_frames(tmp_path):
    make_sample_sequence(tmp_path / "in", "shot_####.png", count=8, missing=(4, 5))
    seq = find_sequence(tmp_path / "in" / "shot_####.png")
    timeline = plan_timeline(seq, "hold")
    calls = []
    chunk = write_sequence_chunk(timeline, 1, 6, tmp_path / "out" / "c0.nut", width=W, height=H,
                                 storage_depth=seq.storage_depth, progress=lambda d, t: calls.append((d, t)))
    assert (chunk.frame_count, chunk.width, chunk.height, chunk.bit_depth) == (6, W, H, 8)
    assert (chunk.alpha_present, chunk.alpha_path, chunk.path) == (False, None, str(tmp_path / "out" / "c0.nut"))
    assert calls == [(i, 6) for i in range(1, 7)]
    frames = list(chunkio.read_frames(chunk.path))
    assert len(frames) == chunkio.count_frames(chunk.path) == 6
    # output frames 1..6 show source frames 2, 3, 3, 3, 6, 7
    assert timeline.numbers[1:7] == (2, 3, 3, 3, 6, 7)
    for frame, number in zip(frames, timeline.numbers[1:7], strict=True):
        assert np.array_equal(frame, read_image(tmp_path / "in" / f"shot_{number:04d}.png").rgb)
    assert np.array_equal(frames[2], frames[1]) and np.array_equal(frames[3], frames[1])
    assert not np.array_equal(frames[4], frames[3])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0.nut"]


def test_write_chunk_16_bit_with_alpha(tmp_path):
    folder = tmp_path / "in"
    make_sample_sequence(folder, "shot_####.png", count=2, bit_depth=16, alpha=True)
    make_sample_sequence(folder, "shot_####.png", count=1, start_number=3, bit_depth=16)  # no alpha
    seq = find_sequence(folder / "shot_####.png")
    timeline = plan_timeline(seq, "skip")
    chunk = write_sequence_chunk(timeline, 0, 3, tmp_path / "c.nut", width=W, height=H, storage_depth=16,
                                 alpha_out=tmp_path / "c.alpha.nut")
    assert chunk.alpha_present and chunk.alpha_path == str(tmp_path / "c.alpha.nut") and chunk.bit_depth == 16
    frames = list(chunkio.read_frames(chunk.path))
    alphas = list(chunkio.read_frames(chunk.alpha_path))
    assert len(frames) == len(alphas) == 3 and alphas[0].dtype == np.uint16
    for frame, path in zip(frames, seq.paths, strict=True):
        assert np.array_equal(frame, read_image(path, storage_depth=16).rgb)
    first = read_image(seq.paths[0], storage_depth=16).alpha
    assert all(np.array_equal(alphas[0][:, :, c], first) for c in range(3))
    assert (alphas[2] == 65535).all()  # a frame without alpha is fully opaque

    # no alpha anywhere: nothing is written at alpha_out
    make_sample_sequence(tmp_path / "plain", "p_####.png", count=2)
    plain = plan_timeline(find_sequence(tmp_path / "plain" / "p_####.png"), "skip")
    chunk = write_sequence_chunk(plain, 0, 2, tmp_path / "p.nut", width=W, height=H, storage_depth=8,
                                 alpha_out=tmp_path / "p.alpha.nut")
    assert not chunk.alpha_present and chunk.alpha_path is None
    assert not (tmp_path / "p.alpha.nut").exists()


def test_write_chunk_failure_leaves_nothing(tmp_path):
    folder = tmp_path / "in"
    make_sample_sequence(folder, "shot_####.png", count=4)
    make_sample_sequence(folder, "shot_####.png", count=1, start_number=5, width=32, height=24)
    timeline = plan_timeline(find_sequence(folder / "shot_####.png"), "skip")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"^sequence: frame .*shot_0005\.png is 32x24 but the sequence is 64x48"):
        write_sequence_chunk(timeline, 0, 5, out / "c.nut", width=W, height=H, storage_depth=8,
                             alpha_out=out / "c.alpha.nut")
    assert list(out.iterdir()) == []

    (folder / "shot_0003.png").write_bytes((folder / "shot_0003.png").read_bytes()[:10])
    with pytest.raises(InputError, match=r"shot_0003\.png does not decode .*re-export it.*'hold'"):
        write_sequence_chunk(timeline, 0, 4, out / "c.nut", width=W, height=H, storage_depth=8)
    assert list(out.iterdir()) == []

    with pytest.raises(SettingsError, match="outside the timeline of 5 frames"):
        write_sequence_chunk(timeline, 3, 3, out / "c.nut", width=W, height=H, storage_depth=8)
    with pytest.raises(SettingsError, match="storage depth 10"):
        write_sequence_chunk(timeline, 0, 1, out / "c.nut", width=W, height=H, storage_depth=10)


# --- errors ---------------------------------------------------------------------------------------------------


def test_no_match_names_the_pattern_folder_and_an_example(tmp_path):
    make_sample_sequence(tmp_path, "shot_###.exr", count=1)
    with pytest.raises(InputError) as info:
        find_sequence(tmp_path / "shot_####.exr")
    message = str(info.value)
    assert message.startswith(f"sequence: no file matches {tmp_path / 'shot_####.exr'} in {tmp_path}")
    assert "e.g. shot_001.exr" in message and message.endswith("check the pattern and the folder")

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="the folder holds no image files"):
        find_sequence(tmp_path / "empty" / "shot_####.exr")


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"^sequence: the folder .*nowhere of pattern .* does not exist"):
        find_sequence(tmp_path / "nowhere" / "shot_####.png")


def test_wildcard_in_folder(tmp_path):
    with pytest.raises(SettingsError, match=r"^sequence: the folder part of pattern .*scene_\*/shot_####\.png holds a"):
        find_sequence(tmp_path / "scene_*" / "shot_####.png")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("shot_####.bmp", r"has extension '\.bmp'; use one of \.png, \.tif, \.tiff, \.jpg, \.jpeg, \.exr, \.dpx"),
        ("shot_####", "has no extension; use one of .png"),
        ("shot_0001.exr", "has no frame-number token.*for shot_0001.exr write shot_####.exr"),
        ("shot_##_####.exr", "has 2 frame-number tokens"),
        ("shot_????.exr", "uses '\\?'"),
    ],
)
def test_malformed_patterns(tmp_path, pattern, message):
    with pytest.raises(SettingsError, match=message):
        find_sequence(tmp_path / pattern)


def test_mixed_extensions(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=2)
    make_sample_sequence(tmp_path, "shot_####.exr", count=2, start_number=3)
    with pytest.raises(InputError, match=r"mix formats \(shot_0001\.png, shot_0003\.exr\)"):
        find_sequence(tmp_path / "shot_*")
    assert find_sequence(tmp_path / "shot_####.exr").numbers == (3, 4)


def test_duplicate_frame_numbers(tmp_path):
    make_sample_sequence(tmp_path, "shot_%d.exr", count=2)
    make_sample_sequence(tmp_path, "shot_####.exr", count=1)
    with pytest.raises(InputError, match=r"shot_0001\.exr and shot_1\.exr .* are both frame 1 .*rename one"):
        find_sequence(tmp_path / "shot_%d.exr")
    with pytest.raises(InputError, match="both frame 1"):
        find_sequence(tmp_path / "shot_*.exr")


def test_corrupt_and_empty_first_frame(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=2)
    first = tmp_path / "shot_0001.png"
    first.write_bytes(first.read_bytes()[:10])
    with pytest.raises(InputError, match=r"^sequence: frame .*shot_0001\.png does not decode .*re-export it"):
        find_sequence(tmp_path / "shot_####.png")
    first.write_bytes(b"")
    with pytest.raises(InputError, match=r"shot_0001\.png"):
        read_image(first)
    with pytest.raises(InputError, match=r"shot_0009\.png is gone"):
        read_image(tmp_path / "shot_0009.png")


def test_frame_of_another_size(tmp_path):
    make_sample_sequence(tmp_path, "shot_####.png", count=1, width=32, height=24)
    with pytest.raises(InputError, match=r"shot_0001\.png is 32x24 but the sequence is 64x48; a sequence must keep"):
        read_image(tmp_path / "shot_0001.png", expect=(64, 48))
    with pytest.raises(SettingsError, match="storage depth 12"):
        read_image(tmp_path / "shot_0001.png", storage_depth=12)


def test_sample_sequence_settings(tmp_path):
    with pytest.raises(SettingsError, match="linear=True only applies to EXR"):
        make_sample_sequence(tmp_path, "shot_####.png", linear=True)
    with pytest.raises(SettingsError, match="cannot write 8-bit RGBA"):
        make_sample_sequence(tmp_path, "shot_####.jpg", alpha=True)
    with pytest.raises(SettingsError, match="cannot write 10-bit"):
        make_sample_sequence(tmp_path, "shot_####.png", bit_depth=10)
    with pytest.raises(SettingsError, match="missing frame 40 is outside 1..12"):
        make_sample_sequence(tmp_path, "shot_####.png", missing=(40,))
    assert not any(name.endswith((".png", ".jpg")) for name in os.listdir(tmp_path))
