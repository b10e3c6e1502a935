"""File names full of shell and filter-graph syntax (quotes, double quotes, ``;``, brackets, ``,``, ``:``, ``\\``,
``$(touch pwned)``, backticks, spaces, non-ASCII) go through probe, the whole pipeline (`vup enhance`, with a reference
for VMAF), the preview cut, ``minterpolate_video`` and VMAF's log path: the outputs are right, and no command in a
name ever runs (no file named ``pwned`` appears)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hostile import HOSTILE_STEM, no_pwned

from orchestration.cli import main
from stages.media.ffmpeg import (
    escape_filter_graph,
    escape_filter_option,
    filter_value,
    find_ffmpeg,
)
from stages.media.preview import cut_head
from stages.media.probe import probe_video
from stages.ops.interpolate.interpolators import minterpolate_video
from stages.quality.metrics import has_libvmaf, vmaf
from stages.quality.samples import make_sample_clip

REPO = Path(__file__).resolve().parents[2]
# names that would inject a filter, an option or a second graph if the escaping were wrong
INJECTIONS = [
    HOSTILE_STEM,
    "x,metadata=mode=print:file=INJECTED",
    "x;[0:v]metadata=mode=print:file=INJECTED",
    "x:file=INJECTED",
    "x'[a];movie=INJECTED",
    "x\\'", "x\\", "'", "''", " lead", "trail ", "[in]", "a=b", "%d", "line\nbreak", "tab\there", "é\u202eü",
]


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    folder = tmp_path / f"dir {HOSTILE_STEM}"
    folder.mkdir()
    return folder


def _checked(tmp_path: Path) -> None:
    found = no_pwned(tmp_path, REPO) + list(tmp_path.rglob("INJECTED*")) + list(Path.cwd().glob("INJECTED*"))
    assert not found, found


@pytest.mark.parametrize("name", INJECTIONS, ids=range(len(INJECTIONS)))
def test_filter_values_arrive_verbatim(name, tmp_path):
    """Any text placed with filter_value in a -vf graph reaches the filter option exactly (metadata writes to it)."""
    folder = tmp_path / name.replace("/", "_")
    folder.mkdir()
    target = folder / "frames.txt"
    graph = f"metadata=mode=print:file={filter_value(target)},format=yuv420p"
    done = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-f", "lavfi", "-i",
                           "testsrc=size=32x32:rate=2:duration=1", "-vf", graph, "-f", "null", "-"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1000:]
    assert target.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    _checked(tmp_path)


def test_escaping_levels():
    assert escape_filter_option("a:b'c\\d e") == "a\\:b\\'c\\\\d\\ e"
    assert escape_filter_graph("a[b],c;d'e\\f") == "a\\[b\\]\\,c\\;d\\'e\\\\f"
    assert filter_value("plain/path.json") == "plain/path.json"
    assert filter_value(Path("/x/y:z")) == "/x/y\\\\:z"  # level 1 escapes the colon, level 2 that backslash


def test_probe_preview_and_minterpolate_with_hostile_names(tiny_clip, hostile_dir, tmp_path):
    source = hostile_dir / f"{HOSTILE_STEM}.mp4"
    shutil.copy(tiny_clip, source)
    info = probe_video(source)
    assert (info.width, info.height, info.frame_count) == (64, 48, 18) and info.path == str(source)

    preview = cut_head(source, hostile_dir / f"{HOSTILE_STEM} preview.mp4", 0.5)
    cut = probe_video(preview)
    assert preview.name == f"{HOSTILE_STEM} preview.mp4" and cut.frame_count == 6 and cut.width == 64

    out = minterpolate_video(source, hostile_dir / f"{HOSTILE_STEM} 24fps.nut", 24)
    from stages.media.chunkio import read_frames

    frames = list(read_frames(out))
    assert len(frames) == 36 and frames[0].shape[:2] == (48, 64)
    assert sorted(p.name for p in hostile_dir.iterdir()) == sorted(
        [source.name, preview.name, out.name])
    _checked(tmp_path)


@pytest.mark.skipif(not has_libvmaf(), reason="this ffmpeg build has no libvmaf")
def test_vmaf_log_path_and_inputs_with_hostile_names(tiny_clip, hostile_dir, tmp_path, monkeypatch):
    ref = hostile_dir / f"{HOSTILE_STEM} ref.mp4"
    dist = hostile_dir / f"{HOSTILE_STEM} dist.mp4"
    shutil.copy(tiny_clip, ref)
    shutil.copy(tiny_clip, dist)
    temp = tmp_path / f"tmp {HOSTILE_STEM}"  # vmaf writes its JSON log in the temp folder: make that hostile too
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = vmaf(ref, dist, threads=1)
    assert len(result.per_frame) == 18 and result.mean > 90
    assert list(temp.iterdir()) == []  # the log was read back and removed
    _checked(tmp_path)


def test_enhance_end_to_end_with_hostile_names(tiny_clip, hostile_dir, tmp_path, monkeypatch, capsys):
    """One real `vup enhance` on a tiny clip: input, output, reference and temp folder all named with shell and
    filter-graph syntax."""
    source = hostile_dir / f"{HOSTILE_STEM}.mp4"
    shutil.copy(tiny_clip, source)
    reference = make_sample_clip(hostile_dir / f"{HOSTILE_STEM} reference.mp4", width=128, height=96, seconds=1.5,
                                 fps=12, audio=False)
    out_dir = tmp_path / f"out {HOSTILE_STEM}"
    out = out_dir / f"{HOSTILE_STEM} x2.mkv"
    temp = tmp_path / f"tmp {HOSTILE_STEM}"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(tmp_path)
    code = main(["enhance", str(source), "-o", str(out), "--scale", "2", "--preset", "ultrafast", "--device", "cpu",
                 "--reference", str(reference), "--workspace", str(tmp_path / "ws"), "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    result, original = probe_video(out), probe_video(source)
    assert (result.width, result.height) == (128, 96)
    assert result.frame_count == original.frame_count and len(result.audio_streams) == 1
    assert abs(result.duration - original.duration) <= 1 / 12 + 1e-6
    reports = list((tmp_path / "ws" / "reports").rglob("summary.json"))
    assert reports, "no report was written"
    summary = reports[0].read_text(encoding="utf-8")
    assert '"psnr_y"' in summary
    if has_libvmaf():
        assert '"vmaf"' in summary
    _checked(tmp_path)
