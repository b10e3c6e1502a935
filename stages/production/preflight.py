"""Everything a production run needs, checked without writing anything (`vup produce --dry-run`).

:func:`preflight` takes a validated plan and checks, in order:

- **scenes**: each sequence is found (:func:`stages.production.sequence.find_sequence`); every listed file is a
  non-empty file; its first, middle and last frames decode at the first frame's size; missing frames are
  reported as the run will treat them; the crossfades fit the scenes' lengths at the output rate;
- **audio**: each track opens and holds an audio stream (a missing or unreadable track is a warning: the run mixes
  without it, or with none gives the deliverables a silent track);
- **codecs**: this PyAV has each deliverable's video encoder (AV1: PyAV's libsvtav1, else ffmpeg's libsvtav1 or
  libaom-av1), the ffmpeg binary is there with the audio encoder the deliverable muxes (AAC or PCM s24le), and
  the canvas suits the codec (libx265's minimum size, even sizes for 4:2:0/4:2:2);
- **output**: the output folder (or its nearest existing parent) is writable;
- **disk**: the space the run will take. Lossless chunks are priced at 3.5 (8-bit) or 7 (16-bit) bytes per pixel,
  the codec's worst case, for every stage that does work (assembled frames at the source size, retimed ones,
  upscaled ones at the model's scale, the master at the canvas), the deliverables at a bit rate per pixel (H.265/
  H.264/AV1 from stages.store.diskspace's CRF-18 bound, ProRes 422 HQ 3.6, ProRes 4444 5.5, FFV1 32 bits for
  16-bit masters) plus their audio, twice over in the workspace (the encode and its cached copy exist side by
  side). Free space below a third of that fails; below all of it is a warning (chunks usually compress better).

Nothing is created, not even a folder; frames are decoded in memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from stages.errors import InputError, SettingsError, StageError
from stages.media.ffmpeg import find_ffmpeg
from stages.production.deliver import _check_size, _ffmpeg_encoders, _pyav_has_encoder
from stages.production.deliverables import DeliverableSpec
from stages.production.edit import plan_edit
from stages.production.images import read_image
from stages.production.plan import ProductionPlan, SceneSpec, transition_frames
from stages.production.sequence import find_sequence, plan_timeline
from stages.store.diskspace import encoded_bits_per_pixel, free_bytes, human_bytes, same_disk

OK, WARNING, FAILED = "ok", "warning", "failed"
CHUNK_BYTES_PER_PIXEL = {8: 3.5, 16: 7.0}
LIKELY_SHARE = 1 / 3  # chunks of graded footage take about a third of the worst case, or more
_BITS_PER_PIXEL = {"prores_hq": 3.6, "prores_4444": 5.5}
_AUDIO_BITS_PER_SECOND = {"aac": 320_000, "pcm_s24le": 48_000 * 2 * 24}
_UPSCALE_FACTORS = (2, 4, 8)  # stages.ops.upscale.engine.SUPPORTED_SCALES, without importing torch for a dry run


@dataclass(frozen=True)
class Check:
    """One thing checked: what (``scene opening``, ``codec mp4``, ``disk``), ``ok``/``warning``/``failed``, and
    what was found or what to do."""

    name: str
    status: str
    message: str


@dataclass(frozen=True)
class Preflight:
    """Every check of a plan, in order; ``ok`` when none failed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAILED)


@dataclass(frozen=True)
class _Scene:
    frames: int
    width: int
    height: int
    depth: int


