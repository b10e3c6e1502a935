"""Production plans: parsing every field, defaults, the JSON round trip, every refusal (with where and what to do),
loading from a file, transition lengths and the example project."""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from stages.errors import InputError, SettingsError
from stages.media.audio import AudioTrack
from stages.production.plan import (
    AudioPlan,
    ContactSheetSpec,
    ProductionPlan,
    SceneSpec,
    ThumbnailSpec,
    Transition,
    load_plan,
    parse_plan,
    plan_from_dict,
    transition_frames,
    write_example_project,
)
from stages.production.sequence import find_sequence


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """The plan folder, resolved (the parser resolves some paths, so the expectations must be resolved too)."""
    folder = tmp_path.resolve() / "project"
    folder.mkdir()
    return folder


def _full(elsewhere: Path) -> dict[str, Any]:
    """A plan that sets every field (``elsewhere``: an absolute folder outside the plan folder)."""
    return {
        "name": "trailer_v2",
        "output_dir": "out/final",
        "resolution": "4K",
        "framerate": "30000/1001",
        "codec": "av1",
        "deliverables": ["mp4", "prores4444", "ffv1"],
        "missing_frames": "skip",
        "scenes": [
            {"name": "opening", "sequence": "shots/shot_####.exr", "fps": 24},
            {"sequence": str(elsewhere / "graded_*.dpx"), "fps": "24000/1001", "missing_frames": "hold",
             "transition": {"type": "crossfade", "duration": 1.0}},
            {"name": "end", "sequence": "end/end_%04d.png", "fps": 25, "transition": "cut"},
            {"name": "tag", "sequence": "tag/tag_####.png", "fps": 60, "transition": "crossfade"},
        ],
        "audio": {
            "tracks": ["audio/theme.wav",
                       {"path": str(elsewhere / "hits.wav"), "kind": "sfx", "gain_db": -4.5},
                       {"path": "audio/narration.wav", "kind": "voice"},
                       {"path": "audio/bed.wav", "gain_db": 2}],
            "gains": {"music": -9, "other": -1.5},
            "loudness": -16,
            "fade_out": 3.5,
        },
        "thumbnail": {"at": "25%", "width": 640},
        "contact_sheet": {"columns": 6, "rows": 3, "tile_width": 240},
        "upscale": {"model": "realesr-general-x4v3", "model_path": "models/weights.pth", "tile": 256,
                    "enabled": False},
        "interpolation": {"method": "flow", "flow_preset": "fast"},
    }


def _minimal() -> dict[str, Any]:
    return {"scenes": [{"sequence": "shots/shot_####.exr", "fps": 24},
                       {"sequence": "graded/graded_*.dpx", "fps": 24}]}


# ------------------------------------------------------------------------------------------------ parsing


