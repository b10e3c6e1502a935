"""One image file of a sequence: decoded to RGB (and alpha) at 8 or 16 bits, or encoded, with PyAV.

The extension (case-insensitive) picks the format: ``.png``, ``.tif``/``.tiff``, ``.jpg``/``.jpeg``, ``.exr``,
``.dpx``. Every format is decoded by PyAV (ffmpeg's png, tiff, mjpeg, exr and dpx decoders, one file per
``av.open``), so there is one code path. Sequences of these files are found and planned by
:mod:`stages.production.sequence`.

Bit depth: 8-bit images give 8-bit intermediates; anything above 8 bits (16-bit PNG/TIFF, 10/12/16-bit DPX,
float EXR) gives 16-bit intermediates. An integer image of b bits is scaled to 16 bits as
``round(v * 65535 / (2**b - 1))``: exactly ``v * 257`` for 8 bits; for 10-bit DPX, which ffmpeg decodes to
``gbrp10le`` with the plain 10-bit values 0..1023 (not shifted to the top of the 16-bit word), 1023 becomes 65535
and 512 becomes 32800. The scaling is done here on the decoded values, not by swscale. DPX is taken as
display-referred as it is stored: a log-encoded (Cineon/film) DPX keeps its log look, nothing is linearised.

Display transform of OpenEXR (user facing). EXR holds scene-linear light, everything else is display-referred
("srgb"). An EXR frame is made displayable like this:

1. the values are taken as scene-linear with BT.709/sRGB primaries (no gamut conversion);
2. they are clipped to [0, 1]: negative values become 0 and values above 1.0 (highlights) clip to white; there is
   no tone mapping, so expose or grade the EXRs for display before you bring them in if highlights matter;
   NaN becomes 0;
3. they are encoded with the sRGB transfer function of IEC 61966-2-1: ``12.92 * x`` for ``x < 0.0031308``, else
   ``1.055 * x ** (1 / 2.4) - 0.055`` (:func:`linear_to_display`);
4. they are quantised to 16 bits: ``round(v * 65535)``.

The alpha of an EXR is linear coverage: clipped to [0, 1] and quantised, not transformed. Half-float and float
EXRs are both reported as 32 bits (ffmpeg decodes both to 32-bit float).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import CodecContext

from stages.errors import InputError, SettingsError
from stages.store.fsutil import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".exr", ".dpx")
"""Extensions of the image files a sequence may hold (compared case-insensitively)."""

_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg", ".exr": "exr",
            ".dpx": "dpx"}
_STORAGE_DEPTHS = (8, 16)
# Decoded pixel formats whose values to_ndarray gives as they are (gbrp formats come back in RGB order); every
# other one (yuvj420p from JPEG, palettes, grey with alpha...) is converted to rgb24/rgba/rgb48le/rgba64le first.
_NATIVE_FORMATS = frozenset({
    "rgb24", "rgba", "rgb48le", "rgb48be", "rgba64le", "rgba64be", "gray", "gray8",
    "gbrp", "gbrap", "gbrpf32le", "gbrpf32be", "gbrapf32le", "gbrapf32be", "grayf32le", "grayf32be",
    *(f"gbrp{bits}{end}" for bits in (9, 10, 12, 14, 16) for end in ("le", "be")),
    *(f"gbrap{bits}{end}" for bits in (10, 12, 14, 16) for end in ("le", "be")),
    *(f"gray{bits}{end}" for bits in (9, 10, 12, 14, 16) for end in ("le", "be")),
})


@dataclass(frozen=True)
class ImageFrame:
    """One decoded image: ``rgb`` is ``HxWx3``, ``alpha`` ``HxW`` or None; uint8 at storage depth 8, uint16 at 16."""

    rgb: np.ndarray
    alpha: np.ndarray | None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def linear_to_display(values: np.ndarray) -> np.ndarray:
    """Scene-linear values (any shape, float) to display values in [0, 1]: clip to [0, 1] (NaN -> 0), then the
    sRGB transfer function of IEC 61966-2-1. float32 in gives float32 out, anything else float64."""
    array = np.asarray(values)
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    x = np.clip(np.nan_to_num(array.astype(dtype, copy=False), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    high = np.where(x >= 1.0, 1.0, 1.055 * np.power(x, dtype(1.0 / 2.4)) - 0.055)  # 1.055 - 0.055 is not 1.0
    return np.clip(np.where(x < 0.0031308, 12.92 * x, high), 0.0, 1.0).astype(dtype, copy=False)


def display_to_linear(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`linear_to_display` on [0, 1]: display values (clipped to [0, 1]) to scene-linear
    values with the inverse sRGB transfer function. float32 in gives float32 out, anything else float64."""
    array = np.asarray(values)
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    v = np.clip(np.nan_to_num(array.astype(dtype, copy=False), nan=0.0), 0.0, 1.0)
    high = np.power((v + 0.055) / 1.055, dtype(2.4))
    return np.where(v < 0.04045, v / 12.92, high).astype(dtype, copy=False)


