"""Benchmark: load_dicom on a 64-slice 320x320 int16 series vs SimpleITK's ImageSeriesReader.

Run: ``python -m scripts.benchmarks.load_dicom [--repeats N]``. Writes the series with
pydicom into a temporary folder, checks both readers return the same voxels in the
same order, then prints
the median time of each (baseline: SimpleITK/GDCM reading the same files into a numpy
array, in the same run) and their ratio. Goal: ratio <= 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import timeit
from pathlib import Path

import numpy as np

SHAPE = (320, 320, 64)


def _simpleitk_reader(folder: Path):
    import SimpleITK as sitk

    def job():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return sitk.GetArrayFromImage(reader.Execute())  # (z, y, x)
    return job


def _median_ms(job, repeats: int) -> float:
    return 1000 * statistics.median(timeit.repeat(job, number=1, repeat=repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from imaging.dicom import load_dicom
    from imaging.dicom.synthetic import SeriesSpec, write_series
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, SHAPE, dtype=np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        write_series(folder, data, SeriesSpec(), rng)
        ours = load_dicom(folder)
        theirs = _simpleitk_reader(folder)()
        same = np.array_equal(ours.array, theirs.transpose(2, 1, 0))  # both sorted along the normal
        ours_ms = _median_ms(lambda: load_dicom(folder), args.repeats)
        base_ms = _median_ms(_simpleitk_reader(folder), args.repeats)
    print(f"{SHAPE[2]} files of {SHAPE[0]}x{SHAPE[1]} int16; median of {args.repeats}; "
          f"same voxels: {same}")
    print(f"graftwatch load_dicom {ours_ms:8.1f} ms   SimpleITK ImageSeriesReader "
          f"{base_ms:8.1f} ms   ratio {ours_ms / base_ms:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
