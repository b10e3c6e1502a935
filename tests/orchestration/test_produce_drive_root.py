"""`vup produce --drive-root`: the carrier spec's plan format run by the production job, end to end (an EXR scene
whose headers give 24 fps, a DPX scene at the assumed plan rate, a dissolve, three audio tracks, --no-upscale), its
file names and carrier_report.json; --dry-run writes nothing; a refused plan and a failed run say which step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration.cli import main
from stages.media.probe import probe_video
from stages.production.example import write_carrier_example

PIPELINE = ["validate", "sequences", "interpolate", "upscale", "edit", "audio", "encode", "thumbnail",
            "contact_sheet", "report"]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _plan(root: Path) -> dict:
    return json.loads((root / "PRODUCTION_PLAN.JSON").read_text(encoding="utf-8"))


def _set_plan(root: Path, plan: dict) -> None:
    (root / "PRODUCTION_PLAN.JSON").write_text(json.dumps(plan), encoding="utf-8")


def test_the_seed_plan_runs_end_to_end_into_final_output(workspace, tmp_path, capsys):
    root = tmp_path / "drive"
    write_carrier_example(root)
    code = main(["produce", "--drive-root", str(root), "--project-name", "trailer", "--no-upscale", "--no-rife",
                 "--cpu-only", "-q"])
    assert code == 0, capsys.readouterr().err
    out = root / "OUT_FINAL"
    assert {p.name for p in out.iterdir()} == {"FINAL_OUTPUT_trailer.mp4", "thumbnail_trailer.png",
                                               "contact_sheet_trailer.jpg", "report.json", "carrier_report.json"}
    # scene_001: 12 EXR frames at 24 fps (their headers) -> 15 at 30; scene_002: 12 DPX frames at the assumed
    # 30 fps; a 0.25 s dissolve overlaps round(7.5) = 8 frames
    video = probe_video(out / "FINAL_OUTPUT_trailer.mp4")
    assert (video.codec, video.width, video.height, video.frame_count) == ("hevc", 256, 144, 15 + 12 - 8)
    assert video.avg_fps == pytest.approx(30.0) and [a.codec for a in video.audio_streams] == ["aac"]
    assert (out / "thumbnail_trailer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    carrier = json.loads((out / "carrier_report.json").read_text(encoding="utf-8"))
    assert {"version", "project", "status", "pipeline", "outputs"} <= set(carrier)
    assert (carrier["version"], carrier["project"], carrier["status"]) == (1, "trailer", "done")
    assert list(carrier["pipeline"]) == PIPELINE
    assert carrier["pipeline"]["upscale"] == "skipped"  # --no-upscale
    assert all(carrier["pipeline"][step] == "done" for step in PIPELINE if step != "upscale")
    assert [o["file"] for o in carrier["outputs"]] == ["FINAL_OUTPUT_trailer.mp4", "thumbnail_trailer.png",
                                                       "contact_sheet_trailer.jpg"]
    assert carrier["outputs"][0]["kind"] == "video" and carrier["outputs"][0]["codec"] == "hevc"

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    steps = {s["step"]: s for s in report["steps"]}
    assert carrier["run_id"] == report["run_id"]
    assert "scene_001 at 24 fps (from its frames' metadata)" in steps["plan"]["reason"]
    assert any("scene_002" in w and "assumed the plan's 30 fps" in w for w in steps["plan"]["warnings"])
    assert "24 -> 30 fps with flow" in steps["interpolate"]["reason"]  # --no-rife
    assert "upscaling is off" in steps["upscale"]["reason"]
    audio = steps["audio"]["reason"]
    assert all(name in audio for name in ("music_theme.wav", "sfx_hits.wav (sfx, -4 dB)", "voice_over.wav (voice"))
    printed = capsys.readouterr()
    assert "FINAL_OUTPUT_trailer.mp4" in printed.out and "carrier_report.json" in printed.out


def test_dry_run_checks_everything_and_writes_nothing(tmp_path, monkeypatch, capsys):
    workspace = tmp_path / "no-workspace-yet"
    monkeypatch.setenv("VUP_WORKSPACE", str(workspace))
    root = tmp_path / "drive"
    write_carrier_example(root, codec="prores")
    before = _tree(root)
    assert main(["produce", "--drive-root", str(root), "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert "FINAL_OUTPUT_drive.mov" in printed.err  # the project defaults to the drive root's name; prores: .mov
    for line in ("scene scene_001", "scene scene_002", "audio music_theme.wav", "codec mov", "prores_ks", "disk",
                 "output", "every check passed; nothing was written"):
        assert line in printed.out, line
    assert "24 fps (from the frames' metadata)" in printed.out
    assert _tree(root) == before and not workspace.exists()

    # a frame that does not decode, and a missing audio track (a warning: the run mixes without it)
    last = sorted((root / "IN_COMPONENTS").glob("graded_scene_002_*.dpx"))[-1]
    last.write_bytes(last.read_bytes()[:100])
    (root / "IN_COMPONENTS" / "audio" / "sfx_hits.wav").unlink()
    before = _tree(root)
    assert main(["produce", "--drive-root", str(root), "--dry-run"]) == 2
    printed = capsys.readouterr()
    assert "failed   scene scene_002" in printed.out and last.name in printed.out
    assert "warning  audio sfx_hits.wav" in printed.out and "mixes without it" in printed.out
    assert "nothing was written" in printed.err
    assert _tree(root) == before and not workspace.exists()


def test_a_refused_plan_writes_a_failed_carrier_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VUP_WORKSPACE", str(tmp_path / "ws"))
    root = tmp_path / "drive"
    write_carrier_example(root, frames=2)
    plan = _plan(root)
    plan["output"]["codec"] = "vp9"
    _set_plan(root, plan)
    assert main(["produce", "--drive-root", str(root), "--project-name", "promo"]) == 2
    assert "output.codec 'vp9'" in capsys.readouterr().err
    carrier = json.loads((root / "OUT_FINAL" / "carrier_report.json").read_text(encoding="utf-8"))
    assert (carrier["status"], carrier["failed_step"], carrier["project"]) == ("failed", "validate", "promo")
    assert "output.codec 'vp9'" in carrier["error"]
    assert carrier["pipeline"] == {step: "failed" if step == "validate" else "skipped" for step in PIPELINE}
    assert {p.name for p in (root / "OUT_FINAL").iterdir()} == {"carrier_report.json"}
    assert main(["produce", str(root / "PRODUCTION_PLAN.JSON"), "--project-name", "x"]) == 2  # carrier flags only
    assert "--drive-root" in capsys.readouterr().err


def test_a_failed_encode_says_so_and_leaves_no_final_output(workspace, tmp_path, monkeypatch, capsys):
    from orchestration.graphs import production
    from stages.errors import EncodeError

    def failing(chunks, fps, out_path, spec, **kwargs):
        raise EncodeError("deliver: prores_ks failed (simulated); free disk space and rerun")

    monkeypatch.setattr(production, "encode_deliverable", failing)
    root = tmp_path / "drive"
    write_carrier_example(root, codec="prores")
    assert main(["produce", "--drive-root", str(root), "--no-upscale", "-q"]) == 1
    assert "simulated" in capsys.readouterr().err
    out = root / "OUT_FINAL"
    assert not [p.name for p in out.iterdir() if "FINAL_OUTPUT" in p.name]  # nothing half-written either
    carrier = json.loads((out / "carrier_report.json").read_text(encoding="utf-8"))
    assert (carrier["status"], carrier["failed_step"]) == ("failed", "encode")
    assert carrier["error"].startswith("deliver:mov: ") and "simulated" in carrier["error"]
    assert carrier["pipeline"]["encode"] == "failed" and carrier["pipeline"]["report"] == "skipped"
    assert carrier["pipeline"]["audio"] == "done" and carrier["pipeline"]["thumbnail"] == "done"
    assert [o["kind"] for o in carrier["outputs"]] == ["thumbnail", "contact_sheet"]  # made; no video
