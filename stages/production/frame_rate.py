"""The frame rate an image file's header may carry: OpenEXR's ``framesPerSecond``, DPX's film and TV frame rates.

A plan scene may leave its frame rate to the sequence (``"fps": "auto"``, the default in the carrier spec's format):
:func:`sequence_frame_rate` reads the header of the sequence's first frame. Only the header is read (a few KB), never
the pixels. PNG, TIFF and JPEG have no frame rate; EXR has one when the ``framesPerSecond`` attribute (type
``rational``) is present; DPX has one when its film header (``frame_rate`` at byte 1724) or its TV header (byte
1940) holds a positive number (an unset field is all ones: NaN).

:func:`tag_frame_rate` writes the rate into an existing EXR (single-part scanline) or DPX file, the way a camera or
a compositor would (the example project and the tests use it).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stages.errors import InputError, SettingsError
from stages.store.fsutil import atomic_write_bytes

EXR_MAGIC = b"\x76\x2f\x31\x01"
DPX_MAGICS = {b"SDPX": ">", b"XPDS": "<"}
EXR_RATE_ATTRIBUTE = "framesPerSecond"
DPX_FILM_RATE_OFFSET = 1724
DPX_TV_RATE_OFFSET = 1940
DPX_GENERIC_HEADER = 1664  # file + image + orientation headers; the film (256) and TV (128) headers follow
DPX_INDUSTRY_HEADER = 384
_MAX_HEADER = 1 << 20  # an EXR header is a few hundred bytes; anything past 1 MiB is not a header
_EXR_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


@dataclass(frozen=True)
class FrameRateFound:
    """What :func:`sequence_frame_rate` found: the rate (None when there is none), and where from or why not."""

    rate: Fraction | None
    source: str


def read_frame_rate(path: str | os.PathLike[str]) -> Fraction | None:
    """The frame rate in the header of one EXR or DPX file, None when the header holds none (or for other formats).

    Raises:
        InputError: the file cannot be read, or is not the EXR/DPX its extension says.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".exr", ".dpx"):
        return None
    try:
        with file.open("rb") as handle:
            head = handle.read(_MAX_HEADER if suffix == ".exr" else DPX_TV_RATE_OFFSET + 4)
    except OSError as exc:
        raise InputError(f"sequence: cannot read {file} ({exc}); check that the file is there and readable") from exc
    if suffix == ".exr":
        attributes = _exr_attributes(head, file)[0]
        value = attributes.get(EXR_RATE_ATTRIBUTE)
        if value is None or value[0] != "rational" or len(value[1]) != 8:
            return None
        numerator, denominator = struct.unpack("<iI", value[1])
        return Fraction(numerator, denominator) if numerator > 0 and denominator > 0 else None
    order = _dpx_order(head, file)
    data_offset = struct.unpack(f"{order}I", head[4:8])[0]
    for offset in (DPX_FILM_RATE_OFFSET, DPX_TV_RATE_OFFSET):
        if data_offset >= offset + 4 and len(head) >= offset + 4:
            rate = struct.unpack(f"{order}f", head[offset:offset + 4])[0]
            if math.isfinite(rate) and 0 < rate < 1000:
                return Fraction(rate).limit_denominator(1001)
    return None


def sequence_frame_rate(paths: tuple[str, ...] | list[str]) -> FrameRateFound:
    """The frame rate of a sequence from the header of its first frame (``paths`` in frame order)."""
    if not paths:
        return FrameRateFound(None, "no frame found to read a frame rate from")
    first = Path(paths[0])
    try:
        rate = read_frame_rate(first)
    except InputError as exc:
        return FrameRateFound(None, f"the header of {first.name} cannot be read ({exc})")
    if rate is not None:
        what = "framesPerSecond" if first.suffix.lower() == ".exr" else "header frame rate"
        return FrameRateFound(rate, f"{what} of {first.name}")
    if first.suffix.lower() in (".exr", ".dpx"):
        return FrameRateFound(None, f"{first.name} has no frame rate in its header")
    return FrameRateFound(None, f"{first.suffix.lstrip('.').upper()} files carry no frame rate")


def tag_frame_rate(path: str | os.PathLike[str], fps: Fraction | int) -> Path:
    """Write ``fps`` into the header of an EXR (``framesPerSecond``, single-part scanline files) or a DPX (film
    and TV frame rates; a DPX without those headers gets them, every other field unset); atomic. Returns the path.

    Raises:
        SettingsError: another format, a tiled or multi-part EXR, a rate that is not positive.
        InputError: the file cannot be read or is not a valid EXR/DPX.
    """
    file = Path(path)
    rate = Fraction(fps)
    if rate <= 0:
        raise SettingsError(f"sequence: frame rate {fps} must be above 0")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"sequence: cannot read {file} ({exc})") from exc
    suffix = file.suffix.lower()
    if suffix == ".exr":
        atomic_write_bytes(file, _tag_exr(data, file, rate))
    elif suffix == ".dpx":
        atomic_write_bytes(file, _tag_dpx(data, file, rate))
    else:
        raise SettingsError(f"sequence: {file.name}: only EXR and DPX files carry a frame rate")
    return file


