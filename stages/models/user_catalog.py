"""The user catalog: models a user brought in with ``vup models import``.

Layout in the model cache (``ModelStore.cache_dir``)::

    <cache>/user-catalog.json         the records below, written atomically under a lock
    <cache>/user/<id>/<id>.pth        an imported .pth/.safetensors/.pt/.ckpt, copied byte for byte
    <cache>/user/<id>/<id>.safetensors  an imported ncnn model, converted (float32)
    <cache>/user/<id>/<id>.param|.bin   ... and the original ncnn files, for a backend that runs ncnn directly

``user-catalog.json``::

    {"schema": "video-upscaler-pro/user-catalog", "version": 1,
     "models": [{"id": "my-model", "description": "...", "license": "unknown", "architecture": "SRVGGNetCompact",
                 "spandrel_arch": "Compact", "scale": 2, "native_scale": null, "format": "pth",
                 "weights": "my-model.pth", "size": 1234, "sha256": "<hex>", "ncnn": null,
                 "source": "/abs/path/original.pth", "source_sha256": "<hex>", "imported_at": "2025-01-01T00:00:00Z"},
                ...]}

``ncnn`` is ``{"param": "<id>.param", "bin": "<id>.bin", "param_sha256": ..., "bin_sha256": ...}`` for an
imported ncnn model. The store owns everything under ``<cache>/user``; the original files are never touched.
A user id never shadows a built-in id: import refuses one, and a record whose id a later release made
built-in is ignored with a warning.

Importing a file whose sha256 is the one a built-in entry pins (a file saved by hand from a Google Drive
link, say) installs it as that built-in model instead, in ``<cache>/<id>/<catalog filename>``.

Nothing here imports torch at module level: reading the catalog stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stages.errors import ModelError, SettingsError, WeightsUnavailableError
from stages.models.catalog import ModelEntry, ModelFile
from stages.store.fsutil import atomic_write_text, file_lock, fsync_dir, sha256_file

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor


class ModelStore(Protocol):
    """What :func:`import_model` needs of the model store (stages.models.store.ModelStore, which imports this
    module, so it is named here by what it offers)."""

    builtin_catalog: Mapping[str, ModelEntry]
    user_catalog: UserCatalog

    def download_path(self, entry: ModelEntry) -> Path | None: ...

    def record_local_checksum(self, path: Path) -> str: ...

    def load_descriptor(self, path: Path) -> ImageModelDescriptor: ...

    def match_entry(self, entry: ModelEntry, descriptor: ImageModelDescriptor, path: Path) -> ImageModelDescriptor: ...

__all__ = [
    "CATALOG_FILENAME",
    "IMPORT_SUFFIXES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "USER_DIRNAME",
    "ImportResult",
    "NcnnFiles",
    "UserCatalog",
    "UserModel",
    "import_model",
    "sanitize_id",
]

logger = logging.getLogger(__name__)

SCHEMA = "video-upscaler-pro/user-catalog"
SCHEMA_VERSION = 1
CATALOG_FILENAME = "user-catalog.json"
USER_DIRNAME = "user"
IMPORT_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")
_NCNN_SUFFIX = ".param"
_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CHECK_SIDE = 16
_CONVERTER = "stages.models.ncnn/1"
_METADATA_KEY = "video_upscaler_pro_conversion"
# spandrel id -> the name users see, where the project already uses the Real-ESRGAN class names.
_DISPLAY_NAMES = {"Compact": "SRVGGNetCompact", "ESRGAN": "RRDBNet"}


def sanitize_id(text: str) -> str:
    """A model id from free text (a file stem): lower case, runs of other characters as ``-``, at most 64.

    Raises SettingsError when nothing usable is left.
    """
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")[:64].rstrip("-._")
    if not cleaned or not _ID_PATTERN.fullmatch(cleaned):
        raise SettingsError(f"models import: cannot make a model id from {text!r}; pass one with --id "
                            "(letters, digits, '.', '_' and '-')")
    return cleaned


def _describe(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class NcnnFiles:
    """The ncnn pair of an imported ncnn model: file names in the model's folder and their sha256."""

    param: str
    bin: str
    param_sha256: str
    bin_sha256: str


