"""Fixtures of the security tests: a canary folder next to the workspace, hostile file names, and pickles whose
unpickling would run code (the loopback HTTP server ``http_server`` is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import Canary, snapshot


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    folder = tmp_path / "canary"
    folder.mkdir()
    (folder / "secret.txt").write_text("do not read or overwrite\n")
    (folder / "passwd.mp4").write_bytes(b"not yours")
    return Canary(folder, snapshot(folder))