def test_full_plan_parses_every_field(base: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path.resolve() / "elsewhere"
    plan = parse_plan(_full(elsewhere), base / "plan.json")

    assert plan.name == "trailer_v2"
    assert plan.plan_path == str(base / "plan.json")
    assert plan.output_dir == str(base / "out" / "final")
    assert plan.resolution == "4K" and plan.canvas == (3840, 2160)
    assert plan.framerate == Fraction(30000, 1001) and isinstance(plan.framerate, Fraction)
    assert plan.codec == "av1"
    assert plan.deliverables == ("mp4", "prores4444", "ffv1")

    assert plan.scenes == (
        SceneSpec("opening", str(base / "shots" / "shot_####.exr"), Fraction(24), "skip", Transition()),
        SceneSpec("scene2", str(elsewhere / "graded_*.dpx"), Fraction(24000, 1001), "hold",
                  Transition("crossfade", 1.0)),
        SceneSpec("end", str(base / "end" / "end_%04d.png"), Fraction(25), "skip", Transition("cut", 0.0)),
        SceneSpec("tag", str(base / "tag" / "tag_####.png"), Fraction(60), "skip", Transition("crossfade", 1.0)),
    )
    assert all(Path(scene.pattern).is_absolute() for scene in plan.scenes)

    assert plan.audio == AudioPlan(
        tracks=(AudioTrack(str(base / "audio" / "theme.wav")),
                AudioTrack(str(elsewhere / "hits.wav"), "sfx", -4.5),
                AudioTrack(str(base / "audio" / "narration.wav"), "voice", None),
                AudioTrack(str(base / "audio" / "bed.wav"), None, 2.0)),
        gains={"music": -9.0, "other": -1.5},
        loudness=-16.0,
        fade_out=3.5,
    )
    assert plan.thumbnail == ThumbnailSpec(0.25, None, 640)
    assert plan.contact_sheet == ContactSheetSpec(6, 3, 240)
    assert plan.upscale_model == "realesr-general-x4v3"
    assert plan.upscale_model_path == str(base / "models" / "weights.pth")
    assert plan.upscale_tile == 256 and plan.upscale_enabled is False
    assert plan.interpolation_method == "flow" and plan.flow_preset == "fast"


def test_minimal_plan_gets_the_documented_defaults(base: Path) -> None:
    plan = parse_plan(_minimal(), base / "my_plan.json")

    assert plan.name == "my_plan"
    assert plan.output_dir == str(base / "my_plan_deliverables")
    assert plan.resolution == "1080p" and plan.canvas == (1920, 1080)
    assert plan.framerate == 30
    assert plan.codec == "h265"
    assert plan.deliverables == ("mp4", "mov")
    assert [s.name for s in plan.scenes] == ["scene1", "scene2"]
    assert [s.missing_frames for s in plan.scenes] == ["hold", "hold"]
    assert [s.transition for s in plan.scenes] == [Transition("cut", 0.0)] * 2
    assert plan.audio == AudioPlan((), {}, -14.0, 2.0)
    assert plan.thumbnail == ThumbnailSpec(0.5, None, None)
    assert plan.contact_sheet == ContactSheetSpec(4, 4, 320)
    assert plan.upscale_model is None and plan.upscale_model_path is None
    assert plan.upscale_tile == 0 and plan.upscale_enabled is True
    assert plan.interpolation_method == "auto" and plan.flow_preset == "medium"


@pytest.mark.parametrize(("resolution", "canvas", "label"), [
    ("1080p", (1920, 1080), "1080p"),
    ("4K", (3840, 2160), "4K"),
    ("720p", (1280, 720), "720p"),
    ("1440p", (2560, 1440), "1440p"),
    ("UHD", (3840, 2160), "UHD"),
    ("2048x858", (2048, 858), "2048x858"),
    (" 1280 X 544 ", (1280, 544), "1280x544"),
    ("64x64", (64, 64), "64x64"),
    ("7680x4320", (7680, 4320), "7680x4320"),
])
def test_resolution_gives_the_canvas(base: Path, resolution: str, canvas: tuple[int, int], label: str) -> None:
    plan = parse_plan({**_minimal(), "resolution": resolution}, base / "plan.json")
    assert plan.canvas == canvas
    assert plan.resolution == label


@pytest.mark.parametrize(("framerate", "expected"), [
    (30, Fraction(30)),
    (60, Fraction(60)),
    (120, Fraction(120)),
    (1, Fraction(1)),
    ("30000/1001", Fraction(30000, 1001)),
    ("24000/1001", Fraction(24000, 1001)),
    (29.97, Fraction(30000, 1001)),
    (25.0, Fraction(25)),
])
def test_framerate_is_exact(base: Path, framerate: Any, expected: Fraction) -> None:
    plan = parse_plan({**_minimal(), "framerate": framerate}, base / "plan.json")
    assert plan.framerate == expected
    assert isinstance(plan.framerate, Fraction)


@pytest.mark.parametrize("codec", ["h265", "h264", "av1"])
def test_each_distribution_codec_is_accepted(base: Path, codec: str) -> None:
    assert parse_plan({**_minimal(), "codec": codec}, base / "plan.json").codec == codec


def test_missing_frames_default_and_per_scene(base: Path) -> None:
    data = _minimal()
    data["missing_frames"] = "skip"
    data["scenes"][1]["missing_frames"] = "hold"
    plan = parse_plan(data, base / "plan.json")
    assert [s.missing_frames for s in plan.scenes] == ["skip", "hold"]

    data = _minimal()
    data["scenes"][0]["missing_frames"] = "skip"
    plan = parse_plan(data, base / "plan.json")
    assert [s.missing_frames for s in plan.scenes] == ["skip", "hold"]


@pytest.mark.parametrize(("transition", "expected"), [
    ("cut", Transition("cut", 0.0)),
    ({"type": "cut"}, Transition("cut", 0.0)),
    ({"type": "cut", "duration": 0}, Transition("cut", 0.0)),
    ({}, Transition("cut", 0.0)),
    ("crossfade", Transition("crossfade", 1.0)),
    ({"type": "crossfade", "duration": 1.0}, Transition("crossfade", 1.0)),
    ({"type": "crossfade", "duration": 0.25}, Transition("crossfade", 0.25)),
    ({"type": "crossfade", "duration": 30}, Transition("crossfade", 30.0)),
])
def test_transitions(base: Path, transition: Any, expected: Transition) -> None:
    data = _minimal()
    data["scenes"][1]["transition"] = transition
    plan = parse_plan(data, base / "plan.json")
    assert plan.scenes[1].transition == expected
    assert isinstance(plan.scenes[1].transition.duration, float)


def test_absolute_and_relative_scene_patterns(base: Path, tmp_path: Path) -> None:
    outside = tmp_path.resolve() / "library" / "clip_####.png"
    data = {"scenes": [{"sequence": str(outside), "fps": 24},
                       {"sequence": "sub/dir/frame_%05d.tif", "fps": 24}]}
    plan = parse_plan(data, base / "plan.json")
    assert plan.scenes[0].pattern == str(outside)
    assert plan.scenes[1].pattern == str(base / "sub" / "dir" / "frame_%05d.tif")


@pytest.mark.parametrize(("thumbnail", "expected"), [
    ({"at": 0.5}, ThumbnailSpec(0.5, None, None)),
    ({"at": "50%"}, ThumbnailSpec(0.5, None, None)),
    ({"at": " 10% "}, ThumbnailSpec(0.1, None, None)),
    ({"at": 0}, ThumbnailSpec(0.0, None, None)),
    ({"at": 1}, ThumbnailSpec(1.0, None, None)),
    ({"seconds": 3}, ThumbnailSpec(0.5, 3.0, None)),
    ({"seconds": 0, "width": 16}, ThumbnailSpec(0.5, 0.0, 16)),
])
def test_thumbnail(base: Path, thumbnail: dict[str, Any], expected: ThumbnailSpec) -> None:
    plan = parse_plan({**_minimal(), "thumbnail": thumbnail}, base / "plan.json")
    assert plan.thumbnail == expected


def test_contact_sheet(base: Path) -> None:
    plan = parse_plan({**_minimal(), "contact_sheet": {"columns": 1, "rows": 16}}, base / "plan.json")
    assert plan.contact_sheet == ContactSheetSpec(1, 16, 320)
    plan = parse_plan({**_minimal(), "contact_sheet": {"tile_width": 32}}, base / "plan.json")
    assert plan.contact_sheet == ContactSheetSpec(4, 4, 32)


def test_output_dir_default_plan_and_override(base: Path, tmp_path: Path) -> None:
    data = {**_minimal(), "name": "promo"}
    assert parse_plan(data, base / "plan.json").output_dir == str(base / "promo_deliverables")

    data["output_dir"] = "../renders/promo"
    assert parse_plan(data, base / "plan.json").output_dir == str(base.parent / "renders" / "promo")

    data["output_dir"] = str(tmp_path.resolve() / "absolute_out")
    assert parse_plan(data, base / "plan.json").output_dir == str(tmp_path.resolve() / "absolute_out")

    override = tmp_path.resolve() / "override"
    assert parse_plan(data, base / "plan.json", output_dir=override).output_dir == str(override)
    assert load_plan(_write(base / "plan.json", data), output_dir=override).output_dir == str(override)


def test_relative_plan_path_still_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "project").mkdir()
    data = {**_minimal(), "audio": {"tracks": ["audio/theme.wav"]}}
    plan = parse_plan(data, Path("project") / "plan.json")
    project = tmp_path.resolve() / "project"
    assert plan.audio.tracks[0].path == str(project / "audio" / "theme.wav")  # holds today
    assert plan.scenes[0].pattern == str(project / "shots" / "shot_####.exr")
    assert plan.output_dir == str(project / "plan_deliverables")


