"""The edit: the frame plan (cuts and crossfades), fitting frames to the canvas, depth conversion, and rendering
master chunks from real scene chunks (chunk boundaries, jumps back, mixed depths, failures leave nothing)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import ChunkWriter, count_frames, read_frames
from stages.production.edit import (
    EditFrame,
    SceneChunk,
    SceneMatte,
    fit_to_canvas,
    plan_edit,
    render_edit_chunk,
    render_matte_chunk,
    to_depth,
)

CANVAS = (64, 36)

# ------------------------------------------------------------------------------------------------ plan_edit


def _check_coverage(plan: list[EditFrame], counts: list[int]) -> None:
    """Every frame of every scene is used exactly once, in order, and the indices run 0..n-1."""
    assert [f.index for f in plan] == list(range(len(plan)))
    used: dict[int, list[int]] = {k: [] for k in range(len(counts))}
    for f in plan:
        used[f.a_scene].append(f.a_frame)
        if f.b_scene is not None:
            assert f.b_scene == f.a_scene + 1
            used[f.b_scene].append(f.b_frame)
    assert used == {k: list(range(count)) for k, count in enumerate(counts)}


def test_plan_cuts_only() -> None:
    counts = [3, 4, 2]
    plan = plan_edit(counts, [0, 0, 0])
    assert len(plan) == sum(counts)
    expected = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]
    assert [(f.a_scene, f.a_frame) for f in plan] == expected
    assert all(f.b_scene is None and f.weight == 0.0 for f in plan)
    _check_coverage(plan, counts)


def test_plan_one_scene() -> None:
    plan = plan_edit([5], [0], ["only"])
    assert plan == [EditFrame(i, 0, i) for i in range(5)]


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_plan_crossfade(d: int) -> None:
    counts = [5, 6]
    plan = plan_edit(counts, [0, d])
    assert len(plan) == sum(counts) - d
    _check_coverage(plan, counts)
    before = 5 - d
    assert [(f.a_scene, f.a_frame, f.b_scene) for f in plan[:before]] == [(0, i, None) for i in range(before)]
    fade = plan[before:before + d]
    assert [(f.a_scene, f.a_frame, f.b_scene, f.b_frame) for f in fade] == [(0, 5 - d + j, 1, j) for j in range(d)]
    weights = [f.weight for f in fade]
    assert weights == pytest.approx([(j + 1) / (d + 1) for j in range(d)])
    assert all(0 < w < 1 for w in weights)
    assert all(b > a for a, b in itertools.pairwise(weights))
    after = plan[before + d:]
    assert [(f.a_scene, f.a_frame, f.b_scene) for f in after] == [(1, i, None) for i in range(d, 6)]


def test_plan_crossfades_into_and_out_of_a_middle_scene() -> None:
    counts, overlaps = [4, 6, 5], [0, 2, 3]
    plan = plan_edit(counts, overlaps)
    assert len(plan) == 15 - 5
    _check_coverage(plan, counts)
    rows = [(f.a_scene, f.a_frame, f.b_scene, f.b_frame if f.b_scene is not None else None) for f in plan]
    assert rows == [
        (0, 0, None, None), (0, 1, None, None),
        (0, 2, 1, 0), (0, 3, 1, 1),
        (1, 2, None, None),
        (1, 3, 2, 0), (1, 4, 2, 1), (1, 5, 2, 2),
        (2, 3, None, None), (2, 4, None, None),
    ]
    assert [f.weight for f in plan[2:4]] == pytest.approx([1 / 3, 2 / 3])
    assert [f.weight for f in plan[5:8]] == pytest.approx([1 / 4, 2 / 4, 3 / 4])


def test_plan_crossfade_exactly_as_long_as_the_scene_allows() -> None:
    counts, overlaps = [4, 5, 3], [0, 2, 3]  # the middle scene is all crossfade (2 in, 3 out), the last all fade-in
    plan = plan_edit(counts, overlaps)
    assert len(plan) == 12 - 5
    _check_coverage(plan, counts)
    assert all(f.b_scene is not None for f in plan[2:])
    assert [f.a_scene for f in plan] == [0, 0, 0, 0, 1, 1, 1]

    whole = plan_edit([3, 3], [0, 3])  # the first scene's every frame blends into the second
    assert len(whole) == 3
    assert [(f.a_frame, f.b_frame) for f in whole] == [(0, 0), (1, 1), (2, 2)]
    _check_coverage(whole, [3, 3])


@pytest.mark.parametrize(("counts", "overlaps", "fragments"), [
    ([3, 3], [1, 0], ("opening is the first scene", "use a cut")),
    ([3, 5], [0, 4], ("opening has 3 frames", "need 4 (0 in, 4 out)", "shorten the crossfade")),
    ([5, 4, 5], [0, 2, 3], ("middle has 4 frames", "need 5 (2 in, 3 out)", "shorten")),
    ([5, 4, 2], [0, 1, 3], ("closing has 2 frames", "need 3 (3 in, 0 out)")),
    ([5, 0, 5], [0, 0, 0], ("middle has no frame", "check its sequence")),
    ([5, 4, 5], [0, -1, 0], ("middle", "shorten")),
    ([5, 4], [0, 0, 0], ("one transition per scene",)),
    ([5, 4, 3], [0, 0], ("one transition per scene",)),
    ([], [], ("one transition per scene",)),
])
def test_plan_refusals(counts: list[int], overlaps: list[int], fragments: tuple[str, ...]) -> None:
    names = ["opening", "middle", "closing"][:len(counts)]
    with pytest.raises(SettingsError) as caught:
        plan_edit(counts, overlaps, names)
    message = str(caught.value)
    assert message.startswith("edit: ")
    for fragment in fragments:
        assert fragment in message


def test_plan_default_names() -> None:
    with pytest.raises(SettingsError, match="scene 2 has no frame"):
        plan_edit([2, 0], [0, 0])


# ------------------------------------------------------------------------------------------------ fit_to_canvas


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(("size", "canvas", "rows", "cols"), [
    ((40, 30), (64, 36), (0, 36), (8, 56)),       # 4:3 on 16:9, enlarged: 8-pixel pillars each side
    ((160, 120), (64, 36), (0, 36), (8, 56)),     # 4:3 on 16:9, shrunk
    ((168, 72), (128, 72), (8, 63), (0, 128)),    # 21:9 on 16:9, shrunk: 55 rows, bars of 8 and 9
    ((84, 36), (256, 144), (17, 127), (0, 256)),  # 21:9 on 16:9, enlarged: 110 rows, bars of 17
    ((32, 18), (64, 36), (0, 36), (0, 64)),       # same aspect, enlarged: no bars
    ((128, 72), (64, 36), (0, 36), (0, 64)),      # same aspect, shrunk
])
def test_fit_keeps_the_aspect(dtype: type, size: tuple[int, int], canvas: tuple[int, int], rows: tuple[int, int],
                              cols: tuple[int, int]) -> None:
    peak = np.iinfo(dtype).max
    colour = np.array([0.8, 0.5, 0.25]) * peak
    frame = np.empty((size[1], size[0], 3), dtype=dtype)
    frame[:] = np.rint(colour).astype(dtype)
    out = fit_to_canvas(frame, canvas)
    assert out.shape == (canvas[1], canvas[0], 3) and out.dtype == dtype
    inside = np.zeros(out.shape[:2], dtype=bool)
    inside[rows[0]:rows[1], cols[0]:cols[1]] = True
    assert (out[~inside] == 0).all()
    assert (out[inside] == frame[0, 0]).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_fit_scales_the_picture_not_crops_it(dtype: type) -> None:
    """A 4:3 frame with four coloured quadrants: each quadrant lands in its quarter of the 48x36 picture area."""
    peak = np.iinfo(dtype).max
    frame = np.zeros((120, 160, 3), dtype=dtype)
    quads = {(0, 0): (peak, 0, 0), (0, 1): (0, peak, 0), (1, 0): (0, 0, peak), (1, 1): (peak, peak, peak)}
    for (qr, qc), colour in quads.items():
        frame[qr * 60:(qr + 1) * 60, qc * 80:(qc + 1) * 80] = colour
    for canvas, (left, width, height) in (((64, 36), (8, 48, 36)), ((256, 144), (32, 192, 144))):
        out = fit_to_canvas(frame, canvas)
        for (qr, qc), colour in quads.items():
            row = height // 4 + qr * height // 2
            col = left + width // 4 + qc * width // 2
            assert tuple(out[row, col]) == colour
        assert (out[:, :left] == 0).all() and (out[:, left + width:] == 0).all()
        inner = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if canvas[0] < 160 else
                           cv2.INTER_LANCZOS4)
        np.testing.assert_array_equal(out[:, left:left + width], inner)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_fit_returns_the_frame_itself_when_sizes_match(dtype: type) -> None:
    frame = np.arange(36 * 64 * 3, dtype=dtype).reshape(36, 64, 3)
    assert fit_to_canvas(frame, (64, 36)) is frame


# ------------------------------------------------------------------------------------------------ to_depth


def test_to_depth_8_to_16_is_exact() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    wide = to_depth(values, 16)
    assert wide.dtype == np.uint16
    np.testing.assert_array_equal(wide, values.astype(np.uint32) * 257)
    assert wide.max() == 65535
    assert to_depth(values, 10).dtype == np.uint16
    np.testing.assert_array_equal(to_depth(wide, 8), values)


def test_to_depth_16_to_8_rounds() -> None:
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    narrow = to_depth(values, 8)
    assert narrow.dtype == np.uint8
    np.testing.assert_array_equal(narrow, np.rint(values / 257.0).astype(np.uint8))
    assert narrow[0, 128, 0] == 0 and narrow[0, 129, 0] == 1  # 128/257 < 0.5 < 129/257
    assert narrow.max() == 255


def test_to_depth_same_depth_is_the_frame_itself() -> None:
    eight = np.zeros((2, 2, 3), dtype=np.uint8)
    sixteen = np.zeros((2, 2, 3), dtype=np.uint16)
    assert to_depth(eight, 8) is eight
    assert to_depth(sixteen, 16) is sixteen
    assert to_depth(sixteen, 12) is sixteen


# ------------------------------------------------------------------------------------------------ render_edit_chunk


class Scene:
    """A scene on disk: flat-coloured frames (each frame its own colour) in several chunks, and what a master
    frame made from one of its frames must look like (black bars + the colour in the picture area)."""

    def __init__(self, folder: Path, number: int, count: int, size: tuple[int, int], bits: int,
                 splits: list[int], area: tuple[int, int, int, int]) -> None:
        self.number, self.count, self.size, self.bits, self.area = number, count, size, bits, area
        self.dtype = np.uint16 if bits == 16 else np.uint8
        self.chunks: list[SceneChunk] = []
        bounds = [0, *splits, count]
        folder.mkdir(parents=True, exist_ok=True)
        for start, end in itertools.pairwise(bounds):
            path = folder / f"scene{number}_{start:03d}.nut"
            with ChunkWriter(path, size[0], size[1], bit_depth=bits) as writer:
                for i in range(start, end):
                    writer.write(np.broadcast_to(self.colour(i), (size[1], size[0], 3)).copy())
            self.chunks.append(SceneChunk(start, end - start, str(path)))

    def colour(self, i: int) -> np.ndarray:
        s = self.number
        rgb = np.array([20 + 70 * s, 11 + 17 * i, 240 - 13 * i - 5 * s])
        if self.bits == 16:
            return (rgb * 250 + 7 * i + 3).astype(np.uint16)  # not a multiple of 257: a real 16-bit value
        return rgb.astype(np.uint8)

    def expected(self, i: int, bit_depth: int) -> np.ndarray:
        """The frame fitted to CANVAS at the master's depth, as float64."""
        colour = self.colour(i).astype(np.float64)
        if bit_depth == 16 and self.bits == 8:
            colour = colour * 257
        elif bit_depth == 8 and self.bits == 16:
            colour = np.rint(colour / 257)
        out = np.zeros((CANVAS[1], CANVAS[0], 3))
        top, bottom, left, right = self.area
        out[top:bottom, left:right] = colour
        return out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Scene]:
    """Scene 0: 64x36 (the canvas size) 8-bit, 10 frames in chunks of 3/4/3; scene 1: 48x36 (4:3, pillarboxed)
    16-bit, 9 frames in chunks of 2/5/2; scene 2: 84x36 (21:9, letterboxed) 8-bit, 8 frames in chunks of 4/1/3."""
    root = tmp_path_factory.mktemp("edit_scenes")
    return [
        Scene(root, 0, 10, (64, 36), 8, [3, 7], (0, 36, 0, 64)),
        Scene(root, 1, 9, (48, 36), 16, [2, 7], (0, 36, 8, 56)),
        Scene(root, 2, 8, (84, 36), 8, [4, 5], (4, 31, 0, 64)),
    ]


