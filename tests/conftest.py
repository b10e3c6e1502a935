"""Suite-wide isolation (tests never touch the user's workspace or model cache), shared fixtures, and the tiers.

Tiers: the default tier is what `make test` (and CI) runs. Tests marked ``soak`` form the slow tier (many fault
trials, long load runs): they are deselected unless ``VUP_SLOW_TIER=1`` (`make test-slow`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from orchestration.workspace import Workspace
from stages.samples import make_sample_clip

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    session_tmp = Path(tempfile.mkdtemp(prefix="vup-tests-"))
    # Model weights converted from the weights package are cached once per test session, here.
    os.environ.setdefault("VUP_CACHE_DIR", str(session_tmp / "model-cache"))
    os.environ["VUP_WORKSPACE"] = str(session_tmp / "workspace")
    os.environ.pop("VUP_MODELS_DIR", None)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def slow_tier() -> bool:
    return os.environ.get("VUP_SLOW_TIER") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slow_tier():
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


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


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (ground-truth frames, offline weights); skips where absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (only on the developers' machines)")
    return SHARED
