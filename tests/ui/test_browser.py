"""One real browser: Debian's Chromium, driven by Playwright, against a live `vup serve`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stages.quality.samples import make_sample_clip

pytest.importorskip("playwright.sync_api")
from browser import chromium_path, drive, small_png

pytestmark = pytest.mark.skipif(
    not chromium_path().is_file(),
    reason=f"no Chromium at {chromium_path()}: `make browser` installs Debian's (CI does), or set VUP_CHROMIUM",
)


def test_page_upload_process_result_video_and_compare(served, tmp_path):
    clip = make_sample_clip(tmp_path / "beach.mp4", width=96, height=64, seconds=1.5, fps=12, audio=True)
    shots = drive(served.page_url, clip, tmp_path / "screenshots")
    for path in shots.values():
        assert path.is_file() and path.stat().st_size > 10_000
    target = os.environ.get("VUP_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for name, path in shots.items():
            small_png(path, Path(target) / f"{name}.png")
