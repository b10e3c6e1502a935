"""Example projects to try a command on: today's plan format (`vup produce --example`) and a carrier drive root in
the carrier spec's format (`vup produce --drive-root`), each small enough to run in seconds on a CPU."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

from stages.production.frame_rate import tag_frame_rate
from stages.store.fsutil import atomic_write_text

CARRIER_TRACKS = (("music_theme.wav", "music"), ("sfx_hits.wav", "sfx"), ("voice_over.wav", "voice"))


def write_example_project(folder: str | os.PathLike[str], *, width: int = 160, height: int = 90,
                          resolution: str = "640x360", frames: int = 24) -> Path:
    """Write a small, complete example project into ``folder`` and return its ``plan.json``: two image-sequence
    scenes at 24 fps (``shots/shot_####.exr``, linear float EXR with frame 10 missing and held; and
    ``graded/graded_scene_001_*.dpx``, 10-bit DPX joined by a 0.5 s crossfade), three audio tracks
    (``audio/music_theme.wav``, ``audio/sfx_hits.wav``, ``audio/voice_over.wav``), output ``resolution`` at
    30 fps, deliverables MP4 and MOV (`vup produce --example`: 15.5 s on a 2-core CPU, README)."""
    from stages.media.sample_tracks import make_sample_track
    from stages.quality.samples import make_sample_sequence

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    make_sample_sequence(root / "shots", "shot_####.exr", count=frames, width=width, height=height, missing=(10,),
                         linear=True)
    make_sample_sequence(root / "graded", "graded_scene_001_*.dpx", count=frames, width=width, height=height,
                         bit_depth=10, offset=3)
    seconds = 2 * frames / 24 + 1.0
    tracks = []
    for number, (name, kind) in enumerate((("music_theme.wav", "music"), ("sfx_hits.wav", "sfx"),
                                           ("voice_over.wav", "voice"))):
        make_sample_track(root / "audio" / name, kind, seconds, seed=number)
        tracks.append(f"audio/{name}")
    plan = {
        "name": "example",
        "output_dir": "deliverables",
        "resolution": resolution,
        "framerate": 30,
        "codec": "h265",
        "deliverables": ["mp4", "mov"],
        "scenes": [
            {"name": "opening", "sequence": "shots/shot_####.exr", "fps": 24, "missing_frames": "hold"},
            {"name": "graded", "sequence": "graded/graded_scene_001_*.dpx", "fps": 24,
             "transition": {"type": "crossfade", "duration": 0.5}},
        ],
        "audio": {"tracks": tracks, "loudness": -14, "fade_out": 1.0},
        "thumbnail": {"at": 0.5},
        "contact_sheet": {"columns": 4, "rows": 4},
    }
    path = root / "plan.json"
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")
    return path


def write_carrier_example(drive_root: str | os.PathLike[str], *, width: int = 64, height: int = 36, frames: int = 12,
                          fps: int = 24, codec: str = "h265", resolution: str = "256x144",
                          framerate: int = 30) -> Path:
    """Write a carrier drive root into ``drive_root`` and return its ``PRODUCTION_PLAN.JSON`` (the carrier spec's
    format). ``IN_COMPONENTS/`` holds two scenes of ``frames`` frames at ``width`` x ``height``:
    ``graded_scene_001_*.exr`` (linear float EXR whose headers say ``fps`` frames per second) and
    ``graded_scene_002_*.dpx`` (10-bit DPX without a frame rate, so the plan's rate is assumed, with a warning),
    joined by a 0.25 s dissolve, and three audio tracks under ``IN_COMPONENTS/audio/``; the plan asks for
    ``resolution`` at ``framerate`` fps in ``codec``.
    """
    from stages.media.sample_tracks import make_sample_track
    from stages.quality.samples import make_sample_sequence

    root = Path(drive_root)
    components = root / "IN_COMPONENTS"
    for path in make_sample_sequence(components, "graded_scene_001_*.exr", count=frames, width=width, height=height,
                                     linear=True):
        tag_frame_rate(path, Fraction(fps))
    make_sample_sequence(components, "graded_scene_002_*.dpx", count=frames, width=width, height=height,
                         bit_depth=10, offset=4)
    seconds = 2 * frames / fps + 0.5
    for number, (name, kind) in enumerate(CARRIER_TRACKS):
        make_sample_track(components / "audio" / name, kind, seconds, seed=number)
    plan = {
        "output": {
            "resolution": resolution, "framerate": framerate, "codec": codec,
            "audio_tracks": [f"audio/{CARRIER_TRACKS[0][0]}", {"path": f"audio/{CARRIER_TRACKS[1][0]}", "gain_db": -4},
                             {"path": f"audio/{CARRIER_TRACKS[2][0]}", "kind": "voice"}],
        },
        "scenes": [
            {"scene_id": "scene_001", "sequence_pattern": "graded_scene_001_*.exr", "transition": "cut"},
            {"scene_id": "scene_002", "sequence_pattern": "graded_scene_002_*.dpx",
             "transition": {"type": "dissolve", "duration": 0.25}},
        ],
    }
    path = root / "PRODUCTION_PLAN.JSON"
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")
    return path
