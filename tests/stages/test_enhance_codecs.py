"""The single-video encode's codecs beyond H.264/H.265 (ProRes 422 HQ / 4444 in MOV, AV1 and FFV1 in MKV), each
written and probed; the container checked against the codec; the container chosen from the codec when the output
has no extension; the AV1 encoder is the fastest present."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from orchestration.launch.request import EnhanceRequest, crf_for_codec, output_for_codec
from orchestration.launch.validate import validate_request
from orchestration.resources.config import EncodeConfig, UpscaleConfig
from stages.errors import SettingsError
from stages.media.chunkio import read_frames
from stages.media.codecs import AV1_ENCODERS, OUTPUT_CODECS, av1_encoder, check_container, describe_output
from stages.media.encode import EncodeInput, EncodeSettings, encode_video
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import probe_video
from ui.choices import CODECS, container_for

# codec, output suffix, probed codec, profile, pixel format as decoded, matrix
_WRITTEN = [
    ("prores", ".mov", "prores", "HQ", "yuv422p10le", "bt709"),
    ("prores4444", ".mov", "prores", "4444", "yuv444p12le", "bt709"),  # ffmpeg decodes ProRes 4444 at 12 bits
    ("av1", ".mkv", "av1", "Main", "yuv420p10le", "bt709"),
    ("av1", ".mp4", "av1", "Main", "yuv420p10le", "bt709"),
    ("ffv1", ".mkv", "ffv1", None, "bgr0", "gbr"),
]


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path) -> tuple[list[EncodeInput], object]:
    """The tiny clip (64x48, 18 frames, audio) as one lossless chunk with its pts."""
    folder = tmp_path_factory.mktemp("codec-chunks")
    info = probe_video(tiny_clip)
    chunk = folder / "000.mkv"
    run_ffmpeg(["-i", str(tiny_clip), "-map", "0:v:0", "-c:v", "ffv1", "-pix_fmt", "bgr0", str(chunk)],
               what="test: chunk")
    with av.open(str(tiny_clip)) as container:
        pts = tuple(sorted(p.pts for p in container.demux(video=0) if p.pts is not None))
    return [EncodeInput(str(chunk), pts)], info


@pytest.mark.parametrize(("codec", "suffix", "probed", "profile", "pix_fmt", "matrix"), _WRITTEN,
                         ids=[f"{c}{s}" for c, s, *_ in _WRITTEN])
def test_each_codec_is_written_and_probed(chunks, tmp_path: Path, codec: str, suffix: str, probed: str,
                                          profile: str | None, pix_fmt: str, matrix: str) -> None:
    inputs, info = chunks
    out = tmp_path / f"out{suffix}"
    result = encode_video(inputs, info, out, EncodeSettings(codec=codec, crf=crf_for_codec(codec, None),
                                                            preset="medium"))
    written = probe_video(out)
    assert (result.codec, written.codec, written.pix_fmt) == (probed, probed, pix_fmt)
    assert written.frame_count == info.frame_count and (written.width, written.height) == (64, 48)
    assert abs(written.duration - info.duration) <= 1 / info.avg_fps
    assert len(written.audio_streams) == 1
    assert (written.color_matrix, written.color_primaries) == (matrix, "bt709")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.profile == profile
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


def test_ffv1_keeps_the_chunks_pixels_exactly(chunks, tmp_path: Path) -> None:
    inputs, info = chunks
    encode_video(inputs, info, tmp_path / "out.mkv", EncodeSettings(codec="ffv1"))
    source = np.stack(list(read_frames(inputs[0].path)))
    with av.open(str(tmp_path / "out.mkv")) as container:
        written = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert np.array_equal(source, written)


def test_the_container_is_checked_against_the_codec(chunks, tmp_path: Path) -> None:
    inputs, info = chunks
    with pytest.raises(SettingsError, match=r"ProRes 422 HQ cannot go in a \.mp4 file; name the output \.mov"):
        encode_video(inputs, info, tmp_path / "out.mp4", EncodeSettings(codec="prores"))
    for codec, suffix in (("ffv1", ".mov"), ("av1", ".mov"), ("prores4444", ".mkv")):
        with pytest.raises(SettingsError, match="cannot go in"):
            check_container(codec, suffix)
    for codec, suffix in (("h264", ".mov"), ("h265", ".mkv"), ("av1", ".mp4"), ("prores", ".MOV")):
        check_container(codec, suffix)
    assert list(tmp_path.iterdir()) == []


def test_the_container_follows_the_codec_without_an_extension(tmp_path: Path) -> None:
    assert output_for_codec(tmp_path / "result", "prores") == tmp_path / "result.mov"
    assert output_for_codec(tmp_path / "result", "av1") == tmp_path / "result.mkv"
    assert output_for_codec(tmp_path / "result", "ffv1") == tmp_path / "result.mkv"
    assert output_for_codec(tmp_path / "result", "h265") == tmp_path / "result.mp4"
    assert output_for_codec(tmp_path / "result.mp4", "prores") == tmp_path / "result.mp4"  # refused later
    assert output_for_codec(None, "prores") is None
    assert set(CODECS) == set(OUTPUT_CODECS)
    assert container_for("prores", "mp4") == "mov" and container_for("h264", "mkv") == "mkv"
    assert container_for("av1", "mp4") == "mp4" and container_for("ffv1", "mov") == "mkv"


def test_crf_defaults_and_ranges() -> None:
    assert crf_for_codec("h264", None) == 18 and crf_for_codec("av1", None) == 30 and crf_for_codec("av1", 40) == 40
    with pytest.raises(SettingsError, match="--crf 20 does not apply to prores"):
        crf_for_codec("prores", 20)
    with pytest.raises(SettingsError, match="outside 0..63"):
        EncodeSettings(codec="av1", crf=64).validate()
    with pytest.raises(SettingsError, match="outside 0..51"):
        EncodeSettings(codec="h265", crf=52).validate()
    with pytest.raises(SettingsError, match="AV1 preset 'quick'"):
        EncodeSettings(codec="av1", preset="quick").validate()
    with pytest.raises(SettingsError, match="pixel format 'yuv420p' is not supported for prores"):
        EncodeSettings(codec="prores", pix_fmt="yuv420p").validate()
    EncodeSettings(codec="av1", preset="12").validate()
    EncodeSettings(codec="prores", crf=18, preset="medium").validate()  # ignored, not refused


def test_the_fastest_av1_encoder_present_is_used_and_named() -> None:
    encoder = av1_encoder()
    present = [name for name in AV1_ENCODERS if _has(name)]
    assert encoder == (present[0] if present else None)
    if encoder is not None:
        assert f"AV1 with {encoder}" in describe_output("av1")


def _has(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means absent
        return False
    return True


def test_validate_refuses_the_wrong_container_and_odd_sizes_before_any_work(tiny_clip: Path, tmp_path: Path) -> None:
    def request(codec: str, output: str, scale: int = 2) -> EnhanceRequest:
        return EnhanceRequest(input=tiny_clip, output=tmp_path / output, upscale=UpscaleConfig(scale=scale),
                              encode=EncodeConfig(codec=codec, crf=crf_for_codec(codec, None)))

    with pytest.raises(SettingsError, match=r"ProRes 4444 cannot go in a \.mp4 file"):
        validate_request(request("prores4444", "out.mp4"))
    with pytest.raises(SettingsError, match=r"FFV1 level 3 cannot go in a \.mov file; name the output \.mkv"):
        validate_request(request("ffv1", "out.mov"))
    validate_request(request("av1", "out.mkv"))
    assert not any(tmp_path.iterdir())
