"""Export PyTorch super-resolution models to ncnn (.param graph + .bin weights).

Two spandrel architectures are written, in the layout Real-ESRGAN's own ONNX -> ncnn export uses, so the files
load in ``ncnn.Net`` (and in realesrgan-ncnn-vulkan style tools: input blob ``data``, output blob ``output``)
and in :func:`stages.models.ncnn.convert_ncnn`:

- ``Compact`` (SRVGGNetCompact, any ``num_feat``/``num_conv``/``upscale``): ``Conv+PReLU`` chain, a last conv,
  ``PixelShuffle``, a nearest ``Interp`` of the input added back. ``relu`` and ``leakyrelu`` activations are
  written as ``PReLU`` with constant slopes (0 and 0.1), which computes the same function.
- ``ESRGAN`` (spandrel's old-arch RRDBNet, any ``num_filters``/``num_blocks``, power-of-two scale):
  ``conv_first``, residual-in-residual dense blocks (``Concat`` + ``Convolution`` with fused leaky ReLU,
  ``Eltwise`` 0.2 * residual + identity), ``conv_body``, nearest ``Interp`` + conv per x2, ``conv_hr``,
  ``conv_last``. Real-ESRGAN x2/x1 models (pixel-unshuffle by 2/4 in front) get a ``Reorg`` layer first; that
  graph needs an input whose sides are multiples of the unshuffle factor (``NcnnUpscaler`` pads it).
  ``convert_ncnn`` reads back the x4 graphs without unshuffle (the Real-ESRGAN layout); the others run in
  ncnn only.

ncnn storage rules (as in :mod:`stages.models.ncnn`): a Convolution weight blob starts with a 4-byte tag
(``0x01306B47`` = fp16, padded to 4 bytes; ``0`` = fp32), its bias and PReLU slopes are raw fp32 without a tag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.errors import ModelError
from stages.store.fsutil import atomic_write_bytes, fsync_dir

__all__ = ["INPUT_BLOB", "OUTPUT_BLOB", "export_ncnn", "ncnn_supported"]

logger = logging.getLogger(__name__)

INPUT_BLOB = "data"
OUTPUT_BLOB = "output"
_PARAM_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0
_FP16_MAX = 65504.0
_INTERP_NEAREST = 1
_ACT_NONE, _ACT_RELU, _ACT_LEAKY = 0, 1, 2
_RESIDUAL_SCALE = 0.2


def _unwrap(model: object) -> nn.Module:
    """The torch module of a spandrel descriptor (``.model``) or the module itself."""
    module = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if not isinstance(module, nn.Module):
        raise ModelError(f"ncnn export: {type(model).__name__} is neither a spandrel ImageModelDescriptor nor a "
                         "torch module; pass the descriptor returned by spandrel's ModelLoader")
    return module


# ---------------------------------------------------------------------------- structure checks


@dataclass(frozen=True)
class _ConvAct:
    """A 3x3 convolution and the activation that follows it (``None``, ``nn.ReLU`` or ``nn.LeakyReLU``)."""

    conv: nn.Conv2d
    act: nn.Module | None


@dataclass(frozen=True)
class _CompactPlan:
    convs: tuple[nn.Conv2d, ...]
    slopes: tuple[np.ndarray, ...]  # one per conv but the last
    scale: int
    channels: int


@dataclass(frozen=True)
class _RrdbPlan:
    first: nn.Conv2d
    blocks: tuple[tuple[tuple[_ConvAct, ...], ...], ...]  # block -> 3 dense blocks -> 5 convs
    body: nn.Conv2d
    ups: tuple[tuple[int, _ConvAct], ...]  # (nearest factor, conv) per upsampling step
    hr: _ConvAct
    last: nn.Conv2d
    unshuffle: int  # 0 = none


def _check_conv(conv: object, where: str) -> nn.Conv2d:
    if not isinstance(conv, nn.Conv2d):
        raise ModelError(f"ncnn export: {where} is {type(conv).__name__}, expected a 3x3 Conv2d; "
                         "use the torch backend for this model")
    ok = (tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1) and tuple(conv.padding) == (1, 1)
          and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")
    if not ok:
        raise ModelError(f"ncnn export: {where} is a Conv2d with kernel {tuple(conv.kernel_size)}, stride "
                         f"{tuple(conv.stride)}, padding {conv.padding}, dilation {tuple(conv.dilation)}, groups "
                         f"{conv.groups}, {conv.padding_mode} padding; only 3x3 stride-1 zero-padded convolutions "
                         "are exported, use the torch backend for this model")
    return conv


def _check_act(act: object, where: str) -> nn.Module:
    if isinstance(act, (nn.ReLU, nn.LeakyReLU)):
        return act
    raise ModelError(f"ncnn export: {where} is {type(act).__name__}; only ReLU and LeakyReLU are exported here, "
                     "use the torch backend for this model")


def _conv_act(module: object, where: str, *, act: bool) -> _ConvAct:
    """A ``Conv2d`` or ``Sequential(Conv2d, activation)`` as spandrel's ``conv_block`` builds them."""
    parts = list(module.children()) if isinstance(module, nn.Sequential) else [module]
    if len(parts) != (2 if act else 1):
        names = ", ".join(type(p).__name__ for p in parts)
        expected = "Conv2d + activation" if act else "a Conv2d alone"
        raise ModelError(f"ncnn export: {where} is ({names}), expected {expected} (normalisation layers and "
                         "other conv modes are not exported); use the torch backend for this model")
    conv = _check_conv(parts[0], where)
    return _ConvAct(conv, _check_act(parts[1], f"the activation of {where}") if act else None)