def test_name_is_stripped(base: Path) -> None:
    assert parse_plan({**_minimal(), "name": "Trailer v2.1-final "}, base / "plan.json").name == "Trailer v2.1-final"


# ------------------------------------------------------------------------------------------------ round trip


def test_json_round_trip_gives_an_equal_plan(base: Path, tmp_path: Path) -> None:
    plan = parse_plan(_full(tmp_path.resolve() / "elsewhere"), base / "plan.json")
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["framerate"] == "30000/1001"
    assert [s["fps"] for s in data["scenes"]] == ["24", "24000/1001", "25", "60"]
    again = plan_from_dict(data)
    assert isinstance(again, ProductionPlan)
    assert again == plan
    assert again.canvas == (3840, 2160) and isinstance(again.canvas, tuple)
    assert isinstance(again.framerate, Fraction) and isinstance(again.scenes[1].fps, Fraction)
    assert isinstance(again.scenes, tuple) and isinstance(again.deliverables, tuple)
    assert isinstance(again.audio.tracks, tuple) and isinstance(again.audio.tracks[1], AudioTrack)
    assert again.to_dict() == plan.to_dict()


def test_json_round_trip_of_the_defaults(base: Path) -> None:
    plan = parse_plan(_minimal(), base / "plan.json")
    assert plan_from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