@dataclass(frozen=True)
class UserModel:
    """One record of the user catalog (see the module docstring for the JSON form)."""

    id: str
    description: str
    license: str
    architecture: str
    spandrel_arch: str
    scale: int
    native_scale: int | None
    format: str
    weights: str
    size: int
    sha256: str
    source: str
    source_sha256: str
    imported_at: str
    ncnn: NcnnFiles | None = None
    tags: tuple[str, ...] = field(default=("user",))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: Any) -> UserModel:
        """Parse one record; ValueError (with the reason) when it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a record is not an object")  # noqa: TRY004 (a malformed file)
        try:
            ncnn = NcnnFiles(**data["ncnn"]) if data.get("ncnn") else None
            record = cls(
                id=str(data["id"]), description=str(data["description"]), license=str(data["license"]),
                architecture=str(data["architecture"]), spandrel_arch=str(data["spandrel_arch"]),
                scale=int(data["scale"]),
                native_scale=int(data["native_scale"]) if data.get("native_scale") is not None else None,
                format=str(data["format"]), weights=str(data["weights"]), size=int(data["size"]),
                sha256=str(data["sha256"]).lower(), source=str(data.get("source", "")),
                source_sha256=str(data.get("source_sha256", "")), imported_at=str(data.get("imported_at", "")),
                ncnn=ncnn, tags=tuple(str(t) for t in data.get("tags", ("user",))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"record {data.get('id', '?')!r} is malformed ({_describe(exc)})") from None
        names = [record.weights] + ([record.ncnn.param, record.ncnn.bin] if record.ncnn else [])
        if not _ID_PATTERN.fullmatch(record.id) or any(Path(n).name != n or n in ("", ".", "..") for n in names):
            raise ValueError(f"record {record.id!r} has an unsafe id or file name")
        if not re.fullmatch(r"[0-9a-f]{64}", record.sha256) or record.scale < 1:
            raise ValueError(f"record {record.id!r} has a bad sha256 or scale")
        return record

    def to_entry(self, folder: Path) -> ModelEntry:
        """The catalog entry the store serves for this record (``folder``: where its files are)."""
        where = f"stored in {folder}"
        if self.ncnn is not None:
            where += f" (converted from ncnn; the original {self.ncnn.param} / {self.ncnn.bin} are kept there too)"
        return ModelEntry(
            id=self.id, task="super-resolution", architecture=self.architecture, scale=self.scale, family=self.id,
            file=ModelFile(self.weights, (), self.size, self.sha256), license=self.license,
            description=self.description, tags=self.tags, native_scale=self.native_scale,
            notes=f"Imported by you from {self.source} on {self.imported_at}; {where}.",
            spandrel_arch=self.spandrel_arch, origin="user",
        )


@dataclass(frozen=True)
class ImportResult:
    """What ``import_model`` did.

    ``builtin`` is True when the file was recognised as (or imported as) a built-in catalog model; it was
    then placed in that model's cache folder and no user record was written (``record`` is None).
    """

    entry: ModelEntry
    path: Path
    sha256: str
    size: int
    architecture_name: str
    builtin: bool
    record: UserModel | None
    ncnn: tuple[Path, Path] | None
    replaced: bool = False


class UserCatalog:
    """Reads and writes ``<cache>/user-catalog.json``; knows where each record's files are."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / CATALOG_FILENAME
        self.root = self.cache_dir / USER_DIRNAME
        self._signature: tuple[int, int] | None = None
        self._records: dict[str, UserModel] = {}
        self.problem: str | None = None

    def model_dir(self, model_id: str) -> Path:
        return self.root / model_id

    def weights_path(self, record: UserModel) -> Path:
        return self.model_dir(record.id) / record.weights

    def ncnn_paths(self, record: UserModel) -> tuple[Path, Path] | None:
        if record.ncnn is None:
            return None
        folder = self.model_dir(record.id)
        return folder / record.ncnn.param, folder / record.ncnn.bin

    def _parse(self, text: str) -> dict[str, UserModel]:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"it is not a {SCHEMA} file")
        version = data.get("version")
        if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
            raise ValueError(f"it has schema version {version!r}; this program reads version {SCHEMA_VERSION} "
                             "(it was written by a newer version?)")
        models = data.get("models")
        if not isinstance(models, list):
            raise ValueError("its 'models' is not a list")  # noqa: TRY004 (a malformed file)
        records: dict[str, UserModel] = {}
        for item in models:
            record = UserModel.from_json(item)
            if record.id in records:
                raise ValueError(f"the id {record.id!r} appears twice")
            records[record.id] = record
        return records

    def _read_strict(self) -> dict[str, UserModel]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ModelError(f"models: cannot read the user catalog {self.path} ({exc}); check its permissions") \
                from exc
        try:
            return self._parse(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ModelError(f"models: the user catalog {self.path} is unreadable ({exc}); fix it, or move it "
                             "away to start a new one (imported files stay in "
                             f"{self.root})") from exc

    def records(self) -> dict[str, UserModel]:
        """The records by id; an unreadable file gives no records, a warning and ``problem`` set."""
        try:
            stat = self.path.stat()
            signature: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = None
        if signature == self._signature and (signature is not None or not self._records):
            return self._records
        try:
            records = self._read_strict()
            self.problem = None
        except ModelError as exc:
            if self.problem != str(exc):
                logger.warning("%s", exc)
            self.problem = str(exc)
            records = {}
        self._signature, self._records = signature, records
        return records

    def get(self, model_id: str) -> UserModel | None:
        return self.records().get(model_id)

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, UserModel]]:
        """Lock the catalog, yield its records (strictly read) for changes, then write them atomically."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.cache_dir / f".{CATALOG_FILENAME}.lock"):
            records = self._read_strict()
            yield records
            payload = {"schema": SCHEMA, "version": SCHEMA_VERSION,
                       "models": [record.to_json() for record in records.values()]}
            atomic_write_text(self.path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
        self._signature = None


# ------------------------------------------------------------------------------------------- import


def _display_name(descriptor: ImageModelDescriptor) -> str:
    arch_id = str(descriptor.architecture.id)
    if arch_id in _DISPLAY_NAMES:
        return _DISPLAY_NAMES[arch_id]
    if arch_id == "PLKSR":  # spandrel's PLKSR also loads RealPLKSR: name the class
        return type(descriptor.model).__name__
    return descriptor.architecture.name


def _check_runs(descriptor: ImageModelDescriptor, scale: int, label: str) -> None:
    """One tiny forward pass on the CPU: it must run and give ``scale`` times the input, finite values."""
    import torch

    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelError(f"models import: {label} takes {descriptor.input_channels} and gives "
                         f"{descriptor.output_channels} channels; only RGB models (3 in, 3 out) can be used")
    req = descriptor.size_requirements
    side = max(_CHECK_SIDE, req.minimum)
    if req.multiple_of > 1:
        side = math.ceil(side / req.multiple_of) * req.multiple_of
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            out = descriptor(image)
    except Exception as exc:  # a foreign network can fail in many ways
        raise ModelError(f"models import: {label} loads but fails on a {side}x{side} test image "
                         f"({_describe(exc)}); it cannot be used") from exc
    expected = (1, 3, side * scale, side * scale)
    if tuple(out.shape) != expected:
        raise ModelError(f"models import: {label} turned a {side}x{side} test image into {tuple(out.shape)}, "
                         f"expected {expected} for a x{scale} model; it cannot be used")
    if not bool(torch.isfinite(out).all()):
        raise ModelError(f"models import: {label} gives NaN or infinite values on a test image; the weights are "
                         "broken")


def _copy_checked(source: Path, dest: Path, sha256: str) -> None:
    """Copy ``source`` to ``dest`` (fsynced) and check the copy has ``sha256``."""
    shutil.copyfile(source, dest)
    with open(dest, "rb+") as handle:
        os.fsync(handle.fileno())
    if sha256_file(dest) != sha256:
        raise ModelError(f"models import: {source} changed while it was being copied; try again")


def _stage_dir(root: Path, model_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{model_id}.", suffix=".tmp", dir=root))


def _install_dir(stage: Path, final: Path) -> bool:
    """Move the staged folder to ``final`` (replacing an old one); return whether one was replaced."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(final, old)
    try:
        os.replace(stage, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return old is not None


def _load_ncnn(param: Path, bin_path: Path | None, label: str):
    from spandrel import ImageModelDescriptor, ModelLoader

    from stages.models.ncnn import convert_ncnn

    weights = Path(bin_path).expanduser() if bin_path is not None else param.with_suffix(".bin")
    if not weights.is_file():
        raise WeightsUnavailableError(f"models import: the ncnn weights {weights} are missing; put the .bin next to "
                                      f"{param.name} (same name) or pass it with --bin PATH")
    state, info = convert_ncnn(param, weights)
    try:
        descriptor = ModelLoader(device="cpu").load_from_state_dict(state)
    except Exception as exc:
        raise ModelError(f"models import: {label} converts, but spandrel cannot load the result "
                         f"({_describe(exc)})") from exc
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"models import: {label} is not an image-to-image model")
    return weights, state, info, descriptor.eval()


