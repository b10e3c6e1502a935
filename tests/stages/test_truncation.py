"""Incomplete files (issue 16): a file whose video decodes to its end is used, with a warning that names what is
missing and how much; a file whose video is cut is refused, and the message says how much is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest

from orchestration.cli import main
from stages.errors import ProbeError
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import probe_video

INTEL = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "clips" / "intel_car-detection.mp4"


@pytest.fixture(scope="module")
def audio_last(tmp_path_factory) -> Path:
    """1 s of 12 fps video with 1.5 s of audio, index first (faststart): the file's last packets are audio."""
    path = tmp_path_factory.mktemp("truncation") / "audio_last.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=12:duration=1", "-f", "lavfi", "-i",
                "sine=duration=1.5", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags",
                "+faststart", str(path)], what="test: audio-last clip")
    return path


def _packets(path: Path) -> list[tuple[str, int, int]]:
    """(kind, file position, size) of every packet, in file order."""
    with av.open(str(path)) as container:
        return [(p.stream.type, p.pos, p.size) for p in container.demux() if p.size]


def _cut(source: Path, target: Path, length: int) -> Path:
    target.write_bytes(source.read_bytes()[:length])
    return target


def test_a_cut_last_audio_packet_is_accepted_with_a_warning(audio_last, tmp_path):
    kind, pos, size = _packets(audio_last)[-1]
    assert kind == "audio"
    info = probe_video(_cut(audio_last, tmp_path / "half_packet.mp4", pos + size // 2))
    assert info.frame_count == probe_video(audio_last).frame_count == 12
    [warning] = info.warnings
    assert "audio packet of stream #1" in warning and "cut short" in warning and " s" in warning


def test_a_missing_last_audio_packet_is_accepted_with_a_warning(audio_last, tmp_path):
    packets = _packets(audio_last)
    audio = sum(1 for p in packets if p[0] == "audio")
    info = probe_video(_cut(audio_last, tmp_path / "no_last_packet.mp4", packets[-1][1]))
    assert info.frame_count == 12
    [warning] = info.warnings
    assert f"stream #1 (audio) lacks its last 1 of {audio} audio packets" in warning
    assert "about 0.02 s" in warning and "cut short" in warning


def test_the_cut_file_is_processed(audio_last, tmp_path, caplog):
    packets = _packets(audio_last)
    source = _cut(audio_last, tmp_path / "cut.mp4", packets[-1][1] + packets[-1][2] // 2)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        code = main(["enhance", str(source), "-o", str(out), "--scale", "1", "--preset", "ultrafast", "--no-vmaf",
                     "--workspace", str(tmp_path / "ws"), "-q"])
    assert code == 0
    assert "cut short" in caplog.text
    result = probe_video(out)
    assert result.frame_count == 12 and len(result.audio_streams) == 1


def test_a_cut_video_is_refused_with_how_much_is_missing(audio_last, tmp_path):
    data = audio_last.read_bytes()
    mdat = data.find(b"mdat") - 4
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: mdat + (len(data) - mdat) // 2])
    with pytest.raises(ProbeError) as exc:
        probe_video(path)
    message = str(exc.value)
    assert "truncated" in message and "copy the file again" in message
    assert "video frames in stream #0" in message and "frames (about" in message and "are missing" in message


def test_a_cut_last_video_packet_is_refused(tmp_path):
    path = tmp_path / "video_only.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=12:duration=1", "-c:v", "libx264", "-preset",
                "ultrafast", "-movflags", "+faststart", str(path)], what="test: video-only clip")
    with pytest.raises(ProbeError) as exc:
        probe_video(_cut(path, tmp_path / "cut.mp4", path.stat().st_size - 20))
    assert "truncated" in str(exc.value) and "video" in str(exc.value)


def test_the_intel_clip_is_accepted():
    """A camera MP4 whose index counts 1416 audio packets while its edit list plays 1414 (ffmpeg decodes all 377
    frames and the audio without an error): used, with a warning that says so."""
    if not INTEL.is_file():
        pytest.skip("the shared test clip intel_car-detection.mp4 is absent")
    info = probe_video(INTEL)
    assert info.frame_count == 377
    [warning] = info.warnings
    assert "stream #1 (audio) lacks its last 2 of 1416 audio packets" in warning and "edit list" in warning