def _slopes(act: object, channels: int, where: str) -> np.ndarray:
    """PReLU slopes that make ``act`` (PReLU, ReLU or LeakyReLU) an ncnn PReLU over ``channels`` channels."""
    if isinstance(act, nn.PReLU):
        values = act.weight.detach().float().cpu().numpy().reshape(-1)
        if values.size == 1:
            values = np.repeat(values, channels)
        if values.size != channels:
            raise ModelError(f"ncnn export: {where} has {values.size} PReLU slopes for {channels} channels; "
                             "the model is corrupt")
        return values.astype(np.float32)
    if isinstance(act, nn.ReLU):
        return np.zeros(channels, np.float32)
    if isinstance(act, nn.LeakyReLU):
        return np.full(channels, act.negative_slope, np.float32)
    raise ModelError(f"ncnn export: {where} is {type(act).__name__}; expected PReLU, ReLU or LeakyReLU")


def _plan_compact(module: nn.Module) -> _CompactPlan:
    body = getattr(module, "body", None)
    upsampler = getattr(module, "upsampler", None)
    scale = int(getattr(module, "upscale", 0))
    if not isinstance(body, nn.ModuleList) or len(body) < 3 or len(body) % 2 == 0:
        raise ModelError("ncnn export: the Compact model has no body of Conv2d/activation pairs; the model is "
                         "corrupt or of another architecture")
    if not isinstance(upsampler, nn.PixelShuffle) or upsampler.upscale_factor != scale or scale < 1:
        raise ModelError("ncnn export: the Compact model does not end in a PixelShuffle of its scale; "
                         "the model is corrupt or of another architecture")
    convs = tuple(_check_conv(body[i], f"body.{i}") for i in range(0, len(body), 2))
    channels = convs[0].in_channels
    feat = convs[0].out_channels
    for i, conv in enumerate(convs[1:-1], start=1):
        if (conv.in_channels, conv.out_channels) != (feat, feat):
            raise ModelError(f"ncnn export: body.{2 * i} maps {conv.in_channels}->{conv.out_channels} channels, "
                             f"expected {feat}->{feat}; the model is corrupt")
    last = convs[-1]
    if last.in_channels != feat or last.out_channels != channels * scale * scale:
        raise ModelError(f"ncnn export: the last conv gives {last.out_channels} channels; the ncnn graph adds the "
                         f"upsampled input, so it must give input channels x scale^2 = {channels * scale * scale}; "
                         "use the torch backend for this model")
    slopes = tuple(_slopes(body[i], feat, f"body.{i}") for i in range(1, len(body) - 1, 2))
    return _CompactPlan(convs, slopes, scale, channels)