def import_model(store: ModelStore, path: str | Path, *, model_id: str | None = None,
                 description: str | None = None, license: str | None = None, force: bool = False,
                 bin_path: str | Path | None = None) -> ImportResult:
    """Check a model file and copy it into the store; see the module docstring.

    ``path`` is a .pth/.safetensors/.pt/.ckpt spandrel recognises, or an ncnn .param (its .bin next to it,
    or ``bin_path``) of a supported topology (SRVGGNetCompact, RRDBNet). The model must be an RGB image
    model of scale 2 or more that runs a 16x16 test image to ``scale`` times its size.

    Raises WeightsUnavailableError (missing file), SettingsError (wrong suffix, bad or clashing id),
    ModelError (not a usable model, or not the official file of the built-in id asked for).
    """
    from stages.models.resized import with_output_scale

    source = Path(path).expanduser()
    if not source.is_file():
        raise WeightsUnavailableError(f"models import: {source} does not exist or is not a file; pass the path of "
                                      "a .pth, .safetensors, .pt, .ckpt or ncnn .param file")
    suffix = source.suffix.lower()
    if suffix == ".bin":
        raise SettingsError(f"models import: {source.name} looks like ncnn weights; pass the .param file instead "
                            "(its .bin is found next to it, or given with --bin)")
    if suffix not in (*IMPORT_SUFFIXES, _NCNN_SUFFIX):
        raise SettingsError(f"models import: {source.name} has the unsupported suffix {suffix or '(none)'!r}; "
                            "import a .pth, .safetensors, .pt, .ckpt or an ncnn .param (with its .bin)")
    is_ncnn = suffix == _NCNN_SUFFIX
    if bin_path is not None and not is_ncnn:
        raise SettingsError("models import: --bin is only for ncnn .param files")
    if model_id is not None and not _ID_PATTERN.fullmatch(model_id):
        try:
            hint = f" (e.g. {sanitize_id(model_id)!r})"
        except SettingsError:
            hint = ""
        raise SettingsError(f"models import: {model_id!r} is not a valid id; use 1 to 64 lower-case letters, "
                            f"digits, '.', '_' and '-', starting with a letter or digit{hint}")
    label = source.name

    ncnn_bin = state = info = None
    if is_ncnn:
        ncnn_bin, state, info, descriptor = _load_ncnn(source, bin_path, label)
    else:
        descriptor = store.load_descriptor(source)
    native_scale: int | None = None
    scale = int(descriptor.scale)
    if info is not None and info.output_resize is not None:
        native_scale, scale = scale, round(info.effective_scale)
    if scale < 2:
        raise ModelError(f"models import: {label} is a x{scale} model; only upscaling models (x2 or more) can be "
                         "used")
    checked = with_output_scale(descriptor, scale) if native_scale is not None else descriptor
    _check_runs(checked, scale, label)
    source_sha = sha256_file(source)
    size = source.stat().st_size

    builtin = store.builtin_catalog
    if not is_ncnn:
        target = model_id if model_id is not None and model_id in builtin else None
        if target is None and model_id is None:
            target = next((e.id for e in builtin.values() if e.file is not None and e.file.sha256 == source_sha),
                          None)
        if target is not None:
            return _import_builtin(store, builtin[target], source, descriptor, source_sha, size)
    elif model_id is not None and model_id in builtin:
        raise SettingsError(f"models import: {model_id!r} is a built-in model id; an ncnn model cannot replace it, "
                            "choose another --id")

    new_id = model_id if model_id is not None else sanitize_id(source.stem)
    if new_id in builtin:
        raise SettingsError(f"models import: {new_id!r} is the id of a built-in model and {label} is not its "
                            "official file; choose another id with --id")
    catalog = store.user_catalog
    existing = catalog.records().get(new_id)
    if existing is not None and not force:
        raise SettingsError(f"models import: a user model {new_id!r} already exists (imported from "
                            f"{existing.source} on {existing.imported_at}); pass --id OTHER_ID to keep both, or "
                            "--force to replace it")

    arch_name = _display_name(descriptor)
    text = " ".join((description or "").split())
    text = text or f"Imported {descriptor.architecture.name} x{scale} model ({label})."
    stage = _stage_dir(catalog.root, new_id)
    try:
        ncnn_files = None
        if is_ncnn:
            from safetensors.torch import save_file

            assert ncnn_bin is not None and state is not None and info is not None
            weights_name = f"{new_id}.safetensors"
            param_sha, bin_sha = source_sha, sha256_file(ncnn_bin)
            conversion = {"model_id": new_id, "converted_from": "ncnn", "converter": _CONVERTER,
                          "param": source.name, "bin": ncnn_bin.name, "param_sha256": param_sha,
                          "bin_sha256": bin_sha, "architecture": info.architecture, "scale": info.scale,
                          "output_resize": info.output_resize}
            save_file(state, str(stage / weights_name),
                      metadata={_METADATA_KEY: json.dumps(conversion, sort_keys=True)})
            with open(stage / weights_name, "rb+") as handle:
                os.fsync(handle.fileno())
            _copy_checked(source, stage / f"{new_id}.param", param_sha)
            _copy_checked(ncnn_bin, stage / f"{new_id}.bin", bin_sha)
            ncnn_files = NcnnFiles(f"{new_id}.param", f"{new_id}.bin", param_sha, bin_sha)
            weights_sha = sha256_file(stage / weights_name)
            weights_size = (stage / weights_name).stat().st_size
            fmt = "ncnn"
        else:
            weights_name = f"{new_id}{suffix}"
            _copy_checked(source, stage / weights_name, source_sha)
            weights_sha, weights_size, fmt = source_sha, size, suffix.lstrip(".")
        record = UserModel(
            id=new_id, description=text, license=(license or "unknown").strip() or "unknown",
            architecture=arch_name, spandrel_arch=str(descriptor.architecture.id), scale=scale,
            native_scale=native_scale, format=fmt, weights=weights_name, size=weights_size, sha256=weights_sha,
            source=str(source.resolve()), source_sha256=source_sha, imported_at=_now(), ncnn=ncnn_files,
        )
        with catalog.editing() as records:
            if new_id in records and not force:  # imported by someone else meanwhile
                raise SettingsError(f"models import: a user model {new_id!r} was just imported by another process; "
                                    "pass --id OTHER_ID, or --force to replace it")
            replaced = _install_dir(stage, catalog.model_dir(new_id))
            records[new_id] = record
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    folder = catalog.model_dir(new_id)
    logger.info("models import: %s imported as %s (%s x%d) in %s", source, new_id, arch_name, scale, folder)
    return ImportResult(record.to_entry(folder), folder / weights_name, weights_sha, weights_size,
                        descriptor.architecture.name, False, record, catalog.ncnn_paths(record),
                        replaced=replaced or existing is not None)


