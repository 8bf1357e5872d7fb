"""Screenshots of an HTML report in headless chromium: how a person would see it.

Used by the browser test of the HTML report and by ``bench/report_screenshot.py``. Chromium is
Debian's package (``apt-get install chromium``); nothing here downloads a browser.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["find_chromium", "screenshot"]


def find_chromium() -> str | None:
    """The path of a chromium executable on PATH, or None when there is none."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(
    browser: str,
    page: Path,
    shot: Path,
    *,
    width: int = 1280,
    height: int = 2000,
    timeout_s: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Render ``page`` (a local HTML file) and save the top ``width`` x ``height`` to ``shot``.

    The page is opened as a ``file://`` URI with no network use of its own (the report is
    self-contained); the caller checks ``returncode`` and the PNG.
    """
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