def _expected(frame: EditFrame, scenes: list[Scene], bit_depth: int) -> np.ndarray:
    image = scenes[frame.a_scene].expected(frame.a_frame, bit_depth)
    if frame.b_scene is None:
        return image
    other = scenes[frame.b_scene].expected(frame.b_frame, bit_depth)
    return image * (1 - frame.weight) + other * frame.weight


def _check_master(path: Path, plan: list[EditFrame], scenes: list[Scene], bit_depth: int) -> None:
    frames = list(read_frames(path))
    assert len(frames) == len(plan) == count_frames(path)
    for frame, out in zip(plan, frames, strict=True):
        assert out.shape == (CANVAS[1], CANVAS[0], 3)
        assert out.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
        expected = _expected(frame, scenes, bit_depth)
        if frame.b_scene is None:
            np.testing.assert_array_equal(out, expected.astype(out.dtype), err_msg=f"master frame {frame.index}")
        else:
            assert np.abs(out.astype(np.float64) - expected).max() <= 1, f"master frame {frame.index}"


def test_render_8bit_scenes_cut_and_crossfade(scenes: list[Scene], tmp_path: Path) -> None:
    used = [scenes[0], scenes[2]]
    plan = plan_edit([s.count for s in used], [0, 3], ["wide", "scope"])
    calls: list[tuple[int, int]] = []
    out = tmp_path / "master" / "edit_000.nut"
    written = render_edit_chunk(plan, [s.chunks for s in used], out, CANVAS, 8, names=["wide", "scope"],
                                progress=lambda done, total: calls.append((done, total)))
    assert written == len(plan) == 10 + 8 - 3
    assert calls == [(n, len(plan)) for n in range(1, len(plan) + 1)]
    _check_master(out, plan, used, 8)
    assert sorted(p.name for p in out.parent.iterdir()) == ["edit_000.nut"]


