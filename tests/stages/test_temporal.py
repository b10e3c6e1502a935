"""Temporal coherence: identity, motion-gated EMA, flow-guided blending without ghosting, chunk continuity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.ops.cohere.temporal import (
    SEEDVR2_UNAVAILABLE,
    TemporalFilter,
    TemporalSettings,
    available_methods,
    choose_method,
    cohere_chunk,
    last_frame,
)
from stages.quality.metrics import mean_warp_error, psnr

SCALE = 4


def _camera(photo: np.ndarray, t: int, width: int, height: int, dx: float, dy: float) -> np.ndarray:
    """A ``height``x``width`` view of ``photo`` after the camera moved ``t*(dx, dy)`` pixels (sub-pixel)."""
    m = np.float32([[1, 0, -(60 + dx * t)], [0, 1, -(80 + dy * t)]])
    return cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _degrade(gt: np.ndarray, rng: np.random.Generator, noise: float, flicker: float) -> np.ndarray:
    """What an image upscaler adds frame by frame: noise-like detail and a small brightness wobble."""
    gain = 1.0 + flicker * rng.uniform(-1.0, 1.0)
    noisy = gt.astype(np.float32) * gain + rng.normal(0.0, noise, gt.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def panning_sequence(n: int = 10, width: int = 192, height: int = 144, dx: float = 1.3, dy: float = 0.6,
                     noise: float = 5.0, flicker: float = 0.03, seed: int = 0):
    """Clean ground truth, its x4 area-downscaled source, and 'upscaled' frames = truth + noise + flicker."""
    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    gts = [_camera(photo, t, width, height, dx, dy) for t in range(n)]
    lrs = [cv2.resize(g, (width // SCALE, height // SCALE), interpolation=cv2.INTER_AREA) for g in gts]
    hrs = [_degrade(g, rng, noise, flicker) for g in gts]
    return gts, lrs, hrs


def square_sequence(n: int = 8, width: int = 192, height: int = 144, speed: tuple[int, int] = (12, 4),
                    size: int = 36, seed: int = 1):
    """A yellow square moving fast over a slowly panning photo; also the square's box per frame."""
    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    gts, boxes = [], []
    for t in range(n):
        gt = _camera(photo, t, width, height, 1.0, 0.0)
        x0, y0 = 16 + speed[0] * t, 24 + speed[1] * t
        gt[y0:y0 + size, x0:x0 + size] = (250, 240, 30)
        gts.append(gt)
        boxes.append((x0, y0, size))
    lrs = [cv2.resize(g, (width // SCALE, height // SCALE), interpolation=cv2.INTER_AREA) for g in gts]
    hrs = [_degrade(g, rng, 4.0, 0.02) for g in gts]
    return gts, lrs, hrs, boxes


def run(settings: TemporalSettings, hrs, lrs, cuts=()) -> list[np.ndarray]:
    filt = TemporalFilter(settings)
    return [filt.process(h, lr, cut=i in cuts) for i, (h, lr) in enumerate(zip(hrs, lrs, strict=True))]


def write_chunk(path, frames, bit_depth: int = 8) -> None:
    with ChunkWriter(path, frames[0].shape[1], frames[0].shape[0], bit_depth) as writer:
        for frame in frames:
            writer.write(frame)


@pytest.fixture(scope="module")
def panning():
    return panning_sequence()


# -- settings -------------------------------------------------------------------------------------------------


def test_seedvr2_is_listed_but_refused_with_the_reason():
    methods = available_methods()
    assert set(methods) == {"none", "ema", "flow", "auto", "seedvr2"}
    assert methods["seedvr2"] == SEEDVR2_UNAVAILABLE and "GPU" in SEEDVR2_UNAVAILABLE and "flow" in SEEDVR2_UNAVAILABLE
    assert all(reason is None for name, reason in methods.items() if name != "seedvr2")
    with pytest.raises(SettingsError, match="seedvr2 is not available.*diffusion.*use flow"):
        TemporalSettings(method="seedvr2").validate()
    with pytest.raises(SettingsError, match="seedvr2"):
        choose_method("seedvr2", "cuda", 1920, 1080, 64 << 30)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "magic"}, "unknown method"),
    ({"method": "flow", "strength": 1.0}, "strength"),
    ({"method": "ema", "ema_alpha": -0.1}, "ema_alpha"),
    ({"method": "flow", "source_error_low": 0.1, "source_error_high": 0.05}, "source_error_low"),
    ({"method": "flow", "flow_preset": "slowest"}, "preset"),
])
def test_invalid_settings(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        TemporalSettings(**kwargs).validate()


def test_auto_must_be_resolved_before_filtering():
    with pytest.raises(SettingsError, match="choose_method"):
        TemporalFilter(TemporalSettings(method="auto"))


def test_choose_method():
    assert choose_method("ema", "cpu", 640, 360, 1 << 30)[0] == "ema"
    method, reason = choose_method("auto", "cpu", 1920, 1080, 256 << 20)
    assert method == "flow" and "auto" in reason  # up to 4K memory is never a reason to give up flow
    assert choose_method("auto", "cuda", 7680, 4320, 64 << 30)[0] == "flow"
    method, reason = choose_method("auto", "cuda", 7680, 4320, 4 << 30)
    assert method == "ema" and "flow would need" in reason
    method, reason = choose_method("auto", "cpu", 7680, 4320, 256 << 20)
    assert method == "ema" and "swapping" in reason  # never none, even when short of memory


# -- methods ------------------------------------------------------------------------------------------------------


def test_none_is_identity(panning):
    _gts, lrs, hrs = panning
    outs = run(TemporalSettings("none"), hrs, lrs)
    assert all(np.array_equal(o, h) for o, h in zip(outs, hrs, strict=True))


def test_first_frame_passes_through(panning):
    _gts, lrs, hrs = panning
    for method in ("ema", "flow"):
        assert np.array_equal(TemporalFilter(TemporalSettings(method)).process(hrs[0], lrs[0]), hrs[0])


def test_ema_smooths_static_content_and_leaves_moving_content():
    rng = np.random.default_rng(5)
    background = cv2.resize(data.astronaut(), (160, 128), interpolation=cv2.INTER_AREA)
    gts, lrs = [], []
    for t in range(8):
        gt = background.copy()
        gt[40:72, 8 + 12 * t:40 + 12 * t] = (250, 240, 30)  # moving square; the rest never moves
        gts.append(gt)
        lrs.append(cv2.resize(gt, (40, 32), interpolation=cv2.INTER_AREA))
    hrs = [_degrade(g, rng, 6.0, 0.0) for g in gts]
    outs = run(TemporalSettings("ema"), hrs, lrs)
    static = np.ones((128, 160), bool)
    static[24:88, :] = False  # rows the square crosses, with a margin for the gate's dilation
    noise_in = np.std([(h.astype(float) - g)[static] for h, g in zip(hrs[1:], gts[1:])])
    noise_out = np.std([(o.astype(float) - g)[static] for o, g in zip(outs[1:], gts[1:])])
    assert noise_out < 0.8 * noise_in
    for t in range(1, 8):  # where the square arrived or left (the source changed): the upscaled frame, untouched
        x_prev, x_cur = 8 + 12 * (t - 1), 8 + 12 * t
        for moving in (np.s_[40:72, x_prev:x_cur], np.s_[40:72, x_prev + 32:x_cur + 32]):
            assert np.array_equal(outs[t][moving], hrs[t][moving])


def test_flow_reduces_warping_error_without_costing_psnr(panning):
    gts, lrs, hrs = panning
    outs = run(TemporalSettings("flow"), hrs, lrs)
    before, after = mean_warp_error(hrs, lrs), mean_warp_error(outs, lrs)
    psnr_before = np.mean([psnr(g, h) for g, h in zip(gts, hrs, strict=True)])
    psnr_after = np.mean([psnr(g, o) for g, o in zip(gts, outs, strict=True)])
    assert after <= 0.7 * before  # measured: 55% lower
    assert psnr_after >= psnr_before - 0.3  # measured: 2.6 dB higher (the noise is averaged away)


def test_flow_does_not_ghost_a_moving_square():
    _gts, lrs, hrs, boxes = square_sequence()
    outs = run(TemporalSettings("flow"), hrs, lrs)
    height, width = hrs[0].shape[:2]
    for t in range(1, len(outs)):
        (xp, yp, size), (xc, yc, _) = boxes[t - 1], boxes[t]
        was, now = np.zeros((height, width), bool), np.zeros((height, width), bool)
        was[yp:yp + size, xp:xp + size] = True
        now[yc:yc + size, xc:xc + size] = True
        changed = was ^ now  # uncovered background and newly covered square: nothing to borrow from t-1
        diff = np.abs(outs[t].astype(int) - hrs[t].astype(int)).max(axis=2)
        assert diff[changed].max() <= 16, t  # a ghost of the yellow square would differ by 100+ levels
        # the square's edges stay as sharp as in the upscaled frame
        row = yc + size // 2
        edge_out = np.abs(np.diff(outs[t][row, xc - 3:xc + 3].astype(int), axis=0)).max()
        edge_hr = np.abs(np.diff(hrs[t][row, xc - 3:xc + 3].astype(int), axis=0)).max()
        assert edge_out >= 0.9 * edge_hr


def test_flow_follows_a_change_only_the_model_made(panning):
    _gts, lrs, hrs = panning
    changed = [h.copy() for h in hrs]
    for frame in changed[4:]:  # from frame 4 on the model renders a patch brighter; the source is unchanged
        frame[40:80, 60:120] = np.clip(frame[40:80, 60:120].astype(int) + 60, 0, 255)
    outs = run(TemporalSettings("flow"), changed, lrs)
    patch = np.s_[44:76, 64:116]
    lag = np.abs(outs[4][patch].astype(int) - changed[4][patch].astype(int)).mean()
    assert lag < 6  # blending the old patch in at 0.6 would leave it ~35 levels behind


def test_ema_and_flow_keep_16_bit_frames(panning):
    _gts, lrs, hrs = panning
    hrs16 = [h.astype(np.uint16) * 257 for h in hrs[:3]]
    for method in ("ema", "flow"):
        outs = run(TemporalSettings(method), hrs16, lrs[:3])
        assert all(o.dtype == np.uint16 and o.shape == hrs16[0].shape for o in outs)
        assert abs(float(outs[2].mean()) - float(hrs16[2].mean())) < 0.02 * 65535


# -- state, cuts, chunks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ema", "flow"])
def test_two_chunks_with_carried_state_equal_one_pass(panning, method):
    _gts, lrs, hrs = panning
    settings = TemporalSettings(method)
    whole = run(settings, hrs, lrs)
    first = TemporalFilter(settings)
    part1 = [first.process(h, lr) for h, lr in zip(hrs[:4], lrs[:4], strict=True)]
    resumed = TemporalFilter.from_state(settings, part1[-1], lrs[3])  # the stored last frames of chunk 1
    part2 = [resumed.process(h, lr) for h, lr in zip(hrs[4:], lrs[4:], strict=True)]
    assert all(np.array_equal(a, b) for a, b in zip(whole, part1 + part2, strict=True))
    again = TemporalFilter.from_state(settings, *first.state())
    assert np.array_equal(again.process(hrs[4], lrs[4]), whole[4])


def test_without_source_frames_state_resumes_from_the_previous_upscaled_frame(panning):
    _gts, _lrs, hrs = panning
    settings = TemporalSettings("flow")
    whole = run(settings, hrs, [None] * len(hrs))
    assert not np.array_equal(whole[3], hrs[3])  # it did blend
    resumed = TemporalFilter.from_state(settings, whole[4], prev_hr=hrs[4])
    assert all(np.array_equal(resumed.process(h), w) for h, w in zip(hrs[5:], whole[5:], strict=True))


def test_cut_resets_the_state(panning):
    _gts, lrs, hrs = panning
    settings = TemporalSettings("flow")
    other = [np.ascontiguousarray(h[::-1]) for h in hrs[:5]]  # another scene
    other_lr = [np.ascontiguousarray(lr[::-1]) for lr in lrs[:5]]
    joined = run(settings, hrs[:5] + other, lrs[:5] + other_lr, cuts={5})
    alone = run(settings, other, other_lr)
    assert np.array_equal(joined[5], other[0])
    assert all(np.array_equal(a, b) for a, b in zip(joined[5:], alone, strict=True))
    filt = TemporalFilter(settings)
    filt.process(hrs[0], lrs[0])
    filt.reset()
    assert filt.state() == (None, None) and filt.resets == 1


def test_size_change_needs_a_cut(panning):
    _gts, lrs, hrs = panning
    filt = TemporalFilter(TemporalSettings("flow"))
    filt.process(hrs[0], lrs[0])
    with pytest.raises(ValueError, match="cut=True"):
        filt.process(np.ascontiguousarray(hrs[1][:-4]), lrs[1])


def test_cohere_chunk_matches_in_memory_and_continues_across_chunks(tmp_path, panning):
    _gts, lrs, hrs = panning
    settings = TemporalSettings("flow")
    whole = run(settings, hrs, lrs)
    for name, frames in (("hr1", hrs[:5]), ("hr2", hrs[5:]), ("lr1", lrs[:5]), ("lr2", lrs[5:])):
        write_chunk(tmp_path / f"{name}.nut", frames)
    seen = []
    first = cohere_chunk(tmp_path / "hr1.nut", tmp_path / "lr1.nut", tmp_path / "out1.nut", TemporalFilter(settings),
                         progress=lambda done, total: seen.append(done))
    assert (first.frame_count, first.width, first.height, first.bit_depth) == (5, 192, 144, 8)
    assert seen == [1, 2, 3, 4, 5] and first.blended_fraction > 0.2
    # a later run (another process) resumes from what chunk 1 stored
    resumed = TemporalFilter.from_state(settings, last_frame(tmp_path / "out1.nut"), last_frame(tmp_path / "lr1.nut"))
    cohere_chunk(tmp_path / "hr2.nut", tmp_path / "lr2.nut", tmp_path / "out2.nut", resumed)
    got = list(read_frames(tmp_path / "out1.nut")) + list(read_frames(tmp_path / "out2.nut"))
    assert all(np.array_equal(a, b) for a, b in zip(whole, got, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr1.nut", "hr2.nut", "lr1.nut", "lr2.nut",
                                                           "out1.nut", "out2.nut"]


def test_cohere_chunk_without_source_and_with_a_cut(tmp_path, panning):
    _gts, _lrs, hrs = panning
    write_chunk(tmp_path / "hr.nut", hrs[:6])
    settings = TemporalSettings("flow")
    result = cohere_chunk(tmp_path / "hr.nut", None, tmp_path / "out.nut", TemporalFilter(settings),
                          cuts_in_chunk={3})
    assert result.frame_count == 6
    expected = run(settings, hrs[:6], [None] * 6, cuts={3})
    got = list(read_frames(tmp_path / "out.nut"))
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
    assert np.array_equal(got[3], hrs[3]) and not np.array_equal(got[2], hrs[2])


def test_cohere_chunk_16_bit(tmp_path, panning):
    _gts, lrs, hrs = panning
    hrs16 = [h.astype(np.uint16) * 257 for h in hrs[:3]]
    write_chunk(tmp_path / "hr.nut", hrs16, bit_depth=16)
    write_chunk(tmp_path / "lr.nut", lrs[:3])
    result = cohere_chunk(tmp_path / "hr.nut", tmp_path / "lr.nut", tmp_path / "out.nut",
                          TemporalFilter(TemporalSettings("ema")), bit_depth=16)
    assert result.bit_depth == 16 and next(read_frames(tmp_path / "out.nut")).dtype == np.uint16
    with pytest.raises(ChunkError, match="bit depth"):
        cohere_chunk(tmp_path / "hr.nut", None, tmp_path / "bad.nut", TemporalFilter(TemporalSettings("ema")))
    assert not (tmp_path / "bad.nut").exists()


def test_cohere_chunk_leaves_no_partial_file(tmp_path, panning):
    _gts, lrs, hrs = panning
    write_chunk(tmp_path / "hr.nut", hrs[:5])
    write_chunk(tmp_path / "lr.nut", lrs[:4])
    filt = TemporalFilter(TemporalSettings("flow"))
    with pytest.raises(ChunkError, match="5 frames but source chunk .* has 4"):
        cohere_chunk(tmp_path / "hr.nut", tmp_path / "lr.nut", tmp_path / "out.nut", filt)
    write_chunk(tmp_path / "lr.nut", lrs[:5])

    def fail(done: int, _total: int) -> None:
        if done == 3:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        cohere_chunk(tmp_path / "hr.nut", tmp_path / "lr.nut", tmp_path / "out.nut", filt, progress=fail)
    with pytest.raises(ChunkError, match="manifest says 7"):
        cohere_chunk(tmp_path / "hr.nut", tmp_path / "lr.nut", tmp_path / "out.nut", filt, expected_frames=7)
    with pytest.raises(ChunkError, match="cannot open"):
        cohere_chunk(tmp_path / "missing.nut", None, tmp_path / "out.nut", filt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.nut", "lr.nut"]


def test_last_frame_reads_the_last_frame(tmp_path, panning):
    _gts, _lrs, hrs = panning
    write_chunk(tmp_path / "c.nut", hrs[:4])
    assert np.array_equal(last_frame(tmp_path / "c.nut"), hrs[3])
    with pytest.raises(ChunkError):
        last_frame(tmp_path / "missing.nut")
