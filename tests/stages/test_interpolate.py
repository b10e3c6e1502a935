"""Frame interpolation: settings, the timing plan (factors, fractional rates, VFR, cuts, dedup, chunk split),
the flow / blend / minterpolate interpolators on tiny moving content, and the chunk stage end to end."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from stages.errors import ChunkError, InputError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.ops.interpolate.chunk import interpolate_chunk
from stages.ops.interpolate.interpolators import (
    BlendInterpolator,
    FlowInterpolator,
    MinterpolateInterpolator,
    make_interpolator,
    minterpolate_video,
)
from stages.ops.interpolate.timing import (
    InterpolationSettings,
    OutputFrame,
    choose_method,
    chunk_output_frames,
    find_duplicates,
    plan_output_frames,
    rational_fps,
    timeline_seconds,
)

NTSC_FILM = Fraction(24000, 1001)
HEIGHT, WIDTH, SQUARE = 96, 128, 32

# ------------------------------------------------------------------------------------------ moving content

_BACKGROUND = cv2.resize(cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB), (2 * WIDTH, 2 * HEIGHT),
                         interpolation=cv2.INTER_AREA)
_PATCH = cv2.resize(data.astronaut()[80:240, 160:320], (SQUARE, SQUARE), interpolation=cv2.INTER_AREA)
_PATCH[..., 2] = 0  # the square is the only thing in the frame with no blue: easy to find


def scene(x: float, pan: float = 0.0, y: int = 32, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A grey photo panning left by ``pan`` px with a textured yellow square at column ``x`` (integers only)."""
    left = width // 2 + round(pan)
    frame = _BACKGROUND[height // 2:height // 2 + height, left:left + width].copy()
    x0, x1 = round(x), round(x) + SQUARE
    visible = slice(max(x0, 0), min(x1, width))
    frame[y:y + SQUARE, visible] = _PATCH[:, visible.start - x0:visible.stop - x0]
    return frame


def square_mask(frame: np.ndarray) -> np.ndarray:
    as8 = (frame // 257).astype(np.uint8) if frame.dtype == np.uint16 else frame
    rg = as8[..., :2].astype(np.int32).mean(axis=2)
    return (rg - as8[..., 2].astype(np.int32)) > 40


def centroid_x(frame: np.ndarray) -> float:
    return float(np.nonzero(square_mask(frame))[1].mean())


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    peak = float(np.iinfo(x.dtype).max)
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return 10 * math.log10(peak * peak / max(mse, 1e-12))


@pytest.fixture(scope="module")
def triplet() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Square moving 8 px right over a background panning 2 px left: frames at t = 0, 0.5, 1."""
    return scene(6, 0), scene(10, 1), scene(14, 2)


# ------------------------------------------------------------------------------------------ settings


def test_factor_above_120_fps_is_refused_with_a_fix():
    with pytest.raises(SettingsError, match=r"23\.976 fps x8 = 191\.808 fps is above the 120 fps limit; "
                                            r"use --interpolate 4 or --fps 120"):
        InterpolationSettings("flow", factor=8).validate(NTSC_FILM)
    with pytest.raises(SettingsError, match="use --interpolate 2 or --fps 120"):
        InterpolationSettings("flow", factor=4).validate(60)
    with pytest.raises(SettingsError, match=r"x2 = 200 fps .*; use --fps 120$"):
        InterpolationSettings("flow", factor=2).validate(100)
    with pytest.raises(SettingsError, match="--fps 144 is above the 120 fps limit"):
        InterpolationSettings("flow", target_fps=Fraction(144)).validate(24)
    assert InterpolationSettings("flow", target_fps=Fraction(120)).validate(NTSC_FILM) == 120


def test_factor_and_target_fps_are_exclusive():
    with pytest.raises(SettingsError, match="both"):
        InterpolationSettings("flow", factor=2, target_fps=Fraction(60)).validate(24)
    with pytest.raises(SettingsError, match="neither"):
        InterpolationSettings("flow").validate(24)
    with pytest.raises(SettingsError, match="factor 3 is not supported; use 2, 4 or 8"):
        InterpolationSettings("flow", factor=3).validate(24)
    with pytest.raises(SettingsError, match="method is none"):
        InterpolationSettings("none", factor=2).validate(24)
    with pytest.raises(SettingsError, match="unknown method"):
        InterpolationSettings("dain", factor=2).validate(24)
    with pytest.raises(SettingsError, match="flow preset"):
        InterpolationSettings("flow", factor=2, flow_preset="slow").validate(24)
    with pytest.raises(SettingsError, match="dedup threshold"):
        InterpolationSettings("flow", factor=2, dedup_threshold=0).validate(24)


def test_output_fps_stays_exact():
    assert InterpolationSettings("flow", factor=2).output_fps(NTSC_FILM) == Fraction(48000, 1001)
    assert InterpolationSettings("flow", factor=2).output_fps(23.976023976) == Fraction(48000, 1001)
    assert InterpolationSettings("flow", target_fps=Fraction(60)).output_fps(NTSC_FILM) == 60
    assert InterpolationSettings("flow", target_fps=59.94).output_fps(25) == Fraction(60000, 1001)
    assert InterpolationSettings().output_fps(29.97) == Fraction(30000, 1001)  # method none: pass-through
    assert InterpolationSettings("flow", target_fps=NTSC_FILM).output_fps(NTSC_FILM) == NTSC_FILM  # equal: ok
    with pytest.raises(SettingsError, match="below the source's 29.97 fps"):
        InterpolationSettings("flow", target_fps=Fraction(24)).validate(Fraction(30000, 1001))
    assert rational_fps("60000/1001") == Fraction(60000, 1001) and rational_fps(25.0) == 25
    assert rational_fps(12.5) == Fraction(25, 2)
    with pytest.raises(SettingsError, match="not positive"):
        rational_fps(0)


def test_choose_method():
    assert choose_method("auto", True, "cuda")[0] == "rife"
    method, reason = choose_method("auto", True, "cpu")
    assert method == "rife" and "slow" in reason
    method, reason = choose_method("auto", False, "cuda")
    assert method == "flow" and "no RIFE weights" in reason
    assert choose_method("blend", False, "cpu")[0] == "blend"
    with pytest.raises(SettingsError, match="RIFE weights are not available"):
        choose_method("rife", False, "cuda")
    with pytest.raises(SettingsError, match="unknown method"):
        choose_method("magic", True, "cpu")


def test_make_interpolator():
    assert isinstance(make_interpolator("flow", flow_preset="fast"), FlowInterpolator)
    assert isinstance(make_interpolator("blend"), BlendInterpolator)
    assert isinstance(make_interpolator("minterpolate"), MinterpolateInterpolator)
    sentinel = BlendInterpolator()
    assert make_interpolator("rife", rife_factory=lambda: sentinel) is sentinel
    for method in ("rife", "auto", "none", "magic"):
        with pytest.raises(SettingsError):
            make_interpolator(method)


# ------------------------------------------------------------------------------------------ timing plan


def regular(count: int, fps: Fraction) -> tuple[np.ndarray, float]:
    return np.arange(count) / float(fps), count / float(fps)


def check_invariants(plan: list[OutputFrame], kept: set[int], cuts: set[int]) -> None:
    assert [f.index for f in plan] == list(range(len(plan)))
    assert all(b.time > a.time for a, b in itertools.pairwise(plan))
    assert all(b.a >= a.a for a, b in itertools.pairwise(plan))
    for f in plan:
        assert 0 <= f.t < 1 and f.a in kept and f.b in kept
        if f.t == 0:
            assert f.a == f.b
        else:
            assert f.a < f.b and not any(f.a < c <= f.b for c in cuts)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_integer_factor_copies_source_frames_and_spaces_t_evenly(factor):
    times, end = regular(10, NTSC_FILM)
    plan = plan_output_frames(times, end, NTSC_FILM * factor, cuts=())
    assert len(plan) == 10 * factor
    for f in plan:
        k, r = divmod(f.index, factor)
        if r == 0 or k == 9:  # source times, and the tail after the last frame, copy
            assert f.is_copy and f.a == k
        else:
            assert (f.a, f.b) == (k, k + 1) and f.t == pytest.approx(r / factor, abs=1e-9)
    check_invariants(plan, set(range(10)), set())


def test_millisecond_timestamps_snap_to_the_exact_grid():
    pts = [round(k * 1001 / 24) for k in range(48)]  # 23.976 fps in a 1/1000 time base: 0, 42, 83, 125...
    end_pts = round(48 * 1001 / 24)
    times, end = timeline_seconds(pts, Fraction(1, 1000), end_pts, nominal_fps=NTSC_FILM)
    assert np.allclose(times, np.arange(48) * 1001 / 24000, atol=1e-12) and end == pytest.approx(48 * 1001 / 24000)
    plan = plan_output_frames(times, end, NTSC_FILM * 2)
    assert sum(f.is_copy for f in plan) == 49
    assert all(f.is_copy or f.t == pytest.approx(0.5, abs=1e-9) for f in plan)
    raw, _ = timeline_seconds(pts, Fraction(1, 1000), end_pts)  # without a nominal rate: the real pts
    assert raw[1] == pytest.approx(0.042)
    vfr_pts = [0, 40, 100, 120, 200]
    assert np.allclose(timeline_seconds(vfr_pts, Fraction(1, 1000), 250, nominal_fps=Fraction(25))[0],
                       [0, 0.04, 0.1, 0.12, 0.2])
    with pytest.raises(InputError):
        timeline_seconds([0, 10, 10], Fraction(1, 1000), 20)


def test_ntsc_film_to_60_fps_has_the_right_count_duration_and_timesteps():
    count = 240  # 10.01 s
    times, end = regular(count, NTSC_FILM)
    plan = plan_output_frames(times, end, Fraction(60), snap_seconds=0.0004)
    assert len(plan) == 601 and abs(len(plan) / 60 - end) <= 1 / 60
    for f in plan:
        k, r = divmod(f.index * 400, 1001)  # output time in source frames: n * 400/1001
        # a source frame lasts 1001/24000 s, so r/24000 s after frame k and (1001 - r)/24000 s before k + 1
        if k >= count - 1 or r / 24000 <= 0.0004:
            assert f.is_copy and f.a == min(k, count - 1)
        elif (1001 - r) / 24000 <= 0.0004:  # within the snap of the next frame: copy it
            assert f.is_copy and f.a == k + 1
        else:
            assert (f.a, f.b) == (k, k + 1) and f.t == pytest.approx(r / 1001, abs=1e-9)
    steps = [f.t for f in plan[1:5]]
    assert steps == pytest.approx([400 / 1001, 800 / 1001, 199 / 1001, 599 / 1001])
    check_invariants(plan, set(range(count)), set())


def test_vfr_timestamps_map_to_a_constant_rate():
    times = [0.0, 0.04, 0.1, 0.12, 0.2]
    plan = plan_output_frames(times, 0.25, Fraction(50))
    assert len(plan) == 13  # 12.5 output frames rounded: within one output frame of 0.25 s
    expected = [(0, 0, 0), (0, 1, 0.5), (1, 1, 0), (1, 2, 1 / 3), (1, 2, 2 / 3), (2, 2, 0), (3, 3, 0),
                (3, 4, 0.25), (3, 4, 0.5), (3, 4, 0.75), (4, 4, 0), (4, 4, 0), (4, 4, 0)]
    assert [(f.a, f.b) for f in plan] == [(a, b) for a, b, _ in expected]
    assert [f.t for f in plan] == pytest.approx([t for _, _, t in expected])
    assert [f.time for f in plan] == pytest.approx([n / 50 for n in range(13)])


def test_never_interpolates_across_a_scene_cut():
    times, end = regular(10, Fraction(24))
    plan = plan_output_frames(times, end, Fraction(96), cuts=[5])
    around = [(f.a, f.b, f.t) for f in plan if 16 <= f.index < 24]
    assert [(a, b) for a, b, _ in around] == [(4, 4), (4, 4), (5, 5), (5, 5), (5, 5), (5, 6), (5, 6), (5, 6)]
    assert [t for _, _, t in around] == pytest.approx([0, 0, 0, 0, 0, 0.25, 0.5, 0.75])
    check_invariants(plan, set(range(10)), {5})


def test_dedup_drops_repeats_but_never_scene_starts_or_kept_frames():
    times, end = regular(10, Fraction(24))
    plan = plan_output_frames(times, end, Fraction(48), cuts=(), duplicates={1, 3, 5, 7})
    kept = {0, 2, 4, 6, 8, 9}
    check_invariants(plan, kept, set())
    assert [(f.a, f.b, f.t) for f in plan[:4]] == [(0, 0, 0.0), (0, 2, 0.25), (0, 2, 0.5), (0, 2, 0.75)]
    plan = plan_output_frames(times, end, Fraction(48), cuts=[3], duplicates={0, 1, 3, 5, 7}, keep=[5])
    check_invariants(plan, {0, 2, 3, 4, 5, 6, 8, 9}, {3})


def test_find_duplicates_on_animation_on_twos():
    rng = np.random.default_rng(0)
    positions = [0, 0, 4, 4, 8, 8, 8, 12, 16, 16]  # on twos, one held for three frames
    stills = [0, 0, 0, 0, 0, 0]  # a real still shot: longer than max_run, kept
    frames = []
    for x in positions + [20] + stills:
        noise = rng.integers(-1, 2, size=(HEIGHT, WIDTH, 3))  # re-encode noise of +-1 level
        frames.append(np.clip(scene(6 + x).astype(int) + noise, 0, 255).astype(np.uint8))
    frames[-6:] = [scene(60).copy() for _ in range(6)]
    # analysis at 32 px wide: 4x4 averaging takes the +-1 noise well under the threshold, as 256 px does at 1080p
    assert find_duplicates(frames, analysis_width=32) == {1, 3, 5, 6, 9}
    assert find_duplicates(frames, max_run=8, analysis_width=32) == {1, 3, 5, 6, 9, 12, 13, 14, 15, 16}
    assert find_duplicates(frames, analysis_width=32, threshold=0.0001) == set()
    with pytest.raises(SettingsError):
        find_duplicates(frames, threshold=1.5)


def test_find_duplicates_compares_with_the_last_kept_frame():
    # a slow fade: 0.0012 of full scale per frame, below the threshold, but it adds up
    frames = [np.full((16, 16, 3), 20000 + 80 * k, np.uint16) for k in range(12)]
    assert find_duplicates(frames, max_run=100) == {1, 3, 5, 7, 9, 11}  # every other frame kept, not just the first


def plans_for(seed: int) -> tuple[list[OutputFrame], list[int], set[int], set[int]]:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(5, 60))
    times = np.cumsum(rng.uniform(0.01, 0.08, size=count)) - 0.01
    cuts = {int(c) for c in rng.choice(np.arange(1, count), size=min(3, count - 1), replace=False)}
    starts = sorted({0, *(int(s) for s in rng.choice(np.arange(1, count), size=min(4, count - 1), replace=False))})
    duplicates = {int(d) for d in rng.choice(np.arange(count), size=count // 4, replace=False)}
    fps = Fraction(int(rng.choice([30, 48, 60, 120])))
    plan = plan_output_frames(times, float(times[-1] + 0.04), fps, cuts=sorted(cuts), duplicates=duplicates,
                              keep=starts)
    kept = set(range(count)) - (duplicates - {0, *cuts, *starts})
    return plan, starts, kept, cuts


@pytest.mark.parametrize("seed", range(8))
def test_random_timelines_keep_the_invariants_and_split_cleanly(seed):
    plan, starts, kept, cuts = plans_for(seed)
    check_invariants(plan, kept, cuts)
    chunks = chunk_output_frames(plan, starts)
    assert [f for chunk in chunks for f in chunk] == plan  # no missing or doubled frame
    ends = [*starts[1:], None]
    for chunk, start, end in zip(chunks, starts, ends, strict=True):
        for f in chunk:
            assert start <= f.a and (end is None or (f.a < end and f.b <= end))


def test_chunk_split_uses_the_next_chunks_first_frame():
    times, end = regular(10, Fraction(24))
    plan = plan_output_frames(times, end, Fraction(48))
    chunks = chunk_output_frames(plan, [0, 5])
    assert [len(c) for c in chunks] == [10, 10] and (chunks[0][-1].a, chunks[0][-1].b) == (4, 5)
    dropped = plan_output_frames(times, end, Fraction(48), duplicates={5})
    with pytest.raises(ChunkError, match="keep="):
        chunk_output_frames(dropped, [0, 5])
    with pytest.raises(ChunkError, match="begin at 0"):
        chunk_output_frames(plan, [1, 5])


def test_plan_rejects_bad_timelines():
    with pytest.raises(InputError):
        plan_output_frames([], 1.0, Fraction(60))
    with pytest.raises(InputError):
        plan_output_frames([0.0, 0.1, 0.1], 1.0, Fraction(60))
    with pytest.raises(InputError):
        plan_output_frames([0.0, 0.1], 0.1, Fraction(60))
    assert len(plan_output_frames([0.0], 0.001, Fraction(60))) == 1  # at least one frame


# ------------------------------------------------------------------------------------------ interpolators


def test_flow_puts_the_square_halfway_and_beats_blend(triplet):
    a, middle, b = triplet
    flow = FlowInterpolator().interpolate(a, b, [0.5])[0]
    blend = BlendInterpolator().interpolate(a, b, [0.5])[0]
    assert flow.shape == a.shape and flow.dtype == np.uint8
    assert abs(centroid_x(flow) - centroid_x(middle)) < 1.0
    assert abs(square_mask(flow).sum() / square_mask(middle).sum() - 1) < 0.15  # one square, not two ghosts
    assert psnr(flow, middle) > psnr(blend, middle) + 8


def test_flow_quarter_steps_move_the_square_evenly(triplet):
    a, _, b = triplet
    outputs = FlowInterpolator().interpolate(a, b, [0.25, 0.5, 0.75])
    positions = [centroid_x(frame) for frame in outputs]
    start, stop = centroid_x(a), centroid_x(b)
    for t, x in zip([0.25, 0.5, 0.75], positions, strict=True):
        assert abs(x - (start + t * (stop - start))) < 1.0


def test_flow_with_a_downscaled_flow_field(triplet):
    a, middle, b = triplet
    out = FlowInterpolator(preset="fast", max_flow_side=64).interpolate(a, b, [0.5])[0]
    assert out.shape == a.shape
    assert psnr(out, middle) > psnr(BlendInterpolator().interpolate(a, b, [0.5])[0], middle) + 3


def test_flow_handles_objects_leaving_and_entering_the_frame():
    leaving = (scene(WIDTH - 24), scene(WIDTH - 4))  # the square slides out through the right border
    entering = (scene(-28), scene(-8))  # and in through the left one
    for a, b in (leaving, entering):
        outputs = FlowInterpolator().interpolate(a, b, [0.1, 0.5, 0.9])
        assert all(o.shape == a.shape and o.dtype == a.dtype for o in outputs)
    corner = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    corner[:8, :8] = 255
    out = FlowInterpolator().interpolate(corner, np.roll(corner, (HEIGHT - 4, WIDTH - 4), axis=(0, 1)), [0.5])
    assert out[0].shape == corner.shape


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (15, 9, 3), (40, 700, 3)])
def test_flow_on_tiny_and_odd_sizes(shape):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    out = FlowInterpolator(max_flow_side=64).interpolate(a, np.roll(a, 1, axis=1), [0.3, 0.7])
    assert [o.shape for o in out] == [shape, shape] and out[0].dtype == np.uint8
    assert np.array_equal(FlowInterpolator().interpolate(a, a, [0.5])[0], a)  # no motion: the frame itself


def test_uint16_frames(triplet):
    a, middle, b = (frame.astype(np.uint16) * 257 for frame in triplet)
    out16 = FlowInterpolator().interpolate(a, b, [0.5])[0]
    assert out16.dtype == np.uint16 and out16.shape == a.shape
    assert abs(centroid_x(out16) - centroid_x(middle)) < 1.0
    assert psnr(out16, middle) > psnr(BlendInterpolator().interpolate(a, b, [0.5])[0], middle) + 8
    blend = BlendInterpolator().interpolate(np.zeros((2, 2, 3), np.uint16), np.full((2, 2, 3), 65535, np.uint16),
                                            [0.5])[0]
    assert blend.dtype == np.uint16 and (blend == 32768).all()


def test_interpolators_reject_bad_input(triplet):
    a, _, b = triplet
    for interpolator in (FlowInterpolator(), BlendInterpolator()):
        with pytest.raises(SettingsError, match="outside"):
            interpolator.interpolate(a, b, [0.0])
        with pytest.raises(SettingsError, match="outside"):
            interpolator.interpolate(a, b, [1.0])
        with pytest.raises(InputError):
            interpolator.interpolate(a, b[:-2], [0.5])
        assert interpolator.interpolate(a, b, []) == []


def test_minterpolate_baseline(triplet, tmp_path):
    a, middle, b = triplet
    interpolator = MinterpolateInterpolator()
    half, tenth = interpolator.interpolate(a, b, [0.5, 0.4])
    assert half.shape == a.shape and half.dtype == np.uint8 and tenth.shape == a.shape
    assert psnr(half, middle) > psnr(BlendInterpolator().interpolate(a, b, [0.5])[0], middle)
    out16 = interpolator.interpolate(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257, [0.5])[0]
    assert out16.dtype == np.uint16
    clip = tmp_path / "clip.nut"
    with ChunkWriter(clip, WIDTH, HEIGHT) as writer:
        for k in range(6):
            writer.write(scene(6 + 4 * k))
    out = minterpolate_video(clip, tmp_path / "out" / "x2.nut", Fraction(2), input_fps=1)
    frames = list(read_frames(out))
    assert len(frames) == 12 and frames[0].shape == (HEIGHT, WIDTH, 3)
    assert [p.name for p in out.parent.iterdir()] == ["x2.nut"]


def test_flow_on_vid4_beats_blend_and_minterpolate(shared_dir):
    folder = shared_dir / "testdata" / "vid4" / "GT" / "calendar"
    if not folder.is_dir():
        pytest.skip("Vid4 calendar is absent")
    a, middle, b = (cv2.imread(str(folder / f"{n:03d}.png"))[..., ::-1].copy() for n in (25, 26, 27))
    crop = (slice(8, -8), slice(8, -8))
    scores = {name: psnr(interpolator.interpolate(a, b, [0.5])[0][crop], middle[crop])
              for name, interpolator in (("flow", FlowInterpolator()), ("blend", BlendInterpolator()),
                                         ("minterpolate", MinterpolateInterpolator()))}
    assert scores["flow"] > scores["blend"] + 2 and scores["flow"] > scores["minterpolate"]


# ------------------------------------------------------------------------------------------ chunk stage


def write_chunks(folder: Path, frames: list[np.ndarray], starts: list[int], bit_depth: int = 8) -> list[Path]:
    paths = []
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(frames)
        path = folder / f"in{k}.nut"
        with ChunkWriter(path, WIDTH, HEIGHT, bit_depth=bit_depth) as writer:
            for frame in frames[start:stop]:
                writer.write(frame)
        paths.append(path)
    return paths


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_interpolate_chunk_end_to_end(tmp_path, bit_depth):
    frames = [scene(6 + 3 * k, pan=k) for k in range(9)]
    if bit_depth == 16:
        frames = [f.astype(np.uint16) * 257 for f in frames]
    starts = [0, 4, 7]
    paths = write_chunks(tmp_path, frames, starts, bit_depth)
    times, end = regular(9, Fraction(24))
    plan = plan_output_frames(times, end, Fraction(60), cuts=[7])
    interpolator = BlendInterpolator()  # exact, so every output can be checked
    outputs, seen = [], []
    for k, (path, chunk_plan) in enumerate(zip(paths, chunk_output_frames(plan, starts), strict=True)):
        nxt = frames[starts[k + 1]] if k + 1 < len(starts) else None
        result = interpolate_chunk(path, tmp_path / f"out{k}.nut", chunk_plan, starts[k], nxt, interpolator,
                                   bit_depth=bit_depth, progress=lambda done, total: seen.append((done, total)))
        assert result.frame_count == len(chunk_plan) and result.bit_depth == bit_depth
        assert result.interpolated == sum(not f.is_copy for f in chunk_plan)
        assert (result.width, result.height) == (WIDTH, HEIGHT)
        outputs += list(read_frames(tmp_path / f"out{k}.nut"))
    assert len(outputs) == len(plan) == math.floor(end * 60 + 0.5)
    for f, image in zip(plan, outputs, strict=True):
        expected = frames[f.a] if f.is_copy else interpolator.interpolate(frames[f.a], frames[f.b], [f.t])[0]
        assert image.dtype == frames[0].dtype and np.array_equal(image, expected), f
    assert seen[-1][0] == seen[-1][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in0.nut", "in1.nut", "in2.nut", "out0.nut",
                                                          "out1.nut", "out2.nut"]


def test_interpolate_chunk_with_flow_and_dedup(tmp_path):
    positions = [0, 0, 8, 8, 16, 16, 24, 24]
    frames = [scene(6 + x) for x in positions]
    duplicates = find_duplicates(frames)
    assert duplicates == {1, 3, 5, 7}
    starts = [0, 4]
    paths = write_chunks(tmp_path, frames, starts)
    times, end = regular(8, Fraction(12))
    plan = plan_output_frames(times, end, Fraction(24), duplicates=duplicates, keep=starts)
    chunks = chunk_output_frames(plan, starts)
    out = []
    for k, path in enumerate(paths):
        nxt = frames[starts[1]] if k == 0 else None
        interpolate_chunk(path, tmp_path / f"out{k}.nut", chunks[k], starts[k], nxt, FlowInterpolator())
        out += list(read_frames(tmp_path / f"out{k}.nut"))
    assert len(out) == 16
    # held frames become smooth motion: the square advances about 2 px per output frame up to the last key
    xs = [centroid_x(frame) for frame in out[:13]]
    assert all(abs((x1 - x0) - 2) < 1.0 for x0, x1 in itertools.pairwise(xs))


def test_interpolate_chunk_leaves_no_file_on_failure(tmp_path):
    frames = [scene(6 + 3 * k) for k in range(6)]
    starts = [0, 3]
    paths = write_chunks(tmp_path, frames, starts)
    times, end = regular(6, Fraction(24))
    chunks = chunk_output_frames(plan_output_frames(times, end, Fraction(48)), starts)
    target = tmp_path / "out" / "chunk.nut"

    def leftovers() -> list[str]:
        return sorted(p.name for p in target.parent.iterdir()) if target.parent.exists() else []

    with pytest.raises(ChunkError, match="needs source frame 3"):  # the next chunk's frame is missing
        interpolate_chunk(paths[0], target, chunks[0], 0, None, BlendInterpolator())
    assert leftovers() == []
    with pytest.raises(ChunkError, match="needs source frame 4"):  # the plan of another chunk
        interpolate_chunk(paths[0], target, chunks[1], 0, frames[3], BlendInterpolator())
    assert leftovers() == []
    with pytest.raises(ChunkError, match="goes back"):
        interpolate_chunk(paths[1], target, chunks[0], 3, None, BlendInterpolator())
    assert leftovers() == []
    with pytest.raises(ChunkError, match="does not match"):
        interpolate_chunk(paths[0], target, chunks[0], 0, frames[3][:-2], BlendInterpolator())

    class Exploding(BlendInterpolator):
        calls = 0

        def interpolate(self, a, b, times):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("model crashed")
            return super().interpolate(a, b, times)

    with pytest.raises(RuntimeError, match="model crashed"):
        interpolate_chunk(paths[0], target, chunks[0], 0, frames[3], Exploding())
    assert leftovers() == []
    interpolate_chunk(paths[0], target, chunks[0], 0, frames[3], BlendInterpolator())
    assert leftovers() == ["chunk.nut"]