def _decode_file(path: str | os.PathLike[str]) -> av.VideoFrame:
    """The one frame of an image file, as ffmpeg decodes it.

    Raises:
        InputError: the file is missing, empty, truncated or corrupt.
    """
    shown = os.fspath(path)
    advice = "re-export it, or remove it and use the 'hold' missing-frame policy to show the previous frame instead"
    try:
        # image2 with pattern_type none: the name is taken literally, a '%' in it is no sequence pattern
        with av.open(shown, format="image2", options={"pattern_type": "none"}) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                return frame
    except FileNotFoundError as exc:
        raise InputError(f"sequence: frame {shown} is gone ({exc}); check that nothing moved the files") from exc
    except (OSError, av.error.FFmpegError, IndexError, ValueError) as exc:
        raise InputError(f"sequence: frame {shown} does not decode ({exc}); {advice}") from exc
    raise InputError(f"sequence: frame {shown} is empty or holds no image; {advice}")


def _depth_and_alpha(fmt: av.VideoFormat) -> tuple[int, bool]:
    """Source bit depth (8, 10, 12, 16; 32 for float) and whether the decoded format carries alpha."""
    components = fmt.components
    has_alpha = any(c.is_alpha for c in components)
    if _is_float(fmt.name):
        return 32, has_alpha
    return max(8, max(c.bits for c in components)), has_alpha


def _is_float(name: str) -> bool:
    return "f32" in name or "f16" in name


def _native_array(frame: av.VideoFrame) -> tuple[np.ndarray, int]:
    """Pixel values of a decoded frame as ``HxW`` / ``HxWxC`` (RGB(A) order) and their bit depth (32: float)."""
    fmt = frame.format
    bits, has_alpha = _depth_and_alpha(fmt)
    if fmt.name in _NATIVE_FORMATS:
        return frame.to_ndarray(), bits
    if bits > 8:
        target, bits = ("rgba64le" if has_alpha else "rgb48le"), 16
    else:
        target, bits = ("rgba" if has_alpha else "rgb24"), 8
    return frame.reformat(format=target).to_ndarray(), bits


