from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.workspace import Workspace
from stages.samples import make_sample_clip


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A fresh workspace with its own Dagster instance (DAGSTER_HOME) in a temp dir."""
    root = tmp_path / "ws"
    monkeypatch.setenv("VUP_WORKSPACE", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    return Workspace(root).ensure()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of a real photo with camera motion, 64x48 at 12 fps, with audio: 18 frames."""
    return make_sample_clip(tmp_path_factory.mktemp("clips") / "tiny.mp4", width=64, height=48, seconds=1.5,
                            fps=12, audio=True)