def test_render_mixed_depths_at_16_bits_in_slices(scenes: list[Scene], tmp_path: Path) -> None:
    """Three scenes (8-bit, 16-bit, 8-bit) with crossfades in and out of the 16-bit one, rendered as three master
    chunks that start and end mid-scene and mid-crossfade."""
    plan = plan_edit([s.count for s in scenes], [0, 2, 3])
    assert len(plan) == 27 - 5
    slices = [plan[:7], plan[7:13], plan[13:]]
    paths = []
    for number, part in enumerate(slices):
        path = tmp_path / f"edit_{number:03d}.nut"
        assert render_edit_chunk(part, [s.chunks for s in scenes], path, CANVAS, 16) == len(part)
        paths.append(path)
    for part, path in zip(slices, paths, strict=True):
        _check_master(path, part, scenes, 16)
    blends = [f for f in plan if f.b_scene is not None]
    assert [(f.a_scene, f.b_scene) for f in blends] == [(0, 1), (0, 1), (1, 2), (1, 2), (1, 2)]


def test_render_16bit_scene_at_8_bits(scenes: list[Scene], tmp_path: Path) -> None:
    plan = plan_edit([scenes[1].count], [0])
    out = tmp_path / "edit.nut"
    render_edit_chunk(plan, [scenes[1].chunks], out, CANVAS, 8)
    _check_master(out, plan, [scenes[1]], 8)


