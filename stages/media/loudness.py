"""Loudness: EBU R128 measurement (ffmpeg's ``ebur128``) and the two-pass ``loudnorm`` the audio mix is
normalised with.

:func:`measure_loudness` reads a file's integrated loudness, loudness range and true peak. The mix
(:mod:`stages.media.audio`) builds its loudnorm filters with ``_loudnorm_filter`` (pass 1 measures, pass 2
applies the pass-1 figures, linear when it can), runs them with ``_loudnorm_pass`` and writes 24-bit PCM WAV
through ``_encode_pcm24``, whose sample-peak limiter guards against clipping half a dB above the true-peak
limit (``TRUE_PEAK_DBTP``). All of it runs the ffmpeg binary (:func:`stages.media.ffmpeg.run_ffmpeg`).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.errors import EncodeError, InputError
from stages.media.ffmpeg import run_ffmpeg

__all__ = ["TRUE_PEAK_DBTP", "LoudnessMeasurement", "measure_loudness"]

TRUE_PEAK_DBTP = -1.0

_LOUDNORM_JSON = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.DOTALL)
_EBUR128_VALUE = r"^\s*{label}:\s+(-?inf|-?nan|-?\d+(?:\.\d+)?)\s+{unit}\s*$"
# ebur128 prints -70.0 LUFS (the absolute gate) when no 400 ms block is loud enough to count: silence.
_EBUR128_SILENCE_LUFS = -70.0
_PEAK_TOLERANCE_DB = 0.5
_CLIP_GUARD_DBFS = TRUE_PEAK_DBTP + _PEAK_TOLERANCE_DB


@dataclass(frozen=True)
class LoudnessMeasurement:
    """EBU R128 figures of a file, from ffmpeg's ``ebur128`` filter.

    ``integrated_lufs``: integrated loudness in LUFS, ``-inf`` when the file is silent or shorter than one
    400 ms gating block (ffmpeg prints -70.0 then, the absolute gate); ``loudness_range_lu``: LRA in LU, built
    from 3 s windows, so meaningless for files of 3 s or less (ffmpeg prints 20 LU for a 3 s steady tone);
    ``true_peak_dbtp``: the highest true peak over all channels in dBTP (``-inf`` for digital silence).
    """

    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float

    @property
    def silent(self) -> bool:
        """True when no block of the file reaches the -70 LUFS absolute gate."""
        return math.isinf(self.integrated_lufs)


def _loudnorm_filter(target_lufs: float, measured: Mapping[str, float] | None = None) -> str:
    """The loudnorm filter: measuring (pass 1) or, with the pass-1 figures, applying (pass 2, linear when it can).

    The loudness-range target is raised to the measured range (at most 50, loudnorm's ceiling), so only the
    true-peak limit, not the mix's own dynamics, can send loudnorm to its dynamic mode. A measured range of
    0.00 (a steady tone) is passed as 0.01: loudnorm reads 0 as "not measured" and would not go linear.
    """
    if measured is None:
        return f"loudnorm=I={target_lufs:.2f}:TP={TRUE_PEAK_DBTP:.1f}:print_format=json"
    lra_target = min(50.0, max(7.0, math.ceil(measured["input_lra"] + 0.5)))
    return (
        f"loudnorm=I={target_lufs:.2f}:TP={TRUE_PEAK_DBTP:.1f}:LRA={lra_target:.1f}"
        f":measured_I={_clamp(measured['input_i'], -99.0, 0.0):.2f}"
        f":measured_TP={_clamp(measured['input_tp'], -99.0, 99.0):.2f}"
        f":measured_LRA={_clamp(max(measured['input_lra'], 0.01), 0.0, 99.0):.2f}"
        f":measured_thresh={_clamp(measured['input_thresh'], -99.0, 0.0):.2f}"
        f":offset={_clamp(measured['target_offset'], -99.0, 99.0):.2f}"
        ":linear=true:print_format=json"
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _loudnorm_pass(
    source: Path, loudnorm: str, exe: str, what: str, *, out: Path | None = None, samples: int = 0,
    sample_rate: int = 0,
) -> dict[str, float | str]:
    """Run loudnorm on ``source`` (to the null muxer, or into ``out`` as 24-bit WAV) and return its JSON stats,
    numbers as floats (``-inf`` kept), ``normalization_type`` as text."""
    if out is None:
        result = run_ffmpeg(["-nostats", "-i", str(source), "-af", loudnorm, "-f", "null", "-"], ffmpeg=exe,
                            what=what)
    else:
        result = _encode_pcm24(source, out, samples, sample_rate, exe, filters=(loudnorm,), what=what)
    found = _LOUDNORM_JSON.findall(result.stderr)
    if not found:
        raise EncodeError(f"{what}: ffmpeg's loudnorm printed no statistics; check that this ffmpeg build "
                          "has the loudnorm filter (set VUP_FFMPEG to one that does)")
    try:
        raw = json.loads(found[-1])
    except json.JSONDecodeError as exc:
        raise EncodeError(f"{what}: cannot read loudnorm's statistics ({exc}); use another ffmpeg build") from exc
    stats: dict[str, float | str] = {}
    for key, value in raw.items():
        try:
            stats[key] = float(value)
        except (TypeError, ValueError):
            stats[key] = str(value)
    missing = [key for key in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
               if not isinstance(stats.get(key), float)]
    if missing:
        raise EncodeError(f"{what}: loudnorm's statistics lack {', '.join(missing)}; use another ffmpeg build")
    return stats


def _encode_pcm24(source: Path, out: Path, samples: int, sample_rate: int, exe: str, *, filters: Sequence[str],
                  what: str = "audio: write") -> subprocess.CompletedProcess[str]:
    """``source`` through ``filters``, resampled to ``sample_rate``, through the clip guard and cut or padded to
    exactly ``samples``, written as 24-bit PCM WAV (RF64 only past 4 GiB).

    The clip guard is a sample-peak limiter half a dB above the true-peak limit, at the output rate: it is
    bit-transparent on what stays below it (everything loudnorm's linear mode writes), and stops the clipping
    that loudnorm's dynamic mode can produce (its limiter works at 192 kHz; low-passed back to the output rate,
    the limited peaks overshoot) and that an unnormalised mix with large gains would suffer."""
    limiter = f"alimiter=limit={10 ** (_CLIP_GUARD_DBFS / 20):.6f}:level=false:latency=true"
    chain = [*filters, f"aresample={sample_rate}", limiter, f"apad=whole_len={samples}",
             f"atrim=end_sample={samples}"]
    return run_ffmpeg(["-nostats", "-i", str(source), "-af", ",".join(chain), "-c:a", "pcm_s24le",
                       "-ar", str(sample_rate), "-rf64", "auto", "-f", "wav", str(out)], ffmpeg=exe, what=what)


def measure_loudness(path: str | os.PathLike[str], ffmpeg: str | None = None) -> LoudnessMeasurement:
    """EBU R128 loudness of the first audio stream of ``path`` with ffmpeg's ``ebur128=peak=true``.

    Reads the summary ffmpeg prints at the end: ``I: -14.0 LUFS``, ``LRA: 5.1 LU``, ``Peak: -1.2 dBFS`` (the
    true peak, in dBTP). Figures are rounded to 0.1 as ffmpeg prints them; a silent file gives ``-inf``
    integrated loudness (ffmpeg's -70.0).

    Raises:
        InputError: the file does not exist or ffmpeg cannot decode its audio.
        SettingsError: no usable ffmpeg binary.
        EncodeError: ffmpeg printed no summary.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"audio: cannot measure the loudness of {source}: no such file; check the path")
    try:
        result = run_ffmpeg(["-nostats", "-i", str(source), "-map", "0:a:0",
                             "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
                            ffmpeg=ffmpeg, what="audio: loudness")
    except EncodeError as exc:
        raise InputError(f"audio: cannot measure the loudness of {source} ({exc}); "
                         "check that it is a readable audio file") from exc
    summary = result.stderr.rsplit("Summary:", 1)
    if len(summary) != 2:
        raise EncodeError(f"audio: ffmpeg printed no loudness summary for {source}; "
                          "check that this ffmpeg build has the ebur128 filter")
    integrated = _summary_value(summary[1], "I", "LUFS", source)
    lra = _summary_value(summary[1], "LRA", "LU", source)
    peak = _summary_value(summary[1], "Peak", "dBFS", source)
    if integrated <= _EBUR128_SILENCE_LUFS:
        integrated = -math.inf
    return LoudnessMeasurement(integrated_lufs=integrated, loudness_range_lu=lra, true_peak_dbtp=peak)


def _summary_value(summary: str, label: str, unit: str, source: Path) -> float:
    pattern = _EBUR128_VALUE.format(label=re.escape(label), unit=re.escape(unit))
    match = re.search(pattern, summary, re.MULTILINE)
    if match is None:
        raise EncodeError(f"audio: ffmpeg's loudness summary for {source} has no {label} value; "
                          "use an ffmpeg build whose ebur128 filter prints one")
    return float(match.group(1))