def _to_storage(values: np.ndarray, bits: int, storage: int, linear: bool, *, is_alpha: bool = False) -> np.ndarray:
    """Integer ``bits``-bit (or float, ``bits`` 32) values to ``storage`` bits (see the module docstring)."""
    dtype = np.uint8 if storage == 8 else np.uint16
    top = (1 << storage) - 1
    if bits == 32:
        display = values.astype(np.float32)
        display = np.clip(np.nan_to_num(display, nan=0.0), 0.0, 1.0) if is_alpha or not linear else (
            linear_to_display(display))
        return np.rint(display * np.float32(top)).astype(dtype)
    if bits == storage:
        return values.astype(dtype, copy=False)
    if bits == 8 and storage == 16:
        return values.astype(np.uint16) * np.uint16(257)
    source_top = (1 << bits) - 1
    wide = values.astype(np.int64)
    return ((wide * (2 * top) + source_top) // (2 * source_top)).astype(dtype)


def read_image(
    path: str | os.PathLike[str], *, expect: tuple[int, int] | None = None, storage_depth: int = 8
) -> ImageFrame:
    """Decode one image file to RGB (and alpha) at ``storage_depth`` bits (8 -> uint8, 16 -> uint16).

    ``expect`` is ``(width, height)``: the size every frame of the sequence must have. Grey images are repeated
    into the three channels. EXR gets the display transform of the module docstring; integer images are scaled
    (``x257`` from 8 to 16 bits, ``round(v * 65535 / (2**b - 1))`` from b bits, ``round(v / 257)``-like rounding
    down to 8 bits).

    Raises:
        SettingsError: ``storage_depth`` is not 8 or 16.
        InputError: the file is missing, empty, truncated or corrupt, or its size differs from ``expect``.
    """
    if storage_depth not in _STORAGE_DEPTHS:
        raise SettingsError(f"sequence: storage depth {storage_depth} is not supported; use 8 or 16")
    frame = _decode_file(path)
    if expect is not None and (frame.width, frame.height) != tuple(expect):
        width, height = expect
        raise InputError(
            f"sequence: frame {os.fspath(path)} is {frame.width}x{frame.height} but the sequence is {width}x{height}; "
            f"a sequence must keep one size, re-export this frame at {width}x{height}"
        )
    values, bits = _native_array(frame)
    linear = os.path.splitext(os.fspath(path))[1].lower() == ".exr"
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    colour = values[:, :, :1].repeat(3, axis=2) if channels < 3 else values[:, :, :3]
    rgb = np.ascontiguousarray(_to_storage(colour, bits, storage_depth, linear))
    alpha = None
    if channels in (2, 4):
        alpha = np.ascontiguousarray(_to_storage(values[:, :, channels - 1], bits, storage_depth, linear,
                                                 is_alpha=True))
    return ImageFrame(rgb=rgb, alpha=alpha)


_WRITE_FORMATS = {
    # format -> {(dtype kind, bits, alpha): encoder pixel format}
    "png": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 16, False): "rgb48be",
            ("u2", 16, True): "rgba64be"},
    "tiff": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 16, False): "rgb48le",
             ("u2", 16, True): "rgba64le"},
    "jpeg": {("u1", 8, False): "yuvj420p"},
    "dpx": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 10, False): "gbrp10le",
            ("u2", 12, False): "gbrp12le", ("u2", 16, False): "rgb48le", ("u2", 16, True): "rgba64le"},
    "exr": {("f4", 32, False): "gbrpf32le", ("f4", 32, True): "gbrapf32le"},
}
_ENCODERS = {"png": "png", "tiff": "tiff", "jpeg": "mjpeg", "dpx": "dpx", "exr": "exr"}


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, *, bit_depth: int | None = None) -> Path:
    """Encode one image with PyAV (format from the extension) and write it atomically; return its path.

    ``pixels`` is ``HxWx3`` (RGB) or ``HxWx4`` (RGBA): uint8 for 8 bits, uint16 for 16 bits (or for 10/12-bit
    DPX with ``bit_depth`` 10/12, values 0..2**bits-1), float32 for EXR (values written as they are, i.e.
    scene-linear). Supported: PNG/TIFF 8 and 16 bits with or without alpha, JPEG 8-bit RGB (``yuvj420p``, high
    quality), DPX 8/16 bits with or without alpha and 10/12 bits without, EXR float with or without alpha.

    Raises:
        SettingsError: unsupported extension, shape, dtype or depth for the format.
    """
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise SettingsError(f"sequence: cannot write {out.name}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise SettingsError(f"sequence: image of shape {array.shape} for {out.name}; give HxWx3 or HxWx4 pixels")
    kind = array.dtype.str[1:]
    bits = bit_depth if bit_depth is not None else {"u1": 8, "u2": 16, "f4": 32}.get(kind, 0)
    alpha = array.shape[2] == 4
    pix_fmt = _WRITE_FORMATS[fmt].get((kind, bits, alpha))
    if pix_fmt is None:
        allowed = ", ".join(f"{b}-bit {'RGBA' if a else 'RGB'} ({np.dtype(k).name})"
                            for k, b, a in _WRITE_FORMATS[fmt])
        raise SettingsError(
            f"sequence: cannot write {bits}-bit {'RGBA' if alpha else 'RGB'} {array.dtype} pixels as {fmt} "
            f"({out.name}); {fmt} takes {allowed}"
        )
    if bits in (10, 12) and int(array.max()) >= 1 << bits:
        raise SettingsError(f"sequence: values above {(1 << bits) - 1} for a {bits}-bit {out.name}; scale them first")
    height, width = array.shape[:2]
    if pix_fmt == "yuvj420p":
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24").reformat(format=pix_fmt)
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=pix_fmt)
    context = CodecContext.create(_ENCODERS[fmt], "w")
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 25)
    if fmt == "jpeg":
        context.options = {"qmin": "1", "qmax": "2"}
    packets = [*context.encode(frame), *context.encode(None)]
    atomic_write_bytes(out, b"".join(bytes(packet) for packet in packets))
    return out
