"""Suite-wide isolation: tests never touch the user's workspace or model cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

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


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (ground-truth frames, offline weights); skips where absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (only on the developers' machines)")
    return SHARED