# ------------------------------------------------------------------------------------------------ refusals


def _scenes_with(index: int, **changes: Any) -> dict[str, Any]:
    data = _minimal()
    data["scenes"][index].update(changes)
    return data


def _without(index: int, key: str) -> dict[str, Any]:
    data = _minimal()
    del data["scenes"][index][key]
    return data


_REFUSALS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("unknown top-level key", {**_minimal(), "colour": "warm"}, ("plan", "'colour'", "known keys", "framerate")),
    ("near-miss top-level key", {**_minimal(), "framrate": 30}, ("'framrate'", "did you mean 'framerate'?")),
    ("near-miss scene key", _scenes_with(1, sequnce="x_####.png"),
     ("scenes[1]", "'sequnce'", "did you mean 'sequence'?")),
    ("unknown scene key", _scenes_with(0, colour="warm"), ("scenes[0]", "'colour'", "known keys")),
    ("not an object", [], ("plan must be a JSON object",)),
    ("no scenes", {"name": "x"}, ("scenes must be a non-empty list", "e.g.")),
    ("empty scenes", {"scenes": []}, ("scenes must be a non-empty list", "e.g.")),
    ("scene not an object", {"scenes": ["shot_####.png"]}, ("scenes[0] must be a JSON object",)),
    ("scene without sequence", _without(1, "sequence"), ("scenes[1]", "no \"sequence\"", "give its image pattern")),
    ("scene with empty sequence", _scenes_with(1, sequence=" "), ("scenes[1].sequence", "image pattern")),
    ("scene without fps", _without(1, "fps"), ("scenes[1]", "no \"fps\"", "\"fps\": 24")),
    ("fps 0", _scenes_with(1, fps=0), ("scenes[1].fps", "use e.g.")),
    ("fps 121", _scenes_with(0, fps=121), ("scenes[0].fps", "1-120", "use e.g.")),
    ("fps abc", _scenes_with(1, fps="abc"), ("scenes[1].fps", "'abc'", "use e.g.")),
    ("fps true", _scenes_with(1, fps=True), ("scenes[1].fps", "must be a number")),
    ("fps null", _scenes_with(1, fps=None), ("scenes[1].fps", "must be a number")),
    ("framerate 0", {**_minimal(), "framerate": 0}, ("framerate", "use e.g.")),
    ("framerate 121", {**_minimal(), "framerate": 121}, ("framerate", "1-120")),
    ("resolution 999p", {**_minimal(), "resolution": "999p"}, ("resolution '999p'", "\"1080p\"", "WIDTHxHEIGHT")),
    ("resolution number", {**_minimal(), "resolution": 1080}, ("resolution 1080", "WIDTHxHEIGHT")),
    ("odd resolution", {**_minimal(), "resolution": "1921x1080"}, ("resolution 1921x1080", "even", "1922x1080")),
    ("odd height", {**_minimal(), "resolution": "1920x1081"}, ("resolution 1920x1081", "even", "1920x1082")),
    ("too small", {**_minimal(), "resolution": "62x64"}, ("resolution 62x64", "64 px to 8K")),
    ("above 8K wide", {**_minimal(), "resolution": "7682x4320"}, ("resolution 7682x4320", "8K", "e.g.")),
    ("above 8K tall", {**_minimal(), "resolution": "7680x4322"}, ("resolution 7680x4322", "8K")),
    ("codec vp9", {**_minimal(), "codec": "vp9"}, ("codec 'vp9'", "h265, h264, av1")),
    ("deliverables empty", {**_minimal(), "deliverables": []}, ("deliverables", "non-empty list", "mp4")),
    ("deliverables not a list", {**_minimal(), "deliverables": "mp4"}, ("deliverables", "non-empty list")),
    ("deliverable unknown", {**_minimal(), "deliverables": ["mp4", "webm"]}, ("deliverables entry 'webm'", "mov")),
    ("deliverable duplicate", {**_minimal(), "deliverables": ["mp4", "mov", "mp4"]},
     ("deliverables", "twice", "list each once")),
    ("missing_frames interpolate", {**_minimal(), "missing_frames": "interpolate"},
     ("missing_frames 'interpolate'", "skip, hold")),
    ("scene missing_frames interpolate", _scenes_with(1, missing_frames="interpolate"),
     ("scenes[1].missing_frames 'interpolate'", "skip, hold")),
    ("crossfade on the first scene", _scenes_with(0, transition={"type": "crossfade", "duration": 1.0}),
     ("scenes[0].transition", "first scene", "remove it")),
    ("crossfade 0", _scenes_with(1, transition={"type": "crossfade", "duration": 0}),
     ("scenes[1].transition.duration 0", "above 0", "at most 30", "e.g. 1.0")),
    ("crossfade negative", _scenes_with(1, transition={"type": "crossfade", "duration": -1.5}),
     ("scenes[1].transition.duration -1.5", "e.g. 1.0")),
    ("crossfade 31", _scenes_with(1, transition={"type": "crossfade", "duration": 31}),
     ("scenes[1].transition.duration 31", "at most 30")),
    ("crossfade text", _scenes_with(1, transition={"type": "crossfade", "duration": "1s"}),
     ("scenes[1].transition.duration '1s'",)),
    ("cut with a duration", _scenes_with(1, transition={"type": "cut", "duration": 1.0}),
     ("scenes[1].transition", "cut with a duration", "use \"crossfade\"")),
    ("unknown transition", _scenes_with(1, transition="wipe"), ("scenes[1].transition.type 'wipe'", "crossfade")),
    ("unknown transition key", _scenes_with(1, transition={"type": "crossfade", "lenght": 2}),
     ("scenes[1].transition", "'lenght'", "known keys: type, duration")),
    ("duplicate scene names", {"scenes": [{"name": "a", "sequence": "a_####.png", "fps": 24},
                                          {"name": "a", "sequence": "b_####.png", "fps": 24}]},
     ("scenes[1].name 'a'", "used twice", "its own name")),
    ("default name clash", {"scenes": [{"sequence": "a_####.png", "fps": 24},
                                       {"name": "scene1", "sequence": "b_####.png", "fps": 24}]},
     ("scenes[1].name 'scene1'", "used twice")),
    ("empty scene name", _scenes_with(0, name=" "), ("scenes[0].name", "non-empty")),
    ("loudness -80", {**_minimal(), "audio": {"loudness": -80}}, ("audio.loudness -80", "-70 and -5", "-14")),
    ("loudness -3", {**_minimal(), "audio": {"loudness": -3}}, ("audio.loudness -3", "-70 and -5")),
    ("loudness text", {**_minimal(), "audio": {"loudness": "loud"}}, ("audio.loudness 'loud'",)),
    ("fade_out -1", {**_minimal(), "audio": {"fade_out": -1}}, ("audio.fade_out -1", "0 or more")),
    ("track gain loud", {**_minimal(), "audio": {"tracks": [{"path": "a.wav", "gain_db": "loud"}]}},
     ("audio.tracks[0].gain_db", "number of dB", "e.g. -3")),
    ("track kind unknown", {**_minimal(), "audio": {"tracks": ["a.wav", {"path": "b.wav", "kind": "drums"}]}},
     ("audio.tracks[1].kind 'drums'", "music, sfx, voice, other")),
    ("track without path", {**_minimal(), "audio": {"tracks": [{"kind": "music"}]}},
     ("audio.tracks[0]", "no \"path\"")),
    ("track unknown key", {**_minimal(), "audio": {"tracks": [{"path": "a.wav", "gain": 1}]}},
     ("audio.tracks[0]", "'gain'", "did you mean 'gain_db'?")),
    ("tracks not a list", {**_minimal(), "audio": {"tracks": "a.wav"}}, ("audio.tracks", "must be a list")),
    ("unknown gains key", {**_minimal(), "audio": {"gains": {"drums": -3}}},
     ("audio.gains", "'drums'", "known keys: music, sfx, voice, other")),
    ("near-miss gains key", {**_minimal(), "audio": {"gains": {"musik": -3}}},
     ("audio.gains", "did you mean 'music'?")),
    ("gain text", {**_minimal(), "audio": {"gains": {"music": "-3 dB"}}}, ("audio.gains.music", "number of dB")),
    ("unknown audio key", {**_minimal(), "audio": {"loudnes": -14}}, ("audio", "did you mean 'loudness'?")),
    ("thumbnail at 1.5", {**_minimal(), "thumbnail": {"at": 1.5}}, ("thumbnail.at 1.5", "0-1", "\"50%\"")),
    ("thumbnail at 150%", {**_minimal(), "thumbnail": {"at": "150%"}}, ("thumbnail.at '150%'", "0-1")),
    ("thumbnail at text", {**_minimal(), "thumbnail": {"at": "middle"}}, ("thumbnail.at 'middle'",)),
    ("thumbnail seconds", {**_minimal(), "thumbnail": {"seconds": -2}}, ("thumbnail.seconds -2", "0 or more")),
    ("thumbnail width", {**_minimal(), "thumbnail": {"width": 8}}, ("thumbnail.width 8", "16-7680")),
    ("columns 0", {**_minimal(), "contact_sheet": {"columns": 0}}, ("contact_sheet.columns 0", "1-16", "4x4")),
    ("columns 17", {**_minimal(), "contact_sheet": {"columns": 17}}, ("contact_sheet.columns 17", "1-16")),
    ("rows 2.5", {**_minimal(), "contact_sheet": {"rows": 2.5}}, ("contact_sheet.rows 2.5", "1-16")),
    ("tile width", {**_minimal(), "contact_sheet": {"tile_width": 16}}, ("contact_sheet.tile_width 16", "32-1920")),
    ("name with a slash", {**_minimal(), "name": "a/b"}, ("name 'a/b'", "letters, digits", "e.g.")),
    ("name with dot-dot", {**_minimal(), "name": "../up"}, ("name '../up'",)),
    ("empty name", {**_minimal(), "name": ""}, ("name ''",)),
    ("upscale tile", {**_minimal(), "upscale": {"tile": -1}}, ("upscale.tile -1", "e.g. 256")),
    ("upscale enabled", {**_minimal(), "upscale": {"enabled": "yes"}}, ("upscale.enabled", "true or false")),
    ("interpolation none", {**_minimal(), "interpolation": {"method": "none"}}, ("interpolation.method 'none'",)),
    ("flow preset", {**_minimal(), "interpolation": {"flow_preset": "slow"}}, ("interpolation.flow_preset 'slow'",)),
]


