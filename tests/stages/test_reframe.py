"""Crop keyframes, target sizes and the reframe chunk stage, on a generated clip with a bright moving marker.

The clip is 320x180, 20 frames at 10 fps, over a noisy textured background; a 4x4 marker (value 255, or 60000 at
16 bits) moves 3 px right and 1 px down per frame. The tests compute each frame's crop on their own (plain lerp and
smoothstep) and check, frame by frame, that the marker's centroid in the output lies where that crop puts it.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.ops.reframe.chunk import ReframedChunk, crop_frame, reframe_chunk
from stages.ops.reframe.crops import (
    EASINGS,
    CropBox,
    CropKeyframe,
    crop_at,
    describe_target,
    model_scale_for,
    parse_keyframes,
    plan_crops,
    target_size,
)

WIDTH, HEIGHT, FRAMES, FPS = 320, 180, 20, 10.0
TIMES = [i / FPS for i in range(FRAMES)]
END = TIMES[-1]
MARK = 4  # marker side, pixels
CROP_W, CROP_H = 64, 36
TARGET = (128, 72)


def marker_centre(i: int) -> tuple[float, float]:
    """Continuous centre (x, y) of the marker in frame ``i`` (its top-left pixel is at (100 + 3i, 60 + i))."""
    return 100 + 3 * i + MARK / 2, 60 + i + MARK / 2


def make_frames(dtype=np.uint8, moving: bool = True) -> list[np.ndarray]:
    peak = np.iinfo(dtype).max
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    texture = 20 + 25 * (np.sin(xx / 5.0) * np.cos(yy / 7.0) + 1) + rng.uniform(0, 20, (HEIGHT, WIDTH))
    base = np.repeat(texture[..., None], 3, axis=2) / 255 * peak  # at most ~90/255 of the peak
    bright = 255 / 255 * peak if dtype == np.uint8 else 60000
    frames = []
    for i in range(FRAMES):
        frame = base.copy()
        left, top = (100 + 3 * i, 60 + i) if moving else (100, 60)
        frame[top:top + MARK, left:left + MARK] = bright
        frames.append(np.round(frame).astype(dtype))
    return frames


def write_chunk(path: Path, frames: list[np.ndarray], bit_depth: int = 8) -> Path:
    with ChunkWriter(path, frames[0].shape[1], frames[0].shape[0], bit_depth) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def clip8(tmp_path_factory) -> Path:
    return write_chunk(tmp_path_factory.mktemp("clip8") / "in.nut", make_frames())


def centred_keyframe(i: int) -> dict:
    """A 64x36 crop centred on the marker of frame ``i``, at that frame's time."""
    cx, cy = marker_centre(i)
    return {"time": TIMES[i], "x": cx - CROP_W / 2, "y": cy - CROP_H / 2, "width": CROP_W, "height": CROP_H}


def expected_box(keys: list[dict], t: float, easing: str) -> tuple[float, float, float, float]:
    """The crop at ``t`` computed independently of the module: hold outside, lerp or smoothstep inside."""
    fields = ("x", "y", "width", "height")
    if t <= keys[0]["time"]:
        return tuple(keys[0][f] for f in fields)
    if t >= keys[-1]["time"]:
        return tuple(keys[-1][f] for f in fields)
    for a, b in itertools.pairwise(keys):
        if a["time"] <= t <= b["time"]:
            s = (t - a["time"]) / (b["time"] - a["time"])
            if easing == "ease":
                s = s * s * (3 - 2 * s)
            return tuple(a[f] + (b[f] - a[f]) * s for f in fields)
    raise AssertionError("unreachable")


def centroid(frame: np.ndarray, threshold: float) -> tuple[float, float]:
    """Centroid (x, y) of the bright marker, in continuous pixel coordinates (pixel j spans [j, j + 1))."""
    grey = frame.astype(np.float64).mean(axis=2)
    weight = np.clip(grey - threshold, 0, None)
    assert weight.sum() > 0, "the marker is not in the frame"
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    return float((weight * (xs + 0.5)).sum() / weight.sum()), float((weight * (ys + 0.5)).sum() / weight.sum())


