"""The carrier spec's plan format (PRODUCTION_PLAN.JSON) through the one validator: how it maps onto today's plan,
frame rates from EXR/DPX headers (or assumed, with a warning), its refusals naming its own places, resolution names,
transitions, and the carrier conventions (drive root, output names, carrier_report.json statuses)."""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from stages.errors import InputError, SettingsError
from stages.media.audio import AudioTrack
from stages.production.carrier import (
    carrier_plan,
    carrier_report,
    drive_layout,
    output_filename,
    pipeline_statuses,
)
from stages.production.frame_rate import read_frame_rate, sequence_frame_rate, tag_frame_rate
from stages.production.images import read_image, write_image
from stages.production.plan import Transition, load_plan, parse_plan, plan_from_dict
from stages.production.plan_seed import is_seed_plan
from stages.quality.samples import make_sample_sequence


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folder = tmp_path.resolve() / "drive"
    folder.mkdir()
    return folder


def _seed(**output: Any) -> dict[str, Any]:
    """The spec's example plan (one scene), with ``output`` keys changed."""
    return {"output": {"resolution": "4K", "framerate": 120, "codec": "h265",
                       "audio_tracks": ["music_theme.wav", {"path": "sfx_hits.wav", "gain_db": -3},
                                        {"path": "voice_over.wav", "kind": "voice"}], **output},
            "scenes": [{"scene_id": "scene_001", "sequence_pattern": "graded_scene_001_*.exr", "transition": "cut"}]}


# ------------------------------------------------------------------------------------------------ the format


def test_the_specs_example_plan_is_accepted(base: Path) -> None:
    make_sample_sequence(base, "graded_scene_001_*.exr", count=2, width=16, height=16)
    plan = parse_plan(_seed(), base / "PRODUCTION_PLAN.JSON")
    assert plan.canvas == (3840, 2160) and plan.resolution == "4K" and plan.framerate == 120
    assert plan.deliverables == ("mp4",) and plan.codec == "h265"
    assert plan.name == "PRODUCTION_PLAN"
    (scene,) = plan.scenes
    assert scene.name == "scene_001" and scene.pattern == str(base / "graded_scene_001_*.exr")
    assert scene.transition == Transition("cut", 0.0)
    # no frame rate in these EXR headers: the plan's 120 fps, with a warning that says so
    assert scene.fps == 120 and scene.fps_source == "assumed"
    assert len(plan.warnings) == 1 and "scenes[0] (scene_001)" in plan.warnings[0]
    assert "assumed the plan's 120 fps" in plan.warnings[0]
    assert plan.audio.tracks == (AudioTrack(str(base / "music_theme.wav")),
                                 AudioTrack(str(base / "sfx_hits.wav"), None, -3.0),
                                 AudioTrack(str(base / "voice_over.wav"), "voice", None))
    assert plan_from_dict(json.loads(json.dumps(plan.to_dict()))) == plan  # the run's partition round trip


@pytest.mark.parametrize(("codec", "deliverable", "mp4_codec"), [
    ("h265", "mp4", "h265"), ("h264", "mp4", "h264"), ("av1", "mp4", "av1"), ("prores", "mov", "h265"),
    ("prores4444", "prores4444", "h265"), ("ffv1", "ffv1", "h265"), ("ProRes", "mov", "h265"),
])
def test_the_codec_picks_the_one_deliverable(base: Path, codec: str, deliverable: str, mp4_codec: str) -> None:
    data = _seed(codec=codec)
    data["scenes"][0]["fps"] = 24
    plan = parse_plan(data, base / "PRODUCTION_PLAN.JSON")
    assert plan.deliverables == (deliverable,) and plan.codec == mp4_codec