def test_render_reads_back_across_chunks(scenes: list[Scene], tmp_path: Path) -> None:
    """Frames asked for out of scene order (master order kept): the reader jumps back into earlier chunks and
    forward past whole chunks, within a chunk and across chunk boundaries."""
    order = [8, 2, 5, 4, 9, 0, 6, 6, 3, 1, 7]
    plan = [EditFrame(i, 0, n) for i, n in enumerate(order)]
    plan.append(EditFrame(len(plan), 0, 9, 1, 0, 0.5))
    plan.append(EditFrame(len(plan), 0, 1, 1, 8, 0.25))
    out = tmp_path / "jumps.nut"
    render_edit_chunk(plan, [scenes[0].chunks, scenes[1].chunks], out, CANVAS, 16)
    _check_master(out, plan, scenes, 16)


def test_render_refuses_frames_out_of_order(scenes: list[Scene], tmp_path: Path) -> None:
    plan = plan_edit([scenes[0].count], [0])
    out = tmp_path / "folder" / "edit.nut"
    for frames in ([plan[1], plan[0], plan[2]], [plan[0], plan[2], plan[2]]):
        with pytest.raises(ChunkError, match="^edit: the frames are not in master order"):
            render_edit_chunk(frames, [scenes[0].chunks], out, CANVAS, 8)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_render_refuses_no_frames(scenes: list[Scene], tmp_path: Path) -> None:
    with pytest.raises(ChunkError, match="^edit: no frame to write"):
        render_edit_chunk([], [scenes[0].chunks], tmp_path / "edit.nut", CANVAS, 8)