def predicted(i: int, box: tuple[float, float, float, float], target=TARGET) -> tuple[float, float]:
    cx, cy = marker_centre(i)
    x, y, w, h = box
    return (cx - x) * target[0] / w, (cy - y) * target[1] / h


class FakeUpscaler:
    """Nearest-neighbour x``factor`` with np.repeat; records every call's batch."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor
        self.batches: list[list[tuple[int, ...]]] = []

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        self.batches.append([f.shape for f in frames])
        return [np.repeat(np.repeat(f, self.factor, axis=0), self.factor, axis=1) for f in frames]


def assert_follows(out_path: Path, keys: list[dict], easing: str, tolerance: float = 1.0, threshold=160.0):
    frames = list(read_frames(out_path))
    assert len(frames) == FRAMES
    for i, frame in enumerate(frames):
        assert frame.shape == (TARGET[1], TARGET[0], 3)
        want = predicted(i, expected_box(keys, TIMES[i], easing))
        got = centroid(frame, threshold)
        assert math.dist(got, want) <= tolerance, f"frame {i}: marker at {got}, the crop predicts {want}"


# ---------------------------------------------------------------------------------------------------- reframe_chunk


@pytest.mark.parametrize("with_model", [False, True])
def test_linear_crops_follow_the_keyframes(clip8, tmp_path, with_model):
    keys = [centred_keyframe(0), centred_keyframe(FRAMES - 1)]
    keyframes = parse_keyframes(json.dumps(keys), WIDTH, HEIGHT, duration=END)
    boxes = plan_crops(keyframes, TIMES, "linear")
    fake = FakeUpscaler(2) if with_model else None
    seen: list[tuple[int, int]] = []
    result = reframe_chunk(clip8, tmp_path / "out.nut", boxes, TARGET, upscale=fake, batch=4,
                           progress=lambda done, total: seen.append((done, total)))
    assert result == ReframedChunk(FRAMES, TARGET[0], TARGET[1], 8, 5 if with_model else 0, result.seconds)
    if with_model:
        assert [len(b) for b in fake.batches] == [4] * 5
        assert all(shape == (CROP_H, CROP_W, 3) for batch in fake.batches for shape in batch)
    assert seen[-1] == (FRAMES, FRAMES)
    assert_follows(tmp_path / "out.nut", keys, "linear")
    # the crop is centred on the marker in every frame (the marker moves linearly): centre of the output
    for frame in read_frames(tmp_path / "out.nut"):
        assert math.dist(centroid(frame, 160), (TARGET[0] / 2, TARGET[1] / 2)) <= 1.0


def test_eased_three_keyframes_follow_the_eased_path(clip8, tmp_path):
    keys = [centred_keyframe(0), centred_keyframe(10), centred_keyframe(19)]
    keys[1]["x"] -= 6  # the middle crop is off-centre: the marker's place in the output changes over time
    keyframes = parse_keyframes(keys, WIDTH, HEIGHT)
    boxes = plan_crops(keyframes, TIMES, "ease")
    reframe_chunk(clip8, tmp_path / "ease.nut", boxes, TARGET, upscale=FakeUpscaler(2))
    assert_follows(tmp_path / "ease.nut", keys, "ease")
    # where ease and linear disagree by more than 2 output pixels, the output matches the eased crop
    frames = list(read_frames(tmp_path / "ease.nut"))
    checked = 0
    for i in range(FRAMES):
        eased, linear = (predicted(i, expected_box(keys, TIMES[i], e)) for e in ("ease", "linear"))
        if math.dist(eased, linear) > 2:
            got = centroid(frames[i], 160)
            assert math.dist(got, eased) < math.dist(got, linear) - 1
            checked += 1
    assert checked >= 4


def test_crops_hold_before_the_first_and_after_the_last_keyframe(clip8, tmp_path):
    keys = [centred_keyframe(5), centred_keyframe(14)]
    boxes = plan_crops(parse_keyframes(keys, WIDTH, HEIGHT, duration=END), TIMES)
    first, last = CropBox(*(keys[0][f] for f in ("x", "y", "width", "height"))), \
        CropBox(*(keys[1][f] for f in ("x", "y", "width", "height")))
    assert boxes[:6] == [first] * 6
    assert boxes[14:] == [last] * 6
    assert boxes[6] != first
    reframe_chunk(clip8, tmp_path / "hold.nut", boxes, TARGET, upscale=None)
    assert_follows(tmp_path / "hold.nut", keys, "linear")
    # while the crop holds, the marker visibly moves across the output (3 source px = 6 output px a frame)
    frames = list(read_frames(tmp_path / "hold.nut"))
    assert centroid(frames[5], 160)[0] - centroid(frames[0], 160)[0] == pytest.approx(30, abs=1)
    assert centroid(frames[19], 160)[0] - centroid(frames[14], 160)[0] == pytest.approx(30, abs=1)


@pytest.mark.parametrize(("target", "upscaler", "step"), [((CROP_W, CROP_H), None, -0.25),
                                                          (TARGET, FakeUpscaler(2), -0.5)])
def test_sub_pixel_motion_is_smooth(tmp_path, target, upscaler, step):
    still = write_chunk(tmp_path / "still.nut", make_frames(moving=False))
    keys = [{"time": 0.0, "x": 80.0, "y": 44.0, "width": CROP_W, "height": CROP_H},
            {"time": END, "x": 80.0 + 0.25 * (FRAMES - 1), "y": 44.0, "width": CROP_W, "height": CROP_H}]
    boxes = plan_crops(parse_keyframes(keys, WIDTH, HEIGHT), TIMES)
    assert boxes[1].x - boxes[0].x == pytest.approx(0.25)
    reframe_chunk(still, tmp_path / "sub.nut", boxes, target, upscale=upscaler)
    xs = [centroid(frame, 160)[0] for frame in read_frames(tmp_path / "sub.nut")]
    steps = np.diff(xs)
    # every frame moves by about a quarter source pixel: no frame stands still, none jumps a whole pixel
    assert np.all(steps < 0), xs
    assert np.all(np.abs(steps - step) <= abs(step) * 0.4), steps
    assert xs[0] - xs[-1] == pytest.approx(-step * (FRAMES - 1), abs=0.3)


def test_zooming_crop_batches_by_native_size(clip8, tmp_path):
    keys = [{"time": 0.0, "x": 90.0, "y": 50.0, "width": 64.0, "height": 36.0},
            {"time": END, "x": 70.0, "y": 40.0, "width": 128.0, "height": 72.0}]
    boxes = plan_crops(parse_keyframes(keys, WIDTH, HEIGHT), TIMES, "ease")
    sizes = [b.native_size for b in boxes]
    runs = [1]
    for before, after in itertools.pairwise(sizes):
        runs[-1:] = [runs[-1] + 1] if after == before and runs[-1] < 3 else [runs[-1], 1]
    fake = FakeUpscaler(2)
    result = reframe_chunk(clip8, tmp_path / "zoom.nut", boxes, (256, 144), upscale=fake, batch=3)
    assert [len(b) for b in fake.batches] == runs
    assert result.model_calls == len(runs) > 5
    for batch in fake.batches:
        assert len(set(batch)) == 1
    frames = list(read_frames(tmp_path / "zoom.nut"))
    assert [f.shape for f in frames] == [(144, 256, 3)] * FRAMES


def test_sixteen_bit_frames_stay_sixteen_bit(tmp_path):
    chunk = write_chunk(tmp_path / "in16.nut", make_frames(np.uint16), bit_depth=16)
    keys = [centred_keyframe(0), centred_keyframe(FRAMES - 1)]
    boxes = plan_crops(parse_keyframes(keys, WIDTH, HEIGHT), TIMES)
    fake = FakeUpscaler(2)
    result = reframe_chunk(chunk, tmp_path / "out16.nut", boxes, TARGET, upscale=fake, bit_depth=16)
    assert result.bit_depth == 16
    frames = list(read_frames(tmp_path / "out16.nut"))
    assert all(f.dtype == np.uint16 for f in frames)
    assert max(int(f.max()) for f in frames) == 60000
    assert len({int(v) for v in np.unique(frames[0])}) > 256  # more levels than 8 bits hold
    assert_follows(tmp_path / "out16.nut", keys, "linear", threshold=40000)


def test_enlarging_sixteen_bit_edges_clip_instead_of_wrapping(tmp_path):
    frame = np.zeros((36, 64, 3), np.uint16)
    frame[:, 32:] = 65535
    chunk = write_chunk(tmp_path / "edge.nut", [frame, frame], bit_depth=16)
    box = CropBox(0, 0, 64, 36)
    reframe_chunk(chunk, tmp_path / "edge-out.nut", [box, box], (256, 144), upscale=None, bit_depth=16)
    out = next(iter(read_frames(tmp_path / "edge-out.nut")))
    # Lanczos rings at the edge, below 0 and above the peak: the output is the float resize clipped, not wrapped
    reference = cv2.resize(frame.astype(np.float32), (256, 144), interpolation=cv2.INTER_LANCZOS4)
    assert reference.min() < -1000 and reference.max() > 66000
    want = np.clip(np.round(reference), 0, 65535)
    assert np.abs(out.astype(np.float64) - want).max() <= 2
    assert out[reference < 0].max() == 0 and out[reference > 65535].min() == 65535


def test_box_count_mismatch_leaves_nothing(clip8, tmp_path):
    boxes = [CropBox(10, 10, CROP_W, CROP_H)] * (FRAMES - 1)
    out = tmp_path / "sub" / "out.nut"
    with pytest.raises(ChunkError, match=r"^reframe: .*19 crop boxes.*; plan one box per frame"):
        reframe_chunk(clip8, out, boxes, TARGET, upscale=None)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_failing_upscaler_leaves_nothing(clip8, tmp_path):
    calls = 0

    def broken(frames):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("model crashed")
        return frames

    out = tmp_path / "out.nut"
    boxes = [CropBox(10, 10, CROP_W, CROP_H)] * FRAMES
    with pytest.raises(RuntimeError, match="model crashed"):
        reframe_chunk(clip8, out, boxes, TARGET, upscale=broken)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("upscale", "message"),
    [(lambda frames: frames[:-1], "returned 3 frames for 4"),
     (lambda frames: [f.astype(np.uint16) for f in frames], "keeps the dtype"),
     (lambda frames: [f[:, :-1] for f in frames], "scales by a whole factor")],
)
def test_bad_upscaler_output_is_refused(clip8, tmp_path, upscale, message):
    boxes = [CropBox(10, 10, CROP_W, CROP_H)] * FRAMES
    with pytest.raises(ChunkError, match=message):
        reframe_chunk(clip8, tmp_path / "out.nut", boxes, TARGET, upscale=upscale)
    assert list(tmp_path.iterdir()) == []


def test_reframe_chunk_refusals(clip8, tmp_path):
    boxes = [CropBox(10, 10, CROP_W, CROP_H)] * FRAMES
    with pytest.raises(ChunkError, match="bit_depth 16"):
        reframe_chunk(clip8, tmp_path / "o.nut", boxes, TARGET, upscale=None, bit_depth=16)
    with pytest.raises(SettingsError, match="odd"):
        reframe_chunk(clip8, tmp_path / "o.nut", boxes, (129, 72), upscale=None)
    with pytest.raises(SettingsError, match="batch"):
        reframe_chunk(clip8, tmp_path / "o.nut", boxes, TARGET, upscale=None, batch=0)
    with pytest.raises(SettingsError, match="beyond the chunk's 320x180 frames"):
        reframe_chunk(clip8, tmp_path / "o.nut", [CropBox(300, 10, CROP_W, CROP_H)] * FRAMES, TARGET, upscale=None)
    with pytest.raises(ChunkError, match="cannot read chunk"):
        reframe_chunk(tmp_path / "missing.nut", tmp_path / "o.nut", boxes, TARGET, upscale=None)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------- crops


def test_crop_frame_is_exact_on_whole_pixels_and_sub_pixel_otherwise():
    frame = np.zeros((40, 60, 3), np.uint16)
    frame[:] = (np.arange(60) * 100)[None, :, None]
    assert np.array_equal(crop_frame(frame, CropBox(10, 5, 20, 16)), frame[5:21, 10:30])
    shifted = crop_frame(frame, CropBox(10.5, 5, 20, 16))
    assert shifted.shape == (16, 20, 3) and shifted.dtype == np.uint16
    assert np.allclose(shifted[0, 2:-2, 0], (np.arange(2, 18) + 10.5) * 100, atol=5)
    # a non-integer width: the output is round(width) wide and spans exactly the box
    wide = crop_frame(frame, CropBox(10, 5, 20.4, 16.2))
    assert wide.shape == (16, 20, 3)
    assert wide[0, -1, 0] == pytest.approx((10 + 20.4 * (19.5 / 20) - 0.5) * 100, abs=8)
    with pytest.raises(ChunkError, match="HxWx3"):
        crop_frame(frame[..., 0], CropBox(0, 0, 16, 16))


def test_crop_at_linear_and_ease():
    keys = parse_keyframes([{"time": 1.0, "x": 0, "y": 0, "width": 100, "height": 50},
                            {"time": 3.0, "x": 40, "y": 20, "width": 200, "height": 100}], 400, 200)
    assert EASINGS == ("linear", "ease")
    assert crop_at(keys, 0.0) == CropBox(0, 0, 100, 50)
    assert crop_at(keys, 9.0, "ease") == CropBox(40, 20, 200, 100)
    for easing in EASINGS:  # the two agree at the keyframes
        assert crop_at(keys, 1.0, easing) == CropBox(0, 0, 100, 50)
        assert crop_at(keys, 3.0, easing) == CropBox(40, 20, 200, 100)
    assert crop_at(keys, 1.5).x == pytest.approx(10)
    assert crop_at(keys, 1.5, "ease").x == pytest.approx(40 * 0.15625)  # 3s^2 - 2s^3 at s = 1/4
    assert crop_at(keys, 2.5, "ease").x == pytest.approx(40 * 0.84375)
    assert crop_at(keys, 2.0, "ease").x == pytest.approx(crop_at(keys, 2.0).x)  # smoothstep is symmetric
    for t in (1.3, 2.2, 2.9):  # same aspect in, same aspect out
        assert crop_at(keys, t, "ease").aspect == pytest.approx(2.0)
    with pytest.raises(SettingsError, match="unknown easing 'bounce'"):
        crop_at(keys, 1.0, "bounce")
    with pytest.raises(SettingsError, match="no keyframes"):
        plan_crops([], [0.0])
    assert plan_crops(keys, [0.0, 2.0, 4.0]) == [crop_at(keys, t) for t in (0.0, 2.0, 4.0)]


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("aspect", "size", "label"),
    [(1920 / 1080, (3840, 2160), "16:9"), (1080 / 1920, (1080, 1920), "9:16"), (1.72, (3840, 2160), "16:9"),
     (0.58, (1080, 1920), "9:16"), (4 / 3, (2880, 2160), "4:3"), (1.0, (2160, 2160), "1:1"),
     (4 / 5, (1080, 1350), "4:5"), (2.39, (5162, 2160), "2.39:1"), (21 / 9, (5040, 2160), "21:9"),
     (4.0, (7680, 1920), "4.00:1"), (32 / 9, (7680, 2160), "3.56:1"), (0.1, (768, 7680), "1:10.00")],
)
def test_target_size_table(aspect, size, label):
    width, height = target_size(aspect)
    assert (width, height) == size
    assert width % 2 == 0 and height % 2 == 0
    assert max(width, height) <= 7680
    assert describe_target(aspect) == f"{label} -> {width}x{height}"


def test_very_wide_crops_are_capped_proportionally():
    width, height = target_size(6.0)
    assert (width, height) == (7680, 1280)
    width, height = target_size(5.123)
    assert width == 7680 and height % 2 == 0 and abs(width / height - 5.123) < 0.01


@pytest.mark.parametrize("override", [(1080, 1920), (16, 16), (7680, 4320), (4320, 7680), (1440, 1080)])
def test_target_override_wins(override):
    assert target_size(16 / 9, override) == override
    assert describe_target(4 / 3, override).endswith(f"{override[0]}x{override[1]} (chosen)")


@pytest.mark.parametrize(
    ("override", "message"),
    [((1081, 1920), "odd; .* use 1082x1920"), ((14, 16), "too small"), ((7682, 4320), "above the 8K limit"),
     ((4322, 7680), "above the 8K limit"), ((4400, 4400), "above the 8K limit"), ((True, 16), "whole numbers"),
     ((1080.0, 1920), "whole numbers"), ((1080,), "whole numbers")],
)
def test_target_override_refusals(override, message):
    with pytest.raises(SettingsError, match=rf"^reframe: .*{message}"):
        target_size(1.0, override)


@pytest.mark.parametrize("aspect", [0.0, -1.0, math.inf, math.nan])
def test_target_size_refuses_impossible_aspects(aspect):
    with pytest.raises(SettingsError, match="aspect ratio"):
        target_size(aspect)


def test_model_scale_for():
    small = [CropBox(0, 0, 64, 36)]
    assert model_scale_for(small, (128, 72)) == 2
    assert model_scale_for(small, (130, 72)) == 4
    assert model_scale_for(small, (256, 144)) == 4
    assert model_scale_for(small, (512, 288)) == 8
    assert model_scale_for(small, (3840, 2160)) == 8  # not enough: the largest, the resize does the rest
    assert model_scale_for(small, (64, 36)) == 1
    assert model_scale_for([CropBox(0, 0, 1920, 1080)], (1280, 720)) == 1
    assert model_scale_for([CropBox(0, 0, 608, 1080)], (1080, 1920)) == 2
    assert model_scale_for(small, (128, 72), available_scales=(4,)) == 4
    assert model_scale_for(small, (3840, 2160), available_scales=(2, 4)) == 4
    # the smallest crop of a zoom decides
    assert model_scale_for([CropBox(0, 0, 128, 72), CropBox(0, 0, 64.2, 36.1)], (256, 144)) == 4
    with pytest.raises(SettingsError, match="no crops"):
        model_scale_for([], (128, 72))
    with pytest.raises(SettingsError, match="at least 2"):
        model_scale_for(small, (128, 72), available_scales=(1, 3))


# ---------------------------------------------------------------------------------------------------- parsing


def kf(time=0.0, x=100, y=40, width=608, height=1080, **extra) -> dict:
    return {"time": time, "x": x, "y": y, "width": width, "height": height, **extra}


def test_parse_keyframes_accepts_json_text_bytes_and_lists():
    keys = [kf(0.0), kf(2.5, x=700.5, y=0)]
    want = (CropKeyframe(time=0.0, x=100.0, y=40.0, width=608.0, height=1080.0),
            CropKeyframe(time=2.5, x=700.5, y=0.0, width=608.0, height=1080.0))
    assert parse_keyframes(json.dumps(keys), 1920, 1120) == want
    assert parse_keyframes(json.dumps(keys).encode(), 1920, 1120, duration=2.5) == want
    assert parse_keyframes(keys, 1920, 1120) == want
    # a crop touching the frame's right and bottom edges is inside; aspects within 1% are accepted
    assert parse_keyframes([kf(x=1312, y=40), kf(1.0, width=612, height=1080)], 1920, 1120)[0].x == 1312


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ("[{", r"not valid JSON.*give a JSON list"),
        ("[]", r"keyframe list is empty; give at least one"),
        ([], r"keyframe list is empty"),
        ('{"time": 0}', r"are of type dict, not a list"),
        ([kf(), 5], r"keyframe 1 \(time missing\) is 5, not an object"),
        ([kf(), {"time": 1.0, "x": 1, "y": 1, "width": 608}], r"keyframe 1 \(time 1 s\) lacks height; give every"),
        ([kf(), kf(1.0, zoom=2)], r"keyframe 1 \(time 1 s\) has unknown key\(s\) zoom; use only"),
        ([kf(), kf(1.0, x=True)], r"keyframe 1 \(time 1 s\): x is True, not a finite number"),
        ([kf(time=False)], r"keyframe 0 \(time missing\): time is False, not a finite number"),
        ([kf(), kf(1.0, y="40")], r"keyframe 1 \(time 1 s\): y is '40', not a finite number"),
        ([kf(), kf(1.0, width=math.nan)], r"keyframe 1 \(time 1 s\): width is nan, not a finite number"),
        ([kf(), kf(1.0, width=0)], r"keyframe 1 \(time 1 s\): the crop is 0x1080; give a width and a height"),
        ([kf(), kf(1.0, height=-5)], r"keyframe 1 \(time 1 s\): the crop is 608x-5"),
        ([kf(width=8, height=8)], r"keyframe 0 \(time 0 s\): the crop 8x8 is smaller than 16x16"),
        ([kf(x=-1)], r"keyframe 0 \(time 0 s\): the crop's top-left corner \(-1, 40\) is outside the 1920x1120"),
        ([kf(), kf(2.0, x=1400)], (r"keyframe 1 \(time 2 s\): the crop's right edge x \+ width = 2008 is outside "
                                  r"the 1920x1120 frame; move x left or narrow the crop so x \+ width <= 1920")),
        ([kf(y=50)], r"keyframe 0 \(time 0 s\): the crop's bottom edge y \+ height = 1130 is outside the 1920x1120"),
        ([kf(time=-0.5)], r"keyframe 0 \(time -0.5 s\): time is negative"),
        ([kf(0.0), kf(2.0), kf(1.0)], (r"keyframe 2 \(time 1 s\) comes before keyframe 1 \(time 2 s\); list the "
                                      r"keyframes in time order")),
        ([kf(0.0), kf(1.0), kf(1.0)], r"keyframe 2 \(time 1 s\) has the same time as keyframe 1; give each"),
        ([kf(0.0), kf(12.0)], r"keyframe 1 \(time 12 s\) comes after the end of the clip \(10 s\)"),
        ([kf(0.0), kf(1.0, width=1080, height=1080)], (r"keyframe 1 \(time 1 s\) has aspect ratio 1.0000 "
                                                      r"\(1080x1080\) but keyframe 0 has 0.5630 \(608x1080\); .*"
                                                      r"give every keyframe the same aspect ratio")),
        # each step within 1% but the drift over three keyframes is not: still refused
        ([kf(0.0, width=600), kf(1.0, width=605), kf(2.0, width=610), kf(3.0, width=615)],
         r"keyframe 2 \(time 2 s\) has aspect ratio .* but keyframe 0 has"),
    ],
)
def test_parse_keyframes_refusals(data, pattern):
    with pytest.raises(SettingsError, match=rf"^reframe: .*{pattern}") as caught:
        parse_keyframes(data, 1920, 1120, duration=10.0)
    assert "; " in str(caught.value)  # every message ends with what to do


def test_parse_keyframes_refuses_a_frame_too_small_to_crop():
    with pytest.raises(SettingsError, match="frame size 8x8"):
        parse_keyframes([kf()], 8, 8)
