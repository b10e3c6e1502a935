"""Audio mixing: classification, gains, the two-pass loudness normalisation, fitting to the video, fades, and the
tracks that cannot be used. All media are generated in tmp_path (tiny: seconds of audio)."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest

from stages.errors import EncodeError, InputError, SettingsError
from stages.media import audio, loudness
from stages.media.audio import (
    DEFAULT_GAINS_DB,
    NO_TRACK_WARNING,
    SILENT_MIX_WARNING,
    TRACK_KINDS,
    AudioTrack,
    classify_track,
    mix_audio,
    resolve_tracks,
)
from stages.media.ffmpeg import run_ffmpeg
from stages.media.loudness import measure_loudness
from stages.media.sample_tracks import make_sample_track

RATE = 48000


def _read(path: str | Path) -> tuple[np.ndarray, dict]:
    """(samples, channels) float in [-1, 1) and the stream's codec, rate and channels."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        info = {"codec": stream.codec_context.name, "rate": stream.codec_context.sample_rate,
                "channels": stream.codec_context.channels}
        frames = [frame.to_ndarray().reshape(-1, info["channels"]) for frame in container.decode(stream)]
    data = np.concatenate(frames).astype(np.float64)
    scale = {"pcm_s24le": 2.0**31, "pcm_s16le": 2.0**15}.get(info["codec"], 1.0)
    return data / scale, info


def _rms_db(samples: np.ndarray) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(samples**2))), 1e-12))


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> dict[str, Path]:
    """A music, an sfx and a voice track, 4 s, 48 kHz stereo 24-bit."""
    folder = tmp_path_factory.mktemp("tracks")
    return {
        "music": make_sample_track(folder / "music_theme.wav", "music", 4.0, seed=1),
        "sfx": make_sample_track(folder / "SFX-hits.wav", "sfx", 4.0, seed=2),
        "voice": make_sample_track(folder / "VO_take2.wav", "voice", 4.0, seed=3),
    }


@pytest.mark.parametrize(("name", "kind"), [
    ("music_theme.wav", "music"),
    ("Score-Final.WAV", "music"),
    ("song.wav", "music"),
    ("bgm01.wav", "music"),
    ("/a/voice/Soundtrack_v3.wav", "music"),
    ("SFX-hits.wav", "sfx"),
    ("fx_whoosh.wav", "sfx"),
    ("door_effects.wav", "sfx"),
    ("foley-steps.wav", "sfx"),
    ("city_ambience.wav", "sfx"),
    ("ambient bed.wav", "sfx"),
    ("voice_over.wav", "voice"),
    ("VO_take2.wav", "voice"),
    ("dialogue-sc12.wav", "voice"),
    ("Narrator.wav", "voice"),
    ("speech.wav", "voice"),
    ("voiceover.wav", "voice"),
    ("dialogMix.wav", "voice"),
    ("voices.wav", "voice"),
    ("take.music.wav", "music"),
    ("take3.wav", "other"),
    ("volume.wav", "other"),
    ("musical.wav", "other"),
    ("effx.wav", "other"),
])
def test_classify_track_from_the_file_name(name, kind):
    assert classify_track(name) == kind


def test_resolve_tracks_defaults_overrides_and_plan_settings():
    resolved = resolve_tracks(
        ["music_a.wav", AudioTrack("sfx_b.wav"), AudioTrack("take.wav", kind="voice"),
         AudioTrack("VO_c.wav", gain_db=-2.5), Path("narration.wav")],
        gains={"sfx": -9.0},
    )
    assert [(t.path, t.kind, t.gain_db) for t in resolved] == [
        ("music_a.wav", "music", -6.0), ("sfx_b.wav", "sfx", -9.0), ("take.wav", "voice", 0.0),
        ("VO_c.wav", "voice", -2.5), ("narration.wav", "voice", 0.0)]
    assert [t.kind_from for t in resolved] == [audio.FROM_THE_NAME, audio.FROM_THE_NAME, audio.SET_IN_THE_PLAN,
                                               audio.FROM_THE_NAME, audio.FROM_THE_NAME]
    assert [t.gain_from for t in resolved] == [audio.DEFAULT_FOR_THE_KIND, audio.FROM_THE_GAINS,
                                               audio.DEFAULT_FOR_THE_KIND, audio.SET_IN_THE_PLAN,
                                               audio.DEFAULT_FOR_THE_KIND]
    assert dict(DEFAULT_GAINS_DB) == {"music": -6.0, "sfx": -3.0, "voice": 0.0, "other": 0.0}
    assert TRACK_KINDS == ("music", "sfx", "voice", "other")
    # The extreme gains are allowed.
    assert [t.gain_db for t in resolve_tracks([AudioTrack("a.wav", gain_db=-60), AudioTrack("b.wav", gain_db=24)])] \
        == [-60.0, 24.0]