def test_frame_rates_from_exr_and_dpx_headers(base: Path) -> None:
    for path in make_sample_sequence(base, "a_*.exr", count=3, width=16, height=8):
        tag_frame_rate(path, Fraction(24000, 1001))
    for path in make_sample_sequence(base, "b_####.dpx", count=3, width=16, height=8, bit_depth=10):
        tag_frame_rate(path, 25)
    make_sample_sequence(base, "c_####.png", count=3, width=16, height=8)
    data = {"output": {"framerate": 30},
            "scenes": [{"scene_id": "a", "sequence_pattern": "a_*.exr"},
                       {"scene_id": "b", "sequence_pattern": "b_####.dpx", "transition": "dissolve"},
                       {"scene_id": "c", "sequence_pattern": "c_####.png", "transition": "cut"},
                       {"scene_id": "d", "sequence_pattern": "a_*.exr", "fps": 60}]}
    plan = parse_plan(data, base / "PRODUCTION_PLAN.JSON")
    assert [(s.fps, s.fps_source) for s in plan.scenes] == [
        (Fraction(24000, 1001), "metadata"), (Fraction(25), "metadata"), (Fraction(30), "assumed"),
        (Fraction(60), "given")]
    assert plan.scenes[1].transition == Transition("crossfade", 1.0)  # a dissolve is a crossfade, 1 s by default
    assert len(plan.warnings) == 1 and "PNG files carry no frame rate" in plan.warnings[0]


def test_tagging_keeps_the_pixels_and_ffmpeg_reads_the_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for name, pixels, depth in (("f.exr", rng.random((37, 21, 3), dtype=np.float32), None),
                                ("g.exr", rng.random((6, 8, 4), dtype=np.float32), None),
                                ("f.dpx", (rng.random((6, 8, 3)) * 1023).astype(np.uint16), 10)):
        path = write_image(tmp_path / name, pixels, bit_depth=depth)
        before = read_image(path, storage_depth=16)
        assert read_frame_rate(path) is None
        tag_frame_rate(path, Fraction(24000, 1001))
        tag_frame_rate(path, Fraction(24000, 1001))  # a second tag replaces the first
        assert read_frame_rate(path) == Fraction(24000, 1001)
        after = read_image(path, storage_depth=16)
        assert np.array_equal(before.rgb, after.rgb)
        with av.open(str(path)) as container:  # ffmpeg's own decoder reads the header the same way
            next(container.decode(video=0))
            assert abs(float(container.streams.video[0].codec_context.framerate) - 24000 / 1001) < 1e-3
    assert sequence_frame_rate([]).rate is None
    with pytest.raises(SettingsError, match="only EXR and DPX"):
        tag_frame_rate(write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8)), 24)
    (tmp_path / "bad.exr").write_bytes(b"not an exr")
    with pytest.raises(InputError, match="not an OpenEXR file"):
        read_frame_rate(tmp_path / "bad.exr")


def test_todays_format_may_ask_for_auto_and_keeps_its_own_messages(base: Path) -> None:
    for path in make_sample_sequence(base, "s_####.exr", count=2, width=16, height=8):
        tag_frame_rate(path, 48)
    plan = parse_plan({"scenes": [{"sequence": "s_####.exr", "fps": "auto"}]}, base / "plan.json")
    assert plan.scenes[0].fps == 48 and plan.scenes[0].fps_source == "metadata" and not is_seed_plan({"scenes": []})
    with pytest.raises(SettingsError, match=r"^plan: scenes\[0\] has no \"fps\""):
        parse_plan({"scenes": [{"sequence": "s_####.exr"}]}, base / "plan.json")


@pytest.mark.parametrize(("name", "canvas"), [
    ("4K", (3840, 2160)), ("UHD", (3840, 2160)), ("1080p", (1920, 1080)), ("Full HD", (1920, 1080)),
    ("2K", (2048, 1080)), ("DCI 4K", (4096, 2160)), ("4k-dci", (4096, 2160)), ("HD", (1280, 720)),
    ("8K", (7680, 4320)), ("qhd", (2560, 1440)), ("480p", (854, 480)),
])
def test_resolution_names(base: Path, name: str, canvas: tuple[int, int]) -> None:
    data = _seed(resolution=name)
    data["scenes"][0]["fps"] = 24
    assert parse_plan(data, base / "p.json").canvas == canvas


