"""Benchmark: cord-driven rigid registration vs whole-volume, and N4 shrunk vs full resolution.

Run from the project root: ``python -m scripts.benchmarks.registration [--shape X Y Z]``.
The whole-volume baseline is slow at full size (over 20 minutes on 2 busy cores at
320x320x64); ``--shape 128 128 40`` runs everything in about a minute and a half.
Builds a clinical-size synthetic pair (default 320x320x64 at 0.5x0.5x1 mm, the moving
session in another orientation, moved by 4 mm and 4 degrees) from the continuous neck
of ``tests/imaging/synthetic_cord.py``, then times ``register_rigid`` with the same
SimpleITK settings three ways, printing time and error (mean distance at the cord
between the true and recovered transforms) side by side:

- cord-masked and cropped (the default; what graftwatch does),
- cord-masked, not cropped (``crop=False``),
- whole volume (no mask, no crop): the baseline.

Then N4 on a shrunk copy (factor 4, graftwatch's default) vs N4 at full resolution
(factor 1, the baseline) on the central part of the fixed volume given a known bias
field: time and correlation of the estimated log-field with the true one.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np


def _pair(shape, rng):
    from imaging.rigid import RigidTransform
    from tests.imaging.synthetic_cord import cord_mask, grid_affine, make_neck, sample_session
    neck = make_neck(rng)
    spacing = (0.5, 0.5, 1.0)
    fixed_affine = grid_affine(spacing, np.eye(3), (0.0, -3.0, 0.0), shape)
    moving_affine = grid_affine(spacing, np.diag([-1.0, -1.0, 1.0]), (1.0, -2.0, 2.0), shape)
    truth = RigidTransform.from_parameters([4.0, -3.0, 2.0], [2.5, -2.0, 2.0], (0.0, -2.0, 0.0))
    fixed = sample_session(neck, fixed_affine, shape, RigidTransform.identity(), rng)
    moving = sample_session(neck, moving_affine, shape, truth, rng)
    return fixed, moving, cord_mask(neck, fixed_affine, shape), truth


def _timed(job):
    start = time.perf_counter()
    result = job()
    return result, time.perf_counter() - start


def registration_rows(fixed, moving, mask, truth):
    from imaging.registration import RegistrationSettings, register_rigid
    settings = RegistrationSettings()
    cord = fixed.world_coordinates(np.argwhere(mask.array > 0))
    cases = [("cord-masked + cropped", mask, settings),
             ("cord-masked, no crop", mask, replace(settings, crop=False)),
             ("whole volume (baseline)", None, settings)]
    for name, case_mask, case_settings in cases:
        found, seconds = _timed(lambda: register_rigid(fixed, moving, case_mask,
                                                       settings=case_settings))
        yield (name, seconds, float(found.displacement_mm(cord, truth).mean()),
               found.residual_mm, found.iterations)


def n4_rows(fixed, rng):
    from imaging.preprocess import estimate_bias_field
    nx, ny, nz = fixed.spatial_shape
    part = fixed.crop((nx // 4, ny // 4, nz // 4), (3 * nx // 4, 3 * ny // 4, 3 * nz // 4))
    x, _, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in part.spatial_shape], indexing="ij")
    bias = np.exp(0.3 * np.sin(2.0 * x) + 0.15 * z)
    biased = part.with_array(part.array * bias)
    rows = []
    for name, shrink in (("N4 shrunk x4", 4), ("N4 full resolution (baseline)", 1)):
        field, seconds = _timed(lambda: estimate_bias_field(biased, shrink_factor=shrink))
        inside = part.array > 0.3
        r = np.corrcoef(np.log(field.array[inside]), np.log(bias[inside]))[0, 1]
        rows.append((name, seconds, float(r)))
    return part.spatial_shape, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(320, 320, 64),
                        metavar=("X", "Y", "Z"), help="grid of both sessions (default 320 320 64)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-n4", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    (fixed, moving, mask, truth), seconds = _timed(lambda: _pair(tuple(args.shape), rng))
    cord = fixed.world_coordinates(np.argwhere(mask.array > 0))
    print(f"synthetic pair {tuple(args.shape)} at 0.5x0.5x1 mm built in {seconds:.1f} s; "
          f"true motion {truth.displacement_mm(cord).mean():.2f} mm at the cord, "
          f"{truth.rotation_deg:.1f} deg")
    print(f"{'registration':<28}{'time s':>9}{'error mm':>10}{'residual mm':>13}{'iters':>7}")
    for name, secs, error, residual, iterations in registration_rows(fixed, moving, mask, truth):
        print(f"{name:<28}{secs:>9.2f}{error:>10.3f}{residual:>13.3f}{iterations:>7d}",
              flush=True)
    if not args.skip_n4:
        shape, rows = n4_rows(fixed, rng)
        title = "bias field on " + "x".join(map(str, shape))
        print(f"{title:<32}{'time s':>9}{'corr(log field)':>17}")
        for name, secs, r in rows:
            print(f"{name:<32}{secs:>9.2f}{r:>17.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
