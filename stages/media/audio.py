"""Audio mixing for "assemble and deliver": several tracks in, one loudness-normalised WAV of the video's length out.

Every track gets a gain chosen from its kind (music -6 dB, sfx -3 dB, voice 0 dB, other 0 dB; the kind comes from
the file name unless the plan sets it), is resampled and converted to the output channels (a mono track is copied
to both channels at full level), and the tracks are summed with ``amix`` ``normalize=0`` so the gains mean what
they say. The sum is trimmed or padded with silence to exactly the video's duration, faded out at the end, and
normalised to a target integrated loudness with ffmpeg's two-pass ``loudnorm`` (EBU R128; -14 LUFS and
-1 dBTP by default). The result is 24-bit PCM WAV, written atomically.

Nothing about the tracks fails the mix: a missing, unreadable or corrupt file, or one without audio, is skipped
with a warning, and when no track is usable the output is silence of the right duration, with a warning. Only
impossible settings (:class:`~stages.errors.SettingsError`) and a failing ffmpeg or disk
(:class:`~stages.errors.EncodeError`, :class:`~stages.errors.DiskFullError`) raise.

All audio processing runs through the ffmpeg binary (:func:`stages.media.ffmpeg.run_ffmpeg`); PyAV only probes the
tracks and checks the written file. The loudness measurement and the loudnorm passes live in
:mod:`stages.media.loudness`, the generated sample tracks in :mod:`stages.media.sample_tracks`. Plain Python: no
Dagster import.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import av

from stages.errors import EncodeError, InputError, SettingsError, StageError
from stages.media.ffmpeg import find_ffmpeg, run_ffmpeg
from stages.media.loudness import (
    _EBUR128_SILENCE_LUFS,
    _PEAK_TOLERANCE_DB,
    TRUE_PEAK_DBTP,
    _encode_pcm24,
    _loudnorm_filter,
    _loudnorm_pass,
    measure_loudness,
)
from stages.store.diskspace import disk_full_error, raise_if_disk_full
from stages.store.fsutil import fsync_dir

logger = logging.getLogger(__name__)

TRACK_KINDS = ("music", "sfx", "voice", "other")
DEFAULT_GAINS_DB: Mapping[str, float] = MappingProxyType({"music": -6.0, "sfx": -3.0, "voice": 0.0, "other": 0.0})

SAMPLE_RATES = (44100, 48000, 96000)
CHANNEL_COUNTS = (1, 2)
GAIN_RANGE_DB = (-60.0, 24.0)
TARGET_LUFS_RANGE = (-70.0, -5.0)

FROM_THE_NAME = "from the name"
SET_IN_THE_PLAN = "set in the plan"
DEFAULT_FOR_THE_KIND = "default for the kind"
FROM_THE_GAINS = "from the gains setting"

NO_TRACK_WARNING = "audio: no usable audio track; the output has a silent track"
SILENT_MIX_WARNING = "audio: the mix is silent; loudness normalisation skipped"

_KIND_WORDS = {
    "music": ("music", "score", "song", "bgm", "soundtrack"),
    "sfx": ("sfx", "fx", "effect", "effects", "foley", "ambience", "ambient"),
    "voice": ("voice", "vo", "dialog", "dialogue", "narration", "narrator", "speech", "voiceover"),
}
_WORD_KIND = {word: kind for kind, words in _KIND_WORDS.items() for word in words}
_CAMEL_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_ONE_BLOCK_SECONDS = 0.4  # the shortest input an integrated loudness can be measured on (one gating block)
_MEASURED_TOLERANCE_LU = 1.0


@dataclass(frozen=True)
class AudioTrack:
    """One audio file of a plan. ``kind`` None: classified from the file name (:func:`classify_track`);
    ``gain_db`` None: the kind's gain (``DEFAULT_GAINS_DB`` or the ``gains`` given to the mix)."""

    path: str
    kind: str | None = None
    gain_db: float | None = None