def test_render_frame_beyond_the_chunks_leaves_nothing(scenes: list[Scene], tmp_path: Path) -> None:
    """The plan wants 12 frames of a 10-frame scene: the error comes after frames were written, and neither the
    master nor its temporary file is left in the folder."""
    plan = plan_edit([12], [0])
    folder = tmp_path / "master"
    folder.mkdir()
    out = folder / "edit_000.nut"
    with pytest.raises(ChunkError, match=r"^edit: opening has no frame 10; redo its chunks"):
        render_edit_chunk(plan, [scenes[0].chunks], out, CANVAS, 8, names=["opening"])
    assert not out.exists()
    assert list(folder.iterdir()) == []


def test_render_chunk_shorter_than_listed_leaves_nothing(scenes: list[Scene], tmp_path: Path) -> None:
    """A chunk that holds fewer frames than its SceneChunk says: ChunkError naming the chunk, nothing left."""
    chunks = list(scenes[0].chunks)
    chunks[1] = SceneChunk(chunks[1].start_frame, chunks[1].frame_count + 2, chunks[1].path)  # claims 3..8
    chunks[2] = SceneChunk(chunks[2].start_frame + 2, chunks[2].frame_count, chunks[2].path)
    plan = plan_edit([12], [0])
    folder = tmp_path / "master"
    folder.mkdir()
    with pytest.raises(ChunkError, match=r"^edit: chunk .*scene0_003\.nut of scene 1 ends before frame 7"):
        render_edit_chunk(plan, [chunks], folder / "edit.nut", CANVAS, 16)
    assert list(folder.iterdir()) == []


def test_render_missing_chunk_file_leaves_nothing(scenes: list[Scene], tmp_path: Path) -> None:
    chunks = [*scenes[0].chunks[:2], SceneChunk(7, 3, str(tmp_path / "gone.nut"))]
    folder = tmp_path / "master"
    folder.mkdir()
    with pytest.raises(ChunkError, match="gone.nut"):
        render_edit_chunk(plan_edit([10], [0]), [chunks], folder / "edit.nut", CANVAS, 8)
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------------------------------ render_matte_chunk


