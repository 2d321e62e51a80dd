"""``python -m scripts.report_screenshot REPORT.html --out PNG``: render a report in headless Chromium.

Writes a PNG of the page as a browser shows it (the check that a report displays), using
the first of ``chromium``, ``chromium-browser``, ``google-chrome`` found on PATH
(Debian/Ubuntu: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from imaging.errors import OutputError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 120


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_headless(report: Path, *flags: str) -> str:
    browser = find_chromium()
    if browser is None:
        raise OutputError(f"no Chromium found on PATH (looked for {', '.join(BROWSERS)}); "
                          "install it (apt-get install chromium) to render reports")
    if not Path(report).is_file():
        raise OutputError(f"{report}: no such report; pass a sub-X_report.html file")
    sandbox = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="graftwatch-chromium-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars", *sandbox,
                   f"--user-data-dir={profile}", *flags, Path(report).resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise OutputError(f"{browser} failed on {report} (exit {done.returncode}): "
                          f"{done.stderr.strip()[-500:]}")
    return done.stdout


def screenshot(report: Path, png: Path, width: int = 1200, height: int = 2000) -> Path:
    """Render ``report`` at width x height pixels into ``png``."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_headless(report, f"--window-size={width},{height}", f"--screenshot={png}")
    if not png.is_file():
        raise OutputError(f"Chromium wrote no screenshot {png} for {report}")
    return png


def rendered_dom(report: Path) -> str:
    """The page's DOM after Chromium loaded it (``--dump-dom``)."""
    return _run_headless(report, "--dump-dom")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.report_screenshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a sub-X_report.html (or index.html)")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: beside "
                        "the report, same name with .png)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2000)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or args.report.with_suffix(".png")
    try:
        print(screenshot(args.report, out, args.width, args.height))
    except OutputError as exc:
        print(f"report_screenshot: error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