@dataclass(frozen=True)
class ResolvedTrack:
    """A track with its kind and gain decided. ``kind_from``: ``"from the name"`` or ``"set in the plan"``;
    ``gain_from``: ``"default for the kind"``, ``"from the gains setting"`` or ``"set in the plan"``."""

    path: str
    kind: str
    gain_db: float
    kind_from: str
    gain_from: str


@dataclass(frozen=True)
class AudioMix:
    """What :func:`mix_audio` wrote.

    ``path``: the WAV (24-bit PCM); ``duration``: seconds (``samples / sample_rate``); ``samples``: samples
    per channel; ``tracks``: the tracks mixed; ``skipped``: ``(path, reason)`` of each track left out;
    ``warnings``: every warning line (also logged); ``measured_lufs``: integrated loudness of the written file
    (``-inf`` when silent); ``loudnorm_mode``: as loudnorm reports it, ``"linear"`` (one gain for the whole
    mix) or ``"dynamic"`` (its time-varying fallback), or ``"skipped"`` (silent or too short to measure, not
    normalised); ``silent``: the output holds no sound (no usable track, or a mix below the -70 LUFS gate).
    """

    path: str
    duration: float
    samples: int
    sample_rate: int
    channels: int
    tracks: tuple[ResolvedTrack, ...]
    skipped: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    measured_lufs: float
    target_lufs: float
    loudnorm_mode: str
    silent: bool


@dataclass(frozen=True)
class _Usable:
    track: ResolvedTrack
    channels: int


def classify_track(path: str | os.PathLike[str]) -> str:
    """The kind of a track from its file name: ``"music"``, ``"sfx"``, ``"voice"`` or ``"other"``.

    The name (not the folder, not the last extension) is split into words on anything that is not a letter, and on
    camelCase; the first word, in name order, that names a kind decides (case-insensitive; a plural ``s`` is
    ignored). Music: music, score, song, bgm, soundtrack. Sfx: sfx, fx, effect(s), foley, ambience, ambient.
    Voice: voice, vo, dialog(ue), narration, narrator, speech, voiceover. ``"VO_take2.wav"`` is voice,
    ``"SFX-hits.wav"`` sfx, ``"music_theme.wav"`` music, ``"take3.wav"`` other.
    """
    stem = Path(os.fspath(path)).stem
    for token in re.split(r"[^A-Za-z]+", stem):
        if not token:
            continue
        for word in (token, *_CAMEL_PARTS.findall(token)):
            kind = _kind_of_word(word.lower())
            if kind is not None:
                return kind
    return "other"


def _kind_of_word(word: str) -> str | None:
    if word in _WORD_KIND:
        return _WORD_KIND[word]
    if len(word) > 2 and word.endswith("s"):
        return _WORD_KIND.get(word[:-1])
    return None


def resolve_tracks(
    tracks: Sequence[AudioTrack | str | os.PathLike[str]], gains: Mapping[str, float] | None = None
) -> tuple[ResolvedTrack, ...]:
    """Decide the kind and gain (dB) of every track, in order. A plain path is ``AudioTrack(path)``.

    ``gains`` overrides the gain of whole kinds (e.g. ``{"music": -9}``); a track's own ``gain_db`` wins over
    both. Files are not opened here.

    Raises:
        SettingsError: an unknown kind (in a track or as a key of ``gains``), a gain that is not a finite number
            within [-60, +24] dB, or an empty path.
    """
    kind_gains = dict(DEFAULT_GAINS_DB)
    overridden: set[str] = set()
    for kind, gain in (gains or {}).items():
        if kind not in TRACK_KINDS:
            raise SettingsError(
                f"audio: unknown track kind {kind!r} in gains; use one of {', '.join(TRACK_KINDS)}"
            )
        kind_gains[kind] = _check_gain(gain, f"the gain of {kind}")
        overridden.add(kind)
    resolved = []
    for item in tracks:
        track = item if isinstance(item, AudioTrack) else AudioTrack(os.fspath(item))
        path = os.fspath(track.path)
        if not path:
            raise SettingsError("audio: a track has an empty path; give the path of a WAV file")
        if track.kind is None:
            kind, kind_from = classify_track(path), FROM_THE_NAME
        elif track.kind in TRACK_KINDS:
            kind, kind_from = track.kind, SET_IN_THE_PLAN
        else:
            raise SettingsError(
                f"audio: unknown track kind {track.kind!r} for {path}; use one of {', '.join(TRACK_KINDS)}"
            )
        if track.gain_db is not None:
            gain, gain_from = _check_gain(track.gain_db, f"the gain of {path}"), SET_IN_THE_PLAN
        else:
            gain = kind_gains[kind]
            gain_from = FROM_THE_GAINS if kind in overridden else DEFAULT_FOR_THE_KIND
        resolved.append(ResolvedTrack(path, kind, gain, kind_from, gain_from))
    return tuple(resolved)


