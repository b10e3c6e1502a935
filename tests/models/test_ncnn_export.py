"""PyTorch -> ncnn export: round trips through convert_ncnn, runs in ncnn itself, atomic writes, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel import ImageModelDescriptor, ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

from stages.errors import ModelError
from stages.models.ncnn import NcnnModelInfo, convert_ncnn, parse_param
from stages.models.ncnn_export import export_ncnn, ncnn_supported
from stages.store import fsutil


def _compact(num_feat: int = 8, num_conv: int = 2, scale: int = 2, act: str = "prelu", seed: int = 0) -> Compact:
    torch.manual_seed(seed)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale, act_type=act)
    for module in net.modules():
        if isinstance(module, torch.nn.PReLU):  # distinct slopes, not the 0.25 default
            module.weight.data = torch.rand_like(module.weight) * 0.5
    return net.eval()


def _rrdb(scale: int, num_feat: int = 8, num_block: int = 1, seed: int = 0) -> ESRGAN:
    """spandrel's RRDBNet; x2 and x1 are the Real-ESRGAN kind: pixel-unshuffle by 2 / 4 in front of a x4 net."""
    torch.manual_seed(seed)
    shuffle = {2: 2, 1: 4}.get(scale)
    in_nc = 3 * shuffle * shuffle if shuffle else 3
    return ESRGAN(in_nc=in_nc, out_nc=3, num_filters=num_feat, num_blocks=num_block,
                  scale=4 if shuffle else scale, shuffle_factor=shuffle).eval()


def _expected(value: torch.Tensor, fp16: bool) -> torch.Tensor:
    """What the .bin keeps: conv weights rounded to fp16 (nearest) when asked; biases and slopes fp32."""
    return value.half().float() if fp16 and value.ndim == 4 else value.float()


def _run_ncnn(param: Path, weights: Path, image: torch.Tensor) -> torch.Tensor:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    array = np.ascontiguousarray(image[0].numpy())
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(array))
    code, out = extractor.extract("output")
    assert code == 0
    return torch.from_numpy(np.array(out))[None]


@pytest.mark.parametrize(("num_feat", "num_conv", "scale", "fp16"),
                         [(8, 1, 2, True), (8, 3, 4, False), (12, 2, 3, True), (4, 5, 1, False)])
def test_compact_round_trip(tmp_path: Path, num_feat: int, num_conv: int, scale: int, fp16: bool) -> None:
    net = _compact(num_feat, num_conv, scale)
    param, weights = tmp_path / "c.param", tmp_path / "c.bin"
    export_ncnn(net, param, weights, fp16_weights=fp16)
    state, info = convert_ncnn(param, weights)
    assert info == NcnnModelInfo("SRVGGNetCompact", scale, num_feat, num_conv, None)
    official = net.state_dict()
    assert state.keys() == official.keys()
    for key, value in official.items():
        assert torch.equal(state[key], _expected(value, fp16)), key


@pytest.mark.parametrize(("act", "slope"), [("relu", 0.0), ("leakyrelu", 0.1)])
def test_compact_relu_variants_become_constant_prelu(tmp_path: Path, act: str, slope: float) -> None:
    net = _compact(act=act)
    param, weights = tmp_path / "c.param", tmp_path / "c.bin"
    export_ncnn(net, param, weights, fp16_weights=False)
    state, _ = convert_ncnn(param, weights)
    assert torch.equal(state["body.1.weight"], torch.full((8,), slope))
    converted = ModelLoader().load_from_state_dict(state).model.eval()
    image = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.allclose(converted(image), net(image), atol=1e-6)


@pytest.mark.parametrize("fp16", [True, False])
def test_rrdb_x4_round_trip(tmp_path: Path, tiny_rrdb, ncnn_export_writer, fp16: bool) -> None:
    official = tiny_rrdb(num_feat=8, num_block=2)
    param, weights = ncnn_export_writer(official, tmp_path, "rrdb", fp16=fp16)
    state, info = convert_ncnn(param, weights)
    assert info == NcnnModelInfo("RRDBNet", 4, 8, 2, None)
    assert state.keys() == official.keys()
    for key, value in official.items():
        assert torch.equal(state[key], _expected(value, fp16)), key