@pytest.mark.parametrize(("data", "fragments"), [(d, f) for _, d, f in _REFUSALS], ids=[i for i, _, _ in _REFUSALS])
def test_refusals_name_the_place(base: Path, data: Any, fragments: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_plan(copy.deepcopy(data), base / "plan.json")
    message = str(caught.value)
    assert message.startswith("plan: ")
    for fragment in fragments:
        assert fragment in message


# ------------------------------------------------------------------------------------------------ load_plan


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_load_plan_resolves_against_the_plan_folder(base: Path) -> None:
    path = _write(base / "show.json", _minimal())
    plan = load_plan(path)
    assert plan.name == "show"
    assert plan.plan_path == str(path)
    assert plan.scenes[0].pattern == str(base / "shots" / "shot_####.exr")
    assert plan.output_dir == str(base / "show_deliverables")


def test_load_plan_missing_file(base: Path) -> None:
    with pytest.raises(InputError, match=r"^plan: .*nowhere\.json does not exist.*give the path of a plan"):
        load_plan(base / "nowhere.json")
    with pytest.raises(InputError, match="is not a file"):
        load_plan(base)


def test_load_plan_invalid_json_names_line_and_column(base: Path) -> None:
    path = base / "broken.json"
    path.write_text('{\n  "name": "x",\n  "scenes": [,]\n}\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert message.startswith("plan: broken.json is not valid JSON")
    assert "line 3, column 14" in message
    assert message.endswith("(a JSON checker shows where)")


def test_load_plan_non_utf8(base: Path) -> None:
    path = base / "latin1.json"
    path.write_bytes('{"name": "caf\u00e9", "scenes": []}'.encode("latin-1"))
    with pytest.raises(InputError, match=r"^plan: cannot read .*latin1\.json.*save it as UTF-8 JSON"):
        load_plan(path)


def test_load_plan_refusal_is_a_settings_error(base: Path) -> None:
    path = _write(base / "plan.json", {**_minimal(), "framrate": 30})
    with pytest.raises(SettingsError, match="did you mean 'framerate'"):
        load_plan(path)


# ------------------------------------------------------------------------------------------------ transitions


@pytest.mark.parametrize(("transition", "framerate", "frames"), [
    (Transition(), Fraction(30), 0),
    (Transition("cut", 0.0), Fraction(120), 0),
    (Transition("crossfade", 1.0), Fraction(30), 30),
    (Transition("crossfade", 0.5), Fraction(24), 12),
    (Transition("crossfade", 1.0), Fraction(30000, 1001), 30),
    (Transition("crossfade", 10.0), Fraction(30000, 1001), 300),
    (Transition("crossfade", 2.0), Fraction(60), 120),
    (Transition("crossfade", 0.001), Fraction(24), 1),
])
def test_transition_frames(transition: Transition, framerate: Fraction, frames: int) -> None:
    assert transition_frames(transition, framerate) == frames


# ------------------------------------------------------------------------------------------------ example project


def test_write_example_project(tmp_path: Path) -> None:
    frames = 12  # frame 10 is the missing one, so the example needs more than 10 frames
    path = write_example_project(tmp_path / "example", width=32, height=18, frames=frames)
    root = tmp_path / "example"
    assert path == root / "plan.json"

    shots = sorted(p.name for p in (root / "shots").iterdir())
    assert shots == [f"shot_{n:04d}.exr" for n in range(1, frames + 1) if n != 10]
    graded = sorted(p.name for p in (root / "graded").iterdir())
    assert graded == [f"graded_scene_001_{n:04d}.dpx" for n in range(1, frames + 1)]
    shot_sequence = find_sequence(root / "shots" / "shot_####.exr")
    assert shot_sequence.missing == (10,)
    assert (shot_sequence.width, shot_sequence.height, shot_sequence.bit_depth) == (32, 18, 32)
    graded_sequence = find_sequence(root / "graded" / "graded_scene_001_*.dpx")
    assert graded_sequence.missing == () and graded_sequence.bit_depth == 10

    wavs = sorted(p.name for p in (root / "audio").iterdir())
    assert wavs == ["music_theme.wav", "sfx_hits.wav", "voice_over.wav"]
    for name in wavs:
        with av.open(str(root / "audio" / name)) as container:
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            assert samples / stream.rate == pytest.approx(2 * frames / 24 + 1.0, abs=0.01)

    plan = load_plan(path)
    assert plan.name == "example"
    assert plan.output_dir == str(root.resolve() / "deliverables")
    assert plan.canvas == (640, 360) and plan.framerate == 30 and plan.codec == "h265"
    assert plan.deliverables == ("mp4", "mov")
    assert [s.name for s in plan.scenes] == ["opening", "graded"]
    assert plan.scenes[0].pattern == str(root.resolve() / "shots" / "shot_####.exr")
    assert plan.scenes[0].missing_frames == "hold"
    assert plan.scenes[1].transition == Transition("crossfade", 0.5)
    assert all(scene.fps == 24 for scene in plan.scenes)
    assert [Path(t.path).name for t in plan.audio.tracks] == wavs
    assert all(Path(t.path).is_file() for t in plan.audio.tracks)
    assert plan.audio.loudness == -14.0 and plan.audio.fade_out == 1.0
    assert plan.thumbnail.at == 0.5 and plan.contact_sheet == ContactSheetSpec(4, 4, 320)