def _check_gain(value: object, what: str) -> float:
    low, high = GAIN_RANGE_DB
    try:
        gain = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(
            f"audio: {what} is {value!r}, not a number; give decibels between {low:+.0f} and {high:+.0f}"
        ) from None
    if not math.isfinite(gain) or not low <= gain <= high:
        raise SettingsError(f"audio: {what} is {gain} dB; use a gain between {low:+.0f} and {high:+.0f} dB")
    return gain


def mix_audio(
    tracks: Sequence[AudioTrack | str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    duration: float,
    *,
    target_lufs: float = -14.0,
    fade_out: float = 2.0,
    sample_rate: int = 48000,
    channels: int = 2,
    gains: Mapping[str, float] | None = None,
    ffmpeg: str | None = None,
) -> AudioMix:
    """Mix ``tracks`` into one WAV at ``out_path`` of exactly ``duration`` seconds and return what was written.

    Steps: probe every track (missing, unreadable, corrupt or without audio: skipped, with a warning); resample
    each to ``sample_rate``, convert to ``channels`` (mono copied to both channels; stereo to mono averages the
    two), apply its gain (see :func:`resolve_tracks`) and sum them unscaled; trim or pad with silence to
    ``round(duration * sample_rate)`` samples; fade out linearly over the last ``fade_out`` seconds (all of it
    when the duration is shorter; 0: no fade); normalise with two-pass ``loudnorm`` to ``target_lufs`` LUFS
    integrated and -1 dBTP (linear, one gain, when loudnorm can; else its dynamic mode), resample back to
    ``sample_rate``, guard against clipping with a sample-peak limiter at -0.5 dBFS (it never acts after linear
    mode); write 24-bit PCM WAV. No usable track gives silence of the duration; a silent mix, or one shorter
    than 0.4 s, is not normalised (each with a warning). The written file is probed (codec, rate, channels,
    sample count) and measured (:func:`measure_loudness`) before it is moved into place; a result more than
    1 LU off the target, or peaking above -0.5 dBTP, adds a warning: a peaky mix pushed far up cannot reach
    the target (the ffmpeg bundled with imageio-ffmpeg then caps the linear gain at the true-peak limit, or
    goes dynamic), and is delivered quieter than asked rather than failing.

    Raises:
        SettingsError: ``duration`` not finite or shorter than one sample, ``target_lufs`` outside [-70, -5],
            ``fade_out`` negative or not finite, ``sample_rate`` not 44100/48000/96000, ``channels`` not 1/2,
            ``out_path`` not ending in ``.wav``, a bad kind or gain (see :func:`resolve_tracks`), no ffmpeg.
        EncodeError: ffmpeg failed, the output folder cannot be written, or the written file is not what was
            asked for.
        DiskFullError: the disk filled up while writing.
        Nothing is left at ``out_path`` (nor any temporary file) when an error is raised; an existing file
        there is kept as it was.
    """
    samples = _check_settings(duration, target_lufs, fade_out, sample_rate, channels)
    out = Path(out_path)
    if out.suffix.lower() != ".wav":
        raise SettingsError(f"audio: the output {out.name} is written as WAV; give a path ending in .wav")
    resolved = resolve_tracks(tracks, gains)
    exe = find_ffmpeg(ffmpeg)

    warnings: list[str] = []
    usable: list[_Usable] = []
    skipped: list[tuple[str, str]] = []
    for track in resolved:
        track_channels, reason = _probe_track(track.path)
        if reason is not None:
            skipped.append((track.path, reason))
            _warn(warnings, f"audio: skipped {track.path}: {reason}; the mix goes on without it")
        else:
            usable.append(_Usable(track, track_channels))
    if not usable:
        _warn(warnings, NO_TRACK_WARNING)

    workdir: Path | None = None
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
            workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent))
        except OSError as exc:
            if disk_full_error(exc, out.name, out.parent) is not None:
                raise
            raise EncodeError(
                f"audio: cannot write to the folder {out.parent} ({exc}); choose an output folder you can write to"
            ) from exc
        final = workdir / "final.wav"
        if usable:
            mode, silent = _mix_and_normalise(usable, workdir, final, samples, fade_out, sample_rate, channels,
                                              target_lufs, exe, warnings)
        else:
            _write_silence(final, samples, sample_rate, channels, exe)
            mode, silent = "skipped", True
        _verify_output(final, samples, sample_rate, channels)
        try:
            measured = measure_loudness(final, ffmpeg=exe)
        except InputError as exc:
            raise EncodeError(f"audio: the written mix cannot be measured ({exc}); check the disk and rerun") from exc
        silent = silent or measured.true_peak_dbtp == -math.inf
        if not silent and abs(measured.integrated_lufs - target_lufs) > _MEASURED_TOLERANCE_LU and mode != "skipped":
            capped = measured.integrated_lufs < target_lufs and measured.true_peak_dbtp >= TRUE_PEAK_DBTP - 0.5
            advice = ("the true-peak limit capped the gain; lower the target or the gain of the track with the "
                      "sharpest peaks (often sfx)" if capped else "check the tracks' levels and gains")
            _warn(warnings, f"audio: the mix measures {measured.integrated_lufs:.1f} LUFS against a target of "
                            f"{target_lufs:.1f} LUFS (loudnorm {mode} mode, true peak "
                            f"{measured.true_peak_dbtp:.1f} dBTP); {advice}")
        if not silent and measured.true_peak_dbtp > TRUE_PEAK_DBTP + _PEAK_TOLERANCE_DB:
            advice = "lower the tracks' gains" if mode == "skipped" else "lower the target loudness"
            _warn(warnings, f"audio: the mix peaks at {measured.true_peak_dbtp:.1f} dBTP, above the "
                            f"{TRUE_PEAK_DBTP:.1f} dBTP limit (loudnorm {mode}); {advice}")
        _fsync_file(final)
        os.replace(final, out)
    except (OSError, EncodeError) as exc:
        raise_if_disk_full(exc, f"the audio mix {out.name}", out.parent)
        if isinstance(exc, OSError) and not isinstance(exc, StageError):
            raise EncodeError(f"audio: cannot write the mix to {out} ({exc}); "
                              "check the output path and its permissions") from exc
        raise
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    fsync_dir(out.parent)
    logger.info("audio: wrote %s (%d tracks, %.3f s, %d Hz, %d ch, %.1f LUFS, loudnorm %s)", out, len(usable),
                samples / sample_rate, sample_rate, channels, measured.integrated_lufs, mode)
    return AudioMix(
        path=str(out),
        duration=samples / sample_rate,
        samples=samples,
        sample_rate=sample_rate,
        channels=channels,
        tracks=tuple(item.track for item in usable),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
        measured_lufs=measured.integrated_lufs,
        target_lufs=float(target_lufs),
        loudnorm_mode=mode,
        silent=silent,
    )