def preflight(plan: ProductionPlan, workspace: str | os.PathLike[str]) -> Preflight:
    """Check that ``plan`` can run (module doc) with its chunks in ``workspace``; writes nothing."""
    checks: list[Check] = []
    scenes: list[_Scene | None] = [_check_scene(spec, checks) for spec in plan.scenes]
    found = [s for s in scenes if s is not None]
    if len(found) == len(scenes):
        counts = [max(1, round(s.frames / spec.fps * plan.framerate)) for s, spec in zip(found, plan.scenes,
                                                                                       strict=True)]
        try:
            plan_edit(counts, [transition_frames(s.transition, plan.framerate) for s in plan.scenes],
                      [s.name for s in plan.scenes])
        except SettingsError as exc:
            checks.append(Check("transitions", FAILED, str(exc)))
        else:
            checks.append(Check("transitions", OK, f"{sum(counts)} frames at {float(plan.framerate):g} fps before "
                                "crossfades; every crossfade fits"))
    for track in plan.audio.tracks:
        checks.append(_check_audio(track.path))
    if not plan.audio.tracks:
        checks.append(Check("audio", WARNING, "no audio track: the deliverables get a silent track"))
    depth = 16 if any(s.depth > 8 for s in found) else 8
    checks.extend(_check_codecs(plan, depth))
    checks.append(_check_writable(Path(plan.output_dir)))
    if len(found) == len(scenes):
        checks.append(_check_disk(plan, found, depth, Path(workspace)))
    return Preflight(tuple(checks))


