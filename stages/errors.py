"""Typed errors raised by the stages.

Every message starts with what failed and ends with what to do, e.g.
``"upscale: tile 30 is not a multiple of 8; use 32"``. Each class also subclasses the matching
built-in so callers that only know Python's own exceptions still catch them.
"""

from __future__ import annotations


class StageError(Exception):
    """Base class of every error a stage raises on purpose (never a bug)."""


class InputError(StageError, ValueError):
    """The input file cannot be used (missing, empty, corrupt, truncated, unsupported)."""


class ProbeError(InputError):
    """The input could not be probed as a video."""


class SettingsError(StageError, ValueError):
    """A setting is impossible (bad scale, output above 8K, unknown codec...)."""


class ChunkError(StageError, RuntimeError):
    """A chunk could not be read, written or validated."""


class EncodeError(StageError, RuntimeError):
    """The final encode or mux failed."""


class ModelError(StageError, RuntimeError):
    """A model could not be found, loaded or run."""


class UnsafeWeightsError(ModelError):
    """A weights file holds more than tensors (a pickle naming Python objects, a TorchScript archive): loading it
    could run code, so it is refused before anything in it runs."""


class WeightsUnavailableError(ModelError, FileNotFoundError):
    """No source could provide the weights of a model."""


class DownloadError(ModelError, ConnectionError):
    """A download failed (network, size or checksum)."""


class DeviceOutOfMemoryError(StageError, MemoryError):
    """The device ran out of memory even at the smallest tile and batch."""


class DiskSpaceError(StageError, OSError):
    """Before a job: the disk holding the workspace (or the output) has less free space than the job needs."""


class DiskFullError(StageError, OSError):
    """During a job: the disk filled up (ENOSPC) while writing; finished chunks are kept for the rerun."""
