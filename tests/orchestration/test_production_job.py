"""The production plan as one Dagster job: two image-sequence scenes (16-bit PNG with a gap, linear EXR through a glob)
joined by a crossfade, three WAV tracks, every deliverable probed, loudness measured on the output, report.json,
lineage in the instance, a rerun from cache, and the failure paths (report.json says which step and why)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.cli import main
from orchestration.graphs.production import PRODUCTION_ASSETS, PRODUCTION_JOB
from orchestration.launch.runner import run_production
from stages.media.chunkio import read_frames
from stages.media.loudness import measure_loudness
from stages.media.probe import probe_video
from stages.media.sample_tracks import make_sample_track
from stages.production.plan import load_plan
from stages.quality.samples import make_sample_sequence

CANVAS = (256, 144)


def _project(root: Path, *, tracks: tuple[str, ...] = ("music_theme.wav", "sfx_hits.wav", "voice_over.wav"),
             write_tracks: bool = True, deliverables: tuple[str, ...] = ("mp4", "mov"), alpha: bool = False,
             **extra) -> Path:
    """Two scenes at 24 fps, 64x36: 16-bit PNG with frames 5 and 6 missing (held; with ``alpha`` an alpha ramp
    0.25 -> 1 from left to right), linear EXR named by a glob; a 0.25 s crossfade; three audio tracks; output
    256x144 at 30 fps."""
    make_sample_sequence(root / "shots", "shot_####.png", count=12, width=64, height=36, bit_depth=16,
                         missing=(5, 6), alpha=alpha)
    make_sample_sequence(root / "graded", "graded_scene_001_*.exr", count=12, width=64, height=36, linear=True,
                         offset=4)
    if write_tracks:
        for seed, name in enumerate(tracks):
            make_sample_track(root / "audio" / name, name.split("_")[0], 1.5, seed=seed)
    plan = {
        "name": "trailer",
        "resolution": f"{CANVAS[0]}x{CANVAS[1]}",
        "framerate": 30,
        "codec": "h265",
        "deliverables": list(deliverables),
        "scenes": [
            {"name": "opening", "sequence": "shots/shot_####.png", "fps": 24, "missing_frames": "hold"},
            {"name": "graded", "sequence": "graded/graded_scene_001_*.exr", "fps": 24,
             "transition": {"type": "crossfade", "duration": 0.25}},
        ],
        "audio": {"tracks": [f"audio/{name}" for name in tracks], "loudness": -14, "fade_out": 0.3},
        **extra,
    }
    path = root / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


def _report(plan_path: Path) -> dict:
    return json.loads((plan_path.parent / "trailer_deliverables" / "report.json").read_text(encoding="utf-8"))


def test_one_command_delivers_mp4_mov_thumbnail_grid_and_report(workspace, tmp_path, capsys):
    plan_path = _project(tmp_path / "project")
    assert main(["produce", str(plan_path), "-q"]) == 0
    out_dir = plan_path.parent / "trailer_deliverables"
    assert {p.name for p in out_dir.iterdir()} == {"report.json", "trailer.mp4", "trailer.mov",
                                                   "trailer_contact_sheet.jpg", "trailer_thumbnail.jpg"}
    # 12 frames at 24 fps -> 15 at 30 fps per scene; a 0.25 s crossfade overlaps round(7.5) = 8 frames
    frames = 15 + 15 - 8
    mp4, mov = probe_video(out_dir / "trailer.mp4"), probe_video(out_dir / "trailer.mov")
    for info in (mp4, mov):
        assert (info.width, info.height) == CANVAS and info.frame_count == frames
        assert info.avg_fps == pytest.approx(30.0)
        assert len(info.audio_streams) == 1 and info.audio_streams[0].sample_rate == 48000
        assert info.audio_streams[0].channels == 2
        # the mix is normalised to -14 LUFS: measured on the delivered file, within 1 LU
        assert measure_loudness(out_dir / info.path.rsplit("/", 1)[-1]).integrated_lufs == pytest.approx(-14, abs=1)
    assert (mp4.codec, mp4.pix_fmt, mp4.audio_streams[0].codec) == ("hevc", "yuv420p10le", "aac")
    assert (mov.codec, mov.pix_fmt, mov.audio_streams[0].codec) == ("prores", "yuv422p10le", "pcm_s24le")

    report = _report(plan_path)
    assert report["status"] == "OK" and report["error"] is None
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == ["plan", "assemble", "interpolate", "upscale", "edit", "audio", "deliver:mp4",
                           "deliver:mov", "thumbnail", "contact_sheet", "report"]
    assert all(s["status"] == "OK" for s in steps.values()), steps
    assert any("2 missing frames (5-6) held" in w for w in steps["assemble"]["warnings"])
    assert "16 bits" in steps["assemble"]["reason"] and "linear EXR" in steps["assemble"]["reason"]
    assert "24 -> 30 fps" in steps["interpolate"]["reason"]
    assert steps["audio"]["loudness_lufs"] == pytest.approx(-14, abs=1)
    kinds = {d["kind"]: d for d in report["deliverables"]}
    assert kinds["mp4"]["codec_tag"] == "hvc1" and kinds["mov"]["profile"] == "HQ"
    assert kinds["contact_sheet"]["width"] > kinds["thumbnail"]["width"]

    printed = capsys.readouterr().out
    assert "report:" in printed and "trailer.mov" in printed

    # one run of production_job in the instance, every asset of the graph materialised for its partition
    instance = DagsterInstance.get()
    runs = instance.get_run_records(RunsFilter(job_name=PRODUCTION_JOB))
    assert len(runs) == 1 and runs[0].dagster_run.status == DagsterRunStatus.SUCCESS
    partition = runs[0].dagster_run.tags["dagster/partition"]
    assert partition == report["partition"]
    for spec in PRODUCTION_ASSETS:
        event = instance.get_latest_materialization_event(AssetKey(spec.key.path))
        assert event is not None and event.dagster_event.partition == partition, spec.key


def test_the_rerun_reuses_every_chunk_and_output(workspace, tmp_path):
    plan = load_plan(_project(tmp_path / "project", deliverables=("mp4",)))
    first = run_production(workspace, plan)
    assert first.success, first.error
    events: list[dict] = []
    second = run_production(workspace, plan, on_event=events.append)
    assert second.success and second.partition_key == first.partition_key
    stages = {e["stage"] for e in events}
    assert {"assemble", "interpolate", "upscale", "edit", "deliver"} <= stages
    assert all(e["reused"] for e in events), [e for e in events if not e["reused"]]


def test_a_missing_sequence_fails_the_plan_step_and_report_json_says_so(workspace, tmp_path, capsys):
    plan_path = _project(tmp_path / "project")
    for frame in (tmp_path / "project" / "graded").iterdir():
        frame.unlink()
    assert main(["produce", str(plan_path), "-q"]) == 1
    error = capsys.readouterr().err
    assert "graded_scene_001_*.exr" in error
    report = _report(plan_path)
    assert report["status"] == "FAILED" and report["error"].startswith("plan: ")
    statuses = [(s["step"], s["status"]) for s in report["steps"]]
    assert statuses[0] == ("plan", "FAILED")
    assert all(status == "SKIPPED" for _step, status in statuses[1:])
    assert all("not run: the plan step failed" in s["reason"] for s in report["steps"][1:])
    assert not (plan_path.parent / "trailer_deliverables" / "trailer.mp4").exists()


def test_missing_audio_is_a_warning_and_a_silent_track(workspace, tmp_path):
    plan = load_plan(_project(tmp_path / "project", write_tracks=False, deliverables=("mp4",)))
    outcome = run_production(workspace, plan)
    assert outcome.success, outcome.error
    report = json.loads(Path(outcome.report_path).read_text(encoding="utf-8"))
    audio = next(s for s in report["steps"] if s["step"] == "audio")
    assert audio["status"] == "OK" and "silent track" in audio["reason"]
    assert sum("music_theme.wav" in w or "no usable audio" in w for w in audio["warnings"]) >= 2
    mp4 = probe_video(Path(plan.output_dir) / "trailer.mp4")
    assert len(mp4.audio_streams) == 1
    assert measure_loudness(Path(plan.output_dir) / "trailer.mp4").silent


def test_one_failing_deliverable_is_reported_while_the_others_are_made(workspace, tmp_path, monkeypatch):
    from orchestration.graphs import production
    from stages.errors import EncodeError

    real = production.encode_deliverable

    def failing(chunks, fps, out_path, spec, **kwargs):
        if spec.kind == "mov":
            raise EncodeError("deliver: prores_ks failed (simulated); free disk space and rerun")
        return real(chunks, fps, out_path, spec, **kwargs)

    monkeypatch.setattr(production, "encode_deliverable", failing)
    plan = load_plan(_project(tmp_path / "project"))
    outcome = run_production(workspace, plan)
    assert not outcome.success and "1 of 4 outputs failed" in outcome.error
    report = json.loads(Path(outcome.report_path).read_text(encoding="utf-8"))
    statuses = {s["step"]: s["status"] for s in report["steps"]}
    assert statuses["deliver:mp4"] == "OK" and statuses["deliver:mov"] == "FAILED"
    assert statuses["thumbnail"] == statuses["contact_sheet"] == "OK" and statuses["report"] == "SKIPPED"
    assert "simulated" in next(s["reason"] for s in report["steps"] if s["step"] == "deliver:mov")
    assert (Path(plan.output_dir) / "trailer.mp4").exists() and not (Path(plan.output_dir) / "trailer.mov").exists()


def test_the_master_holds_the_16_bit_frames(workspace, tmp_path):
    """EXR and 16-bit PNG scenes give a 16-bit master (the deliverables' 10-bit encodes start from it)."""
    plan = load_plan(_project(tmp_path / "project", deliverables=("ffv1",)))
    outcome = run_production(workspace, plan)
    assert outcome.success, outcome.error
    ffv1 = probe_video(Path(plan.output_dir) / "trailer_ffv1.mkv")
    assert ffv1.codec == "ffv1" and ffv1.pix_fmt == "gbrp16le"
    from stages.store.chunk_store import ChunkRecord

    instance = DagsterInstance.get()
    assert instance.get_latest_materialization_event(AssetKey("edited_master")) is not None
    master = sorted((workspace.chunks / "edit").glob("*.json"))  # the edit op's chunks: the master
    records = [ChunkRecord.from_dict(json.loads(p.read_text())) for p in master]
    records = [r for r in records if not r.params.get("alpha")]
    assert records and all(r.bit_depth == 16 for r in records)
    frame = next(read_frames(workspace.chunks / records[0].path))  # manifests name chunks relative to the store
    assert frame.dtype == np.uint16 and len(np.unique(frame)) > 256  # more levels than 8 bits can hold


def test_prores4444_carries_the_alpha_of_the_sequence(workspace, tmp_path):
    """A 16-bit RGBA PNG scene crossfading into an EXR scene without alpha, delivered as ProRes 4444: the alpha
    is kept through the 24 -> 30 fps retiming and the x4 enlargement; decoded from the MOV, the first frame holds
    the scene's ramp (0.25 at the left edge, 1 at the right), the last frame (the EXR scene) is opaque, and the
    crossfade lies between them."""
    plan = load_plan(_project(tmp_path / "project", deliverables=("prores4444",), alpha=True))
    outcome = run_production(workspace, plan)
    assert outcome.success, outcome.error
    out = Path(plan.output_dir) / "trailer_4444.mov"
    info = probe_video(out)
    assert info.codec == "prores" and info.pix_fmt.startswith("yuva444p") and (info.width, info.height) == CANVAS
    with av.open(str(out)) as container:
        alphas = [f.reformat(format="rgba64le").to_ndarray()[..., 3] / 65535.0 for f in container.decode(video=0)]
    report = _report(tmp_path / "project" / "plan.json")
    edit = next(s for s in report["steps"] if s["step"] == "edit")
    assert "alpha matte from opening" in edit["reason"]
    assemble = next(s for s in report["steps"] if s["step"] == "assemble")
    assert "alpha kept for prores4444" in assemble["reason"]
    deliver = next(s for s in report["steps"] if s["step"] == "deliver:prores4444")
    assert any("alpha from the alpha chunks" in w for w in deliver["warnings"])
    assert len(alphas) == report["deliverables"][0]["frame_count"] == 15 + 15 - 8  # 0.5 s scenes, 8-frame crossfade
    first, last = alphas[0], alphas[-1]
    middle = first[CANVAS[1] // 2]
    expected = 0.25 + 0.75 * (np.arange(CANVAS[0]) + 0.5) / CANVAS[0]  # the ramp sampled at the canvas's pixels
    assert np.abs(middle[8:-8] - expected[8:-8]).max() < 0.03
    assert np.abs(first - middle).max() < 0.01  # the same on every row
    assert last.min() > 0.99
    left = [float(a[:, : CANVAS[0] // 4].mean()) for a in alphas]  # the ramp's low end: about 0.34
    assert left[0] < 0.4 and left[-1] > 0.99
    # master frames 0-6: the opening alone; 7-14: the crossfade (weights 1/9 .. 8/9); 15-21: the EXR scene
    assert all(abs(v - left[0]) < 0.01 for v in left[:7])
    blend = left[7:15]
    assert all(b > a for a, b in itertools.pairwise([left[6], *blend, left[15]]))  # rising towards opaque
    expected_blend = [left[0] + (1 - left[0]) * k / 9 for k in range(1, 9)]
    assert np.abs(np.array(blend) - expected_blend).max() < 0.02
    assert all(v > 0.99 for v in left[15:])
    def alpha_chunks(op: str) -> list:
        return [p for p in (workspace.chunks / op).glob("*.json") if json.loads(p.read_text())["params"].get("alpha")]

    assert alpha_chunks("edit") and alpha_chunks("interpolate")  # the matte was retimed and edited with the picture
    events: list[dict] = []
    again = run_production(workspace, plan, on_event=events.append)
    assert again.success, again.error
    assert "interpolate alpha" in {e["stage"] for e in events}
    assert all(e["reused"] for e in events), [e for e in events if not e["reused"]]  # the alpha chunks too
