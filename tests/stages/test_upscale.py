"""Tiling, scale plans, precision and out-of-memory back-off, on tiny random networks (no weights needed)."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch
from spandrel.architectures.Compact import CompactArch

from stages.device import DeviceChoice
from stages.errors import ChunkError, DeviceOutOfMemoryError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.ops.upscale.engine import (
    ScaleStep,
    Upscaler,
    UpscaleSettings,
    describe_plan,
    output_size,
    plan_scale,
    upscale_chunk,
)

CPU32 = DeviceChoice("cpu", "fp32", "test cpu", 2, None, "test")


def tiny_compact(scale: int = 4, seed: int = 0):
    """A randomly initialised SRVGGNetCompact (8 features, 2 convs): receptive field radius 4 px."""
    torch.manual_seed(seed)
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=scale)
    return spandrel.ModelLoader().load_from_state_dict(net.state_dict())


def frames(count: int, height: int, width: int, dtype=np.uint8, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    return [(rng.random((height, width, 3)) * peak).astype(dtype) for _ in range(count)]


def test_detects_compact():
    assert isinstance(tiny_compact().architecture, CompactArch)


@pytest.mark.parametrize(
    ("target", "model", "plan"),
    [
        (4, 4, "model x4"),
        (2, 4, "model x4 -> resize x1/2"),
        (8, 4, "model x4 -> resize x1/2 -> model x4"),
        (8, 2, "model x2 -> model x2 -> model x2"),
        (4, 2, "model x2 -> model x2"),
        (2, 2, "model x2"),
    ],
)
def test_plan_scale(target, model, plan):
    assert describe_plan(plan_scale(target, model)) == plan


def test_plan_scale_refuses_non_sr_model():
    with pytest.raises(SettingsError, match="upscaling model"):
        plan_scale(4, 1)


@pytest.mark.parametrize("scale", [0, 3, 16, -4])
def test_settings_refuse_impossible_scale(scale):
    with pytest.raises(SettingsError, match="use 2, 4 or 8"):
        UpscaleSettings(scale=scale).validate()


def test_scale_one_means_no_upscaling():
    UpscaleSettings(scale=1).validate()


def test_settings_refuse_bad_tile():
    with pytest.raises(SettingsError, match="use 32|use 64"):
        UpscaleSettings(tile=30).validate()
    with pytest.raises(SettingsError, match="overlap"):
        UpscaleSettings(tile=64, tile_overlap=40).validate()
    UpscaleSettings(tile=128, tile_overlap=16).validate()


def test_output_size_and_8k_limit():
    assert output_size(480, 270, 4) == (1920, 1080)
    assert output_size(1920, 1080, 4) == (7680, 4320)
    with pytest.raises(SettingsError, match="8K.*use --scale 4"):
        output_size(1920, 1080, 8)
    with pytest.raises(SettingsError, match="8K"):
        output_size(4000, 3000, 2)
    assert output_size(1080, 1920, 2) == (2160, 3840)  # portrait: long side 3840


@pytest.mark.parametrize(("height", "width"), [(70, 101), (33, 17), (64, 64)])
def test_output_shape_and_dtype(height, width):
    up = Upscaler(tiny_compact(), CPU32)
    out = up.upscale(frames(2, height, width), plan_scale(4, 4))
    assert len(out) == 2
    assert out[0].shape == (height * 4, width * 4, 3) and out[0].dtype == np.uint8


def test_16bit_frames_stay_16bit():
    up = Upscaler(tiny_compact(), CPU32)
    out = up.upscale(frames(1, 20, 30, np.uint16), plan_scale(2, 4))
    assert out[0].shape == (40, 60, 3) and out[0].dtype == np.uint16
    assert out[0].max() > 255  # real 16-bit range, not 8-bit values in a 16-bit container


def test_tiling_is_seamless():
    """Tiles with overlap >= 4x the receptive field reproduce the whole-frame result (rounding aside)."""
    model = tiny_compact()
    clip = frames(2, 150, 203)
    whole = Upscaler(model, CPU32, tile=0).upscale(clip, plan_scale(4, 4))
    tiled_up = Upscaler(model, CPU32, tile=64, overlap=16)
    tiled = tiled_up.upscale(clip, plan_scale(4, 4))
    assert tiled_up.model_calls > 2  # it really tiled
    for a, b in zip(whole, tiled):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_x8_from_x4_model_is_two_passes():
    up = Upscaler(tiny_compact(), CPU32)
    out = up.upscale(frames(1, 12, 10), plan_scale(8, 4))
    assert out[0].shape == (96, 80, 3)
    assert up.model_calls == 2


def test_bf16_autocast_close_to_fp32():
    model = tiny_compact()
    clip = frames(1, 24, 24)
    ref = Upscaler(model, CPU32).upscale(clip, plan_scale(4, 4))[0].astype(float)
    bf = Upscaler(tiny_compact(), DeviceChoice("cpu", "bf16", "cpu", 2, None, "t")).upscale(clip, plan_scale(4, 4))[0]
    mse = np.mean((ref - bf.astype(float)) ** 2)
    psnr = 10 * np.log10(255**2 / max(mse, 1e-12))
    assert psnr > 35


class _OomOnLargeInputs(torch.nn.Module):
    """Wraps a network and raises CUDA-style OOM for inputs with more than ``limit`` pixels or batch > 1."""

    def __init__(self, inner, limit: int):
        super().__init__()
        self.inner, self.limit = inner, limit
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape))
        if x.shape[0] > 1 or x.shape[2] * x.shape[3] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_backs_off_batch_then_tile():
    descriptor = tiny_compact()
    wrapper = _OomOnLargeInputs(descriptor.model, limit=80 * 80)
    descriptor._model = wrapper
    up = Upscaler(descriptor, CPU32, tile=0, batch=2)
    up.tile = 256
    out = up.upscale(frames(2, 200, 180), plan_scale(4, 4))
    assert out[0].shape == (800, 720, 3)
    assert up.batch == 1 and up.tile <= 80
    # the result equals an unconstrained run (back-off does not change the picture beyond rounding)
    ref = Upscaler(tiny_compact(), CPU32, tile=64, overlap=16).upscale(frames(2, 200, 180), plan_scale(4, 4))
    assert np.abs(ref[0].astype(int) - out[0].astype(int)).max() <= 1


def test_out_of_memory_at_floor_says_what_to_do():
    descriptor = tiny_compact()
    descriptor._model = _OomOnLargeInputs(descriptor.model, limit=10)
    up = Upscaler(descriptor, CPU32, tile=128)
    with pytest.raises(DeviceOutOfMemoryError, match="smaller model|--device cpu"):
        up.upscale(frames(1, 200, 200), plan_scale(4, 4))


def test_other_errors_are_not_swallowed():
    descriptor = tiny_compact()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch in layer 3")

    descriptor._model = Broken()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        Upscaler(descriptor, CPU32).upscale(frames(1, 16, 16), plan_scale(4, 4))


def test_upscale_chunk_roundtrip(tmp_path):
    src = tmp_path / "in.nut"
    clip = frames(5, 18, 26)
    with ChunkWriter(src, 26, 18, 8) as writer:
        for frame in clip:
            writer.write(frame)
    up = Upscaler(tiny_compact(), CPU32, batch=2)
    seen = []
    result = upscale_chunk(src, tmp_path / "out.nut", up, plan_scale(4, 4), expected_frames=5,
                           progress=lambda done, total: seen.append((done, total)))
    assert (result.frame_count, result.width, result.height) == (5, 104, 72)
    assert result.model_calls == 3  # batches of 2, 2, 1
    assert seen[-1] == (5, 5)
    direct = Upscaler(tiny_compact(), CPU32).upscale(clip, plan_scale(4, 4))
    for a, b in zip(read_frames(tmp_path / "out.nut"), direct):
        assert np.array_equal(a, b)


def test_upscale_chunk_frame_count_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / "in.nut"
    with ChunkWriter(src, 8, 8, 8) as writer:
        for frame in frames(2, 8, 8):
            writer.write(frame)
    out = tmp_path / "out.nut"
    with pytest.raises(ChunkError, match="manifest says 3"):
        upscale_chunk(src, out, Upscaler(tiny_compact(), CPU32), plan_scale(4, 4), expected_frames=3)
    assert not out.exists()


def test_scale_step_is_value():
    assert plan_scale(4, 4) == (ScaleStep(False, 4),)


def test_upscale_chunk_writer_failure_surfaces_and_leaves_nothing(tmp_path, monkeypatch):
    """A write error in the background writer thread reaches the caller; no partial chunk remains."""
    src = tmp_path / "in.nut"
    with ChunkWriter(src, 8, 8, 8) as writer:
        for frame in frames(6, 8, 8):
            writer.write(frame)
    written = []

    def failing_write(self, frame):
        written.append(1)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return original(self, frame)

    original = ChunkWriter.write
    monkeypatch.setattr(ChunkWriter, "write", failing_write)
    out = tmp_path / "out.nut"
    with pytest.raises(OSError, match="No space left"):
        upscale_chunk(src, out, Upscaler(tiny_compact(), CPU32, batch=1), plan_scale(4, 4), expected_frames=6)
    assert not out.exists()


def test_upscale_chunk_model_failure_stops_the_writer(tmp_path):
    """A model error mid-chunk stops the writer thread and removes the partial output."""
    src = tmp_path / "in.nut"
    with ChunkWriter(src, 8, 8, 8) as writer:
        for frame in frames(4, 8, 8):
            writer.write(frame)
    up = Upscaler(tiny_compact(), CPU32, batch=1)
    calls = []
    original = up.upscale

    def flaky(batch, steps):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("device lost")
        return original(batch, steps)

    up.upscale = flaky
    out = tmp_path / "out.nut"
    with pytest.raises(RuntimeError, match="device lost"):
        upscale_chunk(src, out, up, plan_scale(4, 4), expected_frames=4)
    assert not out.exists()
    assert not any(t.name == "chunk-write" and t.is_alive() for t in __import__("threading").enumerate())


def test_compile_unavailable_or_failing_falls_back_to_eager(monkeypatch, caplog):
    """--compile never breaks a run: torch.compile missing, or failing on the first call, means eager."""
    clip = frames(1, 12, 12)
    expected = Upscaler(tiny_compact(), CPU32).upscale(clip, plan_scale(4, 4))

    def no_compile(*_a, **_k):
        raise RuntimeError("no inductor here")

    monkeypatch.setattr(torch, "compile", no_compile)
    up = Upscaler(tiny_compact(), CPU32, compile=True)
    assert not up.compiled
    assert np.array_equal(up.upscale(clip, plan_scale(4, 4))[0], expected[0])

    def broken_compile(fn, **_k):
        def call(*_a, **_kw):
            raise RuntimeError("C++ compile failed: no cl.exe")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    up = Upscaler(tiny_compact(), CPU32, compile=True)
    assert up.compiled
    assert np.array_equal(up.upscale(clip, plan_scale(4, 4))[0], expected[0])
    assert not up.compiled and "running eagerly" in caplog.text


def test_settings_refuse_unknown_backend_and_compile_with_ncnn():
    with pytest.raises(SettingsError, match="unknown backend"):
        UpscaleSettings(backend="tensorrt").validate()
    with pytest.raises(SettingsError, match="torch backend only"):
        UpscaleSettings(backend="ncnn", compile=True).validate()