def _import_builtin(store: ModelStore, entry: ModelEntry, source: Path, descriptor: ImageModelDescriptor,
                    sha: str, size: int) -> ImportResult:
    """Place ``source`` in the cache as the file of built-in ``entry`` (after checking it is that file)."""
    expected = entry.file
    if expected is None:
        raise SettingsError(f"models import: the built-in {entry.id} has no single weights file (it comes from a "
                            "package only); import the file under another id with --id")
    if expected.sha256 is not None and sha != expected.sha256.lower():
        raise ModelError(f"models import: {source.name} is not the official file of {entry.id} (sha256 {sha}, "
                         f"expected {expected.sha256.lower()}); import it under another id with --id")
    if expected.size is not None and size != expected.size:
        raise ModelError(f"models import: {source.name} has {size} bytes, but the official file of {entry.id} has "
                         f"{expected.size}; import it under another id with --id")
    store.match_entry(entry, descriptor, source)  # architecture and scale (decisive when the sha256 is unknown)
    dest = store.download_path(entry)
    assert dest is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        _copy_checked(source, tmp, sha)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    if expected.sha256 is None:
        store.record_local_checksum(dest)
    logger.info("models import: %s is the file of built-in %s; stored as %s", source, entry.id, dest)
    return ImportResult(entry, dest, sha, size, descriptor.architecture.name, True, None, None)
