"""The HTML report as a real browser shows it: headless Chromium renders it and the page is there."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.report_screenshot import find_chromium, main, rendered_dom

pytestmark = [pytest.mark.xdist_group("tiny_cohort"),
              pytest.mark.skipif(find_chromium() is None,
                                 reason="no Chromium on PATH (apt-get install chromium; .ci/run "
                                        "installs it): the report is not rendered in a browser")]


def test_report_renders_in_headless_chromium(reference_run, tmp_path):
    from PIL import Image
    report = reference_run / "sub-001" / "sub-001_report.html"
    png = tmp_path / "report.png"
    assert main([str(report), "--out", str(png), "--width", "1000", "--height", "1600"]) == 0
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1000)
    dark = pixels < 128  # text, table rules and the MR montage on a white page
    assert 0.01 < dark.mean() < 0.9, dark.mean()
    assert dark[:200].any() and dark[600:1200].any()  # drawn at the top (title) and further down
    dom = rendered_dom(report)
    assert "<title>graftwatch: sub-001</title>" in dom
    assert "graftwatch report: sub-001" in dom
    assert dom.count("data:image/png;base64,") >= 1  # the montage (no curve: no fraction measured)
    assert "<th>graft_volume_mm3</th>" in dom and "ses-02" in dom


def test_missing_report_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope.html"), "--out", str(tmp_path / "x.png")]) == 1
    assert "no such report" in capsys.readouterr().out