def test_the_drive_root_takes_relative_paths_from_the_components_folder(base: Path) -> None:
    components = base / "IN_COMPONENTS"
    make_sample_sequence(components, "graded_scene_001_*.exr", count=2, width=16, height=16)
    plan_path = base / "PRODUCTION_PLAN.JSON"
    plan_path.write_text(json.dumps({**_seed(), "project": "trailer"}), encoding="utf-8")
    layout = drive_layout(base)
    assert layout.plan_path == plan_path and layout.components_dir == components
    assert layout.output_dir == base / "OUT_FINAL"
    plan = load_plan(layout.plan_path, output_dir=layout.output_dir, base_dir=layout.components_dir)
    assert plan.scenes[0].pattern == str(components / "graded_scene_001_*.exr")
    assert plan.audio.tracks[0].path == str(components / "music_theme.wav") and plan.name == "trailer"
    carrier = carrier_plan(plan, "trailer", output_dir=layout.output_dir, upscale=False, rife=False)
    assert carrier.layout == "carrier" and not carrier.upscale_enabled and carrier.interpolation_method == "flow"
    assert output_filename(carrier, "mp4") == "FINAL_OUTPUT_trailer.mp4"
    assert output_filename(carrier, "mov") == "FINAL_OUTPUT_trailer.mov"
    assert output_filename(carrier, "thumbnail") == "thumbnail_trailer.png"
    assert output_filename(plan, "mp4") == "trailer.mp4"
    assert output_filename(plan, "thumbnail") == "trailer_thumbnail.jpg"
    # the plan may sit in the components folder instead (any letter case); a second plan is noted, not used
    (components / "production_plan.json").write_text(plan_path.read_text(encoding="utf-8"), encoding="utf-8")
    assert "two plans found" in drive_layout(base).notes[0]
    plan_path.unlink()
    assert drive_layout(base).plan_path == components / "production_plan.json"
    with pytest.raises(InputError, match="no PRODUCTION_PLAN.JSON"):
        drive_layout(base, components_dir=str(base))
    with pytest.raises(InputError, match="components folder"):
        drive_layout(base, components_dir="MISSING")
    with pytest.raises(SettingsError, match="--project-name"):
        carrier_plan(plan, "a/b")


def test_carrier_statuses_follow_the_report_steps() -> None:
    steps = [{"step": "plan", "status": "OK"}, {"step": "assemble", "status": "OK"},
             {"step": "interpolate", "status": "SKIPPED"}, {"step": "upscale", "status": "SKIPPED"},
             {"step": "edit", "status": "OK"}, {"step": "audio", "status": "OK"},
             {"step": "deliver:mp4", "status": "OK"}, {"step": "deliver:mov", "status": "FAILED", "reason": "boom"},
             {"step": "thumbnail", "status": "OK"}, {"step": "contact_sheet", "status": "OK"},
             {"step": "report", "status": "SKIPPED"}]
    assert pipeline_statuses(steps) == {
        "validate": "done", "sequences": "done", "interpolate": "skipped", "upscale": "skipped", "edit": "done",
        "audio": "done", "encode": "failed", "thumbnail": "done", "contact_sheet": "done", "report": "skipped"}
    report = carrier_report("p", steps, [])
    assert report["status"] == "failed" and report["failed_step"] == "encode" and report["error"] == "deliver:mov: boom"


# ------------------------------------------------------------------------------------------------ refusals

def _scene(**changes: Any) -> dict[str, Any]:
    data = _seed()
    data["scenes"][0].update({"fps": 24, **changes})
    return data


