"""Inference speed on a 64x320x320 T2w volume, 2 CPU threads: segment() vs stock MONAI.

    python -m scripts.benchmarks.inference [--repeats 3] [--skip-monai] [--seed 20001]
        [--model NAME --models-dir DIR]

The volume is a phantom session simulated at that size (sagittal, 64 slices of 1 mm,
320 x 320 at 0.8 mm; seed never used in training), so the truth is known. In the same
run it measures:

- ``segment()`` (locator over the whole field of view, fine model in the cord box,
  post-processing) in fp32 and bf16 autocast, bf16 with windows that do not overlap,
  and with test-time augmentation (fp32);
  wall time (median of --repeats after one warm-up), Dice of each against the truth,
  Dice between fp32 and bf16 labels;
- the peak RSS of segmenting the volume the way a user does: a fresh process (spawned)
  loads the models and the volume from a NIfTI file and runs ``segment()`` once per
  precision. Not this process's: simulating the phantom alone peaks at about 1.8 GB;
- the baseline: MONAI's ``sliding_window_inference`` with the same fine-model weights
  over the WHOLE volume, on the model grid segment() uses and with the intensities
  segment()'s fine model sees (normalised by its cord box's statistics), bf16 autocast
  (patch = the card's, overlap 0.25, Gaussian blending, 4 windows a batch), probabilities
  averaged back onto the input grid, labels by argmax (no locator, no box); then the same
  with segment()'s post-processing (the model, trained on cord boxes, marks cord far
  outside them; the largest cord component removes that): what the box saves;
- the ratio MONAI time / segment() bf16 time (goal >= 3x) with both Dice, and the
  targets (segment <= 1 s, peak RSS <= 1.5 GB).

Timings depend on the machine's load; the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from dataclasses import replace

import numpy as np
import torch

SHAPE_NOTE = "64x320x320 (RAS x: 64 sagittal slices of 1 mm; y, z: 320 at 0.8 mm)"
LABELS = {"cord": (1, 2, 3), "lesion": (2,), "graft": (3,)}


def phantom_volume(seed: int):
    """A sagittal phantom session at 64x320x320 (RAS) with its truth labels."""
    from imaging.phantom import sample_spec, simulate_subject
    rng = np.random.default_rng(seed)
    spec = sample_spec(rng, label="none", n_sessions=2, plane="sagittal")
    session = replace(spec.sessions[1], inplane_mm=0.8, slice_mm=1.0,
                      fov_mm=(64.0, 256.0, 256.0), fov_shift_mm=(0.0, 0.0, 0.0))
    simulated = simulate_subject(replace(spec, sessions=(session,)), rng, "sub-bench").sessions[0]
    return simulated.t2w.reorient("RAS"), simulated.dseg.reorient("RAS")


def peak_rss_gb() -> float:
    """This process's peak RSS (GB) since it started (or since its exec).

    Linux: VmHWM of /proc/self/status, which belongs to the process image. Not
    ``ru_maxrss``: Linux carries that across fork and exec, so a spawned child would
    report its parent's peak (the phantom simulation's) as its own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _segment_once_rss(path: str, precision: str, threads: int, model: str,
                      models_dir: Path | None) -> tuple[bool, float]:
    """In a fresh process: load models and volume, segment once; (cord found, peak RSS GB)."""
    torch.set_num_threads(threads)
    from imaging.io import load
    from models.registry import DEFAULT_LOCATOR, load_model
    from segmentation.inference import segment
    cpu = torch.device("cpu")
    volume = load(path).with_meta(contrast="T2w")
    result = segment(volume, load_model(model, cpu, models_dir),
                     locator=load_model(DEFAULT_LOCATOR, cpu, models_dir), precision=precision)
    return result.cord_found, peak_rss_gb()


def fresh_process_rss(volume, precisions, threads: int, model: str,
                      models_dir: Path | None = None) -> dict[str, float]:
    """Peak RSS (GB) of a new process segmenting ``volume`` from a NIfTI file, per precision."""
    from imaging.io import save
    rss = {}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "volume.nii.gz")
        save(volume, path)
        for precision in precisions:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                _, rss[precision] = pool.submit(_segment_once_rss, path, precision, threads, model,
                                              models_dir).result()
    return rss


def dices(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from segmentation.metrics import dice
    return {name: dice(np.isin(labels, ids), np.isin(truth, ids)) for name, ids in LABELS.items()}


def timed_segment(volume, model, locator, repeats: int, **options):
    from segmentation.inference import segment
    segment(volume, model, locator=locator, **options)          # warm-up
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = segment(volume, model, locator=locator, **options)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def monai_whole_volume(volume, model, box, precision: str) -> tuple[float, np.ndarray]:
    """Stock MONAI sliding window over the whole volume, on the model grid segment() uses
    (the RAS input refined by the same whole factors), normalised with the statistics of
    segment()'s cord box (the model was trained on box statistics: normalised over the
    whole view, it marked background as cord), probabilities averaged back onto the input
    grid; ``precision`` "bf16" under CPU autocast. Returns (seconds, probabilities (x, y, z, 4))."""
    try:
        from monai.inferers import sliding_window_inference
    except ImportError as error:
        raise SystemExit("the MONAI baseline needs MONAI: pip install -e '.[bench]' "
                         "(or pass --skip-monai)") from error
    from models.input import (block_average, model_grid, normalise_for_model, percentile_range,
                              refine)
    start = time.perf_counter()
    ras = volume.reorient("RAS")
    _, _, factors = model_grid(ras, model.card.spacing_mm)
    fine = refine(ras.array, factors, linear=True)
    crop = ras.crop(box.lower, box.upper)
    image = normalise_for_model(fine, model.card,
                                value_range=percentile_range(refine(crop.array, factors)))
    tensor = torch.from_numpy(image)[None, None]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=precision == "bf16"):
        logits = sliding_window_inference(tensor, model.card.patch_size, 4, model.network,
                                          overlap=0.25, mode="gaussian")
        probs = torch.softmax(logits.float(), dim=1)[0].numpy()
    back = np.moveaxis(block_average(probs, factors), 0, -1)
    return time.perf_counter() - start, back


