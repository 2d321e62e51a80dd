"""The cord in wide sagittal views: found, Dice, time and what the pipeline had to do.

    python -m scripts.benchmarks.wide_views [--seeds 20000-20009] [--threads 2]
        [--locator NAME --models-dir DIR]

Each seed is the speed benchmark's volume (``scripts.benchmarks.inference``: a phantom
session of 64 sagittal slices of 1 mm, 320 x 320 at 0.8 mm, a 256 mm view in which the
cord curves by about 40 mm front to back). For each it prints the cord volume the
locator marked, the box, whether ``segment()`` (bf16 where the CPU runs it natively)
found the cord, its Dice against the truth (labels 1-3 as cord), the wall time of one
call and the notes of the result's reason (the box growing to follow the cord). Times
depend on the machine's load; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = (int(v) for v in text.split("-"))
        return list(range(first, last + 1))
    return [int(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="20000-20009", help="first-last or a,b,c")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--locator", default=None, help="locator name (default: shipped)")
    parser.add_argument("--models-dir", default=None, help="where --locator is installed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    from scripts.benchmarks.inference import phantom_volume
    from segmentation.inference import segment
    from segmentation.locate import locate_cord
    from segmentation.metrics import dice
    cpu = torch.device("cpu")
    model = load_model(DEFAULT_MODEL, cpu)
    locator = load_model(args.locator or DEFAULT_LOCATOR, cpu, weights_dir=args.models_dir)
    print(f"model {model.card.name}, locator {locator.card.name}, {args.threads} torch threads")
    print(f"{'seed':>6} {'marked mm3':>10} {'box':>14} {'found':>6} {'Dice':>6} {'seconds':>8}  notes")
    found_count, dices, times = 0, [], []
    for seed in _seeds(args.seeds):
        volume, truth = phantom_volume(seed)
        volume = volume.with_meta(contrast="T2w")
        where = locate_cord(volume, locator)
        if not times:
            segment(volume, model, locator=locator)          # warm-up
        start = time.perf_counter()
        result = segment(volume, model, locator=locator)
        seconds = time.perf_counter() - start
        score = dice(result.labels.array > 0, truth.array > 0)
        found_count += result.cord_found
        dices.append(score)
        times.append(seconds)
        box = "x".join(str(n) for n in where.box.shape) if where.box else "-"
        notes = "; ".join(result.reason.split("; ")[1:])
        print(f"{seed:>6} {where.cord_region_mm3:>10.0f} {box:>14} {str(result.cord_found):>6} "
              f"{score:>6.3f} {seconds:>8.2f}  {notes}")
    print(f"cord found in {found_count}/{len(dices)} views; Dice median {np.median(dices):.3f}, "
          f"lowest {min(dices):.3f}; median {np.median(times):.2f} s; load average "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
