"""The model store's settings and the values it hands out: where weights were found, a model's status, a
file's check, a removal plan and a loaded model.

``APP_NAME``, ``ENV_CACHE_DIR`` and ``ENV_MODELS_DIR`` name the cache and the models folder
(:func:`default_cache_dir`); :class:`stages.models.store.ModelStore` returns the dataclasses here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs
from spandrel import ImageModelDescriptor

from stages.models.catalog import ModelEntry

__all__ = [
    "APP_NAME",
    "ENV_CACHE_DIR",
    "ENV_MODELS_DIR",
    "ENV_OFFLINE",
    "LoadedModel",
    "ModelStatus",
    "RemovalPlan",
    "ResolvedWeights",
    "Source",
    "VerifyResult",
    "default_cache_dir",
]

APP_NAME = "video-upscaler-pro"
ENV_CACHE_DIR = "VUP_CACHE_DIR"
ENV_MODELS_DIR = "VUP_MODELS_DIR"
ENV_OFFLINE = "VUP_OFFLINE"
"""Set to 1 on a machine that must never download weights (stores made without allow_download stay offline)."""

Source = Literal["explicit", "cache", "env", "package", "download", "user"]


def default_cache_dir() -> Path:
    """The model cache: ``$VUP_CACHE_DIR`` if set, else ``<platformdirs user cache>/video-upscaler-pro/models``."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "models"


@dataclass(frozen=True)
class ResolvedWeights:
    """The weights file a model will load from: where it came from and the sha256 of that very file."""

    model_id: str
    path: Path
    source: Source
    sha256: str


@dataclass(frozen=True)
class ModelStatus:
    """Whether a catalog model can be used on this machine, without downloading or converting anything.

    ``source`` / ``path`` say where it would come from (for ``package``: the ncnn .bin; for ``download``:
    where the file will be saved). ``reason`` says why it is unavailable and what to do; for an available
    model it is None, except for ``download``, where it says what will be fetched on first use.
    """

    entry: ModelEntry
    available: bool
    source: Source | None
    path: Path | None
    reason: str | None


@dataclass(frozen=True)
class VerifyResult:
    """The check of one weights file of a model: ``ok``, where the file is, and what was checked or is wrong."""

    model_id: str
    ok: bool
    source: Source | None
    path: Path | None
    detail: str


@dataclass(frozen=True)
class RemovalPlan:
    """What removing a model deletes: ``folder`` (in the cache, with its ``files``) and, for a user model,
    its catalog record. ``kept`` lists files of the model that stay (``VUP_MODELS_DIR``, packages) and why."""

    model_id: str
    user: bool
    folder: Path | None
    files: tuple[Path, ...]
    kept: tuple[tuple[Path, str], ...]

    @property
    def size(self) -> int:
        """Bytes the deleted files take."""
        return sum(path.stat().st_size for path in self.files if path.is_file())

    @property
    def empty(self) -> bool:
        """Nothing to delete (no files, no record)."""
        return not self.files and not self.user


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded model: the spandrel descriptor (weights on the CPU, eval mode), its entry and its weights.

    Call ``descriptor(image)`` with ``(1, C, H, W)`` in [0, 1] to get ``(1, C, H * scale, W * scale)``.
    ``entry`` is None for a model loaded from a path that is not a catalog id.
    """

    descriptor: ImageModelDescriptor
    entry: ModelEntry | None
    weights: ResolvedWeights

    @property
    def model_id(self) -> str:
        """The catalog id, or the file stem for a model loaded from a path."""
        return self.entry.id if self.entry is not None else self.weights.model_id

    @property
    def scale(self) -> int:
        """Output scale (the catalog scale for catalog models)."""
        return self.descriptor.scale

    @property
    def architecture(self) -> str:
        """spandrel's name of the architecture, e.g. ``"RealESRGAN Compact"`` or ``"ESRGAN"``."""
        return self.descriptor.architecture.name

    @property
    def architecture_id(self) -> str:
        """spandrel's id of the architecture, e.g. ``"Compact"`` or ``"ESRGAN"``."""
        return str(self.descriptor.architecture.id)

    @property
    def supports_half(self) -> bool:
        """Whether the network may run in float16."""
        return self.descriptor.supports_half

    @property
    def supports_bfloat16(self) -> bool:
        """Whether the network may run in bfloat16."""
        return self.descriptor.supports_bfloat16