def _check_settings(duration: float, target_lufs: float, fade_out: float, sample_rate: int, channels: int) -> int:
    if not isinstance(duration, numbers.Real) or not math.isfinite(duration) or duration <= 0:
        raise SettingsError(f"audio: duration {duration!r} is not a positive number of seconds; "
                            "give the video's duration")
    low, high = TARGET_LUFS_RANGE
    if not isinstance(target_lufs, numbers.Real) or not math.isfinite(target_lufs) or not low <= target_lufs <= high:
        raise SettingsError(f"audio: target loudness {target_lufs!r} LUFS is out of range; "
                            f"use {low:.0f} to {high:.0f} LUFS (-14 for streaming, -23 for broadcast)")
    if not isinstance(fade_out, numbers.Real) or not math.isfinite(fade_out) or fade_out < 0:
        raise SettingsError(f"audio: fade-out {fade_out!r} s is not a duration; use 0 (none) or more seconds")
    if sample_rate not in SAMPLE_RATES:
        raise SettingsError(f"audio: sample rate {sample_rate!r} Hz is not supported; "
                            f"use one of {', '.join(map(str, SAMPLE_RATES))}")
    if channels not in CHANNEL_COUNTS:
        raise SettingsError(f"audio: {channels!r} channels are not supported; use 1 (mono) or 2 (stereo)")
    samples = round(duration * sample_rate)
    if samples < 1:
        raise SettingsError(f"audio: duration {duration} s is shorter than one sample at {sample_rate} Hz; "
                            "give the video's duration in seconds")
    return samples


