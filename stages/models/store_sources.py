"""Where the model store finds weights: the user cache, ``VUP_MODELS_DIR``, an installed package (converted
once from ncnn) or a download, in that order, and the checks a file passes before it is used.

:class:`WeightSources` holds that part of :class:`stages.models.store.ModelStore` (which derives from it): the
sha256 memo and ``.sha256`` sidecars, the checks of cached, downloaded and converted files, the hints a
missing model's message gives, and :meth:`WeightSources.resolve`. It relies on what ``ModelStore`` sets up
(``cache_dir``, ``models_dir``, ``allow_download``, ``progress``, ``user_catalog``, the hash memo) and on its
lookups and loaders (``entry``, ``download_path``, ``_converted_path``, ``load_descriptor``, ``match_entry``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import time
import urllib.parse
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from stages.errors import (
    DownloadError,
    ModelError,
    SettingsError,
    WeightsUnavailableError,
)
from stages.models.catalog import ModelEntry, PackageSource
from stages.models.download import download_file, sha256_file
from stages.models.ncnn import convert_ncnn
from stages.models.rife.load import load_rife
from stages.models.store_types import ENV_MODELS_DIR, ResolvedWeights

__all__ = ["WeightSources"]

logger = logging.getLogger(__name__)

_CONVERTER = "stages.models.ncnn/1"
_METADATA_KEY = "video_upscaler_pro_conversion"
_HASH_MEMO_MIN_AGE_NS = 2_000_000_000


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


class WeightSources:
    """Resolution of a model id to a weights file, and the checks of those files (part of ``ModelStore``)."""

    # ----------------------------------------------------------------- lookup helpers

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
                on_download = getattr(self, "on_download", None)
                download_file(entry.file.urls, dest, size=entry.file.size, sha256=entry.file.sha256,
                              progress=self.progress,
                              on_bytes=None if on_download is None else
                              (lambda done, total: on_download(model_id, done, total)))
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
