"""The quality benchmark's cases: ground-truth sequences and their x4 degradations.

Cases (:func:`make_cases`): each ground-truth (GT) sequence - Vid4 calendar and city from
``<shared>/testdata/vid4/GT/<seq>/*.png`` when present, and always a generated clip of a photo filmed with a
moving camera (:func:`stages.quality.samples.make_sample_clip`, decoded) - crossed with each degradation
(:data:`DEGRADATIONS`, all x4):

- ``bicubic``: antialiased bicubic downscale (Pillow ``BICUBIC``, which widens the kernel by the scale factor,
  like MATLAB ``imresize``);
- ``bd``: Gaussian blur sigma 1.6 (13x13 kernel, reflected border), then keep every 4th pixel (from pixel 0);
- ``x264``: ``bicubic``, then libx264 CRF 28 (preset medium, yuv420p, 12 fps) encode and decode (PyAV).

GT frames are cropped (top-left) to a multiple of 8 so the low-resolution frames have even sizes (4:2:0).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from stages.errors import SettingsError
from stages.media.chunkio import read_frames
from stages.store.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

SCALE = 4
DEGRADATIONS = ("bicubic", "bd", "x264")
VID4_SEQUENCES = ("calendar", "city")
BD_SIGMA = 1.6
X264_CRF = 28
CASE_VERSION = "1"

DEGRADATION_DEFINITION = (
    "x4 degradations: bicubic = antialiased bicubic downscale (Pillow BICUBIC); bd = Gaussian blur sigma 1.6 "
    "(13x13, reflected border) then every 4th pixel from 0; x264 = bicubic then libx264 CRF 28 yuv420p "
    "encode/decode; GT cropped top-left to a multiple of 8"
)


@dataclass
class Case:
    """One ground-truth sequence under one degradation.

    Args:
        name: ``<sequence>/<degradation>``.
        frames_gt: the GT frames (``HxWx3`` uint8 RGB), a folder of PNGs, or an ``.npz`` cache written by
            :meth:`cached` (arrays ``gt`` and ``lr``).
        degradation: one of :data:`DEGRADATIONS`.
        sequence: the sequence name (default: the part of ``name`` before ``/``).
        max_frames: keep the first frames only (folders); None keeps all.
    """

    name: str
    frames_gt: list[np.ndarray] | Path
    degradation: str
    sequence: str = ""
    max_frames: int | None = None
    _lr: list[np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.degradation not in DEGRADATIONS:
            raise SettingsError(f"benchmark: unknown degradation {self.degradation!r}; use one of "
                                f"{', '.join(DEGRADATIONS)}")
        if not self.sequence:
            self.sequence = self.name.split("/")[0]

    def ground_truth(self) -> list[np.ndarray]:
        """The GT frames, cropped to a multiple of 8."""
        source = self.frames_gt
        if isinstance(source, (str, Path)):
            path = Path(source)
            if path.suffix == ".npz":
                with np.load(path) as data:
                    return list(data["gt"])
            frames = [_read_png(p) for p in sorted(path.glob("*.png"))[: self.max_frames]]
        else:
            frames = list(source[: self.max_frames] if self.max_frames else source)
        if not frames:
            raise SettingsError(f"benchmark: case {self.name} has no frames")
        return [crop_to_multiple(f, 2 * SCALE) for f in frames]

    def degraded(self) -> list[np.ndarray]:
        """The low-resolution input (GT / 4 under :attr:`degradation`)."""
        if self._lr is None:
            if isinstance(self.frames_gt, Path) and self.frames_gt.suffix == ".npz":
                with np.load(self.frames_gt) as data:
                    self._lr = list(data["lr"])
            else:
                self._lr = degrade(self.ground_truth(), self.degradation)
        return self._lr

    def cache_key(self) -> str:
        source = self.frames_gt
        if isinstance(source, (str, Path)):
            ident = f"{Path(source).resolve()}:{self.max_frames}"
        else:
            digest = hashlib.sha256()
            for frame in source[: self.max_frames] if self.max_frames else source:
                digest.update(np.ascontiguousarray(frame).tobytes())
            ident = digest.hexdigest()
        text = json.dumps([ident, self.degradation, CASE_VERSION, SCALE])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cached(self, folder: str | Path) -> tuple[Case, bool]:
        """This case with GT and degraded frames stored as ``<folder>/<seq>-<degradation>-<key>.npz`` (reused when
        present); returns the case that reads from it and whether the file was reused."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.sequence}-{self.degradation}-{self.cache_key()}.npz"
        reused = path.exists()
        if not reused:
            buffer = io.BytesIO()
            np.savez(buffer, gt=np.stack(self.ground_truth()), lr=np.stack(self.degraded()))
            atomic_write_bytes(path, buffer.getvalue())
        return Case(self.name, path, self.degradation, self.sequence), reused


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SettingsError(f"benchmark: cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_to_multiple(frame: np.ndarray, multiple: int) -> np.ndarray:
    """``frame`` cropped (top-left kept) so both sides are multiples of ``multiple``."""
    height, width = frame.shape[:2]
    return np.ascontiguousarray(frame[: height - height % multiple, : width - width % multiple])


def degrade(frames: Sequence[np.ndarray], degradation: str, scale: int = SCALE) -> list[np.ndarray]:
    """Low-resolution versions (``H/scale x W/scale x 3`` uint8) of GT frames (sides multiples of ``scale``).

    Raises:
        SettingsError: unknown degradation or a side not a multiple of ``scale``.
    """
    for frame in frames:
        if frame.shape[0] % scale or frame.shape[1] % scale:
            raise SettingsError(f"benchmark: frame {frame.shape[1]}x{frame.shape[0]} is not a multiple of {scale}")
    if degradation == "bicubic":
        return [_bicubic_down(f, scale) for f in frames]
    if degradation == "bd":
        return [cv2.GaussianBlur(f, (13, 13), BD_SIGMA, borderType=cv2.BORDER_REFLECT)[::scale, ::scale].copy()
                for f in frames]
    if degradation == "x264":
        return x264_roundtrip([_bicubic_down(f, scale) for f in frames])
    raise SettingsError(f"benchmark: unknown degradation {degradation!r}; use one of {', '.join(DEGRADATIONS)}")


def _bicubic_down(frame: np.ndarray, scale: int) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    image = Image.fromarray(frame).resize((width // scale, height // scale), Image.Resampling.BICUBIC)
    return np.asarray(image).copy()


def x264_roundtrip(frames: Sequence[np.ndarray], crf: int = X264_CRF) -> list[np.ndarray]:
    """Encode RGB frames with libx264 (CRF ``crf``, yuv420p) in memory and decode them back."""
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    if len(decoded) != len(frames):
        raise SettingsError(f"benchmark: x264 round trip gave {len(decoded)} frames for {len(frames)}")
    return decoded


def generated_frames(width: int = 256, height: int = 192, frames: int = 12, fps: int = 12) -> list[np.ndarray]:
    """Decoded frames of :func:`stages.quality.samples.make_sample_clip` (a photo with camera motion, no audio)."""
    from stages.quality.samples import make_sample_clip

    with tempfile.TemporaryDirectory(prefix="vup-bench-") as tmp:
        clip = make_sample_clip(Path(tmp) / "generated.mp4", width=width, height=height, seconds=frames / fps,
                                fps=fps, audio=False)
        return list(read_frames(clip))[:frames]


def make_cases(
    shared_dir: Path | None,
    generated: bool = True,
    max_frames: int = 10,
    *,
    degradations: Sequence[str] = DEGRADATIONS,
    sequences: Sequence[str] = VID4_SEQUENCES,
    generated_size: tuple[int, int] = (256, 192),
) -> list[Case]:
    """The suite's cases: each Vid4 sequence found under ``<shared_dir>/testdata/vid4/GT`` (absent ones are
    skipped) and, with ``generated``, a generated ``generated_size`` clip, each under every degradation; at
    most ``max_frames`` frames each."""
    sources: list[tuple[str, list[np.ndarray] | Path]] = []
    if shared_dir is not None:
        root = Path(shared_dir) / "testdata" / "vid4" / "GT"
        for seq in sequences:
            folder = root / seq
            if folder.is_dir() and any(folder.glob("*.png")):
                sources.append((seq, folder))
            else:
                log.info("benchmark: %s not found under %s; skipped", seq, root)
    if generated:
        sources.append(("generated", generated_frames(*generated_size, frames=max_frames)))
    return [Case(f"{seq}/{deg}", src, deg, seq, max_frames) for seq, src in sources for deg in degradations]

