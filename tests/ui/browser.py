"""Drive the page in Debian's Chromium with Playwright (no downloaded browser): upload, Process, wait for the
result video, open Compare; screenshots on the way. Used by test_browser.py; with ``VUP_SCREENSHOTS=DIR`` the
test also writes the README's screenshots (small palette PNGs) into DIR."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM_ENV = "VUP_CHROMIUM"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> Path:
    return Path(os.environ.get(CHROMIUM_ENV, "/usr/bin/chromium"))


def small_png(source: Path, target: Path, width: int = 1100) -> Path:
    """``source`` scaled to ``width`` pixels and reduced to 128 colours (README-sized)."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target


def drive(page_url: str, clip: Path, out_dir: Path, *, timeout_s: float = 300.0) -> dict[str, Path]:
    """Upload ``clip``, press Process (scale x2), wait for the result video; then open Compare on that run.

    Returns the screenshots taken (``process``, ``compare``). Raises Playwright's errors on a timeout.
    """
    from playwright.sync_api import expect, sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    shots: dict[str, Path] = {}
    timeout_ms = timeout_s * 1000
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path()), headless=True,
                                             args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_url, wait_until="domcontentloaded")
            # the page's load event fills in the remembered settings; interact only after it
            page.locator("#page-ready [data-ready]").wait_for(state="attached", timeout=60_000)
            page.locator("#upload input[type=file]").set_input_files(str(clip))
            expect(page.locator("#metadata")).to_contain_text("96x64", timeout=60_000)
            page.locator("#scale label").filter(has_text="2").first.click()
            expect(page.locator("#output-plan")).to_contain_text("192x128", timeout=30_000)
            page.locator("#process-button").click()
            expect(page.locator("#run-id textarea, #run-id input").first).not_to_have_value("", timeout=60_000)
            page.locator("#result-video video").wait_for(state="attached", timeout=timeout_ms)
            expect(page.locator("#run-status textarea, #run-status input").first).to_have_value("SUCCESS")
            # the browser can decode the result: its first frame is loaded (readyState HAVE_CURRENT_DATA)
            page.wait_for_function("document.querySelector('#result-video video').readyState >= 2",
                                   timeout=60_000)
            shots["process"] = out_dir / "process.png"
            page.screenshot(path=str(shots["process"]), full_page=True)

            page.get_by_role("tab", name="Compare").click()
            page.locator("#compare-refresh").click()  # selects the newest finished run
            page.locator("#compare-slider img").first.wait_for(state="visible", timeout=60_000)
            page.locator("#metrics").wait_for(state="visible", timeout=30_000)
            shots["compare"] = out_dir / "compare.png"
            page.screenshot(path=str(shots["compare"]), full_page=True)
            if errors:
                raise AssertionError(f"errors in the page: {errors}")
        finally:
            browser.close()
    return shots