@pytest.mark.parametrize(("tracks", "gains", "needle"), [
    ([AudioTrack("a.wav", gain_db=24.5)], None, "gain"),
    ([AudioTrack("a.wav", gain_db=-61)], None, "gain"),
    ([AudioTrack("a.wav", gain_db=float("nan"))], None, "gain"),
    ([AudioTrack("a.wav", gain_db=float("inf"))], None, "gain"),
    (["a.wav"], {"music": 30.0}, "gain of music"),
    (["a.wav"], {"drums": -3.0}, "music, sfx, voice, other"),
    ([AudioTrack("a.wav", kind="drums")], None, "music, sfx, voice, other"),
    ([AudioTrack("")], None, "empty path"),
])
def test_resolve_tracks_rejects_bad_settings(tracks, gains, needle):
    with pytest.raises(SettingsError, match="^audio: ") as caught:
        resolve_tracks(tracks, gains)
    assert needle in str(caught.value)


@pytest.mark.parametrize("target", [-14.0, -20.0])
def test_three_tracks_mixed_to_the_target_loudness_and_duration(tracks, tmp_path, target):
    out = tmp_path / "mix.wav"
    mix = mix_audio([tracks["music"], tracks["sfx"], tracks["voice"]], out, 3.0, target_lufs=target)
    data, info = _read(out)
    assert info == {"codec": "pcm_s24le", "rate": RATE, "channels": 2}
    assert abs(len(data) - 3 * RATE) <= 1
    assert (mix.samples, mix.duration, mix.sample_rate, mix.channels) == (3 * RATE, 3.0, RATE, 2)
    assert abs(measure_loudness(out).integrated_lufs - target) <= 1.0
    assert abs(mix.measured_lufs - target) <= 1.0
    assert [(t.kind, t.gain_db) for t in mix.tracks] == [("music", -6.0), ("sfx", -3.0), ("voice", 0.0)]
    assert (mix.loudnorm_mode, mix.silent, mix.skipped, mix.warnings) == ("linear", False, (), ())
    assert mix.path == str(out) and mix.target_lufs == target
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]  # no temporary left beside it


