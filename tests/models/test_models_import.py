"""`ModelStore.import_model`: the user catalog, imported weights and ncnn pairs, and what is refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

from stages.errors import ModelError, SettingsError, WeightsUnavailableError
from stages.models.catalog import CATALOG, ModelEntry, ModelFile
from stages.models.store import ModelStore
from stages.models.user_catalog import (
    CATALOG_FILENAME,
    SCHEMA,
    SCHEMA_VERSION,
    UserCatalog,
    sanitize_id,
)
from stages.ops.upscale.selection import select_model


def _pth(path: Path, obj: object) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(cache_dir=tmp_path / "cache", models_dir=None, allow_download=False, progress=False)


@pytest.fixture
def compact_pth(tmp_path: Path, tiny_compact) -> Path:
    return _pth(tmp_path / "My Tiny_Model.v1.pth", tiny_compact(num_feat=8, num_conv=2, scale=2))


def _catalog_json(store: ModelStore) -> dict:
    return json.loads((store.cache_dir / CATALOG_FILENAME).read_text())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_import_compact_file(tmp_path: Path, store: ModelStore, tiny_compact, suffix: str) -> None:
    state = tiny_compact(num_feat=8, num_conv=2, scale=2)
    source = tmp_path / f"Tiny Compact{suffix}"
    if suffix == ".pth":
        _pth(source, {"params": state})
    else:
        save_file(state, str(source))
    before = (source.read_bytes(), source.stat().st_mtime_ns)

    result = store.import_model(source, description="  my\nfast   model ", license="CC0-1.0")

    assert not result.builtin and result.record is not None and result.ncnn is None
    entry = result.entry
    assert (entry.id, entry.architecture, entry.spandrel_arch, entry.scale) == (
        "tiny-compact", "SRVGGNetCompact", "Compact", 2)
    assert entry.is_user and entry.description == "my fast model" and entry.license == "CC0-1.0"
    assert result.path == store.cache_dir / "user" / "tiny-compact" / f"tiny-compact{suffix}"
    assert result.path.read_bytes() == before[0] and result.sha256 == _sha(source) == entry.file.sha256
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before, "the original must stay untouched"

    data = _catalog_json(store)
    assert (data["schema"], data["version"]) == (SCHEMA, SCHEMA_VERSION)
    [record] = data["models"]
    assert record["id"] == "tiny-compact" and record["format"] == suffix.lstrip(".")
    assert record["source"] == str(source.resolve()) and record["sha256"] == result.sha256

    # the effective catalog has it, a fresh store too; load / status / select_model work with the id
    fresh = ModelStore(cache_dir=store.cache_dir, allow_download=False)
    assert "tiny-compact" in fresh.catalog and set(CATALOG) < set(fresh.catalog)
    assert fresh.status("tiny-compact").source == "user"
    loaded = fresh.load("tiny-compact")
    assert (loaded.weights.source, loaded.scale, loaded.model_id) == ("user", 2, "tiny-compact")
    assert loaded.descriptor(torch.rand(1, 3, 6, 5)).shape == (1, 3, 12, 10)
    selection = select_model(fresh, "tiny-compact", 2)
    assert (selection.model_id, selection.source, selection.weights_sha256, selection.note) == (
        "tiny-compact", "user", result.sha256, None)
    assert "several passes" in select_model(fresh, "tiny-compact", 4).note


def test_import_rrdb_checkpoint(tmp_path: Path, store: ModelStore, tiny_rrdb) -> None:
    source = _pth(tmp_path / "rrdb.pth", {"params_ema": tiny_rrdb(num_feat=8, num_block=1)})
    result = store.import_model(source, model_id="rrdb-x4")
    assert (result.entry.architecture, result.entry.spandrel_arch, result.entry.scale) == ("RRDBNet", "ESRGAN", 4)
    assert result.architecture_name == "ESRGAN"
    assert store.load("rrdb-x4").descriptor(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)


def test_import_ncnn_compact_keeps_the_pair(tmp_path: Path, store: ModelStore, tiny_compact, ncnn_writer) -> None:
    state = tiny_compact(num_feat=8, num_conv=2, scale=2)
    param, weights = ncnn_writer(state, tmp_path, "anime-compact", scale=2)
    result = store.import_model(param)
    folder = store.cache_dir / "user" / "anime-compact"
    assert result.path == folder / "anime-compact.safetensors" and result.entry.scale == 2
    assert result.ncnn == (folder / "anime-compact.param", folder / "anime-compact.bin")
    assert result.ncnn[0].read_bytes() == param.read_bytes() and result.ncnn[1].read_bytes() == weights.read_bytes()
    assert store.ncnn_files("anime-compact") == result.ncnn
    record = _catalog_json(store)["models"][0]
    assert record["format"] == "ncnn" and record["ncnn"]["bin_sha256"] == _sha(weights)
    loaded = store.load("anime-compact")
    image = torch.rand(1, 3, 8, 8)
    reference = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    reference.load_state_dict(state)
    with torch.inference_mode():
        assert torch.allclose(loaded.descriptor.model(image), reference(image), atol=2e-2)  # fp16 ncnn weights


def test_import_ncnn_with_a_trailing_resize(tmp_path: Path, store: ModelStore, tiny_compact, ncnn_writer) -> None:
    param, _ = ncnn_writer(tiny_compact(num_feat=8, num_conv=2, scale=4), tmp_path, "up2x", scale=4, resize=0.5)
    entry = store.import_model(param).entry
    assert (entry.scale, entry.native_scale) == (2, 4)
    assert store.load("up2x").descriptor(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_import_ncnn_rrdb_with_bin_elsewhere(tmp_path: Path, store: ModelStore, tiny_rrdb,
                                            ncnn_export_writer) -> None:
    param, weights = ncnn_export_writer(tiny_rrdb(num_feat=8, num_block=1), tmp_path, "rrdb")
    moved = tmp_path / "elsewhere" / "weights.bin"
    moved.parent.mkdir()
    weights.rename(moved)
    with pytest.raises(WeightsUnavailableError, match="--bin"):
        store.import_model(param)
    result = store.import_model(param, bin_path=moved, model_id="rrdb-ncnn")
    assert (result.entry.architecture, result.entry.scale) == ("RRDBNet", 4)
    assert result.ncnn is not None and result.ncnn[1].read_bytes() == moved.read_bytes()
    assert store.load("rrdb-ncnn").scale == 4


def test_import_rejections(tmp_path: Path, store: ModelStore, compact_pth: Path, tiny_compact,
                           ncnn_writer) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="cannot load"):
        store.import_model(junk)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(unknown))
    with pytest.raises(ModelError, match="not a model architecture spandrel knows"):
        store.import_model(unknown)
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(SettingsError, match="unsupported suffix '.txt'"):
        store.import_model(text)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        store.import_model(tmp_path / "missing.pth")
    param, weights = ncnn_writer(tiny_compact(), tmp_path, "pair", scale=2)
    with pytest.raises(SettingsError, match="pass the .param file"):
        store.import_model(weights)
    with pytest.raises(SettingsError, match="--bin is only for ncnn"):
        store.import_model(compact_pth, bin_path=weights)
    weights.unlink()
    with pytest.raises(WeightsUnavailableError, match="ncnn weights .*pair.bin are missing"):
        store.import_model(param)
    bad_param, _ = ncnn_writer(tiny_compact(), tmp_path, "bad", scale=2, replace_type={3: "ReLU"})
    with pytest.raises(ModelError, match="only SRVGGNetCompact and RRDBNet"):
        store.import_model(bad_param)
    one_x = _pth(tmp_path / "denoise.pth", tiny_compact(scale=1))
    with pytest.raises(ModelError, match="x1 model; only upscaling models"):
        store.import_model(one_x)
    torch.manual_seed(0)
    gray = Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2)
    with pytest.raises(ModelError, match="only RGB models"):
        store.import_model(_pth(tmp_path / "gray.pth", gray.state_dict()))
    for bad_id in ("Upper", "../escape", "", "a" * 65):
        with pytest.raises(SettingsError, match="not a valid id"):
            store.import_model(compact_pth, model_id=bad_id)
    assert not (store.cache_dir / CATALOG_FILENAME).exists(), "nothing may be recorded after a refusal"
    assert not (store.cache_dir / "user").exists() or not any((store.cache_dir / "user").iterdir())


def test_id_clash_needs_force(tmp_path: Path, store: ModelStore, compact_pth: Path, tiny_compact) -> None:
    first = store.import_model(compact_pth)
    assert first.entry.id == "my-tiny_model.v1"
    (tmp_path / "other").mkdir()
    other = _pth(tmp_path / "other" / compact_pth.name, tiny_compact(seed=7))
    with pytest.raises(SettingsError, match=r"already exists .*--id OTHER_ID .*--force"):
        store.import_model(other)
    assert store.verify("my-tiny_model.v1")[0].ok
    kept = store.import_model(other, model_id="second")
    assert kept.entry.id == "second" and store.present("my-tiny_model.v1")
    replaced = store.import_model(other, force=True)
    assert replaced.replaced and replaced.sha256 == _sha(other) != first.sha256
    assert store.resolve("my-tiny_model.v1").sha256 == _sha(other)
    assert [m["id"] for m in _catalog_json(store)["models"]] == ["my-tiny_model.v1", "second"]
    leftovers = [p.name for p in (store.cache_dir / "user").iterdir() if p.name.startswith(".")]
    assert leftovers == [], "staging folders must be cleaned up"
    with pytest.raises(SettingsError, match="no single weights file"):
        store.import_model(other, model_id="realesr-animevideov3-x2")
    with pytest.raises(ModelError, match="not the official file of realesr-general-x4v3"):
        store.import_model(other, model_id="realesr-general-x4v3")
    named_like_builtin = tmp_path / "realesr-general-x4v3.pth"
    named_like_builtin.write_bytes(other.read_bytes())
    with pytest.raises(SettingsError, match="is the id of a built-in model .* choose another id with --id"):
        store.import_model(named_like_builtin)


def test_sanitize_id() -> None:
    assert sanitize_id("4x-Foo_Bar (v2)") == "4x-foo_bar-v2"
    assert sanitize_id("...x...") == "x"
    with pytest.raises(SettingsError, match="--id"):
        sanitize_id("???")


def test_official_file_is_recognised_as_its_builtin_entry(tmp_path: Path, compact_pth: Path) -> None:
    sha, size = _sha(compact_pth), compact_pth.stat().st_size
    drive_only = ModelEntry(
        id="tiny-drive", task="super-resolution", architecture="SRVGGNetCompact", scale=2, family="tiny-drive",
        file=ModelFile("tiny-drive.pth", (), size, sha, manual_urls=("https://drive.google.com/file/d/x/view",)),
        license="CC0-1.0", description="Tiny.", tags=("fast",), notes="Google Drive only.")
    unpinned = replace(drive_only, id="tiny-unpinned", family="tiny-unpinned",
                       file=ModelFile("tiny-unpinned.pth", (), size, None))
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=None, allow_download=False,
                       catalog={e.id: e for e in (drive_only, unpinned)})
    with pytest.raises(WeightsUnavailableError, match="no direct download.*vup models import FILE"):
        store.resolve("tiny-drive")

    result = store.import_model(compact_pth)
    assert result.builtin and result.record is None and result.entry.id == "tiny-drive"
    assert result.path == store.cache_dir / "tiny-drive" / "tiny-drive.pth"
    assert not (store.cache_dir / CATALOG_FILENAME).exists()
    assert store.resolve("tiny-drive").source == "cache"

    # a built-in without a pinned sha256 takes the file when asked for by id: size + architecture + scale
    result = store.import_model(compact_pth, model_id="tiny-unpinned")
    assert result.builtin and (store.cache_dir / "tiny-unpinned" / "tiny-unpinned.pth.sha256").is_file()
    [check] = store.verify("tiny-unpinned")
    assert check.ok and "sha256 unknown: verified by size + load check" in check.detail
    wrong_scale = _pth(tmp_path / "x4.pth", Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2,
                                                    upscale=4).state_dict())
    with pytest.raises(ModelError, match="not the official file of tiny-drive"):
        store.import_model(wrong_scale, model_id="tiny-drive")


def test_user_catalog_robustness(tmp_path: Path, store: ModelStore, compact_pth: Path,
                                 caplog: pytest.LogCaptureFixture) -> None:
    store.import_model(compact_pth, model_id="mine")
    path = store.cache_dir / CATALOG_FILENAME
    data = json.loads(path.read_text())
    shadow = dict(data["models"][0], id="realesr-animevideov3")
    path.write_text(json.dumps({**data, "models": [*data["models"], shadow]}))
    fresh = ModelStore(cache_dir=store.cache_dir, allow_download=False)
    with caplog.at_level("WARNING", logger="stages.models.store"):
        assert fresh.catalog["realesr-animevideov3"] is CATALOG["realesr-animevideov3"]
    assert "has the id of a built-in model and is ignored" in caplog.text
    assert fresh.catalog["mine"].is_user

    path.write_text("{not json")
    broken = ModelStore(cache_dir=store.cache_dir, allow_download=False)
    assert "mine" not in broken.catalog and set(broken.catalog) == set(CATALOG)
    assert broken.user_catalog.problem and "unreadable" in broken.user_catalog.problem
    with pytest.raises(ModelError, match="user catalog .* is unreadable"):
        broken.import_model(compact_pth, model_id="again")
    path.write_text(json.dumps({"schema": SCHEMA, "version": SCHEMA_VERSION + 1, "models": []}))
    with pytest.raises(ModelError, match="newer version"):
        UserCatalog(store.cache_dir).editing().__enter__()


def test_changed_import_is_refused_and_verify_fails(store: ModelStore, compact_pth: Path) -> None:
    result = store.import_model(compact_pth, model_id="mine")
    blob = bytearray(result.path.read_bytes())
    blob[-5] ^= 0xFF
    result.path.write_bytes(bytes(blob))
    os.utime(result.path, ns=(1, 1))  # an old mtime: the store may not use a remembered hash
    [check] = store.verify("mine")
    assert not check.ok and "recorded at import" in check.detail
    with pytest.raises(ModelError, match="changed since it was imported"):
        store.resolve("mine")
    result.path.unlink()
    assert not store.status("mine").available and "missing" in store.status("mine").reason
    assert not store.verify("mine")[0].ok