def test_descriptor_and_module_give_the_same_files(tmp_path: Path) -> None:
    descriptor = ModelLoader().load_from_state_dict(_compact().state_dict())
    assert isinstance(descriptor, ImageModelDescriptor)
    export_ncnn(descriptor, tmp_path / "a.param", tmp_path / "a.bin")
    export_ncnn(descriptor.model, tmp_path / "b.param", tmp_path / "b.bin")
    assert (tmp_path / "a.param").read_bytes() == (tmp_path / "b.param").read_bytes()
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_graph_layout_is_what_ncnn_tools_expect(tmp_path: Path) -> None:
    """Blob ``data`` in, ``output`` out (as realesrgan-ncnn-vulkan reads), a Split wherever a blob is reused."""
    export_ncnn(_rrdb(4), tmp_path / "r.param", tmp_path / "r.bin")
    text = (tmp_path / "r.param").read_text()
    layers = parse_param(text)
    assert layers[0].type == "Input" and layers[0].tops == ("data",)
    assert layers[-1].tops == ("output",)
    readers: dict[str, int] = {}
    for layer in layers:
        for bottom in layer.bottoms:
            readers[bottom] = readers.get(bottom, 0) + 1
    assert max(readers.values()) == 1  # every multiply-read blob goes through a Split
    tops = [top for layer in layers for top in layer.tops]
    assert len(tops) == len(set(tops)) == int(text.splitlines()[1].split()[1])


@pytest.mark.parametrize(("name", "make", "size"), [
    ("compact x4", lambda: _compact(8, 2, 4), (9, 11)),
    ("compact x3 fp16", lambda: _compact(8, 2, 3), (9, 11)),
    ("rrdb x4", lambda: _rrdb(4), (10, 13)),
    ("rrdb x8", lambda: _rrdb(8), (6, 5)),
    ("rrdb x2 (unshuffle 2)", lambda: _rrdb(2), (10, 14)),
    ("rrdb x1 (unshuffle 4)", lambda: _rrdb(1), (12, 16)),
])
def test_ncnn_runs_the_export_like_torch(tmp_path: Path, name: str, make, size: tuple[int, int]) -> None:
    """ncnn itself runs every exportable kind and agrees with PyTorch (fp32 weights: float rounding only)."""
    net = make()
    fp16 = "fp16" in name
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    export_ncnn(net, param, weights, fp16_weights=fp16)
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = net(image)
    got = _run_ncnn(param, weights, image)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < (2e-3 if fp16 else 1e-5), name


def test_unshuffle_graph_starts_with_reorg(tmp_path: Path) -> None:
    export_ncnn(_rrdb(2), tmp_path / "x2.param", tmp_path / "x2.bin")
    layers = parse_param((tmp_path / "x2.param").read_text())
    assert layers[1].type == "Reorg" and layers[1].int_param(0, 0) == 2
    with pytest.raises(ModelError, match="Reorg"):  # convert_ncnn reads the Real-ESRGAN x4 layout only
        convert_ncnn(tmp_path / "x2.param", tmp_path / "x2.bin")


def test_fp16_overflow_keeps_that_blob_fp32(tmp_path: Path) -> None:
    net = _compact()
    with torch.no_grad():
        net.body[2].weight[0, 0, 0, 0] = 1e6
    export_ncnn(net, tmp_path / "c.param", tmp_path / "c.bin", fp16_weights=True)
    state, _ = convert_ncnn(tmp_path / "c.param", tmp_path / "c.bin")
    assert state["body.2.weight"][0, 0, 0, 0].item() == 1e6
    assert torch.equal(state["body.0.weight"], net.body[0].weight.half().float())


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    param.write_text("old param\n")
    weights.write_bytes(b"old bin")
    real_replace = os.replace

    def failing_replace(src: str, dst: str | Path) -> None:
        if str(dst).endswith(".param"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        export_ncnn(_compact(), param, weights)
    assert param.read_text() == "old param\n"  # never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.param"]  # no temp files left
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    export_ncnn(_compact(), param, weights)
    assert convert_ncnn(param, weights)[1].architecture == "SRVGGNetCompact"


def test_unsupported_models_are_refused(tmp_path: Path) -> None:
    cases = [
        (torch.nn.Conv2d(3, 3, 3), "Conv2d is not supported"),
        (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4, plus=True), "ESRGAN\\+"),
        (Compact(num_in_ch=1, num_out_ch=3, num_feat=4, num_conv=1, upscale=2), "input channels"),
        (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4, upsampler="pixel_shuffle"), "upsample"),
    ]
    for model, pattern in cases:
        reason = ncnn_supported(model)
        assert reason is not None and not reason.startswith("ncnn export:"), pattern
        with pytest.raises(ModelError, match=pattern):
            export_ncnn(model, tmp_path / "x.param", tmp_path / "x.bin")
        assert not (tmp_path / "x.param").exists()
    assert ncnn_supported(_compact()) is None and ncnn_supported(_rrdb(2)) is None
    with pytest.raises(ModelError, match="neither a spandrel"):
        export_ncnn(object(), tmp_path / "x.param", tmp_path / "x.bin")
