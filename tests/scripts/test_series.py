"""``graftwatch series`` in-process: table and JSON, no patient identity, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imaging.dicom.synthetic import SeriesSpec, write_series
from scripts import series
from scripts.cli import main as cli_main


@pytest.fixture
def two_series(tmp_path, rng):
    data = np.zeros((8, 6, 4), np.int16)
    write_series(tmp_path / "t2", data, SeriesSpec(patient_name="Secret^Person"), rng)
    write_series(tmp_path / "megre", np.stack([data] * 3, axis=-1),
                 SeriesSpec(description="me_gre_ax", orientation=(1, 0, 0, 0, 1, 0),
                            echo_times_ms=(4.0, 9.0, 14.0), scanning_sequence="GR",
                            flip_angle_deg=20.0, pixel_spacing_mm=(0.6, 0.5),
                            slice_spacing_mm=2.0, patient_name="Secret^Person"), rng)
    return tmp_path


def test_table_lists_each_series(two_series, capsys):
    assert series.main([str(two_series)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["UID", "#", "description"]
    gre = next(line for line in lines if "me_gre_ax" in line)
    assert "axial" in gre and "8x6x4x3" in gre and "0.5x0.6x2" in gre and "T2starw" in gre
    t2 = next(line for line in lines if "t2_tse_sag" in line)
    assert "sagittal" in t2 and "8x6x4" in t2 and "T2w" in t2
    assert "Secret" not in out and "SUBJ01" not in out


def test_json_rows(two_series, capsys):
    assert series.main([str(two_series), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {row["description"]: row for row in rows}
    assert by_name["me_gre_ax"]["echoes"] == 3 and by_name["me_gre_ax"]["files"] == 12
    assert by_name["t2_tse_sag"]["echoes"] == 1
    assert all("patient" not in key for row in rows for key in row)


def test_problem_series_is_listed_with_its_problem(two_series, capsys):
    victim = sorted((two_series / "t2").iterdir())[0]
    victim.unlink()
    series.main([str(two_series)])
    out = capsys.readouterr().out
    assert "problem in" in out and "unevenly spaced" in out


def test_empty_folder_is_a_one_line_error_through_the_dispatcher(tmp_path, capsys):
    assert cli_main(["series", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "graftwatch series: error:" in err and "empty" in err


def test_help_is_instant_without_pydicom(capsys):
    with pytest.raises(SystemExit) as info:
        series.build_parser().parse_args(["--help"])
    assert info.value.code == 0
    assert "--json" in capsys.readouterr().out
    probe = "import sys, scripts.series; print('pydicom' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(series.__file__).parents[1], check=True)
    assert done.stdout.strip() == "False"