def _matte_chunks(folder: Path, size: tuple[int, int], bits: int, counts: list[int],
                  value: callable) -> tuple[SceneChunk, ...]:
    """Alpha chunks of ``size`` (grey in 3 channels): frame ``i`` is ``value(i, x)`` along the row, the same on
    every row."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if bits == 16 else np.uint8
    chunks, start = [], 0
    for count in counts:
        path = folder / f"alpha_{start:03d}.nut"
        with ChunkWriter(path, size[0], size[1], bit_depth=bits) as writer:
            for i in range(start, start + count):
                row = np.array([value(i, x) for x in range(size[0])], dtype=dtype)
                writer.write(np.repeat(np.broadcast_to(row, (size[1], size[0]))[:, :, None], 3, axis=2).copy())
        chunks.append(SceneChunk(start, count, str(path)))
        start += count
    return tuple(chunks)


def _half_opaque(i: int, x: int, width: int = 16, peak: int = 255) -> int:
    """Left half opaque, right half transparent, for every frame."""
    return peak if x < width // 2 else 0


def test_matte_is_resized_to_the_picture_then_fitted_like_it(tmp_path: Path) -> None:
    """A 16x9 matte (left half opaque) of a scene whose picture was upscaled x4 to 64x36 lands on the canvas
    where the picture does: fitted into a 4:3 canvas it is letterboxed, the bars transparent, the left half of
    the picture area opaque and the right half transparent, away from the Lanczos edge; all three channels
    equal."""
    chunks = _matte_chunks(tmp_path / "a", (16, 9), 8, [2, 3], _half_opaque)
    canvas = (48, 36)  # the 64x36 picture fits as 48x27 at rows 4..30
    plan = plan_edit([5], [0])
    out = tmp_path / "matte.nut"
    assert render_matte_chunk(plan, [SceneMatte(chunks, 64, 36)], out, canvas, 8) == 5
    frames = list(read_frames(out))
    assert len(frames) == 5
    for frame in frames:
        assert frame.shape == (36, 48, 3) and frame.dtype == np.uint8
        assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 0] == frame[..., 2]).all()
        alpha = frame[..., 0].astype(int)
        assert alpha[:4].max() == 0 and alpha[31:].max() == 0  # the letterbox bars are transparent
        assert alpha[4:31, :12].min() >= 250  # the left of the picture is opaque
        assert alpha[4:31, 36:].max() <= 5  # the right is transparent
        assert alpha[4:31, :22].min() >= 225  # Lanczos rings a little beside the edge, no more
        row = alpha[15]
        crossing = int(np.argmax(row < 128))
        assert 23 <= crossing <= 25  # the edge is where the picture's middle is (column 24)
        assert (alpha[4:31] == row).all()  # every row of the picture area the same


def test_matte_of_a_scene_without_alpha_is_opaque_on_transparent_bars(scenes: list[Scene], tmp_path: Path) -> None:
    """Scene 1 (4:3, pillarboxed on the 16:9 canvas) has no alpha: its matte is full in the picture area, 0 in
    the bars; at 16 bits full is 65535."""
    plan = plan_edit([scenes[1].count], [0])
    out = tmp_path / "opaque.nut"
    render_matte_chunk(plan, [SceneMatte((), 48, 36)], out, CANVAS, 16)
    top, bottom, left, right = scenes[1].area
    for frame in read_frames(out):
        assert frame.dtype == np.uint16
        assert (frame[top:bottom, left:right] == 65535).all()
        assert frame[:, :left].max() == 0 and frame[:, right:].max() == 0


def test_matte_crossfade_mixes_with_the_pictures_weights(tmp_path: Path) -> None:
    """An 8-bit alpha scene (alpha 40 + 10*i everywhere) crossfades into an opaque scene over 3 frames, rendered
    at 16 bits in two slices: each blended frame is (1-w)*a + w*65535, and the mattes of the pictures' frames
    follow the edit plan frame for frame."""
    chunks = _matte_chunks(tmp_path / "a", (32, 18), 8, [4, 4], lambda i, x: 40 + 10 * i)
    plan = plan_edit([8, 5], [0, 3])
    mattes = [SceneMatte(chunks, 64, 36), SceneMatte((), 64, 36)]
    got = []
    for number, part in enumerate([plan[:6], plan[6:]]):
        out = tmp_path / f"m{number}.nut"
        render_matte_chunk(part, mattes, out, CANVAS, 16, names=["keyed", "plate"])
        got.extend(read_frames(out))
    assert len(got) == len(plan) == 10

    def alpha_of(scene: int, frame: int) -> float:
        return (40 + 10 * frame) * 257.0 if scene == 0 else 65535.0

    for frame, image in zip(plan, got, strict=True):
        want = alpha_of(frame.a_scene, frame.a_frame)
        if frame.b_scene is not None:
            want = want * (1 - frame.weight) + alpha_of(frame.b_scene, frame.b_frame) * frame.weight
        assert np.abs(image.astype(np.float64) - want).max() <= 1, f"master frame {frame.index}"


def test_matte_refusals_leave_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "master"
    folder.mkdir()
    gone = (SceneChunk(0, 3, str(tmp_path / "gone_alpha.nut")),)
    with pytest.raises(ChunkError, match="gone_alpha.nut"):
        render_matte_chunk(plan_edit([3], [0]), [SceneMatte(gone, 64, 36)], folder / "m.nut", CANVAS, 8)
    short = _matte_chunks(tmp_path / "s", (16, 9), 8, [2], _half_opaque)
    with pytest.raises(ChunkError, match="^edit: the alpha of keyed has no frame 2"):
        render_matte_chunk(plan_edit([3], [0]), [SceneMatte(short, 64, 36)], folder / "m.nut", CANVAS, 8,
                           names=["keyed"])
    with pytest.raises(SettingsError, match="picture size of 0x36"):
        render_matte_chunk(plan_edit([3], [0]), [SceneMatte((), 0, 36)], folder / "m.nut", CANVAS, 8)
    assert list(folder.iterdir()) == []