def _plan_rrdb(module: nn.Module) -> _RrdbPlan:
    seq = getattr(module, "model", None)
    if not isinstance(seq, nn.Sequential) or len(seq) < 5:
        raise ModelError("ncnn export: the ESRGAN model has no 'model' sequence; the model is corrupt")
    parts = list(seq.children())
    first = _check_conv(parts[0], "model.0 (conv_first)")
    shortcut = parts[1]
    sub = getattr(shortcut, "sub", None)
    if type(shortcut).__name__ != "ShortcutBlock" or not isinstance(sub, nn.Sequential):
        raise ModelError("ncnn export: model.1 is not the residual trunk of an RRDBNet; the model is corrupt")
    trunk = list(sub.children())
    blocks = []
    for b, rrdb in enumerate(trunk[:-1]):
        if type(rrdb).__name__ != "RRDB":
            raise ModelError(f"ncnn export: trunk block {b} is {type(rrdb).__name__}, expected RRDB; "
                             "use the torch backend for this model")
        dense = []
        for r in (1, 2, 3):
            rdb = getattr(rrdb, f"RDB{r}", None)
            if rdb is None:
                raise ModelError(f"ncnn export: trunk block {b} has no RDB{r}; the model is corrupt")
            if getattr(rdb, "conv1x1", None) is not None:
                raise ModelError("ncnn export: ESRGAN+ models (extra 1x1 residual convs) are not exported; "
                                 "use the torch backend for this model")
            where = f"block {b} RDB{r}"
            dense.append(tuple(_conv_act(getattr(rdb, f"conv{c}"), f"{where} conv{c}", act=c < 5)
                               for c in range(1, 6)))
        blocks.append(tuple(dense))
    if not blocks:
        raise ModelError("ncnn export: the RRDBNet has no residual blocks; the model is corrupt")
    body = _conv_act(trunk[-1], "conv_body", act=False).conv
    rest = parts[2:]
    ups: list[tuple[int, _ConvAct]] = []
    while rest and isinstance(rest[0], nn.Upsample):
        upsample = rest[0]
        factor = upsample.scale_factor
        factor = factor[0] if isinstance(factor, tuple) else factor
        if upsample.mode != "nearest" or factor is None or float(factor) != int(factor) or len(rest) < 3:
            raise ModelError(f"ncnn export: upsampler {upsample} is not a nearest integer upsample followed by a conv;"
                             " use the torch backend for this model")
        ups.append((int(factor), _ConvAct(_check_conv(rest[1], "an upsampling conv"),
                                          _check_act(rest[2], "the upsampling activation"))))
        rest = rest[3:]
    if not ups or len(rest) != 3:
        names = ", ".join(type(p).__name__ for p in rest)
        raise ModelError(f"ncnn export: the RRDBNet tail is ({names}); only the nearest-upsample + conv upsampler "
                         "followed by conv_hr, activation, conv_last is exported; use the torch backend")
    hr = _ConvAct(_check_conv(rest[0], "conv_hr"), _check_act(rest[1], "the activation of conv_hr"))
    last = _check_conv(rest[2], "conv_last")
    unshuffle = int(getattr(module, "shuffle_factor", None) or 0)
    if unshuffle and unshuffle not in (2, 4):
        raise ModelError(f"ncnn export: pixel-unshuffle by {unshuffle} is not supported (only 2 and 4)")
    if unshuffle and first.in_channels != last.out_channels * unshuffle * unshuffle:
        raise ModelError(f"ncnn export: conv_first takes {first.in_channels} channels, expected "
                         f"{last.out_channels * unshuffle * unshuffle} after pixel-unshuffle by {unshuffle}")
    return _RrdbPlan(first, tuple(blocks), body, tuple(ups), hr, last, unshuffle)


def _plan(model: object) -> _CompactPlan | _RrdbPlan:
    module = _unwrap(model)
    name = type(module).__name__
    if name in ("SRVGGNetCompact", "Compact"):
        return _plan_compact(module)
    if name in ("RRDBNet", "ESRGAN") and hasattr(module, "model"):
        return _plan_rrdb(module)
    architecture = getattr(getattr(model, "architecture", None), "name", None) or name
    raise ModelError(f"ncnn export: {architecture} is not supported (only Compact/SRVGGNetCompact and "
                     "ESRGAN/RRDBNet); use the torch backend for this model")


