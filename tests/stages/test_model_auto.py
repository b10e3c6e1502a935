"""``--model auto``: the content check (animation vs live action) and the choice of model, with its offline
fallback."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stages.errors import DownloadError, WeightsUnavailableError
from stages.models.catalog import ANIMATION_MODEL, AUTO_MODEL, DEFAULT_UPSCALE_MODEL, LIVE_ACTION_MODEL
from stages.models.store import ModelStore
from stages.ops.upscale import selection as selection_module
from stages.ops.upscale.content import ContentGuess, classify_frames, classify_video
from stages.ops.upscale.selection import decide_model
from stages.quality.samples import make_sample_clip


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("content")
    return {name: make_sample_clip(folder / f"{name}.mp4", width=320, height=180, seconds=1.0, fps=12,
                                   audio=False, image=name)
            for name in ("cartoon", "chelsea", "coffee", "astronaut")}


def test_auto_is_the_default_everywhere() -> None:
    from orchestration.resources.config import UpscaleConfig
    from stages.ops.upscale.engine import UpscaleSettings

    assert DEFAULT_UPSCALE_MODEL == AUTO_MODEL == UpscaleSettings().model == UpscaleConfig().model


def test_a_drawing_is_animation_and_photos_are_live_action(clips: dict[str, Path]) -> None:
    cartoon = classify_video(clips["cartoon"])
    assert cartoon.kind == "animation" and cartoon.confidence > 0.7, cartoon.reason
    assert "animation" in cartoon.reason and "confidence" in cartoon.reason
    for name in ("chelsea", "coffee", "astronaut"):
        guess = classify_video(clips[name])
        assert guess.kind == "live-action" and guess.confidence > 0.7, (name, guess.reason)


def test_the_check_does_not_depend_on_exposure_or_size(clips: dict[str, Path]) -> None:
    """A dark shot of a photo stays live action (contrast is stretched first); a large frame is reduced."""
    photo = _frames(clips["coffee"])[:3]
    dark = [(f * 0.25).astype(np.uint8) for f in photo]
    assert classify_frames(dark).kind == "live-action"
    big = [np.repeat(np.repeat(f, 4, axis=0), 4, axis=1) for f in _frames(clips["cartoon"])[:2]]
    assert classify_frames(big).kind == "animation"
    as_16bit = [f.astype(np.uint16) * 257 for f in photo]
    assert classify_frames(as_16bit).kind == "live-action"


def test_real_camera_clips_are_live_action(shared_dir: Path) -> None:
    for clip in sorted((shared_dir / "testdata" / "clips").glob("*.mp4")):
        guess = classify_video(clip)
        assert guess.kind == "live-action", (clip.name, guess.reason)


# ------------------------------------------------------------------------------------------- choosing a model


def _guess(kind: str) -> ContentGuess:
    return ContentGuess(kind, 0.9 if kind == "animation" else 0.1,  # type: ignore[arg-type]
                        {"flat": 0.5, "palette": 0.5, "mid_gradients": 0.5}, 8)


@pytest.fixture
def offline_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """A store whose downloads fail as they do without a network (the package models are present)."""
    monkeypatch.setattr(selection_module, "_FAILED_DOWNLOADS", {})
    store = ModelStore(cache_dir=tmp_path / "cache", allow_download=True, progress=False)

    resolve = store.resolve

    def no_network(model_id: str, explicit_path: object = None):
        if store.present(model_id):
            return resolve(model_id, explicit_path)
        raise DownloadError(f"download: {model_id} failed: cannot connect ([Errno -2] Name or service not known)")

    monkeypatch.setattr(store, "resolve", no_network)
    return store


def test_a_named_model_is_used_as_named(offline_store: ModelStore) -> None:
    decision = decide_model(offline_store, "realesrgan-x4plus", content=lambda: pytest.fail("no check needed"))
    assert decision.model_id == "realesrgan-x4plus" and decision.fallback is None


def test_auto_picks_by_content_when_the_model_is_here(tmp_path: Path) -> None:
    store = ModelStore(cache_dir=tmp_path, allow_download=False, progress=False)
    decision = decide_model(store, AUTO_MODEL, content=lambda: _guess("animation"))
    assert decision.model_id == ANIMATION_MODEL and decision.fallback is None
    assert decision.reason.startswith("auto:") and decision.describe()["content"]["kind"] == "animation"


def test_offline_live_action_falls_back_and_says_which_and_why(offline_store: ModelStore) -> None:
    # On a CPU the RRDB network (present from the package) is too slow: the fast anime network, with a warning.
    cpu = decide_model(offline_store, AUTO_MODEL, device_kind="cpu", content=lambda: _guess("live-action"))
    assert cpu.model_id == ANIMATION_MODEL
    assert LIVE_ACTION_MODEL in cpu.fallback and "cannot be reached" in cpu.fallback
    assert "realesrgan-x4plus is here but too slow on a CPU" in cpu.fallback
    assert f"vup models download {LIVE_ACTION_MODEL}" in cpu.fallback and "vup models import" in cpu.fallback
    assert "Name or service not known" not in cpu.fallback
    # On a GPU the best live-action model present is used.
    gpu = decide_model(offline_store, AUTO_MODEL, device_kind="cuda", content=lambda: _guess("live-action"))
    assert gpu.model_id == "realesrgan-x4plus" and "best live-action model on this machine" in gpu.fallback


def test_a_failed_download_is_tried_once_per_process(offline_store: ModelStore, monkeypatch) -> None:
    calls: list[str] = []
    failing = offline_store.resolve

    def counting(model_id: str, explicit_path: object = None) -> None:
        calls.append(model_id)
        failing(model_id)

    monkeypatch.setattr(offline_store, "resolve", counting)
    for _ in range(3):
        decide_model(offline_store, AUTO_MODEL, content=lambda: _guess("live-action"))
    assert calls == [LIVE_ACTION_MODEL]


def test_a_live_action_model_on_disk_is_preferred_to_the_fallback(tmp_path: Path, monkeypatch) -> None:
    """A user who imported (or downloaded) the live-action network gets it, without any download."""
    monkeypatch.setattr(selection_module, "_FAILED_DOWNLOADS", {})
    store = ModelStore(cache_dir=tmp_path / "cache", allow_download=False, progress=False)
    monkeypatch.setattr(store, "status", lambda model_id: type("S", (), {
        "available": model_id != LIVE_ACTION_MODEL, "reason": "downloads are disabled",
        "source": "package"})())
    monkeypatch.setattr(store, "present", lambda model_id: model_id == "compact-rybu-x4")
    decision = decide_model(store, AUTO_MODEL, device_kind="cpu", content=lambda: _guess("live-action"))
    assert decision.model_id == "compact-rybu-x4" and "downloads are disabled" in decision.fallback


def test_no_model_at_all_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(selection_module, "_FAILED_DOWNLOADS", {})
    store = ModelStore(cache_dir=tmp_path, allow_download=False, progress=False)
    monkeypatch.setattr(store, "present", lambda model_id: False)
    with pytest.raises(WeightsUnavailableError, match="no upscaling model can be used here"):
        decide_model(store, AUTO_MODEL, content=lambda: _guess("live-action"))


# ------------------------------------------------------------------------------------------------------- x2


def test_x2_plans_are_explained(tmp_path: Path) -> None:
    from stages.ops.upscale.selection import explain_scale

    store = ModelStore(cache_dir=tmp_path, allow_download=False, progress=False)
    auto = explain_scale(store, AUTO_MODEL, 2)
    assert LIVE_ACTION_MODEL in auto and "runs at x4" in auto and "as long as x4" in auto
    assert "realesrgan-x2plus, the true x2 network" in explain_scale(store, "realesrgan-x4plus", 2)
    assert "as long as x4" in explain_scale(store, "realesr-animevideov3-x2", 2)
    assert explain_scale(store, AUTO_MODEL, 4) is None
    assert "2 passes" in explain_scale(store, AUTO_MODEL, 8)


def test_x2_uses_a_true_x2_network_only_when_it_can_be_had(offline_store: ModelStore, monkeypatch) -> None:
    """realesrgan-x4plus has a true x2 sibling (x2plus, download only): offline, x2 is the x4 network and a
    downscale, and the note says why the x2 network was not used."""
    from stages.ops.upscale.selection import select_model

    chosen = select_model(offline_store, "realesrgan-x4plus", 2)
    assert chosen.model_id == "realesrgan-x4plus" and chosen.model_scale == 4
    assert "runs at x4" in chosen.note and "realesrgan-x2plus" in chosen.note and "cannot be used here" in chosen.note
    monkeypatch.setattr(offline_store, "present", lambda model_id: True)
    monkeypatch.setattr(offline_store, "status", lambda model_id: type("S", (), {
        "available": True, "reason": None, "source": "cache"})())
    monkeypatch.setattr(offline_store, "resolve", lambda model_id, explicit_path=None: type("W", (), {
        "sha256": "0" * 64, "source": "cache"})())
    sibling = select_model(offline_store, "realesrgan-x4plus", 2)
    assert sibling.model_id == "realesrgan-x2plus" and sibling.note is None
