"""Run every benchmark in turn (``make bench``); each prints its own table."""

from __future__ import annotations

import importlib

BENCHMARKS = ("load_dicom", "load_nifti", "resample", "registration", "inference",
              "pose_invariance", "wide_views", "pairing", "survival_accuracy", "phantom",
              "repeatability", "batch_throughput")


def main() -> int:
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"scripts.benchmarks.{name}")
        except ModuleNotFoundError:
            print(f"== {name}: not available in this version")
            continue
        print(f"== {name}")
        module.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
