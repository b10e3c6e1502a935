"""What the model store says about the models on this machine, and how it checks and removes them.

:class:`ModelInventory` holds that part of :class:`stages.models.store.ModelStore` (which derives from it):
:meth:`~ModelInventory.status` and :meth:`~ModelInventory.list` (where a model would come from, never
downloading or converting), :meth:`~ModelInventory.present`, :meth:`~ModelInventory.verify` (every weights file
of a model, changing nothing) and :meth:`~ModelInventory.plan_removal` / :meth:`~ModelInventory.remove` (only
what the store owns in the cache). It relies on ``ModelStore``'s settings, lookups and the checks of
:class:`stages.models.store_sources.WeightSources`.
"""

from __future__ import annotations

import builtins
import logging
import shutil
import urllib.parse
from pathlib import Path

from stages.errors import ModelError
from stages.models.catalog import ModelEntry
from stages.models.ncnn import convert_ncnn
from stages.models.store_sources import _package_files
from stages.models.store_types import (
    ENV_MODELS_DIR,
    ModelStatus,
    RemovalPlan,
    Source,
    VerifyResult,
)

__all__ = ["ModelInventory"]

logger = logging.getLogger(__name__)


class ModelInventory:
    """Status, verification and removal of a store's models (part of ``ModelStore``)."""

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

    # ----------------------------------------------------------------- verify, remove

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