def _fit(mixed: np.ndarray, *sources: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares weights of ``sources`` in ``mixed`` (all (samples, channels)) and the share of the energy
    they do not explain."""
    basis = np.stack([source.ravel() for source in sources], axis=1)
    weights, *_ = np.linalg.lstsq(basis, mixed.ravel(), rcond=None)
    residual = mixed.ravel() - basis @ weights
    return weights, float(np.sum(residual**2) / np.sum(mixed**2))


@pytest.mark.parametrize(("music", "gains", "expected_db"), [
    ("default", None, -6.0),
    ("default", {"music": 0.0}, 0.0),
    ("plan", None, -12.0),
])
def test_per_type_gains_set_the_balance_of_the_mix(tracks, tmp_path, music, gains, expected_db):
    # Normalisation scales the whole mix; the balance of music against voice shows the gains. With two known
    # sources the mix is a*music + b*voice: the least-squares fit recovers a/b.
    music_track = AudioTrack(str(tracks["music"]), gain_db=-12.0) if music == "plan" else tracks["music"]
    mix = mix_audio([music_track, tracks["voice"]], tmp_path / "mix.wav", 3.0, fade_out=0, target_lufs=-20,
                    gains=gains)
    assert mix.loudnorm_mode == "linear"
    mixed, _ = _read(mix.path)
    music_in, _ = _read(tracks["music"])
    voice_in, _ = _read(tracks["voice"])
    (a, b), unexplained = _fit(mixed, music_in[:len(mixed)], voice_in[:len(mixed)])
    assert unexplained < 1e-4
    assert 20 * math.log10(a / b) == pytest.approx(expected_db, abs=0.1)


def test_the_mix_before_normalisation_is_the_gained_sum(tracks, tmp_path):
    # The private step before loudnorm: music at its -6 dB default plus a mono voice at 0 dB, copied to both
    # channels at full level, summed without amix's 1/n scaling: exactly 0.501 * music + 1.0 * voice.
    mono_voice = make_sample_track(tmp_path / "voice_mono.wav", "voice", 2.0, channels=1, seed=5)
    resolved = resolve_tracks([tracks["music"], mono_voice])
    usable = [audio._Usable(resolved[0], 2), audio._Usable(resolved[1], 1)]
    out = tmp_path / "premix.wav"
    audio._render_mix(usable, out, 2 * RATE, 0.0, RATE, 2, audio.find_ffmpeg())
    mixed, info = _read(out)
    assert info == {"codec": "pcm_f32le", "rate": RATE, "channels": 2} and len(mixed) == 2 * RATE
    music_in, _ = _read(tracks["music"])
    voice_in, _ = _read(mono_voice)
    (a, b), unexplained = _fit(mixed, music_in[:len(mixed)], np.repeat(voice_in, 2, axis=1))
    assert unexplained < 1e-8
    assert a == pytest.approx(10 ** (-6 / 20), rel=1e-3) and b == pytest.approx(1.0, rel=1e-3)


def test_fade_out_makes_the_end_quiet(tracks, tmp_path):
    faded = mix_audio([tracks["music"]], tmp_path / "faded.wav", 3.0, fade_out=1.0)
    data, _ = _read(faded.path)
    middle, tail = _rms_db(data[RATE:int(1.5 * RATE)]), _rms_db(data[-RATE // 10:])
    assert middle - tail > 20
    assert np.abs(data[-10:]).max() < 1e-3
    # The same mix without a fade: the middle is as loud (give or take the normalisation gain), the end is not quiet.
    plain = mix_audio([tracks["music"]], tmp_path / "plain.wav", 3.0, fade_out=0)
    unfaded, _ = _read(plain.path)
    assert abs(_rms_db(unfaded[RATE:int(1.5 * RATE)]) - middle) < 3
    assert _rms_db(unfaded[-RATE // 10:]) - tail > 20


def test_a_fade_longer_than_the_duration_fades_all_of_it(tracks, tmp_path):
    mix = mix_audio([tracks["music"]], tmp_path / "short.wav", 1.0, fade_out=5.0)
    data, _ = _read(mix.path)
    assert len(data) == RATE
    quarters = [_rms_db(part) for part in np.array_split(data, 4)]
    assert quarters == sorted(quarters, reverse=True) and quarters[0] - quarters[-1] > 12


def test_short_tracks_are_padded_with_silence(tmp_path):
    short = make_sample_track(tmp_path / "music_short.wav", "music", 1.0, seed=4)
    mix = mix_audio([short], tmp_path / "mix.wav", 2.5, fade_out=0)
    data, _ = _read(mix.path)
    assert abs(len(data) - int(2.5 * RATE)) <= 1
    assert _rms_db(data[: RATE // 2]) > -40
    assert np.abs(data[int(1.05 * RATE):]).max() < 1e-5
    assert abs(mix.measured_lufs + 14) <= 1.0


def test_long_tracks_are_trimmed(tracks, tmp_path):
    mix = mix_audio([tracks["music"]], tmp_path / "mix.wav", 1.5, fade_out=0, sample_rate=44100, channels=1)
    data, info = _read(mix.path)
    assert info == {"codec": "pcm_s24le", "rate": 44100, "channels": 1}
    assert abs(len(data) - round(1.5 * 44100)) <= 1
    assert _rms_db(data[-4410:]) > _rms_db(data) - 6  # sound up to the very end, no padding


def test_odd_duration_gives_the_rounded_sample_count(tracks, tmp_path):
    mix = mix_audio([tracks["voice"]], tmp_path / "mix.wav", 1.2345, sample_rate=44100)
    data, _ = _read(mix.path)
    assert mix.samples == round(1.2345 * 44100) and abs(len(data) - mix.samples) <= 1


def test_an_unreachable_target_gives_a_quieter_mix_with_a_warning_and_no_clipping(tracks, tmp_path):
    # Noise bursts pushed to -5 LUFS would peak far above -1 dBTP: loudnorm stops short (or goes dynamic); the
    # mix is still written, says so, and the safety limiter keeps every sample below full scale.
    mix = mix_audio([tracks["sfx"]], tmp_path / "mix.wav", 3.0, target_lufs=-5.0)
    data, _ = _read(mix.path)
    assert mix.loudnorm_mode in ("linear", "dynamic") and not mix.silent
    assert mix.measured_lufs < -6.0
    assert any(line.startswith("audio: the mix measures") and "against a target of -5.0" in line
               for line in mix.warnings)
    assert np.abs(data).max() <= 10 ** (-0.5 / 20) + 1e-6


def test_a_mix_too_short_to_measure_is_written_unnormalised(tracks, tmp_path):
    # +24 dB would take the voice far past full scale; unnormalised, only the clip guard keeps it below.
    mix = mix_audio([AudioTrack(str(tracks["voice"]), gain_db=24.0)], tmp_path / "mix.wav", 0.3, fade_out=0.1)
    data, _ = _read(mix.path)
    assert len(data) == round(0.3 * RATE) and data.any()
    assert 0.5 < np.abs(data).max() <= 10 ** (-0.5 / 20) + 1e-6
    assert (mix.loudnorm_mode, mix.silent) == ("skipped", False)
    assert len(mix.warnings) == 2 and "too short to measure" in mix.warnings[0]
    assert mix.warnings[1].startswith("audio: the mix peaks at") and mix.warnings[1].endswith("lower the tracks' gains")


def test_mono_is_spread_to_both_channels(tmp_path):
    mono = make_sample_track(tmp_path / "dialog.wav", "voice", 1.5, channels=1, sample_rate=44100, bit_depth=16)
    mix = mix_audio([mono], tmp_path / "mix.wav", 1.5, fade_out=0)
    data, info = _read(mix.path)
    assert (info["channels"], info["rate"]) == (2, RATE)
    assert _rms_db(data[:, 0]) > -40
    np.testing.assert_allclose(data[:, 0], data[:, 1], atol=1e-6)


def test_missing_corrupt_and_audio_less_files_are_skipped(tracks, tmp_path, caplog):
    corrupt = tmp_path / "sfx_broken.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(np.random.default_rng(0).integers(0, 256, 400,
                                                                                                dtype=np.uint8)))
    video_only = tmp_path / "score.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5", "-t", "0.4", "-c:v", "ffv1", str(video_only)])
    missing = tmp_path / "voice_missing.wav"
    caplog.set_level("WARNING", logger="stages.media.audio")
    mix = mix_audio([missing, tracks["music"], corrupt, video_only], tmp_path / "mix.wav", 2.0)
    assert [t.path for t in mix.tracks] == [str(tracks["music"])]
    assert [path for path, _ in mix.skipped] == [str(missing), str(corrupt), str(video_only)]
    reasons = [reason for _, reason in mix.skipped]
    assert "does not exist" in reasons[0] and "cannot be read" in reasons[1] and "no audio stream" in reasons[2]
    assert len(mix.warnings) == 3
    for (path, _), line in zip(mix.skipped, mix.warnings, strict=True):
        assert line.startswith("audio: skipped ") and path in line and line.endswith("goes on without it")
        assert line in caplog.text
    assert not mix.silent and abs(measure_loudness(mix.path).integrated_lufs + 14) <= 1.0


@pytest.mark.parametrize("usable", ["none given", "all missing"])
def test_no_usable_track_gives_silence_of_the_duration(tmp_path, usable, caplog):
    given = [] if usable == "none given" else [tmp_path / "music.wav", tmp_path / "voice.wav"]
    caplog.set_level("WARNING", logger="stages.media.audio")
    mix = mix_audio(given, tmp_path / "out" / "mix.wav", 1.5, channels=1)
    data, info = _read(mix.path)
    assert info == {"codec": "pcm_s24le", "rate": RATE, "channels": 1}
    assert len(data) == int(1.5 * RATE) and not data.any()
    assert mix.warnings[-1] == NO_TRACK_WARNING and NO_TRACK_WARNING in caplog.text
    assert (mix.silent, mix.loudnorm_mode, mix.tracks) == (True, "skipped", ())
    assert mix.measured_lufs == -math.inf


def test_a_silent_mix_is_not_normalised(tmp_path):
    quiet = tmp_path / "music_silent.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "2", "-c:a", "pcm_s16le", str(quiet)])
    mix = mix_audio([quiet], tmp_path / "mix.wav", 2.0)
    data, _ = _read(mix.path)
    assert len(data) == 2 * RATE and not data.any()
    assert (mix.warnings, mix.loudnorm_mode, mix.silent) == ((SILENT_MIX_WARNING,), "skipped", True)
    assert [t.kind for t in mix.tracks] == ["music"]


@pytest.mark.parametrize("settings", [
    {"duration": 0.0}, {"duration": -1.0}, {"duration": float("nan")}, {"duration": float("inf")},
    {"duration": 1e-7}, {"target_lufs": -71.0}, {"target_lufs": -4.0}, {"target_lufs": float("nan")},
    {"fade_out": -0.5}, {"fade_out": float("nan")}, {"sample_rate": 22050}, {"channels": 6}, {"channels": 0},
    {"gains": {"music": 99.0}}, {"gains": {"drums": 0.0}}, {"out": "mix.mp3"},
])
def test_bad_settings_raise_settings_error(tracks, tmp_path, settings):
    settings = dict(settings)
    out = tmp_path / settings.pop("out", "mix.wav")
    duration = settings.pop("duration", 2.0)
    with pytest.raises(SettingsError, match="^audio: .*; "):
        mix_audio([tracks["music"]], out, duration, **settings)
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_left_when_ffmpeg_fails(tracks, tmp_path, monkeypatch):
    out = tmp_path / "mix.wav"
    out.write_bytes(b"the previous mix")
    real = loudness.run_ffmpeg

    def failing(args, *, ffmpeg=None, what="ffmpeg"):
        if what == "audio: loudness normalisation":
            Path(args[-1]).write_bytes(b"half a file")  # ffmpeg dies after writing part of the output
            raise EncodeError(f"{what}: ffmpeg failed with exit code 1: killed; check the input files")
        return real(args, ffmpeg=ffmpeg, what=what)

    monkeypatch.setattr(loudness, "run_ffmpeg", failing)
    with pytest.raises(EncodeError, match="loudness normalisation"):
        mix_audio([tracks["music"], tracks["voice"]], out, 2.0)
    assert out.read_bytes() == b"the previous mix"
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]
    out.unlink()
    with pytest.raises(EncodeError):
        mix_audio([tracks["music"]], out, 2.0)
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_fails_cleanly(tracks, tmp_path):
    blocker = tmp_path / "deliver"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(EncodeError, match="^audio: cannot write to the folder"):
        mix_audio([tracks["music"]], blocker / "mix.wav", 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["deliver"] and blocker.is_file()


def test_an_output_path_that_is_a_folder_fails_cleanly(tracks, tmp_path):
    folder = tmp_path / "mix.wav"
    folder.mkdir()
    with pytest.raises(EncodeError, match="^audio: cannot write the mix to"):
        mix_audio([tracks["music"]], folder, 1.0)
    assert folder.is_dir() and list(folder.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["mix.wav"]


def test_measure_loudness_of_a_known_tone_and_of_silence(tmp_path):
    # A 1 kHz sine peaking at -20 dBFS in both channels reads -20 LUFS (EBU R128's calibration) and -20 dBTP; it
    # lasts 6 s because the loudness range is built from 3 s windows (ffmpeg prints 20 LU for a 3 s steady tone).
    tone = tmp_path / "tone.wav"
    sine = "0.1*sin(2*PI*1000*t)"
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={sine}|{sine}:s=48000:d=6", "-c:a", "pcm_s24le", str(tone)])
    measured = measure_loudness(tone)
    assert measured.integrated_lufs == pytest.approx(-20.0, abs=0.2)
    assert measured.true_peak_dbtp == pytest.approx(-20.0, abs=0.3)
    assert measured.loudness_range_lu == pytest.approx(0.0, abs=0.2) and not measured.silent
    silence = tmp_path / "silence.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "1", "-c:a", "pcm_s24le", str(silence)])
    quiet = measure_loudness(silence)
    assert quiet.integrated_lufs == -math.inf and quiet.true_peak_dbtp == -math.inf and quiet.silent


def test_measure_loudness_of_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        measure_loudness(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(InputError, match="readable audio file"):
        measure_loudness(junk)


@pytest.mark.parametrize("kind", TRACK_KINDS)
def test_sample_tracks_have_the_asked_format_and_level(tmp_path, kind):
    path = make_sample_track(tmp_path / f"{kind}.wav", kind, 1.5, level_db=-24.0, seed=7)
    data, info = _read(path)
    assert info == {"codec": "pcm_s24le", "rate": RATE, "channels": 2} and len(data) == int(1.5 * RATE)
    assert _rms_db(data) == pytest.approx(-24.0, abs=0.05)
    assert np.abs(data).max() < 10 ** (-1 / 20)
    again, _ = _read(make_sample_track(tmp_path / "again.wav", kind, 1.5, level_db=-24.0, seed=7))
    other, _ = _read(make_sample_track(tmp_path / "other.wav", kind, 1.5, level_db=-24.0, seed=8))
    assert np.array_equal(data, again) and not np.array_equal(data, other)
    mono, info = _read(make_sample_track(tmp_path / "mono.wav", kind, 0.5, sample_rate=44100, channels=1,
                                         bit_depth=16))
    assert info == {"codec": "pcm_s16le", "rate": 44100, "channels": 1} and len(mono) == 22050


def test_sample_tracks_sound_like_their_kind(tmp_path):
    def spectrum(x):
        power = np.abs(np.fft.rfft(x[:, 0])) ** 2
        return np.fft.rfftfreq(len(x), 1 / RATE), power

    music, _ = _read(make_sample_track(tmp_path / "m.wav", "music", 2.0))
    freqs, power = spectrum(music)
    assert np.sort(power)[-8:].sum() > 0.9 * power.sum()  # a few sines hold the energy: tonal
    voice, _ = _read(make_sample_track(tmp_path / "v.wav", "voice", 2.0))
    freqs, power = spectrum(voice)
    assert power[(freqs >= 300) & (freqs <= 3400)].sum() > 0.99 * power.sum()
    assert np.array_equal(voice[:, 0], voice[:, 1])
    envelope = [_rms_db(part) for part in np.array_split(voice, 40)]  # 50 ms windows: syllables and gaps
    assert max(envelope) - min(envelope) > 20
    sfx, _ = _read(make_sample_track(tmp_path / "s.wav", "sfx", 2.0))
    windows = np.array_split(sfx, 100)
    assert sum(np.abs(w).max() < 1e-4 for w in windows) >= 5  # silence between the bursts


@pytest.mark.parametrize("settings", [
    {"kind": "drums"}, {"duration": 0.0}, {"sample_rate": 8000}, {"channels": 3}, {"bit_depth": 32},
    {"level_db": 0.0}, {"level_db": -3.0, "kind": "sfx"},
])
def test_sample_track_rejects_bad_settings(tmp_path, settings):
    args = {"kind": "music", "duration": 1.0, **settings}
    with pytest.raises(SettingsError, match="^audio: "):
        make_sample_track(tmp_path / "x.wav", args.pop("kind"), args.pop("duration"), **args)
    assert list(tmp_path.iterdir()) == []