_REFUSALS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("codec vp9", _seed(codec="vp9"), ("output.codec 'vp9'", "h265, h264, av1, prores, prores4444, ffv1")),
    ("unknown output key", _seed(resolutoin="4K"), ("output has an unknown key 'resolutoin'",
                                                     "did you mean 'resolution'?")),
    ("resolution 5K", _scene(), ()),  # placeholder, replaced below
    ("framerate 240", _seed(framerate=240), ("output.framerate 240", "1-120")),
    ("track gain text", _seed(audio_tracks=[{"path": "a.wav", "gain_db": "loud"}]),
     ("output.audio_tracks[0].gain_db", "number of dB")),
    ("track unknown key", _seed(audio_tracks=[{"path": "a.wav", "volume": 1}]),
     ("output.audio_tracks[0] has an unknown key 'volume'", "known keys: path, kind, gain_db")),
    ("tracks not a list", _seed(audio_tracks="a.wav"), ("output.audio_tracks must be a list",)),
    ("loudness", _seed(loudness=0), ("output.loudness 0", "-70 and -5")),
    ("no sequence_pattern", {"output": {}, "scenes": [{"scene_id": "a"}]},
     ("scenes[0] has no \"sequence_pattern\"", "graded_scene_001_*.exr")),
    ("empty sequence_pattern", _scene(sequence_pattern=" "), ("scenes[0].sequence_pattern must be an image pattern",)),
    ("unknown scene key", _scene(sequence="x_*.exr"), ("scenes[0] has an unknown key 'sequence'",)),
    ("fade transition", {"output": {}, "scenes": [_scene()["scenes"][0], {
        "scene_id": "b", "sequence_pattern": "b_*.exr", "fps": 24, "transition": "fade"}]},
     ("scenes[1].transition.type 'fade'", "use \"dissolve\"")),
    ("wipe transition", {"output": {}, "scenes": [_scene()["scenes"][0], {
        "scene_id": "b", "sequence_pattern": "b_*.exr", "fps": 24, "transition": "wipe"}]},
     ("scenes[1].transition.type 'wipe'", "cut, crossfade, dissolve")),
    ("dissolve into the first scene", _scene(transition="dissolve"), ("scenes[0].transition", "first scene")),
    ("duplicate scene ids", {"output": {}, "scenes": [_scene()["scenes"][0], _scene()["scenes"][0]]},
     ("scenes[1].scene_id 'scene_001' is used twice",)),
    ("scene fps 0", _scene(fps=0), ("scenes[0].fps 0",)),
    ("bad project", {**_seed(), "project": "a/b"}, ("project 'a/b'", "letters, digits")),
    ("resolution at the top", {**_seed(), "resolution": "4K"}, ("resolution belongs inside \"output\"",)),
    ("audio at the top", {**_seed(), "audio": {}}, ("audio belongs inside \"output\"", "audio_tracks")),
    ("deliverables", {**_seed(), "deliverables": ["mov"]}, ("set output.codec",)),
    ("no output", {"scenes": [{"sequence_pattern": "a_*.exr"}]}, ("has no \"output\"", "\"codec\"")),
    ("no scenes", {"output": {}}, ("has no \"scenes\"", "scene_id")),
    ("empty scenes", {"output": {}, "scenes": []}, ("scenes must be a non-empty list", "sequence_pattern")),
    ("output not an object", {"output": "4K", "scenes": []}, ("output must be a JSON object",)),
    ("unknown top key", {**_seed(), "projct": "x"}, ("plan has an unknown key 'projct'", "did you mean 'project'?")),
]
_REFUSALS[2] = ("resolution 5K", _seed(resolution="5K"), ("output.resolution '5K' is not known", "\"4K\" (UHD)"))


@pytest.mark.parametrize(("data", "fragments"), [(d, f) for _, d, f in _REFUSALS], ids=[i for i, _, _ in _REFUSALS])
def test_seed_refusals_name_the_place_in_its_own_words(base: Path, data: Any, fragments: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_plan(copy.deepcopy(data), base / "PRODUCTION_PLAN.JSON")
    message = str(caught.value)
    assert message.startswith("plan: ")
    for fragment in fragments:
        assert fragment in message, message
