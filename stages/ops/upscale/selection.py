"""Which network serves a requested scale: the catalog model, a same-family model of that exact scale when
one is present, or the model plus extra passes / a downscale (and the user is told which)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from stages.errors import SettingsError
from stages.models.store import ModelStore
from stages.models.store_types import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class ModelSelection:
    """The model a run uses, its native scale and weight checksum (part of every chunk key)."""

    model_id: str
    model_scale: int
    weights_sha256: str
    source: str
    note: str | None
    _store: ModelStore = field(repr=False)
    _path: Path | None = field(default=None, repr=False)
    _loaded: LoadedModel | None = field(default=None, repr=False)

    def load(self) -> LoadedModel:
        """Load the network (once)."""
        if self._loaded is None:
            self._loaded = self._store.load(self._path if self._path else self.model_id)
        return self._loaded


def select_model(store: ModelStore, model: str, scale: int, model_path: str | None = None) -> ModelSelection:
    """Pick the network for ``scale``.

    ``model_path`` (any .pth/.safetensors spandrel recognises) wins over the catalog id, which may also be
    a model the user imported (``vup models import``): the store's effective catalog is used. For a catalog
    model whose scale differs from ``scale``, a same-family model of exactly that scale is used when its
    weights are present; otherwise the plan adds passes or a downscale and ``note`` says so.

    Raises:
        SettingsError: unknown model id. WeightsUnavailableError / ModelError: weights missing or unloadable.
    """
    if model_path:
        loaded = store.load(Path(model_path))
        model_id = f"file:{Path(model_path).name}"
        note = _plan_note(model_id, int(loaded.descriptor.scale), scale)
        return ModelSelection(model_id, int(loaded.descriptor.scale), loaded.weights.sha256, "explicit", note,
                              store, Path(model_path), loaded)
    entry = store.entry(model)
    if not entry.uses_spandrel:
        raise SettingsError(f"model: {entry.id} is a {entry.task} model, not an upscaler; pick a super-resolution "
                            "model (`vup models list`, task sr) for --model")
    note = None
    if entry.scale != scale:
        sibling = store.family_variants(entry.family).get(scale)
        native = sibling.native_scale if sibling is not None else None
        if sibling is not None and native in (None, scale) and store.status(sibling.id).available:
            log.info("model: using %s, the x%d model of the %s family", sibling.id, scale, entry.family)
            entry = sibling
        else:
            note = _plan_note(entry.id, entry.scale, scale)
    weights = store.resolve(entry.id)
    return ModelSelection(entry.id, entry.scale, weights.sha256, weights.source, note, store)


def _plan_note(model_id: str, model_scale: int, scale: int) -> str | None:
    if model_scale == scale:
        return None
    if scale < model_scale:
        return (
            f"model: no x{scale} model of this family is present; x{scale} comes from {model_id} (x{model_scale}) "
            "followed by an antialiased bicubic downscale"
        )
    return f"model: x{scale} is made of several passes of {model_id} (x{model_scale})"