def _check_scene(spec: SceneSpec, checks: list[Check]) -> _Scene | None:
    name = f"scene {spec.name}"
    try:
        sequence = find_sequence(spec.pattern)
        timeline = plan_timeline(sequence, spec.missing_frames, fps=spec.fps)
        empty = [p for p in sequence.paths if os.path.getsize(p) == 0]
        if empty:
            raise InputError(f"{len(empty)} empty file(s), e.g. {empty[0]}; export them again")
        samples = sorted({0, len(sequence.paths) // 2, len(sequence.paths) - 1})
        for index in samples:
            read_image(sequence.paths[index], expect=(sequence.width, sequence.height))
    except (InputError, SettingsError, OSError) as exc:
        checks.append(Check(name, FAILED, str(exc)))
        return None
    rate = f"{float(spec.fps):g} fps" + {"metadata": " (from the frames' metadata)",
                                         "assumed": " (assumed: the frames carry none)"}.get(spec.fps_source, "")
    message = (f"{len(sequence.paths)} {sequence.format.upper()} files {sequence.width}x{sequence.height} at "
               f"{sequence.bit_depth} bits, {rate}; frames {', '.join(str(sequence.numbers[i]) for i in samples)} "
               "decode")
    if timeline.warning:
        checks.append(Check(name, WARNING, f"{message}; {timeline.warning}"))
    else:
        checks.append(Check(name, OK, message))
    return _Scene(timeline.frame_count, sequence.width, sequence.height, sequence.storage_depth)


def _check_audio(path: str) -> Check:
    name = f"audio {Path(path).name}"
    if not Path(path).is_file():
        return Check(name, WARNING, f"{path} does not exist: the run mixes without it")
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return Check(name, WARNING, f"{path} has no audio stream: the run mixes without it")
            stream = container.streams.audio[0]
            next(container.decode(stream), None)
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            seconds = float(container.duration / av.time_base) if container.duration else None
    except (OSError, av.error.FFmpegError) as exc:
        return Check(name, WARNING, f"{path} cannot be decoded ({exc}): the run mixes without it")
    length = f", {seconds:.2f} s" if seconds is not None else ""
    return Check(name, OK, f"{stream.codec_context.name} {rate} Hz, {channels} channel(s){length}")


def _check_codecs(plan: ProductionPlan, depth: int) -> list[Check]:
    checks = []
    try:
        exe = find_ffmpeg(None)
        ffmpeg_encoders = _ffmpeg_encoders(exe)
    except StageError as exc:
        return [Check("ffmpeg", FAILED, str(exc))]
    for kind in plan.deliverables:
        spec = DeliverableSpec(kind, codec=plan.codec if kind == "mp4" else None)
        codec = spec.video_codec
        audio = spec.deliverable.audio_codec
        name = f"codec {kind}"
        if _pyav_has_encoder(codec.encoder):
            encoder = f"{codec.encoder} (PyAV)"
        elif codec.name == "av1" and (fallback := next((e for e in ("libsvtav1", "libaom-av1")
                                                        if e in ffmpeg_encoders), None)):
            encoder = f"{fallback} (ffmpeg, from a lossless intermediate)"
        else:
            checks.append(Check(name, FAILED, f"this PyAV/ffmpeg build has no {codec.encoder} encoder; install a "
                                "build with it or choose another codec"))
            continue
        if audio not in ffmpeg_encoders:
            checks.append(Check(name, FAILED, f"ffmpeg ({exe}) has no {audio} audio encoder; install a full ffmpeg"))
            continue
        pix_fmt = codec.pix_fmt(depth)
        try:
            _check_size(codec, pix_fmt, *plan.canvas)
        except SettingsError as exc:
            checks.append(Check(name, FAILED, str(exc)))
            continue
        checks.append(Check(name, OK, f"{encoder} {pix_fmt} at {plan.canvas[0]}x{plan.canvas[1]}, audio {audio}"))
    return checks


def _check_writable(folder: Path) -> Check:
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check("output", FAILED, f"cannot write into {existing} (for {folder}); choose another output folder")
    return Check("output", OK, f"{folder} ({'exists' if folder.exists() else 'will be created'}), writable")


def _check_disk(plan: ProductionPlan, scenes: list[_Scene], depth: int, workspace: Path) -> Check:
    pixels = 0.0
    master_frames = 0
    for scene, spec in zip(scenes, plan.scenes, strict=True):
        bytes_per_pixel = CHUNK_BYTES_PER_PIXEL[scene.depth]
        out_frames = max(1, round(Fraction(scene.frames) / spec.fps * plan.framerate))
        size = scene.width * scene.height
        pixels += scene.frames * size * bytes_per_pixel  # assembled
        if spec.fps != plan.framerate:
            pixels += out_frames * size * bytes_per_pixel  # retimed
        needed = min(plan.canvas[0] / scene.width, plan.canvas[1] / scene.height)
        if plan.upscale_enabled and needed > 1:
            scale = next((s for s in _UPSCALE_FACTORS if s >= needed), _UPSCALE_FACTORS[-1])
            pixels += out_frames * size * scale * scale * bytes_per_pixel  # upscaled
        master_frames += out_frames
    master_frames -= sum(transition_frames(s.transition, plan.framerate) for s in plan.scenes)
    chunks = pixels + master_frames * plan.canvas[0] * plan.canvas[1] * CHUNK_BYTES_PER_PIXEL[depth]
    seconds = master_frames / float(plan.framerate)
    outputs = 0.0
    for kind in plan.deliverables:
        spec = DeliverableSpec(kind, codec=plan.codec if kind == "mp4" else None)
        codec = spec.video_codec.name
        if codec == "ffv1":
            bits = 32.0 if depth > 8 else 14.0
        else:
            bits = _BITS_PER_PIXEL.get(codec) or encoded_bits_per_pixel(18, True)
        outputs += (master_frames * plan.canvas[0] * plan.canvas[1] * bits
                    + seconds * _AUDIO_BITS_PER_SECOND[spec.deliverable.audio_codec]) / 8
    need = math.ceil(chunks + 2 * outputs)
    elsewhere = not same_disk(workspace, plan.output_dir)
    problems = []
    for where, amount in ((workspace, need), *(((Path(plan.output_dir), math.ceil(outputs)),) if elsewhere else ())):
        free = free_bytes(where)
        if free < amount * LIKELY_SHARE:
            problems.append((FAILED, f"{where} has {human_bytes(free)} free, the run needs about {human_bytes(amount)}"
                             " (at least a third of it); free space or choose a larger disk (--workspace)"))
        elif free < amount:
            problems.append((WARNING, f"{where} has {human_bytes(free)} free; the run may need up to "
                             f"{human_bytes(amount)} (chunks priced at their worst case)"))
    estimate = (f"about {human_bytes(need)} at most in {workspace} (chunks {human_bytes(chunks)}, outputs "
                f"{human_bytes(outputs)} twice while encoding)")
    if problems:
        status = FAILED if any(s == FAILED for s, _ in problems) else WARNING
        return Check("disk", status, f"{estimate}; " + "; ".join(m for _, m in problems))
    return Check("disk", OK, f"{estimate}; {human_bytes(free_bytes(workspace))} free")