def cleaned_labels(probabilities: np.ndarray, spacing) -> tuple[float, np.ndarray]:
    """(seconds, labels) of segment()'s post-processing applied to ``probabilities``."""
    from segmentation.postprocess import PostprocessConfig, clean_probabilities
    start = time.perf_counter()
    cleaned, _ = clean_probabilities(probabilities, spacing, PostprocessConfig())
    return time.perf_counter() - start, cleaned.argmax(axis=-1)


def _row(name: str, seconds: float, scores: dict[str, float], extra: str = "") -> str:
    cells = " ".join(f"{scores[k]:>7.3f}" for k in LABELS)
    return f"{name:<34} {seconds:>8.2f} {cells}  {extra}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    # 20000 (the former default) is a session in which locator-v1 finds no cord
    parser.add_argument("--seed", type=int, default=20_001)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--model", default=None, help="segmenter (default: the shipped one)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="read the segmenter and the locator from this folder of installed "
                        "models (default: the shipped weights)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    cpu = torch.device("cpu")
    model = load_model(args.model or DEFAULT_MODEL, cpu, args.models_dir)
    locator = load_model(DEFAULT_LOCATOR, cpu, args.models_dir)
    volume, truth = phantom_volume(args.seed)
    print(f"volume {SHAPE_NOTE}: {volume}; {args.threads} torch threads; model "
          f"{model.card.name} ({model.card.training.get('status', '?')}), locator "
          f"{locator.card.name}; load average {os.getloadavg()[0]:.1f}")
    head = f"{'method':<34} {'seconds':>8} " + " ".join(f"{k:>7}" for k in LABELS)
    print(head + "  (Dice vs truth)\n" + "-" * (len(head) + 18))
    runs = {}
    for precision in ("fp32", "bf16"):
        seconds, result = timed_segment(volume, model, locator, args.repeats, precision=precision)
        runs[precision] = (seconds, result)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result.timings_s.items())
        print(_row(f"segment() {precision}", seconds, dices(result.labels.array, truth.array),
                   f"[{stages}] box {result.box.shape if result.box else None}"))
    seconds, result = timed_segment(volume, model, locator, args.repeats, precision="bf16",
                                    overlap=0.0)
    print(_row("segment() bf16, overlap 0", seconds,
               dices(result.labels.array, truth.array)))
    rss = fresh_process_rss(volume, ("fp32", "bf16"), args.threads, model.card.name,
                            args.models_dir)
    agreement = dices(runs["bf16"][1].labels.array, runs["fp32"][1].labels.array)
    print(f"{'bf16 vs fp32 labels (Dice)':<34} {'':>8} "
          + " ".join(f"{agreement[k]:>7.3f}" for k in LABELS))
    seconds, result = timed_segment(volume, model, locator, 1, precision="fp32", tta=True)
    print(_row("segment() fp32 + TTA (8 flips)", seconds, dices(result.labels.array, truth.array),
               f"x{seconds / runs['fp32'][0]:.1f} the fp32 time"))
    best = min(runs.values(), key=lambda r: r[0])[0]
    if not args.skip_monai:
        bf16 = runs["bf16"]
        monai_seconds, probs = monai_whole_volume(volume, model, bf16[1].box, "bf16")
        print(_row("MONAI sliding_window_inference", monai_seconds,
                   dices(probs.argmax(axis=-1), truth.array),
                   "bf16, whole volume on segment()'s model grid, box statistics"))
        clean_seconds, labels = cleaned_labels(probs, volume.spacing)
        monai_seconds += clean_seconds
        monai_dice = dices(labels, truth.array)
        print(_row("  + segment()'s post-processing", monai_seconds, monai_dice,
                   "(largest cord component, islands)"))
        ours = dices(bf16[1].labels.array, truth.array)
        print(f"speed-up of segment() bf16 over MONAI bf16 + post-processing: "
              f"{monai_seconds / bf16[0]:.1f}x (goal >= 3x) at cord Dice {ours['cord']:.3f} vs "
              f"{monai_dice['cord']:.3f}, lesion {ours['lesion']:.3f} vs "
              f"{monai_dice['lesion']:.3f}")
    print(f"peak RSS of a fresh process segmenting the volume from NIfTI: fp32 {rss['fp32']:.2f} GB, "
          f"bf16 {rss['bf16']:.2f} GB (target <= 1.5 GB); this benchmark process (phantom "
          f"simulation included): {peak_rss_gb():.2f} GB")
    print(f"segment() best median time {best:.2f} s (target <= 1 s); load average "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
