"""RIFE (Practical-RIFE IFNet v4.x) frame interpolation, state-dict compatible with the official checkpoints.

- ``arch``: the network, parameterised by version (:data:`~stages.models.rife.arch.ARCHITECTURES`).
- ``load``: read a ``flownet.pkl`` / ``.pth`` / ``.safetensors``, detect the version, load strictly.
- :class:`RifeInterpolator` (here): frames in, frames out, with the padding and batching done.

Typical use::

    model = load_rife(store.resolve("rife-4.25").path, version="4.25")
    frames = RifeInterpolator(model, device="cuda", precision="fp16").interpolate(a, b, [0.25, 0.5, 0.75])
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from stages.device import is_out_of_memory
from stages.errors import DeviceOutOfMemoryError, InputError, SettingsError
from stages.models.rife.arch import (
    ARCHITECTURES,
    SCALES,
    VERSIONS,
    IFNet,
    IFNetSpec,
    get_spec,
)
from stages.models.rife.load import (
    RifeModel,
    detect_rife_version,
    load_rife,
    pad_multiple,
    prepare_state_dict,
    read_state_dict,
)

__all__ = [
    "ARCHITECTURES",
    "SCALES",
    "VERSIONS",
    "IFNet",
    "IFNetSpec",
    "Precision",
    "RifeInterpolator",
    "RifeModel",
    "detect_rife_version",
    "get_spec",
    "load_rife",
    "pad_multiple",
    "prepare_state_dict",
    "read_state_dict",
]

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_MAX_VALUE: dict[np.dtype, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class RifeInterpolator:
    """Frames between two frames with a loaded RIFE model (``stages.ops.interpolate.interpolators.Interpolator`` protocol).

    ``device`` / ``precision`` say where and in which dtype the network runs; the model is copied when it has
    to move or change dtype, so the caller's :class:`RifeModel` stays as it was. ``scale`` is the flow
    resolution (one of :data:`SCALES`; 0.5 is recommended for 4K). ``batch_size`` caps how many timesteps of
    one pair run in one forward call (None: all of them at once). Frames are zero-padded on the right and
    bottom to the version's multiple, as the official code does, and cropped back.

    Raises SettingsError for an unknown precision, an unsupported scale or a batch size below 1.
    """

    name = "rife"

    def __init__(self, model: RifeModel, device: torch.device | str = "cpu", precision: Precision = "fp32",
                 scale: float = 1.0, batch_size: int | None = None) -> None:
        if precision not in _DTYPES:
            raise SettingsError(f"rife: precision {precision!r} is not supported; use fp32, fp16 or bf16")
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"rife: batch size {batch_size} is below 1; use 1 or more, or None for all at once")
        self.model = model
        self.device = torch.device(device)
        self.precision: Precision = precision
        self.dtype = _DTYPES[precision]
        self.scale = float(scale)
        self.multiple = model.pad_multiple(self.scale)
        self.batch_size = batch_size
        net = model.net
        self.weights_digest = _weights_digest(net)
        first = next(net.parameters())
        if first.device != self.device or first.dtype != self.dtype:
            net = copy.deepcopy(net).to(device=self.device, dtype=self.dtype)
        self.net: IFNet = net.eval().requires_grad_(False)
        logger.info("rife: %s on %s in %s, flow scale %g, frames padded to multiples of %d", model.architecture,
                    self.device, precision, self.scale, self.multiple)

    @property
    def version(self) -> str:
        """The RIFE release the model was loaded as."""
        return self.model.version

    @property
    def key(self) -> str:
        """Everything that decides the output frames, for the chunk store: version, weights, scale, precision,
        device type and batch size (batched convolutions may round differently)."""
        batch = self.batch_size or "all"
        return (f"rife:{self.version}:weights={self.weights_digest[:16]}:scale={self.scale:g}:{self.precision}:"
                f"{self.device.type}:batch={batch}")

    def _to_tensor(self, frame: np.ndarray, height: int, width: int) -> torch.Tensor:
        """``(H, W, 3)`` uint8/uint16 -> ``(1, 3, H', W')`` in [0, 1], zero-padded right and bottom."""
        scaled = frame.astype(np.float32) / _MAX_VALUE[frame.dtype]
        tensor = torch.from_numpy(scaled).permute(2, 0, 1).unsqueeze(0)
        tensor = tensor.to(device=self.device, dtype=self.dtype)
        return F.pad(tensor, (0, width - frame.shape[1], 0, height - frame.shape[0]))

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        """The frames at ``times`` between ``a`` (t=0) and ``b`` (t=1).

        Args:
            a, b: ``(H, W, 3)`` RGB frames of one shape, both uint8 or both uint16.
            times: timesteps strictly between 0 and 1, in any order.

        Returns:
            One ``(H, W, 3)`` frame per timestep, in the order of ``times``, with the dtype of ``a``.

        On out-of-memory the timesteps per call are halved and the call retried.

        Raises:
            InputError: frames of another shape or dtype. SettingsError: a timestep outside (0, 1).
            DeviceOutOfMemoryError: one timestep at a time does not fit either (the message says what to change).
        """
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.shape != b.shape \
                or a.dtype != b.dtype or a.ndim != 3 or a.shape[2] != 3 or a.dtype not in _MAX_VALUE:
            raise InputError(f"rife: frames must be two (H, W, 3) uint8 or uint16 arrays of one shape, got "
                             f"{getattr(a, 'shape', type(a))} {getattr(a, 'dtype', '')} and "
                             f"{getattr(b, 'shape', type(b))} {getattr(b, 'dtype', '')}")
        steps = [float(t) for t in times]
        bad = [t for t in steps if not (math.isfinite(t) and 0.0 < t < 1.0)]
        if bad:
            raise SettingsError(f"rife: timesteps must be strictly between 0 and 1, got {bad[:4]}; the frames at "
                                "0 and 1 are the inputs themselves")
        if not steps:
            return []
        height, width = a.shape[:2]
        padded_h = -(-height // self.multiple) * self.multiple
        padded_w = -(-width // self.multiple) * self.multiple
        maximum = _MAX_VALUE[a.dtype]
        chunk = self.batch_size or len(steps)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            img0 = self._to_tensor(a, padded_h, padded_w)
            img1 = self._to_tensor(b, padded_h, padded_w)
            start = 0
            while start < len(steps):
                t = torch.tensor(steps[start:start + chunk], device=self.device, dtype=self.dtype)
                try:
                    frames = self.net(img0, img1, t.view(-1, 1, 1, 1), self.scale)[:, :, :height, :width]
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    if chunk == 1:
                        raise DeviceOutOfMemoryError(
                            f"interpolate: RIFE ran out of memory on {self.device} with {width}x{height} frames "
                            "even one timestep at a time; use --interp-method flow (optical flow, on the CPU), "
                            "--device cpu, or close other programs using the device"
                        ) from exc
                    chunk = max(1, chunk // 2)
                    logger.warning("rife: out of memory; retrying %d timesteps per call", chunk)
                    continue
                values = (frames.float() * maximum).round_().clamp_(0.0, maximum)
                values = values.permute(0, 2, 3, 1).cpu().numpy()
                out.extend(np.ascontiguousarray(frame).astype(a.dtype) for frame in values)
                start += len(values)
        return out


def _weights_digest(net: IFNet) -> str:
    """sha256 over the network's tensors (names, shapes and float32 values), wherever its weights came from."""
    digest = hashlib.sha256()
    for name, value in net.state_dict().items():
        digest.update(f"{name}{tuple(value.shape)}".encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
