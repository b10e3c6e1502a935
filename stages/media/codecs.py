"""Video codecs shared by the single-video encode (`vup enhance --codec`, stages.media.encode) and the production
deliverables (stages.production.deliverables): encoders, options, pixel formats, and which container holds what.

:data:`VIDEO_CODECS` is the one table of encodings (libx265, libx264, SVT-AV1, ProRes 422 HQ / 4444, FFV1).
:data:`OUTPUT_CODECS` names the ones `vup enhance` offers, each with the containers it may go in (the first is the
default when the output has no extension): ``h264``/``h265`` in MP4, MKV or MOV; ``prores`` (422 HQ) and
``prores4444`` in MOV; ``av1`` in MKV or MP4; ``ffv1`` in MKV.

AV1: :func:`av1_encoder` picks the fastest AV1 encoder this PyAV build has, in the order of :data:`AV1_ENCODERS`
(measured on a 2-core CPU, 48 frames of 640x360 10-bit testsrc2 with the ffmpeg binary: libsvtav1 preset 8 CRF 30
in 0.96 s, libaom-av1 cpu-used 8 CRF 30 in 8.8 s, librav1e speed 8 in 11.4 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import av

from stages.errors import SettingsError

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
"""x264/x265 presets."""
SVT_PRESETS = tuple(str(n) for n in range(14))
"""SVT-AV1 presets, 0 (slowest) to 13 (fastest)."""
AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")
"""AV1 encoders, fastest first."""
# x264-style preset names for AV1 as SVT-AV1 preset numbers; libaom's cpu-used is min(8, n), rav1e's speed min(10, n)
AV1_PRESET_NAMES = {"ultrafast": "13", "superfast": "12", "veryfast": "11", "faster": "10", "fast": "9",
                    "medium": "8", "slow": "6", "slower": "5", "veryslow": "4", "placebo": "2"}


@dataclass(frozen=True)
class VideoCodec:
    """One video encoding a deliverable can use.

    ``encoder`` is the PyAV/FFmpeg encoder, ``probed`` the codec name :func:`stages.media.probe.probe_video` reads back,
    ``pix_fmt_8``/``pix_fmt_16`` the encoded pixel format for 8-bit / 16-bit masters, ``options`` the fixed encoder
    options, ``crf_range``/``default_crf`` None when the codec has no CRF, ``presets`` empty when it has none,
    ``profile`` the profile name the written stream must report (None: not checked), ``mp4_tag`` the codec tag in
    MP4/MOV (None: ffmpeg's default), ``rgb`` True when the RGB planes are stored as they are (no YUV matrix).
    """

    name: str
    encoder: str
    probed: str
    pix_fmt_8: str
    pix_fmt_16: str
    options: tuple[tuple[str, str], ...] = ()
    crf_range: tuple[int, int] | None = None
    default_crf: int | None = None
    presets: tuple[str, ...] = ()
    default_preset: str | None = None
    profile: str | None = None
    mp4_tag: str | None = None
    rgb: bool = False

    def pix_fmt(self, bit_depth: int) -> str:
        """Encoded pixel format for a master stored at ``bit_depth`` (8 or 16) bits."""
        return self.pix_fmt_16 if bit_depth > 8 else self.pix_fmt_8



VIDEO_CODECS: dict[str, VideoCodec] = {
    "h265": VideoCodec(
        name="h265", encoder="libx265", probed="hevc", pix_fmt_8="yuv420p", pix_fmt_16="yuv420p10le",
        options=(("x265-params", "log-level=error"),), crf_range=(0, 51), default_crf=18, presets=PRESETS,
        default_preset="medium", mp4_tag="hvc1",
    ),
    "h264": VideoCodec(
        name="h264", encoder="libx264", probed="h264", pix_fmt_8="yuv420p", pix_fmt_16="yuv420p10le",
        crf_range=(0, 51), default_crf=18, presets=PRESETS, default_preset="medium",
    ),
    "av1": VideoCodec(
        name="av1", encoder="libsvtav1", probed="av1", pix_fmt_8="yuv420p10le", pix_fmt_16="yuv420p10le",
        crf_range=(0, 63), default_crf=30, presets=SVT_PRESETS, default_preset="8",
    ),
    "prores_hq": VideoCodec(
        name="prores_hq", encoder="prores_ks", probed="prores", pix_fmt_8="yuv422p10le", pix_fmt_16="yuv422p10le",
        options=(("profile", "hq"), ("vendor", "apl0")), profile="HQ",
    ),
    "prores_4444": VideoCodec(
        name="prores_4444", encoder="prores_ks", probed="prores", pix_fmt_8="yuva444p10le",
        pix_fmt_16="yuva444p10le", options=(("profile", "4444"), ("vendor", "apl0"), ("alpha_bits", "16")),
        profile="4444",
    ),
    "ffv1": VideoCodec(
        name="ffv1", encoder="ffv1", probed="ffv1", pix_fmt_8="bgr0", pix_fmt_16="gbrp16le",
        options=(("level", "3"), ("slicecrc", "1"), ("g", "1"), ("context", "1"), ("slices", "4")), rgb=True,
    ),
}


@dataclass(frozen=True)
class OutputCodec:
    """A codec `vup enhance` offers: its ``name`` (``--codec``), the :data:`VIDEO_CODECS` entry it encodes with,
    the output suffixes it may have (the first is the default), its 8-bit and 10/16-bit default pixel formats
    and the pixel formats it accepts, and one line for people."""

    name: str
    video_codec: str
    suffixes: tuple[str, ...]
    pix_fmt_8: str
    pix_fmt_high: str
    pix_fmts: tuple[str, ...]
    description: str

    @property
    def codec(self) -> VideoCodec:
        return VIDEO_CODECS[self.video_codec]


_YUV = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")
OUTPUT_CODECS: dict[str, OutputCodec] = {
    "h264": OutputCodec("h264", "h264", (".mp4", ".mkv", ".mov"), "yuv420p", "yuv420p10le", _YUV,
                        "H.264 (libx264), CRF 0-51"),
    "h265": OutputCodec("h265", "h265", (".mp4", ".mkv", ".mov"), "yuv420p", "yuv420p10le",
                        (*_YUV, "yuv420p12le", "yuv422p12le", "yuv444p12le"), "H.265 (libx265), CRF 0-51"),
    "prores": OutputCodec("prores", "prores_hq", (".mov",), "yuv422p10le", "yuv422p10le", ("yuv422p10le",),
                          "ProRes 422 HQ (prores_ks), 10-bit 4:2:2, MOV"),
    "prores4444": OutputCodec("prores4444", "prores_4444", (".mov",), "yuv444p10le", "yuv444p10le",
                              ("yuv444p10le", "yuva444p10le"), "ProRes 4444 (prores_ks), 10-bit 4:4:4, MOV"),
    "av1": OutputCodec("av1", "av1", (".mkv", ".mp4"), "yuv420p10le", "yuv420p10le", ("yuv420p", "yuv420p10le"),
                       "AV1 (the fastest encoder present: SVT-AV1, else libaom, else rav1e), CRF 0-63, 10-bit"),
    "ffv1": OutputCodec("ffv1", "ffv1", (".mkv",), "bgr0", "gbrp16le", ("bgr0", "gbrp16le", *_YUV),
                        "FFV1 level 3, lossless (RGB by default), MKV"),
}


def output_codec(name: str) -> OutputCodec:
    """The :data:`OUTPUT_CODECS` entry of ``name``; SettingsError naming the choices for an unknown one."""
    if name not in OUTPUT_CODECS:
        raise SettingsError(f"encode: unknown codec {name!r}; use one of {', '.join(OUTPUT_CODECS)}")
    return OUTPUT_CODECS[name]


def check_container(codec: str, suffix: str) -> None:
    """Raise SettingsError when an output ending in ``suffix`` cannot hold ``codec`` (e.g. ProRes in .mp4)."""
    entry = output_codec(codec)
    if suffix.lower() not in entry.suffixes:
        what = entry.description.split(",")[0].split(" (")[0]
        allowed = " or ".join(entry.suffixes)
        raise SettingsError(f"output: {what} cannot go in a {suffix or 'file without an extension'} file; name the "
                            f"output {allowed} (e.g. result{entry.suffixes[0]}), or leave the extension out to get "
                            f"{entry.suffixes[0]}")


def default_suffix(codec: str) -> str:
    """The container ``codec``'s output gets when its name has no extension (``.mov`` for ProRes...)."""
    return output_codec(codec).suffixes[0]


def has_encoder(name: str) -> bool:
    """Whether this PyAV build can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def av1_encoder() -> str | None:
    """The fastest AV1 encoder of :data:`AV1_ENCODERS` this PyAV build has, None when it has none."""
    return next((name for name in AV1_ENCODERS if has_encoder(name)), None)


def av1_options(encoder: str, crf: int, preset: str) -> dict[str, str]:
    """Encoder options for AV1 at ``crf`` (0-63) and ``preset`` (an SVT-AV1 number or an x264 name)."""
    number = int(AV1_PRESET_NAMES.get(preset, preset))
    if encoder == "libsvtav1":
        return {"crf": str(crf), "preset": str(number)}
    if encoder == "libaom-av1":  # constant quality: crf with no bit rate
        return {"crf": str(crf), "b": "0", "cpu-used": str(min(8, number)), "row-mt": "1"}
    return {"qp": str(round(crf * 255 / 63)), "speed": str(min(10, number))}  # librav1e


def check_settings(codec: str, crf: int, preset: str, pix_fmt: str | None) -> None:
    """Check an output codec's settings: ``crf`` in the codec's range (0-51 for x264/x265, 0-63 for AV1; ProRes
    and FFV1 have none and ignore it), ``preset`` one of the codec's (x264/x265 names; for AV1 those names or an
    SVT-AV1 number 0-13; ignored by ProRes and FFV1), ``pix_fmt`` None or one the codec accepts.

    Raises:
        SettingsError: what is wrong and what to use.
    """
    entry = output_codec(codec)
    crf_range = entry.codec.crf_range
    if isinstance(crf, bool) or not isinstance(crf, int):
        raise SettingsError(f"encode: crf {crf!r} is not a whole number; use 18")
    if crf_range is not None and not crf_range[0] <= crf <= crf_range[1]:
        raise SettingsError(f"encode: crf {crf!r} is outside {crf_range[0]}..{crf_range[1]}; use "
                            f"{entry.codec.default_crf if codec == 'av1' else 18} for near-transparent quality")
    if codec in ("h264", "h265") and preset not in PRESETS:
        raise SettingsError(f"encode: unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if codec == "av1" and preset not in PRESETS and preset not in SVT_PRESETS:
        raise SettingsError(f"encode: unknown AV1 preset {preset!r}; use one of {', '.join(PRESETS)} or an SVT-AV1 "
                            "preset 0 (slowest) to 13 (fastest)")
    if pix_fmt is not None and pix_fmt not in entry.pix_fmts:
        raise SettingsError(f"encode: pixel format {pix_fmt!r} is not supported for {codec}; use one of "
                            f"{', '.join(entry.pix_fmts)} or leave it unset")


def encoder_options(codec: str, crf: int, preset: str) -> tuple[str, dict[str, str]]:
    """The PyAV encoder and its options for an output codec (AV1: :func:`av1_encoder`).

    Raises:
        SettingsError: AV1 asked and this PyAV build has no AV1 encoder.
    """
    entry = output_codec(codec)
    if codec == "av1":
        encoder = av1_encoder()
        if encoder is None:
            raise SettingsError(f"encode: this PyAV build has no AV1 encoder ({', '.join(AV1_ENCODERS)}); install "
                                "PyAV wheels built with SVT-AV1, or choose --codec h265")
        return encoder, av1_options(encoder, crf, preset)
    options = dict(entry.codec.options)
    if entry.codec.crf_range is not None:
        options.update({"crf": str(crf), "preset": preset})
    return entry.codec.encoder, options


def output_pix_fmt_for(codec: str, pix_fmt: str | None, high_bit_depth: bool, width: int, height: int) -> str:
    """The pixel format a ProRes, AV1 or FFV1 output is encoded in: ``pix_fmt``, else the codec's default for
    8-bit or deeper sources.

    Raises:
        SettingsError: the frame size is odd where the format subsamples chroma (AV1 is 4:2:0 only).
    """
    entry = output_codec(codec)
    chosen = pix_fmt or (entry.pix_fmt_high if high_bit_depth else entry.pix_fmt_8)
    if (chosen.startswith("yuv420") and (width % 2 or height % 2)) or (chosen.startswith("yuv422") and width % 2):
        other = "ffv1 or prores4444" if codec in ("av1", "prores") else "a yuv444p pixel format"
        raise SettingsError(f"encode: {width}x{height} cannot be stored as {chosen} ({codec} with chroma subsampling "
                            f"needs an even size); use {other}, or an even output size")
    return chosen


def is_rgb(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` stores RGB planes (FFV1's ``bgr0``/``gbrp16le``), so no YUV matrix applies."""
    return pix_fmt.startswith(("gbr", "bgr", "rgb"))


def describe_output(codec: str) -> str:
    """One line saying how ``codec`` will be encoded here (for AV1: which encoder, and why that one)."""
    entry = output_codec(codec)
    if codec != "av1":
        return entry.description
    encoder = av1_encoder()
    if encoder is None:
        return f"AV1: no encoder in this PyAV build (none of {', '.join(AV1_ENCODERS)})"
    present = [name for name in AV1_ENCODERS if has_encoder(name)]
    return (f"AV1 with {encoder}, the fastest AV1 encoder this PyAV build has (present: {', '.join(present)}; "
            f"fastest first: {', '.join(AV1_ENCODERS)})")
