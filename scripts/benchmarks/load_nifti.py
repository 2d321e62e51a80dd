"""Benchmark: imaging.load on NIfTI files vs nibabel's own load + get_fdata (the baseline).

Run: ``python -m scripts.benchmarks.load_nifti [--repeats N] [FILE ...]``. Without files it
times a generated 320x320x64 float32 volume (.nii and .nii.gz, in a temporary folder) and,
when ../shared/data is present, two real scans. Prints the median of N for each and the
ratio graftwatch / nibabel (1.0 = as fast as the baseline).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from scripts.benchmarks.timing import median_seconds

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_FILES = ("sct_testing_data/t2s/t2s_uncropped.nii.gz",
              "gm-challenge-data/sub-9418/anat/sub-9418_run-1_T2starw.nii.gz")


def _generated(folder: Path) -> list[Path]:
    import nibabel as nib
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.random((320, 320, 64), dtype=np.float32),
                          np.diag([0.5, 0.5, 3.0, 1.0]))
    paths = [folder / "gen_320x320x64.nii", folder / "gen_320x320x64.nii.gz"]
    for path in paths:
        nib.save(img, str(path))
    return paths


def _nibabel_job(path: Path) -> Callable[[], object]:
    import nibabel as nib
    return lambda: nib.load(str(path)).get_fdata()


def _graftwatch_job(path: Path) -> Callable[[], object]:
    from imaging import load
    return lambda: load(path, nonfinite="keep")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = list(args.files) or (_generated(Path(tmp)) +
                                     [SHARED_DATA / f for f in REAL_FILES
                                      if (SHARED_DATA / f).exists()])
        print(f"median of {args.repeats}; baseline: nibabel load + get_fdata (float64)")
        for path in files:
            ours = median_seconds(_graftwatch_job(path), args.repeats)
            base = median_seconds(_nibabel_job(path), args.repeats)
            print(f"{path.name:45s} graftwatch {ours * 1000:8.1f} ms   nibabel {base * 1000:8.1f} ms"
                  f"   ratio {ours / base:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
