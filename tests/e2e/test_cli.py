"""The `vup` command as a user runs it: a real enhance, and bad inputs that must give one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestration.cli import main
from stages.media.ffmpeg import run_ffmpeg
from stages.media.probe import probe_video
from stages.quality.samples import make_sample_clip

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    good = make_sample_clip(root / "good.mp4", width=48, height=32, seconds=1.0, fps=10, audio=True)
    mkv = make_sample_clip(root / "good.mkv", width=48, height=32, seconds=0.5, fps=10, audio=False)
    big = make_sample_clip(root / "big.mp4", width=2000, height=1200, seconds=0.1, fps=10, audio=False)
    return {"good": good, "mkv": mkv, "big": big, "root": root}


def _bad_inputs(clips, tmp: Path) -> dict[str, Path]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp / "noise.mp4"
    noise.write_bytes(os.urandom(50_000))
    data = clips["good"].read_bytes()
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    audio = tmp / "audio.m4a"
    run_ffmpeg(["-i", str(clips["good"]), "-vn", "-c", "copy", str(audio)])
    mkv = clips["mkv"].read_bytes()
    unsupported = tmp / "unsupported.mkv"
    unsupported.write_bytes(mkv.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    return {"missing": tmp / "missing.mp4", "empty": empty, "random bytes": noise, "truncated": truncated,
            "audio only": audio, "unsupported codec": unsupported}


CASES = {
    "missing": "does not exist",
    "empty": "empty",
    "random bytes": "",
    "truncated": "truncated",
    "audio only": "no video stream",
    "unsupported codec": "unsupported video codec",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_error_no_output(case, clips, tmp_path, capsys):
    source = _bad_inputs(clips, tmp_path)[case]
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(source), "-o", str(out), "--workspace", str(tmp_path / "ws"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert CASES[case] in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scale", "3"], "use 2, 4 or 8"),
        (["--scale", "0"], "use 2, 4 or 8"),
        (["--crf", "70"], "crf"),
        (["--codec", "mpeg2"], "codec"),
        (["--tile", "30"], "multiple of 8"),
        (["--device", "tpu"], "unknown device"),
        (["--chunk-seconds", "0"], "chunk"),
        (["--model", "nope"], "nope"),
    ],
)
def test_impossible_settings(args, expected, clips, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(clips["good"]), "-o", str(out), "--workspace", str(tmp_path / "ws"), "-q", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and expected in err
    assert not out.exists()


def test_output_above_8k_is_refused(clips, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(clips["big"]), "-o", str(out), "--scale", "4", "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "8K" in err and "use --scale 2" in err
    assert not out.exists()


def test_bad_output_name(clips, tmp_path, capsys):
    code = main(["enhance", str(clips["good"]), "-o", str(tmp_path / "out.gif"), "--workspace", str(tmp_path / "ws")])
    assert code == 2 and ".mp4" in capsys.readouterr().err


def test_probe_and_models_list(clips, capsys):
    assert main(["probe", str(clips["good"]), "--json"]) == 0
    assert '"frame_count": 10' in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    for model_id in ("realesr-animevideov3", "realesrgan-x4plus", "swinir-real-m-x4-gan", "span-x2-ch48",
                     "compact-rybu-x4", "realplksr-gan-x4"):
        assert f" {model_id} " in listing


def test_enhance_with_an_imported_model(clips, tmp_path, monkeypatch, capsys):
    """`vup models import` a tiny x2 network, then `vup enhance --model <its id>` uses it."""
    from spandrel.architectures.Compact import Compact

    monkeypatch.setenv("VUP_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    weights = tmp_path / "My Tiny x2.pth"
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(), weights)
    assert main(["models", "import", str(weights), "--id", "tiny-x2", "-q"]) == 0
    assert "imported:     tiny-x2" in capsys.readouterr().out
    out = tmp_path / "out.mp4"
    code = main(["enhance", str(clips["good"]), "-o", str(out), "--model", "tiny-x2", "--scale", "2",
                 "--preset", "ultrafast", "--workspace", str(tmp_path / "ws")])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "with tiny-x2 (user)" in captured.err
    result = probe_video(out)
    assert (result.width, result.height) == (96, 64) and result.frame_count == probe_video(clips["good"]).frame_count


def test_enhance_as_a_user_runs_it(clips, tmp_path):
    """The installed console script, in a fresh process, on a clip with audio."""
    out = tmp_path / "result.mkv"
    env = {**os.environ, "VUP_WORKSPACE": str(tmp_path / "ws")}
    env.pop("DAGSTER_HOME", None)
    vup = Path(sys.executable).with_name("vup")
    command = [str(vup)] if vup.exists() else [sys.executable, "-m", "orchestration.cli.commands"]
    proc = subprocess.run(
        [*command, "enhance", str(clips["good"]), "-o", str(out), "--scale", "2", "--preset", "ultrafast", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"output:   {out}" in proc.stdout
    assert "report:" in proc.stdout and "dagster:" in proc.stdout
    source, result = probe_video(clips["good"]), probe_video(out)
    assert (result.width, result.height) == (96, 64)
    assert result.frame_count == source.frame_count and len(result.audio_streams) == 1
    assert (tmp_path / "ws" / "dagster" / "dagster.yaml").exists()
    assert "Traceback" not in proc.stderr


def test_bench_unknown_name_is_a_one_line_error(capsys):
    from orchestration.cli import main
    assert main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bench: unknown benchmark 'nope'") and "side-by-side" in err