# ----------------------------------------------------------------------------------------------------- EXR


def _exr_attributes(data: bytes, file: Path) -> tuple[dict[str, tuple[str, bytes]], int, int]:
    """The first header's attributes (name -> (type, value bytes)), the offset of its terminating NUL and the
    version field."""
    if len(data) < 8 or data[:4] != EXR_MAGIC:
        raise InputError(f"sequence: {file.name} is not an OpenEXR file (no EXR magic number)")
    version = struct.unpack("<I", data[4:8])[0]
    position = 8
    attributes: dict[str, tuple[str, bytes]] = {}
    try:
        while data[position] != 0:
            name_end = data.index(b"\0", position)
            type_end = data.index(b"\0", name_end + 1)
            size = struct.unpack("<i", data[type_end + 1:type_end + 5])[0]
            start = type_end + 5
            if size < 0 or start + size > len(data):
                raise ValueError(size)
            attributes[data[position:name_end].decode("latin-1")] = (
                data[name_end + 1:type_end].decode("latin-1"), data[start:start + size])
            position = start + size
    except (IndexError, ValueError, struct.error) as exc:
        raise InputError(f"sequence: the EXR header of {file.name} is damaged ({exc}); export the frame again") \
            from exc
    return attributes, position, version


def _tag_exr(data: bytes, file: Path, rate: Fraction) -> bytes:
    attributes, end, version = _exr_attributes(data, file)
    if version & 0x1200:  # tiled (0x200) or multi-part (0x1000)
        raise SettingsError(f"sequence: {file.name} is a tiled or multi-part EXR; only scanline files are tagged")
    value = struct.pack("<iI", rate.numerator, rate.denominator)
    if EXR_RATE_ATTRIBUTE in attributes:  # same size: replace the value in place
        marker = EXR_RATE_ATTRIBUTE.encode() + b"\0rational\0" + struct.pack("<i", 8)
        at = data.index(marker, 8) + len(marker)
        return data[:at] + value + data[at + 8:]
    box = attributes.get("dataWindow", ("", b""))[1]
    compression = attributes.get("compression", ("", b"\0"))[1]
    if len(box) != 16 or not compression or compression[0] not in _EXR_LINES_PER_CHUNK:
        raise InputError(f"sequence: the EXR header of {file.name} has no usable dataWindow/compression")
    _xmin, ymin, _xmax, ymax = struct.unpack("<4i", box)
    chunks = math.ceil((ymax - ymin + 1) / _EXR_LINES_PER_CHUNK[compression[0]])
    attribute = EXR_RATE_ATTRIBUTE.encode() + b"\0rational\0" + struct.pack("<i", 8) + value
    table_start = end + 1
    offsets = struct.unpack(f"<{chunks}Q", data[table_start:table_start + 8 * chunks])
    table = struct.pack(f"<{chunks}Q", *(offset + len(attribute) for offset in offsets))
    return data[:end] + attribute + b"\0" + table + data[table_start + 8 * chunks:]


# ----------------------------------------------------------------------------------------------------- DPX


def _dpx_order(data: bytes, file: Path) -> str:
    order = DPX_MAGICS.get(data[:4])
    if order is None or len(data) < 32:
        raise InputError(f"sequence: {file.name} is not a DPX file (no SDPX magic number)")
    return order


def _tag_dpx(data: bytes, file: Path, rate: Fraction) -> bytes:
    order = _dpx_order(data, file)
    data_offset = struct.unpack(f"{order}I", data[4:8])[0]
    if data_offset < DPX_GENERIC_HEADER:
        raise InputError(f"sequence: {file.name} has a DPX header shorter than {DPX_GENERIC_HEADER} bytes")
    buffer = bytearray(data)
    if data_offset < DPX_TV_RATE_OFFSET + 4:  # no industry headers: insert them (all fields unset)
        insert = DPX_GENERIC_HEADER + DPX_INDUSTRY_HEADER - data_offset
        buffer[data_offset:data_offset] = b"\xff" * insert
        new_offset = data_offset + insert
        struct.pack_into(f"{order}I", buffer, 4, new_offset)  # offset to the image data
        struct.pack_into(f"{order}I", buffer, 16, len(buffer))  # file size
        struct.pack_into(f"{order}I", buffer, 28, DPX_INDUSTRY_HEADER)  # industry header size
        elements = struct.unpack(f"{order}H", bytes(buffer[770:772]))[0]
        for element in range(min(elements, 8)):  # each image element's data offset
            at = 808 + 72 * element
            old = struct.unpack(f"{order}I", bytes(buffer[at:at + 4]))[0]
            if old not in (0, 0xFFFFFFFF):
                struct.pack_into(f"{order}I", buffer, at, old + insert)
    for offset in (DPX_FILM_RATE_OFFSET, DPX_TV_RATE_OFFSET):
        struct.pack_into(f"{order}f", buffer, offset, float(rate))
    return bytes(buffer)