def ncnn_supported(descriptor: object) -> str | None:
    """``None`` when :func:`export_ncnn` can write ``descriptor`` (a spandrel descriptor or module), else why not."""
    try:
        _plan(descriptor)
    except ModelError as exc:
        return str(exc).removeprefix("ncnn export: ")
    return None


# ---------------------------------------------------------------------------- graph writer


def _fmt(value: float) -> str:
    return f"{value:e}"


@dataclass
class _Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: str


@dataclass
class _Graph:
    """Collects layers and weight bytes; inserts ``Split`` layers for blobs read by several layers."""

    fp16_weights: bool
    layers: list[_Layer] = field(default_factory=list)
    weights: bytearray = field(default_factory=bytearray)
    blob_count: int = 0
    fp32_fallbacks: int = 0

    def blob(self) -> str:
        self.blob_count += 1
        return str(self.blob_count)

    def add(self, kind: str, name: str, bottoms: list[str], params: str = "", top: str | None = None) -> str:
        top = top or self.blob()
        self.layers.append(_Layer(kind, name, bottoms, [top], params))
        return top

    def _tagged(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        if self.fp16_weights and np.all(np.abs(values) <= _FP16_MAX):
            raw = values.astype("<f2").tobytes()
            self.weights += _TAG_FP16.to_bytes(4, "little") + raw + b"\0" * ((-len(raw)) % 4)
            return
        if self.fp16_weights:
            self.fp32_fallbacks += 1
        self.weights += _TAG_FP32.to_bytes(4, "little") + values.astype("<f4").tobytes()

    def _raw(self, values: np.ndarray) -> None:
        self.weights += np.ascontiguousarray(values, dtype=np.float32).reshape(-1).astype("<f4").tobytes()

    def conv(self, conv: nn.Conv2d, bottom: str, name: str, act: nn.Module | None = None,
             top: str | None = None) -> str:
        weight = conv.weight.detach().float().cpu().numpy()
        out_ch = weight.shape[0]
        bias = (conv.bias.detach().float().cpu().numpy() if conv.bias is not None
                else np.zeros(out_ch, np.float32))
        params = f"0={out_ch} 1=3 4=1 5=1 6={weight.size}"
        if isinstance(act, nn.ReLU) or (isinstance(act, nn.LeakyReLU) and act.negative_slope == 0):
            params += f" 9={_ACT_RELU}"
        elif isinstance(act, nn.LeakyReLU):
            params += f" 9={_ACT_LEAKY} -23310=1,{_fmt(act.negative_slope)}"
        self._tagged(weight)
        self._raw(bias)
        return self.add("Convolution", name, [bottom], params, top)

    def prelu(self, slopes: np.ndarray, bottom: str, name: str) -> str:
        self._raw(slopes)
        return self.add("PReLU", name, [bottom], f"0={slopes.size}")

    def text(self) -> str:
        """The .param text, with a Split after every blob that more than one layer reads."""
        readers: dict[str, int] = {}
        for layer in self.layers:
            for bottom in layer.bottoms:
                readers[bottom] = readers.get(bottom, 0) + 1
        layers = [_Layer("Input", "input", [], [INPUT_BLOB], "")] + self.layers
        out: list[_Layer] = []
        next_copy: dict[str, list[str]] = {}
        for layer in layers:
            layer = _Layer(layer.type, layer.name, [next_copy[b].pop(0) if b in next_copy else b
                                                    for b in layer.bottoms], layer.tops, layer.params)
            out.append(layer)
            for top in layer.tops:
                count = readers.get(top, 0)
                if count > 1:
                    copies = [f"{top}_splitncnn_{i}" for i in range(count)]
                    out.append(_Layer("Split", f"splitncnn_{len(next_copy)}", [top], copies, ""))
                    next_copy[top] = list(copies)
        blobs = {top for layer in out for top in layer.tops}
        lines = [str(_PARAM_MAGIC), f"{len(out)} {len(blobs)}"]
        for layer in out:
            lines.append(" ".join([f"{layer.type:<24}", f"{layer.name:<24}", str(len(layer.bottoms)),
                                   str(len(layer.tops)), *layer.bottoms, *layer.tops, layer.params]).rstrip())
        return "\n".join(lines) + "\n"


def _emit_compact(plan: _CompactPlan, graph: _Graph) -> None:
    h = INPUT_BLOB
    for i, conv in enumerate(plan.convs[:-1]):
        h = graph.conv(conv, h, f"Conv_{2 * i}")
        h = graph.prelu(plan.slopes[i], h, f"PRelu_{2 * i + 1}")
    h = graph.conv(plan.convs[-1], h, f"Conv_{2 * len(plan.convs) - 2}")
    shuffled = graph.add("PixelShuffle", "DepthToSpace", [h], f"0={plan.scale}")
    upsampled = graph.add("Interp", "Resize_up", [INPUT_BLOB],
                          f"0={_INTERP_NEAREST} 1={_fmt(plan.scale)} 2={_fmt(plan.scale)}")
    graph.add("BinaryOp", "Add", [shuffled, upsampled], "0=0", top=OUTPUT_BLOB)


def _emit_rrdb(plan: _RrdbPlan, graph: _Graph) -> None:
    h = INPUT_BLOB
    if plan.unshuffle:
        h = graph.add("Reorg", "PixelUnshuffle", [h], f"0={plan.unshuffle} 1=0")
    fea = graph.conv(plan.first, h, "conv_first")
    h = fea
    for b, block in enumerate(plan.blocks):
        block_in = h
        for r, dense in enumerate(block, start=1):
            features = [h]
            out = h
            for c, conv in enumerate(dense, start=1):
                where = f"body.{b}.rdb{r}.conv{c}"
                source = features[0] if c == 1 else graph.add("Concat", f"{where}.concat", list(features))
                out = graph.conv(conv.conv, source, where, conv.act)
                features.append(out)
            h = graph.add("Eltwise", f"body.{b}.rdb{r}.residual", [out, features[0]],
                          f"0=1 -23301=2,{_fmt(_RESIDUAL_SCALE)},{_fmt(1.0)}")
        h = graph.add("Eltwise", f"body.{b}.residual", [h, block_in],
                      f"0=1 -23301=2,{_fmt(_RESIDUAL_SCALE)},{_fmt(1.0)}")
    body = graph.conv(plan.body, h, "conv_body")
    h = graph.add("BinaryOp", "trunk_add", [fea, body], "0=0")
    for i, (factor, conv) in enumerate(plan.ups, start=1):
        h = graph.add("Interp", f"upsample{i}", [h], f"0={_INTERP_NEAREST} 1={_fmt(factor)} 2={_fmt(factor)}")
        h = graph.conv(conv.conv, h, f"conv_up{i}", conv.act)
    h = graph.conv(plan.hr.conv, h, "conv_hr", plan.hr.act)
    graph.conv(plan.last, h, "conv_last", top=OUTPUT_BLOB)


def export_ncnn(model: object, param_path: str | Path, bin_path: str | Path, *, fp16_weights: bool = True) -> None:
    """Write ``model`` (a spandrel ``ImageModelDescriptor`` or its module) as an ncnn .param/.bin pair.

    ``fp16_weights`` stores convolution weights as fp16 (half the size, what Real-ESRGAN ships; a weight blob
    with values beyond the fp16 range is kept fp32); biases and PReLU slopes are always fp32. Each file is
    written to a temp file in its folder, fsynced and renamed, the .bin first, so a reader never sees a
    partial file and a .param never names missing weights.

    Raises:
        ModelError: the architecture or one of its layers cannot be expressed (the message says which).
        OSError: a file cannot be written.
    """
    plan = _plan(model)
    graph = _Graph(fp16_weights)
    with torch.no_grad():
        if isinstance(plan, _CompactPlan):
            _emit_compact(plan, graph)
        else:
            _emit_rrdb(plan, graph)
    text = graph.text()
    param_path, bin_path = Path(param_path), Path(bin_path)
    for folder in {param_path.parent, bin_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(bin_path, bytes(graph.weights))
    atomic_write_bytes(param_path, text.encode("utf-8"))
    for folder in {param_path.parent, bin_path.parent}:
        fsync_dir(folder)
    if graph.fp32_fallbacks:
        logger.warning("ncnn export: %d weight blobs exceed the fp16 range and were stored as fp32",
                       graph.fp32_fallbacks)
    logger.info("ncnn export: wrote %s (%d layers) and %s (%.1f MB)", param_path.name, text.count("\n") - 2,
                bin_path.name, len(graph.weights) / 1e6)