def _warn(warnings: list[str], line: str) -> None:
    warnings.append(line)
    logger.warning("%s", line)


def _probe_track(path: str) -> tuple[int, str | None]:
    """(channels, None) when ``path`` holds decodable audio, else (0, why not)."""
    file = Path(path)
    if not file.exists():
        return 0, "the file does not exist"
    if not file.is_file():
        return 0, "it is not a file"
    try:
        with av.open(str(file)) as container:
            if not container.streams.audio:
                return 0, "it has no audio stream"
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                if frame.samples > 0:
                    return max(1, stream.codec_context.channels), None
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        return 0, f"it cannot be read as audio ({exc})"
    return 0, "its audio stream holds no samples"


def _track_chain(index: int, item: _Usable, sample_rate: int, channels: int) -> str:
    layout = "stereo" if channels == 2 else "mono"
    steps = [f"[{index}:a:0]asetpts=PTS-STARTPTS", f"aresample={sample_rate}"]
    if channels == 2 and item.channels == 1:
        steps.append("pan=stereo|c0=c0|c1=c0")
    elif channels == 2 and item.channels == 2:
        steps.append("pan=stereo|c0=c0|c1=c1")
    elif channels == 1 and item.channels == 2:
        steps.append("pan=mono|c0=0.5*c0+0.5*c1")
    elif channels == 1 and item.channels == 1:
        steps.append("pan=mono|c0=c0")
    steps.append(f"volume={item.track.gain_db:.4f}dB")
    steps.append(f"aformat=sample_fmts=fltp:sample_rates={sample_rate}:channel_layouts={layout}")
    return ",".join(steps) + f"[t{index}]"


def _render_mix(
    usable: Sequence[_Usable], out: Path, samples: int, fade_out: float, sample_rate: int, channels: int, exe: str
) -> None:
    """The mix before normalisation: gained tracks summed, fitted to ``samples`` and faded, as 32-bit float WAV
    (so nothing clips before loudnorm sets the level)."""
    inputs: list[str] = []
    read_seconds = f"{samples / sample_rate + 0.5:.3f}"  # a long track is read only as far as the mix needs
    for item in usable:
        inputs += ["-t", read_seconds, "-i", os.path.abspath(item.track.path)]
    chains = [_track_chain(index, item, sample_rate, channels) for index, item in enumerate(usable)]
    labels = "".join(f"[t{index}]" for index in range(len(usable)))
    mix = [f"{labels}amix=inputs={len(usable)}:normalize=0:duration=longest:dropout_transition=0",
           f"apad=whole_len={samples}", f"atrim=end_sample={samples}"]
    fade = min(samples, round(fade_out * sample_rate))
    if fade > 0:
        mix.append(f"afade=t=out:start_sample={samples - fade}:nb_samples={fade}")
    mix.append("asetpts=PTS-STARTPTS")
    graph = ";".join([*chains, ",".join(mix) + "[mix]"])
    run_ffmpeg([*inputs, "-filter_complex", graph, "-map", "[mix]", "-c:a", "pcm_f32le", "-f", "wav", str(out)],
               ffmpeg=exe, what="audio: mix")


