"""A second inference backend on ncnn (CPU or Vulkan GPU) for Real-ESRGAN Compact and RRDBNet models.

``NcnnUpscaler`` has the duck-typed interface of :class:`stages.ops.upscale.engine.Upscaler` that ``upscale_chunk`` uses
(``scale``, ``batch``, ``tile``, ``overlap``, ``precision``, ``device``, ``model_calls``, ``model_pass``,
``upscale``), tiles with the same overlap and complementary ramps, and runs scale plans through the shared
:func:`stages.ops.upscale.engine.apply_scale_plan`, so resize steps are identical in both backends.

Where ncnn wins: on a CPU without native bf16, ncnn fp32 (Winograd convolutions, packed layout) is faster than
PyTorch fp32; with a Vulkan GPU that PyTorch cannot use (AMD/Intel on Linux and Windows without ROCm/XPU),
ncnn is the only GPU path. ``choose_backend`` decides for ``--backend auto`` and says why.

ncnn is imported lazily, so this module imports (and ``choose_backend`` answers) without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from stages.device import DeviceChoice, cpu_supports_bf16
from stages.errors import DeviceOutOfMemoryError, ModelError, SettingsError
from stages.models.ncnn import parse_param
from stages.models.ncnn_export import export_ncnn, ncnn_supported
from stages.ops.upscale.engine import (
    _BYTES_PER_INPUT_PIXEL,
    MIN_TILE,
    ScaleStep,
    _available_memory,
    _ramp,
    _tile_starts,
    apply_scale_plan,
)

__all__ = ["BACKEND_CHOICES", "NcnnUpscaler", "choose_backend", "ncnn_available", "vulkan_devices"]

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "torch", "ncnn")
PIP_INSTALL = "pip install ncnn"
# Seconds per frame for realesr-animevideov3 (Compact 64nf 16 conv, x4) on a 480x270 input, model pass only
# (medians of interleaved runs, 2 threads, AMD EPYC with AVX512-BF16; torch bf16 = autocast + channels_last).
# They explain choose_backend's CPU rule in its reasons. ncnn bf16 storage was ~15% faster than ncnn fp32
# but 7 code values off, so it is not used.
MEASURED_S_PER_FRAME = {"ncnn fp32": 0.42, "torch fp32": 0.5, "torch bf16": 0.25}
_EXPORT_VERSION = 1  # part of the cache key of exported models: bump when export_ncnn's output changes
_NCNN_ALLOC_FAILED = -100  # ncnn's return code when a blob cannot be allocated
_GPU_MEMORY_SHARE = 0.6
_CPU_MEMORY_SHARE = 0.25
_PROBE_SIDE = 16
_VULKAN_DEVICE_TYPES = {0: "discrete", 1: "integrated", 2: "virtual"}  # 3 = CPU (llvmpipe/lavapipe): skipped


def _import_ncnn() -> ModuleType:
    """The ncnn module; SettingsError with the pip command when it cannot be imported."""
    reason = ncnn_available()
    if reason is not None:
        raise SettingsError(f"upscale: the ncnn backend needs the ncnn package, but {reason}; "
                            "or use --backend torch")
    import ncnn

    return ncnn


def ncnn_available() -> str | None:
    """``None`` when ``import ncnn`` works, else why not and the pip command that fixes it."""
    try:
        import ncnn  # noqa: F401 - probing the optional dependency
    except ImportError as exc:
        return f"the ncnn package cannot be imported ({exc}); install it with: {PIP_INSTALL}"
    return None


def _vulkan_loader_present() -> bool:
    """True when the Vulkan loader library can be found or loaded (checked without touching ncnn)."""
    if sys.platform == "darwin":
        names = ["libvulkan.1.dylib", "libvulkan.dylib", "libMoltenVK.dylib"]
        found = ctypes.util.find_library("vulkan") or ctypes.util.find_library("MoltenVK")
    elif sys.platform == "win32":
        names = ["vulkan-1.dll"]
        found = ctypes.util.find_library("vulkan-1")
    else:
        names = ["libvulkan.so.1", "libvulkan.so"]
        found = None
    if found:
        return True
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


@dataclass(frozen=True)
class _Gpu:
    index: int
    name: str
    kind: str
    heap_budget: int | None  # bytes


@functools.lru_cache(maxsize=1)
def _vulkan_gpus() -> tuple[_Gpu, ...]:
    """Vulkan GPUs ncnn sees (software rasterizers excluded); empty without ncnn or a Vulkan loader."""
    if ncnn_available() is not None:
        return ()
    if not _vulkan_loader_present():
        log.debug("ncnn: no Vulkan loader library; not asking ncnn for GPUs")
        return ()
    import ncnn

    gpus = []
    try:
        count = int(ncnn.get_gpu_count())
        for index in range(count):
            info = ncnn.get_gpu_info(index)
            kind = _VULKAN_DEVICE_TYPES.get(int(info.type()))
            if kind is None:
                log.debug("ncnn: skipping Vulkan device %s (a CPU rasterizer)", info.device_name())
                continue
            budget: int | None = None
            try:
                budget = int(ncnn.get_gpu_device(index).get_heap_budget()) << 20
            except Exception:  # noqa: BLE001 - the budget is only a hint for tile sizes
                budget = None
            gpus.append(_Gpu(index, str(info.device_name()), kind, budget))
    except Exception as exc:  # noqa: BLE001 - a broken driver means "no GPU", never a crash
        log.warning("ncnn: listing Vulkan GPUs failed (%s); using the CPU", exc)
        return ()
    return tuple(gpus)


def vulkan_devices() -> list[str]:
    """Names of the Vulkan GPUs ncnn can run on (cached; empty when ncnn or the Vulkan loader is absent).

    ncnn's GPU functions are only called when the Vulkan loader library exists, because without it ncnn
    prints "dlopen failed libvulkan.so.1" lines to stderr.
    """
    return [gpu.name for gpu in _vulkan_gpus()]


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _GraphInfo:
    input_blob: str
    output_blob: str
    multiple: int  # the input sides must be multiples of this (pixel-unshuffle models); frames are padded


def _read_graph(param_path: Path) -> _GraphInfo:
    try:
        text = param_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"upscale: cannot read the ncnn graph {param_path} ({exc}); check the path or delete "
                         "the file so it is exported again") from exc
    layers = parse_param(text)
    inputs = [layer for layer in layers if layer.type == "Input"]
    if not inputs or not inputs[0].tops or not layers[-1].tops:
        raise ModelError(f"upscale: the ncnn graph {param_path.name} has no Input layer or no output; "
                         "pass the .param of an image model")
    input_blob = inputs[0].tops[0]
    readers = {input_blob}
    multiple = 1
    for layer in layers:
        if layer.type == "Split" and set(layer.bottoms) & readers:
            readers.update(layer.tops)
        elif layer.type == "Reorg" and set(layer.bottoms) & readers:
            # spandrel pads pixel-unshuffle models to a multiple of 4 (reflect): pad alike, same borders
            multiple = math.lcm(multiple, layer.int_param(0, 1), 4)
    return _GraphInfo(input_blob, layers[-1].tops[0], multiple)


class _NcnnRunError(RuntimeError):
    def __init__(self, code: int) -> None:
        super().__init__(f"ncnn returned {code}")
        self.code = code


class NcnnUpscaler:
    """Runs an ncnn SR graph on frames with tiling, like :class:`stages.ops.upscale.engine.Upscaler` (batch is 1).

    Args:
        param_path, bin_path: the ncnn model (e.g. written by :func:`stages.models.ncnn_export.export_ncnn`);
            the input blob is the first Input layer's top, the output the last layer's top.
        scale: the graph's overall scale (checked on a small probe input when the model is loaded).
        use_vulkan: run on the first Vulkan GPU (None = when one exists; True without one is a SettingsError).
        threads: CPU threads (0 = the cores this process may use).
        tile: input tile size in pixels (0 = whole frames when they fit a memory budget, else a tile size).
        overlap: overlap between tiles in input pixels, blended with the torch backend's ramps.
        fp16: fp16 storage and arithmetic (None = on a Vulkan GPU only; on the CPU ncnn keeps fp32, which is
            exact, and bf16 storage was measured 7 code values off, so it is never used).

    Raises:
        SettingsError: ncnn is not installed, Vulkan was asked for without a GPU, or a bad tile/overlap/scale.
        ModelError: the files do not load or the graph's output is not ``scale`` times its input.
    """

    def __init__(self, param_path: str | Path, bin_path: str | Path, scale: int, *, use_vulkan: bool | None = None,
                 threads: int = 0, tile: int = 0, overlap: int = 16, fp16: bool | None = None) -> None:
        self._ncnn = ncnn = _import_ncnn()
        if int(scale) != scale or scale < 1:
            raise SettingsError(f"upscale: ncnn model scale {scale} is not a positive whole number; pass the "
                                "model's scale (e.g. 4)")
        if tile < 0 or overlap < 0 or (tile and overlap * 2 >= tile):
            raise SettingsError(f"upscale: tile {tile} / overlap {overlap} are impossible; use tile 0 (automatic) "
                                "or at least 64, and an overlap below half the tile (16)")
        self.param_path, self.bin_path = Path(param_path), Path(bin_path)
        self.scale = int(scale)
        self.batch = 1
        self.tile = tile
        self.overlap = overlap
        self.model_calls = 0
        self._graph = _read_graph(self.param_path)
        gpus = _vulkan_gpus()
        if use_vulkan is None:
            use_vulkan = bool(gpus)
        elif use_vulkan and not gpus:
            raise SettingsError("upscale: ncnn on a Vulkan GPU was asked for but ncnn sees none (no Vulkan loader, "
                                "driver or GPU); install the GPU's Vulkan driver or run ncnn on the CPU")
        self.use_vulkan = bool(use_vulkan)
        self.fp16 = self.use_vulkan if fp16 is None else bool(fp16)
        self.precision = "fp16" if self.fp16 else "fp32"
        self.threads = threads if threads > 0 else _cpu_threads()
        self._net = self._load(ncnn, gpus[0] if self.use_vulkan else None)
        if self.use_vulkan:
            gpu = gpus[0]
            self._memory_budget = (gpu.heap_budget or (2 << 30)) * _GPU_MEMORY_SHARE
            self.device = DeviceChoice("cpu", self.precision, f"ncnn Vulkan: {gpu.name}", self.threads,
                                       gpu.heap_budget, f"ncnn on the {gpu.kind} Vulkan GPU {gpu.name}, "
                                       f"{self.precision}")
        else:
            self._memory_budget = None
            self.device = DeviceChoice("cpu", self.precision, f"ncnn CPU ({self.threads} threads)", self.threads,
                                       None, f"ncnn on the CPU with {self.threads} threads, {self.precision}, "
                                       "packed layout, Winograd convolutions")
        self._probe()
        log.info("upscale: %s loaded x%d (%s)", self.param_path.name, self.scale, self.device.reason)

    def _load(self, ncnn: ModuleType, gpu: _Gpu | None):
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = gpu is not None
        opt.num_threads = self.threads
        opt.lightmode = True
        opt.use_packing_layout = True
        opt.use_winograd_convolution = True
        opt.use_sgemm_convolution = True
        opt.use_fp16_storage = self.fp16
        opt.use_fp16_packed = self.fp16
        opt.use_fp16_arithmetic = self.fp16
        opt.use_bf16_storage = False  # measured: 0.025 max error (7 code values) on animevideov3
        if gpu is not None:
            net.set_vulkan_device(gpu.index)
        if net.load_param(str(self.param_path)) != 0 or net.load_model(str(self.bin_path)) != 0:
            raise ModelError(f"upscale: ncnn could not load {self.param_path.name} / {self.bin_path.name}; the files "
                             "are corrupt or do not belong together, delete them so they are exported again")
        return net

    def _probe(self) -> None:
        side = _PROBE_SIDE * self._graph.multiple
        try:
            out = self._run(np.full((3, side, side), 0.5, np.float32), count=False)
        except _NcnnRunError as exc:
            raise ModelError(f"upscale: ncnn could not run {self.param_path.name} ({exc}); the graph does not "
                             f"read blob {self._graph.input_blob!r} or has an unsupported layer, use --backend "
                             "torch") from exc
        expected = (3, side * self.scale, side * self.scale)
        if out.shape != expected:
            raise ModelError(f"upscale: {self.param_path.name} turns a {side}x{side} RGB input into "
                             f"{'x'.join(map(str, out.shape))}, not {'x'.join(map(str, expected))}; pass the "
                             "model's real scale")

    def _run(self, image: np.ndarray, *, count: bool = True) -> np.ndarray:
        """One ncnn call on ``image`` (3,h,w) float32; returns (3,h*s,w*s) clamped to [0, 1].

        Inputs of pixel-unshuffle graphs are padded to the graph's multiple and the output cropped back.
        """
        _c, height, width = image.shape
        m = self._graph.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:  # like spandrel: reflect as far as the image allows, then repeat the edge
            reflect_h, reflect_w = min(pad_h, height - 1), min(pad_w, width - 1)
            image = np.pad(image, ((0, 0), (0, reflect_h), (0, reflect_w)), mode="reflect")
            image = np.pad(image, ((0, 0), (0, pad_h - reflect_h), (0, pad_w - reflect_w)), mode="edge")
        image = np.ascontiguousarray(image, dtype=np.float32)  # ncnn.Mat shares this buffer: keep it alive
        extractor = self._net.create_extractor()
        if count:
            self.model_calls += 1
        code = extractor.input(self._graph.input_blob, self._ncnn.Mat(image))
        if code != 0:
            raise _NcnnRunError(code)
        code, out = extractor.extract(self._graph.output_blob)
        if code != 0:
            raise _NcnnRunError(code)
        result = np.array(out, dtype=np.float32, copy=True)
        if result.ndim != 3:
            raise ModelError(f"upscale: {self.param_path.name} gives a {result.ndim}-D output, not an image; "
                             "use --backend torch")
        if pad_h or pad_w:
            result = result[:, :height * self.scale, :width * self.scale]
        return np.clip(result, 0.0, 1.0, out=result)  # as spandrel's descriptor call, so resize steps agree

    def _auto_tile(self, height: int, width: int) -> int:
        if self.tile:
            return self.tile
        budget = self._memory_budget
        if budget is None:
            budget = _available_memory(self.device) * _CPU_MEMORY_SHARE
        per_pixel = _BYTES_PER_INPUT_PIXEL * (1 if self.fp16 else 2)
        pixels = budget / per_pixel
        if pixels >= height * width:
            return 0
        side = int(math.sqrt(pixels)) // 8 * 8
        return max(MIN_TILE, min(side, 2048))

    def _frame(self, frame: torch.Tensor, tile: int) -> torch.Tensor:
        """Upscale one (3,H,W) frame, whole or in overlapping tiles blended with the torch backend's ramps."""
        _c, height, width = frame.shape
        s = self.scale
        if tile <= 0 or (height <= tile and width <= tile):
            return torch.from_numpy(self._run(frame.numpy()))
        th, tw = min(tile, height), min(tile, width)
        out = torch.zeros((3, height * s, width * s), dtype=torch.float32)
        weight_sum = torch.zeros((1, height * s, width * s), dtype=torch.float32)
        for y in _tile_starts(height, tile, self.overlap):
            for x in _tile_starts(width, tile, self.overlap):
                result = torch.from_numpy(self._run(frame[:, y:y + th, x:x + tw].numpy()))
                wy = _ramp(th * s, self.overlap * s, y > 0, y + th < height)
                wx = _ramp(tw * s, self.overlap * s, x > 0, x + tw < width)
                w = (wy[:, None] * wx[None, :])[None]
                out[:, y * s:(y + th) * s, x * s:(x + tw) * s] += result * w
                weight_sum[:, y * s:(y + th) * s, x * s:(x + tw) * s] += w
        return out / weight_sum

    def model_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (N,3,H,W) float32 in [0,1] by ``scale``, frame by frame, halving the tile on OOM.

        Raises:
            DeviceOutOfMemoryError: even a 64 px tile cannot be allocated.
            ModelError: ncnn failed for another reason.
        """
        x = x.detach().to("cpu", torch.float32).contiguous()
        tile = self._auto_tile(x.shape[2], x.shape[3])
        outputs = []
        for frame in x:
            while True:
                try:
                    outputs.append(self._frame(frame, tile))
                    break
                except (_NcnnRunError, MemoryError) as exc:
                    if isinstance(exc, _NcnnRunError) and exc.code != _NCNN_ALLOC_FAILED:
                        raise ModelError(f"upscale: ncnn failed on a {x.shape[3]}x{x.shape[2]} frame ({exc}) on "
                                         f"{self.device.name}; use --backend torch") from exc
                    current = tile or max(x.shape[2], x.shape[3])
                    if current <= MIN_TILE:
                        raise DeviceOutOfMemoryError(
                            f"upscale: out of memory on {self.device.name} even with {MIN_TILE} px tiles; close "
                            "other programs, or use --backend torch or a smaller model") from exc
                    tile = max(MIN_TILE, current // 2 // 8 * 8)
                    log.warning("upscale: ncnn out of memory; retrying with tile %d", tile)
                    self.tile = tile  # keep what works for the next frames
        return torch.stack(outputs)

    def upscale(self, frames: Sequence[np.ndarray], steps: Sequence[ScaleStep]) -> list[np.ndarray]:
        """Upscale frames (each ``HxWx3`` uint8 or uint16, all the same shape) along a scale plan."""
        return apply_scale_plan(frames, steps, self.model_pass, torch.device("cpu"))

    @classmethod
    def from_descriptor(cls, descriptor, cache_dir: str | Path, **kw) -> NcnnUpscaler:
        """Export a spandrel model to ncnn files in ``cache_dir`` (reused when present) and load them.

        Files are named by the architecture, scale and a hash of the state dict; weights are kept fp32
        (ncnn converts them at load time where it computes in fp16). ``kw`` goes to the constructor.

        Raises:
            ModelError: the architecture cannot be exported (``ncnn_supported`` says why).
            SettingsError: see the constructor.
        """
        _import_ncnn()
        reason = ncnn_supported(descriptor)
        if reason is not None:
            raise ModelError(f"upscale: the ncnn backend cannot run this model: {reason}")
        if descriptor.input_channels != 3 or descriptor.output_channels != 3:
            raise SettingsError(f"upscale: the model takes {descriptor.input_channels} and gives "
                                f"{descriptor.output_channels} channels; pick an RGB model")
        cache_dir = Path(cache_dir)
        name = f"{descriptor.architecture.id}-x{int(descriptor.scale)}-{_state_digest(descriptor.model)[:20]}"
        param, weights = cache_dir / f"{name}.param", cache_dir / f"{name}.bin"
        fresh = not (param.is_file() and weights.is_file())
        if fresh:
            export_ncnn(descriptor, param, weights, fp16_weights=False)
        else:
            log.info("upscale: reusing the ncnn export %s", param)
        try:
            return cls(param, weights, int(descriptor.scale), **kw)
        except ModelError:
            if fresh:
                raise
            log.warning("upscale: the cached ncnn export %s does not load; exporting it again", param)
            export_ncnn(descriptor, param, weights, fp16_weights=False)
            return cls(param, weights, int(descriptor.scale), **kw)


def _state_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's state dict (names, shapes and float32 values) and the export format version."""
    digest = hashlib.sha256(f"ncnn-export-v{_EXPORT_VERSION}".encode())
    for key, value in sorted(module.state_dict().items()):
        array = value.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{key}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def choose_backend(requested: str, device: DeviceChoice, descriptor) -> tuple[str, str]:
    """Pick the inference backend: ``("torch" | "ncnn", reason)``.

    ``requested`` is ``auto``, ``torch`` or ``ncnn``. ``auto`` keeps PyTorch on CUDA/MPS/XPU; otherwise it takes
    ncnn when a Vulkan GPU exists and the model can be exported; on the CPU it takes PyTorch where the run is
    bf16 on a CPU with native bf16 (faster than ncnn) and ncnn where PyTorch would compute in fp32.
    A CPU ``device`` with a Vulkan GPU present gets ncnn on that GPU (``NcnnUpscaler`` picks it by default);
    pass ``use_vulkan=False`` to the upscaler to keep ncnn on the CPU.

    Raises:
        SettingsError: an unknown name, or ``ncnn`` asked for while ncnn is missing or cannot run the model.
    """
    if requested not in BACKEND_CHOICES:
        raise SettingsError(f"upscale: unknown backend {requested!r}; use one of {', '.join(BACKEND_CHOICES)}")
    if requested == "torch":
        return "torch", "torch: as asked"
    architecture = getattr(getattr(descriptor, "architecture", None), "name", type(descriptor).__name__)
    missing = ncnn_available()
    unsupported = ncnn_supported(descriptor)
    if requested == "ncnn":
        if missing is not None:
            raise SettingsError(f"upscale: --backend ncnn was asked for but {missing}; or use --backend torch")
        if unsupported is not None:
            raise SettingsError(f"upscale: --backend ncnn cannot run {architecture}: {unsupported}; "
                                "use --backend torch or auto")
        gpus = vulkan_devices()
        where = f"the Vulkan GPU {gpus[0]}" if gpus else "the CPU"
        return "ncnn", f"ncnn: as asked, on {where}"
    if device.kind in ("cuda", "mps", "xpu"):
        return "torch", f"torch: PyTorch runs on {device.name} ({device.kind}) directly"
    if missing is not None:
        return "torch", f"torch: ncnn is not available ({missing})"
    if unsupported is not None:
        return "torch", f"torch: ncnn cannot run {architecture} ({unsupported})"
    gpus = vulkan_devices()
    if gpus:
        return "ncnn", f"ncnn: PyTorch has no GPU here but ncnn runs on the Vulkan GPU {gpus[0]}"
    ncnn_s, fp32_s, bf16_s = (MEASURED_S_PER_FRAME[k] for k in ("ncnn fp32", "torch fp32", "torch bf16"))
    if cpu_supports_bf16():
        if device.precision == "bf16":
            return "torch", (f"torch: the CPU has AVX512-BF16, where PyTorch bf16 is faster than ncnn "
                             f"({bf16_s:g} vs {ncnn_s:g} s/frame measured)")
        return "ncnn", (f"ncnn: the run is {device.precision} on the CPU, where ncnn fp32 is faster than PyTorch "
                        f"fp32 ({ncnn_s:g} vs {fp32_s:g} s/frame measured)")
    return "ncnn", (f"ncnn: the CPU has no native bf16, where ncnn fp32 is faster than PyTorch fp32 "
                    f"({ncnn_s:g} vs {fp32_s:g} s/frame measured)")
