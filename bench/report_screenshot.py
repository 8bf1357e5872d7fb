"""Render the bundled example's verdicts as HTML reports and screenshot them in chromium.

A look, not a measurement: run ``make demo`` first (it writes example_project/verdicts/), then

    .venv/bin/python bench/report_screenshot.py [OUT_DIR]

For each verdict there it writes ``<name>.html``, ``<name>.md`` and ``<name>.png`` (1280 x 2000,
the top of the page) into OUT_DIR (default ``bench/out``, not committed), and prints the paths
and sizes. Exit 1 when there is no verdict to render or chromium is missing or fails.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pytest_modelgate.verdict.reports import render_html, render_markdown
from pytest_modelgate.verdict.reports.browser import find_chromium, screenshot

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ROOT / "example_project" / "verdicts"


def main(argv: list[str]) -> int:
    """Render every example verdict; 0 when each page was written and screenshotted."""
    out = Path(argv[0]) if argv else ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    verdicts = sorted(p for p in VERDICTS.glob("*.json"))
    if not verdicts:
        print(f"no verdicts in {VERDICTS}: run `make demo` first", file=sys.stderr)
        return 1
    browser = find_chromium()
    if browser is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    for path in verdicts:
        verdict = json.loads(path.read_text(encoding="utf-8"))
        page = out / f"{path.stem}.html"
        page.write_text(render_html(verdict, path), encoding="utf-8")
        (out / f"{path.stem}.md").write_text(
            render_markdown(verdict, path, max_chars=65_000), encoding="utf-8"
        )
        shot = out / f"{path.stem}.png"
        started = time.monotonic()
        completed = screenshot(browser, page, shot)
        if completed.returncode != 0 or not shot.exists():
            print(f"chromium failed on {page}: {completed.stderr[-500:]!r}", file=sys.stderr)
            return 1
        print(
            f"{path.name}: {page} ({page.stat().st_size:,} bytes), {shot} "
            f"({shot.stat().st_size:,} bytes, {time.monotonic() - started:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
