"""Choosing the compute device and precision once per run, and saying why.

Order for ``auto``: CUDA (fp16, channels_last, cudnn benchmark), Apple MPS (fp16), Intel XPU (fp16),
else the CPU (bf16 autocast where the CPU has AVX512-BF16 or AMX, else fp32; threads = cores).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from stages.errors import SettingsError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cuda", "mps", "xpu", "cpu")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class DeviceChoice:
    """The device a run uses. ``device`` is a torch device string (``cuda:0``, ``mps``, ``xpu``, ``cpu``)."""

    device: str
    precision: str
    name: str
    threads: int
    total_memory: int | None
    reason: str

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of model weights and inputs (bf16 on CPU runs under autocast with fp32 weights)."""
        return torch.float16 if self.precision == "fp16" else torch.float32


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_supports_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def validate_device_settings(preference: str, precision: str) -> None:
    """Raises SettingsError for an unknown device or precision name (no hardware is touched)."""
    if preference.split(":")[0] not in DEVICE_CHOICES:
        raise SettingsError(f"device: unknown device {preference!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if precision not in PRECISION_CHOICES:
        raise SettingsError(f"device: unknown precision {precision!r}; use one of {', '.join(PRECISION_CHOICES)}")


def choose_device(preference: str = "auto", precision: str = "auto") -> DeviceChoice:
    """Pick the device and precision for a run and log the reason.

    Args:
        preference: ``auto``, ``cuda`` (or ``cuda:N``), ``mps``, ``xpu`` or ``cpu``.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.

    Raises:
        SettingsError: an unknown value, a device that is not present, or fp16 asked for on the CPU.
    """
    validate_device_settings(preference, precision)
    kind = preference.split(":")[0]
    reasons: list[str] = []
    if kind in ("auto", "cuda"):
        if torch.cuda.is_available():
            index = int(preference.split(":")[1]) if ":" in preference else torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            chosen = precision if precision != "auto" else "fp16"
            torch.backends.cudnn.benchmark = True
            choice = DeviceChoice(
                device=f"cuda:{index}",
                precision=chosen,
                name=props.name,
                threads=_cpu_threads(),
                total_memory=int(props.total_memory),
                reason=f"CUDA device {props.name} found; {chosen} with channels_last",
            )
            log.info("device: %s", choice.reason)
            return choice
        if kind == "cuda":
            raise SettingsError("device: CUDA was asked for but no CUDA GPU is visible to PyTorch; use --device auto or cpu")
        reasons.append("no CUDA GPU")
    if kind in ("auto", "mps"):
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            chosen = precision if precision != "auto" else "fp16"
            choice = DeviceChoice("mps", chosen, "Apple GPU (MPS)", _cpu_threads(), None, "Apple MPS available")
            log.info("device: %s", choice.reason)
            return choice
        if kind == "mps":
            raise SettingsError("device: MPS was asked for but is not available; use --device auto or cpu")
        reasons.append("no MPS")
    if kind in ("auto", "xpu"):
        if getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
            chosen = precision if precision != "auto" else "fp16"
            choice = DeviceChoice("xpu:0", chosen, torch.xpu.get_device_name(0), _cpu_threads(), None, "Intel XPU available")
            log.info("device: %s", choice.reason)
            return choice
        if kind == "xpu":
            raise SettingsError("device: XPU was asked for but is not available; use --device auto or cpu")
        reasons.append("no XPU")
    if precision == "fp16":
        raise SettingsError("device: fp16 on the CPU is slower than fp32 and not supported; use --precision bf16 or fp32")
    bf16 = cpu_supports_bf16()
    if precision == "auto":
        chosen = "bf16" if bf16 else "fp32"
        why = "CPU has AVX512-BF16/AMX: bf16 autocast" if bf16 else "CPU has no native bf16: fp32"
    else:
        chosen = precision
        why = f"{chosen} as asked"
    threads = _cpu_threads()
    torch.set_num_threads(threads)
    prefix = ", ".join(reasons) + "; " if reasons else ""
    choice = DeviceChoice("cpu", chosen, cpu_name(), threads, None, f"{prefix}CPU with {threads} threads, {why}")
    log.info("device: %s", choice.reason)
    return choice


def host_free_memory() -> int:
    """Bytes of host memory free now (``sysconf``); 4 GiB where the platform cannot tell."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error of the device or the host (torch's, Python's, or a RuntimeError
    whose text says so, as some backends raise)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
