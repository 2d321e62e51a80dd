"""Benchmark: imaging.resample on a 320x320x64 clinical-size volume vs SimpleITK's resampler.

Run: ``python -m scripts.benchmarks.resample [--repeats N]``. Prints the median time of
each case for graftwatch and for SimpleITK's ResampleImageFilter (the baseline) doing the
same job in the same run, and their ratio.
"""

from __future__ import annotations

import argparse

import numpy as np

from scripts.benchmarks.timing import median_seconds

SHAPE = (320, 320, 64)
SPACING_MM = (0.5, 0.5, 3.0)


def _cases(volume, labels):
    from imaging.resample import resample_to_grid, resample_to_spacing
    rot = np.eye(4)
    a = np.deg2rad(7.0)
    rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    oblique = rot @ volume.affine
    return {
        "image to 1 mm iso (linear)": (lambda: resample_to_spacing(volume, (1, 1, 1)),
                                       (1.0, 1.0, 1.0), volume.affine, 1),
        "image onto 7-degree oblique grid (linear)": (
            lambda: resample_to_grid(volume, SHAPE, oblique), SPACING_MM, oblique, 1),
        "labels to 1 mm iso (nearest)": (lambda: resample_to_spacing(labels, (1, 1, 1)),
                                         (1.0, 1.0, 1.0), labels.affine, 0),
    }


def _sitk_job(array: np.ndarray, spacing_out, affine_out: np.ndarray, order: int, shape_out):
    import SimpleITK as sitk
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(SPACING_MM)
    direction = affine_out[:3, :3] / np.asarray(spacing_out)

    def job():
        f = sitk.ResampleImageFilter()
        f.SetSize([int(s) for s in shape_out])
        f.SetOutputSpacing([float(s) for s in spacing_out])
        f.SetOutputDirection(direction.flatten().tolist())
        f.SetInterpolator(sitk.sitkLinear if order else sitk.sitkNearestNeighbor)
        f.SetNumberOfThreads(1)
        return f.Execute(image)
    return job


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from imaging.resample import grid_for_spacing
    from imaging.volume import LabelVolume, Volume
    rng = np.random.default_rng(0)
    affine = np.diag([*SPACING_MM, 1.0])
    volume = Volume(rng.random(SHAPE, dtype=np.float32), affine)
    labels = LabelVolume((volume.array > 0.7).astype(np.uint8), affine)
    print(f"volume {SHAPE} at {SPACING_MM} mm; median of {args.repeats}; "
          "baseline SimpleITK ResampleImageFilter, 1 thread")
    for name, (job, spacing_out, affine_out, order) in _cases(volume, labels).items():
        shape_out = (grid_for_spacing(volume, spacing_out)[0] if affine_out is affine
                     else SHAPE)
        ours = median_seconds(job, args.repeats)
        source = labels.array if order == 0 else volume.array
        base = median_seconds(_sitk_job(source, spacing_out, affine_out, order, shape_out),
                               args.repeats)
        print(f"{name:45s} graftwatch {ours * 1000:8.1f} ms   SimpleITK {base * 1000:8.1f} ms"
              f"   ratio {ours / base:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
