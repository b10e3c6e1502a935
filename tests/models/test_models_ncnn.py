"""ncnn -> PyTorch conversion: real package files, official weights, a graph interpreter and bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor, ModelLoader

from stages.errors import ModelError
from stages.models.ncnn import NcnnModelInfo, convert_ncnn, parse_param

ANIME_X4 = "REALESRGAN_ANIMAVIDEOV3_UP4X"
X4PLUS = "REALESRGAN_X4PLUS_UP4X"


def _pair(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.param", folder / f"{name}.bin"


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _to_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().clamp(0, 1)[0].permute(1, 2, 0).double().numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of images in [0, 1]: mean squared error over all pixels and channels, no border crop."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def _load(state: dict[str, torch.Tensor]) -> ImageModelDescriptor:
    descriptor = ModelLoader().load_from_state_dict(state)
    assert isinstance(descriptor, ImageModelDescriptor)
    return descriptor.eval()


def _run_ncnn_graph(param_path: Path, bin_path: Path, image: torch.Tensor) -> torch.Tensor:
    """Execute an ncnn graph directly, blob by blob (an implementation independent of the key mapping).

    Covers the layer types of Real-ESRGAN graphs; weights are read from the .bin in layer order.
    """
    raw = bin_path.read_bytes()
    offset = 0

    def floats(count: int, tagged: bool) -> torch.Tensor:
        nonlocal offset
        if tagged:
            tag = int.from_bytes(raw[offset:offset + 4], "little")
            offset += 4
            if tag == 0x01306B47:
                values = np.frombuffer(raw, "<f2", count, offset).astype(np.float32)
                offset += 2 * count + (-2 * count) % 4
                return torch.from_numpy(values)
            assert tag == 0
        values = np.frombuffer(raw, "<f4", count, offset).astype(np.float32)
        offset += 4 * count
        return torch.from_numpy(values)

    blobs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for layer in parse_param(param_path.read_text()):
            inputs = [blobs[name] for name in layer.bottoms]
            p = layer.params
            if layer.type == "Input":
                out = [image]
            elif layer.type == "Split":
                out = [inputs[0]] * len(layer.tops)
            elif layer.type == "Convolution":
                n_out, size = int(p[0]), int(p[6])
                weight = floats(size, True).reshape(n_out, -1, 3, 3)
                y = F.conv2d(inputs[0], weight, floats(n_out, False), padding=1)
                if int(p.get(9, 0)) == 2:
                    y = F.leaky_relu(y, float(p[10][0]))
                out = [y]
            elif layer.type == "PReLU":
                out = [F.prelu(inputs[0], floats(int(p[0]), False))]
            elif layer.type == "Concat":
                out = [torch.cat(inputs, dim=1)]
            elif layer.type == "Eltwise":
                coeffs = p[1]
                out = [sum(c * x for c, x in zip(coeffs, inputs))]
            elif layer.type == "BinaryOp":
                assert int(p.get(0, 0)) == 0
                out = [inputs[0] + inputs[1]]
            elif layer.type == "PixelShuffle":
                s = int(p[0])
                x = inputs[0]
                if int(p.get(1, 0)) == 1:  # DCR: channel (i*s + j)*C + c
                    n, _, h, w = x.shape
                    x = x.reshape(n, s, s, -1, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, -1, h * s, w * s)
                    out = [x]
                else:
                    out = [F.pixel_shuffle(x, s)]
            elif layer.type == "Interp":
                mode = {1: "nearest", 3: "bicubic"}[int(p[0])]
                out = [F.interpolate(inputs[0], scale_factor=float(p[1]), mode=mode)]
            else:
                raise AssertionError(f"interpreter: unexpected layer {layer.type}")
            blobs.update(zip(layer.tops, out))
    assert offset == len(raw)
    return blobs["output"]


def _within_fp16_truncation(official: torch.Tensor, converted: torch.Tensor) -> bool:
    """ncnn stored the weights as fp16 rounded toward zero, flushing subnormals: error <= 2^-10 rel or 2^-14."""
    bound = torch.maximum(official.abs() * 2.0**-10, torch.full_like(official, 2.0**-14))
    return bool(torch.all((official - converted).abs() <= bound))


# ---------------------------------------------------------------------------- package: animevideov3


def test_animevideov3_x4_from_package_is_detected_by_spandrel(package_models_dir: Path) -> None:
    state, info = convert_ncnn(*_pair(package_models_dir, ANIME_X4))
    assert info == NcnnModelInfo("SRVGGNetCompact", 4, 64, 16, None)
    assert len(state) == 18 * 2 + 17  # 18 convs (weight + bias) and 17 PReLU slopes
    assert all(t.dtype == torch.float32 for t in state.values())
    assert state["body.0.weight"].shape == (64, 3, 3, 3) and state["body.1.weight"].shape == (64,)
    assert state["body.34.weight"].shape == (48, 64, 3, 3)
    descriptor = _load(state)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 4
    assert "16nc" in descriptor.tags and "64nf" in descriptor.tags


def test_animevideov3_x2_x3_files_are_the_x4_network_plus_a_resize(package_models_dir: Path) -> None:
    x4, _ = convert_ncnn(*_pair(package_models_dir, ANIME_X4))
    for name, resize, scale in (("REALESRGAN_ANIMAVIDEOV3_UP2X", 0.5, 2), ("REALESRGAN_ANIMAVIDEOV3_UP3X", 0.75, 3)):
        state, info = convert_ncnn(*_pair(package_models_dir, name))
        assert (info.scale, info.output_resize, info.effective_scale) == (4, resize, scale)
        assert state.keys() == x4.keys() and all(torch.equal(state[k], x4[k]) for k in x4)
        assert _load(state).scale == 4


def test_animevideov3_fixed_input_checksum(package_models_dir: Path, astronaut: np.ndarray) -> None:
    """Deterministic output of the converted package model (runs without ../shared)."""
    state, _ = convert_ncnn(*_pair(package_models_dir, ANIME_X4))
    crop = astronaut[100:132, 180:212]
    with torch.inference_mode():
        out = _load(state).model(_to_tensor(crop))
    assert out.shape == (1, 3, 128, 128)
    stats = [out.mean().item(), out.std().item(), out[0, :, ::16, ::16].sum().item()]
    assert stats == pytest.approx([0.729444, 0.168638, 134.9254], abs=2e-3)


def test_animevideov3_matches_the_official_weights(package_models_dir: Path, shared_models_dir: Path,
                                                     astronaut: np.ndarray) -> None:
    official = ModelLoader().load_from_file(shared_models_dir / "realesr-animevideov3" / "realesr-animevideov3.pth")
    assert isinstance(official, ImageModelDescriptor)
    official_state = official.model.state_dict()
    state, _ = convert_ncnn(*_pair(package_models_dir, ANIME_X4))
    assert state.keys() == official_state.keys()
    for key, value in official_state.items():
        assert state[key].shape == value.shape, key
        if key.endswith(".bias") or value.ndim == 1:
            assert torch.equal(state[key], value.float()), key  # biases and PReLU slopes are stored as fp32
        else:
            assert _within_fp16_truncation(value.float(), state[key]), key
    image = _to_tensor(astronaut[160:224, 200:264])
    with torch.inference_mode():
        expected = _to_image(official.eval().model(image))
        got = _to_image(_load(state).model(image))
    assert _psnr(got, expected) > 50.0


def test_animevideov3_agrees_with_the_ncnn_graph_run_directly(package_models_dir: Path,
                                                               astronaut: np.ndarray) -> None:
    param, weights = _pair(package_models_dir, "REALESRGAN_ANIMAVIDEOV3_UP2X")
    state, info = convert_ncnn(param, weights)
    image = _to_tensor(astronaut[200:232, 240:272])
    with torch.inference_mode():
        net = _load(state).model(image)
        converted = F.interpolate(net, scale_factor=info.output_resize, mode="bicubic")
    direct = _run_ncnn_graph(param, weights, image)
    assert direct.shape == converted.shape == (1, 3, 64, 64)
    assert torch.allclose(direct, converted, atol=1e-4)


# ---------------------------------------------------------------------------- ../shared: general-x4v3


def test_general_x4v3_from_shared_ncnn(shared_models_dir: Path, astronaut: np.ndarray) -> None:
    folder = shared_models_dir / "realesr-general-x4v3-ncnn"
    state, info = convert_ncnn(*_pair(folder, "RealESRGAN_General_x4_v3"))
    assert info == NcnnModelInfo("SRVGGNetCompact", 4, 64, 32, None)
    descriptor = _load(state)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 4 and "32nc" in descriptor.tags
    hr = astronaut[32:160, 160:288]
    lr = cv2.resize(hr, (32, 32), interpolation=cv2.INTER_AREA)
    with torch.inference_mode():
        sr = _to_image(descriptor.model(_to_tensor(lr)))
    bicubic = np.clip(cv2.resize(lr, (128, 128), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert _psnr(sr, hr) > 20.0 and _psnr(sr, hr) > _psnr(bicubic, hr) - 4.0


# ---------------------------------------------------------------------------- package: RRDBNet


def test_x4plus_rrdb_mapping_restores_a_real_photo(package_models_dir: Path, astronaut: np.ndarray) -> None:
    """Without the official .pth: the converted RRDBNet must upscale a real photo about as well as bicubic.

    Real-ESRGAN is a GAN model (it scores at or a little below bicubic on clean input, see DESIGN.md);
    a wrong key mapping (e.g. conv_up1 and conv_hr swapped) gives noise at about 5 dB.
    """
    param, weights = _pair(package_models_dir, X4PLUS)
    state, info = convert_ncnn(param, weights)
    assert info == NcnnModelInfo("RRDBNet", 4, 64, 23, None)
    assert {"conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight",
            "conv_up2.weight", "conv_hr.weight", "conv_last.weight"} <= state.keys()
    assert state["body.0.rdb1.conv5.weight"].shape == (64, 192, 3, 3)
    descriptor = _load(state)
    assert descriptor.architecture.id == "ESRGAN" and descriptor.scale == 4
    hr = astronaut[30:222, 170:362]
    lr = cv2.resize(hr, (48, 48), interpolation=cv2.INTER_AREA)
    with torch.inference_mode():
        sr = descriptor.model(_to_tensor(lr))
    bicubic = np.clip(cv2.resize(lr, (192, 192), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert _psnr(_to_image(sr), hr) > 20.0
    assert _psnr(_to_image(sr), hr) > _psnr(bicubic, hr) - 4.0
    # An independent run of the ncnn graph itself, wired by blob names, gives the same image.
    direct = _run_ncnn_graph(param, weights, _to_tensor(lr[:24, :24]))
    with torch.inference_mode():
        converted = descriptor.model(_to_tensor(lr[:24, :24]))
    assert torch.allclose(direct, converted, atol=1e-3)


def test_anime6b_rrdb_has_six_blocks(package_models_dir: Path) -> None:
    state, info = convert_ncnn(*_pair(package_models_dir, "REALESRGAN_X4PLUSANIME_UP4X"))
    assert info == NcnnModelInfo("RRDBNet", 4, 64, 6, None)
    descriptor = _load(state)
    assert descriptor.architecture.id == "ESRGAN" and descriptor.scale == 4
    assert "body.5.rdb3.conv5.weight" in state and "body.6.rdb1.conv1.weight" not in state


# ---------------------------------------------------------------------------- synthetic graphs


@pytest.mark.parametrize(("fp16", "shuffle_mode", "scale"), [(True, 0, 2), (False, 0, 3), (True, 1, 2)])
def test_tiny_compact_round_trip(tmp_path: Path, tiny_compact, ncnn_writer, fp16: bool, shuffle_mode: int,
                                 scale: int) -> None:
    state = tiny_compact(num_feat=8, num_conv=3, scale=scale)
    param, weights = ncnn_writer(state, tmp_path, "tiny", scale=scale, fp16=fp16, shuffle_mode=shuffle_mode)
    converted, info = convert_ncnn(param, weights)
    assert info == NcnnModelInfo("SRVGGNetCompact", scale, 8, 3, None)
    assert converted.keys() == state.keys()
    for key, value in state.items():
        expected = value.half().float() if fp16 and value.ndim == 4 else value
        assert torch.equal(converted[key], expected), key
    image = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(_load(converted).model(image), _run_ncnn_graph(param, weights, image), atol=1e-5)


def test_trailing_bicubic_resize_is_reported(tmp_path: Path, tiny_compact, ncnn_writer) -> None:
    state = tiny_compact(scale=4)
    _, info = convert_ncnn(*ncnn_writer(state, tmp_path, "resized", scale=4, resize=0.5))
    assert info.output_resize == 0.5 and info.effective_scale == 2


def test_unsupported_layer_is_named(tmp_path: Path, tiny_compact, ncnn_writer) -> None:
    param, weights = ncnn_writer(tiny_compact(), tmp_path, "bad", scale=2, replace_type={4: "Deconvolution"})
    with pytest.raises(ModelError, match=r"^ncnn: layer 4 \(Conv_2\) is Deconvolution; only SRVGGNetCompact"):
        convert_ncnn(param, weights)


def test_wrong_operation_is_rejected(tmp_path: Path, tiny_compact, ncnn_writer) -> None:
    state = tiny_compact()
    param, weights = ncnn_writer(state, tmp_path, "bad", scale=2)
    lines = param.read_text().splitlines()
    lines[-1] = lines[-1].replace("0=0", "0=2")  # BinaryOp add -> mul
    param.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelError, match="expected BinaryOp add"):
        convert_ncnn(param, weights)


def test_truncated_or_oversized_bin_is_rejected(tmp_path: Path, tiny_compact, ncnn_writer) -> None:
    param, weights = ncnn_writer(tiny_compact(), tmp_path, "tiny", scale=2)
    blob = weights.read_bytes()
    weights.write_bytes(blob[:-10])
    with pytest.raises(ModelError, match="truncated"):
        convert_ncnn(param, weights)
    weights.write_bytes(blob + b"\0" * 8)
    with pytest.raises(ModelError, match="8 bytes left"):
        convert_ncnn(param, weights)


def test_int8_weights_are_rejected(tmp_path: Path, tiny_compact, ncnn_writer) -> None:
    param, weights = ncnn_writer(tiny_compact(), tmp_path, "tiny", scale=2)
    blob = bytearray(weights.read_bytes())
    blob[:4] = (0x000D4B38).to_bytes(4, "little")
    weights.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="int8"):
        convert_ncnn(param, weights)


def test_not_a_param_file(tmp_path: Path) -> None:
    param, weights = tmp_path / "x.param", tmp_path / "x.bin"
    param.write_text("hello\n")
    weights.write_bytes(b"")
    with pytest.raises(ModelError, match="magic number 7767517"):
        convert_ncnn(param, weights)
    with pytest.raises(ModelError, match="cannot read"):
        convert_ncnn(tmp_path / "missing.param", weights)