def _mix_and_normalise(
    usable: Sequence[_Usable], workdir: Path, final: Path, samples: int, fade_out: float, sample_rate: int,
    channels: int, target_lufs: float, exe: str, warnings: list[str],
) -> tuple[str, bool]:
    """Render the mix and normalise it into ``final``. Returns the loudnorm mode ("linear"/"dynamic"/"skipped") and
    whether the mix was found silent (no block above the -70 LUFS gate)."""
    mix = workdir / "mix.wav"
    _render_mix(usable, mix, samples, fade_out, sample_rate, channels, exe)
    if samples < _ONE_BLOCK_SECONDS * sample_rate:
        _warn(warnings, f"audio: the mix is shorter than {_ONE_BLOCK_SECONDS} s, too short to measure its "
                        "loudness; loudness normalisation skipped")
        _encode_pcm24(mix, final, samples, sample_rate, exe, filters=())
        return "skipped", False
    measured = _loudnorm_pass(mix, _loudnorm_filter(target_lufs), exe, "audio: loudness measurement")
    if not math.isfinite(measured["input_i"]) or measured["input_i"] <= _EBUR128_SILENCE_LUFS:
        _warn(warnings, SILENT_MIX_WARNING)
        _encode_pcm24(mix, final, samples, sample_rate, exe, filters=())
        return "skipped", True
    apply = _loudnorm_filter(target_lufs, measured)
    stats = _loudnorm_pass(mix, apply, exe, "audio: loudness normalisation", out=final, samples=samples,
                           sample_rate=sample_rate)
    mode = str(stats.get("normalization_type", "dynamic"))
    if mode not in ("linear", "dynamic"):
        mode = "dynamic"
    logger.info("audio: loudnorm %s mode: measured %.2f LUFS, %.2f dBTP, LRA %.2f LU; target %.1f LUFS", mode,
                measured["input_i"], measured["input_tp"], measured["input_lra"], target_lufs)
    return mode, False


def _write_silence(out: Path, samples: int, sample_rate: int, channels: int, exe: str) -> None:
    layout = "stereo" if channels == 2 else "mono"
    run_ffmpeg(["-nostats", "-f", "lavfi", "-i", f"anullsrc=r={sample_rate}:cl={layout}",
                "-af", f"atrim=end_sample={samples}", "-c:a", "pcm_s24le", "-rf64", "auto", "-f", "wav", str(out)],
               ffmpeg=exe, what="audio: silence")


def _verify_output(path: Path, samples: int, sample_rate: int, channels: int) -> None:
    """Check the written WAV: pcm_s24le, the rate, the channels and ``samples`` (within one) samples."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            codec = stream.codec_context.name
            rate, count = stream.codec_context.sample_rate, stream.codec_context.channels
            total = sum(frame.samples for frame in container.decode(stream))
    except (OSError, ValueError, IndexError, av.error.FFmpegError) as exc:
        raise EncodeError(f"audio: the written mix cannot be read back ({exc}); check the disk and rerun") from exc
    if (codec, rate, count) != ("pcm_s24le", sample_rate, channels) or abs(total - samples) > 1:
        raise EncodeError(
            f"audio: the written mix is {codec} {rate} Hz {count} ch with {total} samples, not pcm_s24le "
            f"{sample_rate} Hz {channels} ch with {samples}; report this with the ffmpeg version in use"
        )


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
