"""Generated test tracks for the audio mix: music, sfx, voice and a noise bed, written as WAV files.

:func:`make_sample_track` writes a realistic, reproducible track of one kind (the kinds of
:data:`stages.media.audio.TRACK_KINDS`) at a given RMS level, for the tests and the example production
project; the signal generators (a chord, noise bursts, syllable-shaped band noise, a low-pass bed) are numpy,
the file is written with PyAV.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import av
import numpy as np

from stages.errors import SettingsError
from stages.media.audio import CHANNEL_COUNTS, SAMPLE_RATES, TRACK_KINDS

__all__ = ["make_sample_track"]

logger = logging.getLogger(__name__)

_SAMPLE_FULL_SCALE = {16: 2**15 - 1, 24: 2**31 - 1}  # 24-bit PCM goes through PyAV as s32
_SAMPLE_CODECS = {16: ("pcm_s16le", "s16"), 24: ("pcm_s24le", "s32")}
_SAMPLE_FRAME = 4096


def make_sample_track(
    path: str | os.PathLike[str],
    kind: str,
    duration: float,
    *,
    sample_rate: int = 48000,
    channels: int = 2,
    level_db: float = -20.0,
    seed: int = 0,
    bit_depth: int = 24,
) -> Path:
    """Write a realistic test track of ``kind`` as a WAV file and return its path.

    music: a four-note chord of sines with a slow swell (0.25 Hz) and a slightly different phase per channel;
    sfx: short decaying noise bursts at random times, each panned somewhere, silence between; voice:
    300-3400 Hz band-limited noise shaped into syllable-like bursts (about 4 per second) in phrases with pauses,
    the same in both channels; other: a quiet, slowly moving low-pass noise bed. ``level_db`` is the RMS level
    of the whole track in dBFS; ``seed`` makes it reproducible. PCM 16- or 24-bit (``bit_depth``), written to a
    temporary name next to ``path`` and renamed.

    Raises:
        SettingsError: unknown kind, duration not positive, sample rate or channels unsupported, bit depth
            other than 16/24, or ``level_db`` so high that the track would clip (above -1 dBFS it always does).
    """
    if kind not in TRACK_KINDS:
        raise SettingsError(f"audio: unknown track kind {kind!r}; use one of {', '.join(TRACK_KINDS)}")
    if not math.isfinite(duration) or duration <= 0:
        raise SettingsError(f"audio: sample track duration {duration!r} s is not positive; give seconds")
    if sample_rate not in SAMPLE_RATES or channels not in CHANNEL_COUNTS:
        raise SettingsError(f"audio: sample track at {sample_rate} Hz, {channels} ch is not supported; "
                            f"use a rate in {SAMPLE_RATES} and 1 or 2 channels")
    if bit_depth not in _SAMPLE_CODECS:
        raise SettingsError(f"audio: sample track bit depth {bit_depth!r} is not supported; use 16 or 24")
    if not math.isfinite(level_db) or level_db > -1.0:
        raise SettingsError(f"audio: sample track level {level_db!r} dBFS is too high; use -1 dBFS or lower")
    count = max(1, round(duration * sample_rate))
    rng = np.random.default_rng(seed)
    make = {"music": _music, "sfx": _sfx, "voice": _voice, "other": _bed}[kind]
    signal = make(rng, count, sample_rate, channels)
    rms = float(np.sqrt(np.mean(signal**2)))
    signal *= 10 ** (level_db / 20) / max(rms, 1e-12)
    peak = float(np.abs(signal).max())
    if peak >= 1.0:
        raise SettingsError(f"audio: a {kind} track at {level_db} dBFS RMS would clip (peak {peak:.2f}); "
                            "use a lower level_db")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".wav", dir=out.parent)
    os.close(fd)
    try:
        _write_wav(Path(tmp), signal, sample_rate, bit_depth)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.debug("audio: wrote sample %s track %s (%.2f s, %d Hz, %d ch)", kind, out, count / sample_rate,
                 sample_rate, channels)
    return out


def _write_wav(path: Path, signal: np.ndarray, sample_rate: int, bit_depth: int) -> None:
    """``signal``: (samples, channels) float in [-1, 1)."""
    codec, sample_format = _SAMPLE_CODECS[bit_depth]
    layout = "stereo" if signal.shape[1] == 2 else "mono"
    dtype = np.int16 if bit_depth == 16 else np.int32
    ints = np.round(signal * _SAMPLE_FULL_SCALE[bit_depth]).astype(dtype)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        for start in range(0, len(ints), _SAMPLE_FRAME):
            block = np.ascontiguousarray(ints[start:start + _SAMPLE_FRAME]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format=sample_format, layout=layout)
            frame.rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _spread(mono: np.ndarray, channels: int, pan: float = 0.0) -> np.ndarray:
    """(samples,) -> (samples, channels); ``pan`` -1 (left) .. 1 (right), constant power."""
    if channels == 1:
        return mono[:, None].copy()
    angle = (pan + 1) * math.pi / 4
    return np.stack([mono * math.cos(angle), mono * math.sin(angle)], axis=1)


def _music(rng: np.random.Generator, count: int, rate: int, channels: int) -> np.ndarray:
    t = np.arange(count) / rate
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    notes = [root * 2 ** (step / 12) for step in (0, 12, 15, 19)]  # a minor chord with the root doubled
    swell = 0.7 + 0.3 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi))
    columns = []
    for channel in range(channels):
        tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi) + 0.3 * channel) / (1 + n)
                   for n, f in enumerate(notes))
        columns.append(tone * swell)
    return np.stack(columns, axis=1)


def _sfx(rng: np.random.Generator, count: int, rate: int, channels: int) -> np.ndarray:
    out = np.zeros((count, channels))
    start = int(rng.integers(0, max(1, rate // 10)))
    while start < count:
        length = min(int(rng.uniform(0.1, 0.3) * rate), count - start)
        release = np.minimum(1.0, np.arange(length, 0, -1) / (rate / 100))  # 10 ms, no click at the end
        decay = np.exp(-np.arange(length) / (length / 1.5)) * release
        noise = _band_noise(rng, length, rate, rng.uniform(200, 1500), rng.uniform(3000, 12000))
        out[start:start + length] += _spread(noise * decay, channels, rng.uniform(-0.5, 0.5))
        start += length + int(rng.uniform(0.05, 0.25) * rate)
    return out


def _voice(rng: np.random.Generator, count: int, rate: int, channels: int) -> np.ndarray:
    envelope = np.zeros(count)
    position = int(rng.uniform(0.0, 0.1) * rate)
    while position < count:
        for _ in range(int(rng.integers(3, 9))):  # a phrase of syllables
            length = int(rng.uniform(0.12, 0.25) * rate)
            stop = min(count, position + length)
            if stop > position:
                envelope[position:stop] = np.sin(np.linspace(0, np.pi, stop - position)) * rng.uniform(0.6, 1.0)
            position = stop + int(rng.uniform(0.02, 0.08) * rate)
            if position >= count:
                break
        position += int(rng.uniform(0.2, 0.5) * rate)  # a pause between phrases
    noise = _band_noise(rng, count, rate, 300.0, 3400.0)
    return _spread(noise * envelope, channels)


def _bed(rng: np.random.Generator, count: int, rate: int, channels: int) -> np.ndarray:
    t = np.arange(count) / rate
    columns = [_band_noise(rng, count, rate, 40.0, 800.0) * (0.8 + 0.2 * np.sin(2 * np.pi * 0.1 * t))
               for _ in range(channels)]
    return np.stack(columns, axis=1)


def _band_noise(rng: np.random.Generator, count: int, rate: int, low: float, high: float) -> np.ndarray:
    """White noise of ``count`` samples kept between ``low`` and ``high`` Hz (FFT mask), its rare high peaks
    softly rounded off (a crest factor near 3 instead of 4.5), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(count))
    freqs = np.fft.rfftfreq(count, 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n=count)
    noise /= max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    noise = np.tanh(noise / 2.5)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
