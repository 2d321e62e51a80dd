"""Validation inside training: predict a whole case by tiles and score it per label.

This is a small local predictor (overlapping tiles averaged, bfloat16 autocast on CPU);
the product's inference lives in ``segmentation``. Scores are measured on the INPUT grid:
fine-grid probabilities are block-averaged (``models.input.block_average``), labels are the
argmax, truth is the argmax of the block-averaged targets (for phantoms the majority label
of the partial volume; for real scans the manual mask). Dice per label is pooled over
cases (sum of overlaps / sum of sizes) and also averaged over cases whose truth has it.
For a model with a graft label (the last of four), the graft volume as graftwatch
measures it (sum of graft probabilities) is compared with the partial-volume truth:
``graft_volume`` gives the median absolute error in % over cases whose truth graft
holds at least one input voxel, and the mean of the predicted graft volume, in input
voxels, over cases with no graft at all (what a control would wrongly report).
"""

from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np
import torch
from torch import nn

from models.input import block_average
from models.training.dataset import TrainingCase


def _starts(size: int, patch: int) -> list[int]:
    if size <= patch:
        return [0]
    step = max(1, patch // 2)
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def predict_probabilities(network: nn.Module, image: np.ndarray, patch: Sequence[int],
                          device: torch.device) -> np.ndarray:
    """Softmax probabilities (K, X, Y, Z) of a normalised image, by half-overlapping tiles."""
    shape = image.shape
    padded_shape = [max(n, p) for n, p in zip(shape, patch)]
    padded = np.zeros(padded_shape, np.float32)
    padded[: shape[0], : shape[1], : shape[2]] = image
    total = None
    counts = np.zeros(padded_shape, np.float32)
    network.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cpu"):
        for start in product(*[_starts(n, p) for n, p in zip(padded_shape, patch)]):
            box = tuple(slice(s, s + p) for s, p in zip(start, patch))
            tile = torch.from_numpy(np.ascontiguousarray(padded[box]))[None, None].to(device)
            probs = torch.softmax(network(tile).float(), dim=1)[0].cpu().numpy()
            if total is None:
                total = np.zeros((probs.shape[0], *padded_shape), np.float32)
            total[(slice(None),) + box] += probs
            counts[box] += 1
    return (total / counts)[:, : shape[0], : shape[1], : shape[2]]


def _labels_on_input_grid(fractions: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    return np.argmax(block_average(fractions, factors), axis=0)


def score_cases(network: nn.Module, cases: Sequence[TrainingCase], patch: Sequence[int],
                label_names: dict[int, str], device: torch.device) -> dict:
    """Dice per label (pooled and mean over cases with that label) on the input grid."""
    overlap: dict[str, float] = {}
    size: dict[str, float] = {}
    per_case: dict[str, list[float]] = {}
    volume_errors, false_volumes = [], []
    for case in cases:
        probs = predict_probabilities(network, case.image.astype(np.float32), patch, device)
        predicted = _labels_on_input_grid(probs, case.factors)
        truth = _labels_on_input_grid(case.target_fractions(), case.factors)
        if case.annotation == "full" and len(label_names) == 4:
            voxels = int(np.prod(case.factors))
            predicted_graft = float(probs[3].sum()) / voxels
            true_graft = float(case.target_fractions()[3].sum()) / voxels
            if true_graft >= 1.0:
                volume_errors.append(100.0 * abs(predicted_graft - true_graft) / true_graft)
            elif true_graft == 0.0:
                false_volumes.append(predicted_graft)
        if case.annotation == "cord" or len(label_names) == 2:
            pairs = {"cord region": (predicted > 0, truth > 0)}
        else:
            pairs = {name: (predicted == k, truth == k) for k, name in label_names.items() if k > 0}
            pairs["cord region"] = (predicted > 0, truth > 0)
        for name, (p, t) in pairs.items():
            inter, total = float((p & t).sum()), float(p.sum() + t.sum())
            overlap[name] = overlap.get(name, 0.0) + inter
            size[name] = size.get(name, 0.0) + total
            if t.any():
                per_case.setdefault(name, []).append(2 * inter / total)
    result = {"cases": len(cases),
            "dice_pooled": {n: round(2 * overlap[n] / size[n], 4) if size[n] else None for n in overlap},
            "dice_mean": {n: round(float(np.mean(v)), 4) for n, v in per_case.items()},
            "cases_with_label": {n: len(v) for n, v in per_case.items()}}
    if volume_errors or false_volumes:
        result["graft_volume"] = {
            "median_abs_error_pct": round(float(np.median(volume_errors)), 2) if volume_errors else None,
            "cases": len(volume_errors),
            "mean_false_voxels_without_graft": (round(float(np.mean(false_volumes)), 3)
                                                if false_volumes else None),
            "cases_without_graft": len(false_volumes)}
    return result


def score_graft_cases(network: nn.Module, cases: Sequence[TrainingCase], patch: Sequence[int],
                      device: torch.device) -> dict:
    """The binary graft model on the input grid: Dice of P(graft) >= 0.5 against the graft
    fraction >= 0.5, pooled and averaged over cases whose truth has a graft voxel; the
    graft volume (sum of probabilities) against the partial-volume truth, as
    ``score_cases`` reports it for the segmenter."""
    overlap = size = 0.0
    per_case, volume_errors, false_volumes = [], [], []
    for case in cases:
        probs = predict_probabilities(network, case.image.astype(np.float32), patch, device)
        voxels = int(np.prod(case.factors))
        true_fraction = block_average(case.target_fractions()[-1:], case.factors)[0]
        predicted_fraction = block_average(probs[-1:], case.factors)[0]
        p, t = predicted_fraction >= 0.5, true_fraction >= 0.5
        inter, total = float((p & t).sum()), float(p.sum() + t.sum())
        overlap, size = overlap + inter, size + total
        if t.any():
            per_case.append(2 * inter / total)
        true_graft = float(case.target_fractions()[-1].sum()) / voxels
        predicted_graft = float(probs[-1].sum()) / voxels
        if true_graft >= 1.0:
            volume_errors.append(100.0 * abs(predicted_graft - true_graft) / true_graft)
        elif true_graft == 0.0:          # controls, baselines and real cords: no transplant
            false_volumes.append(predicted_graft)
    return {"cases": len(cases),
            "dice_pooled": {"graft": round(2 * overlap / size, 4) if size else None},
            "dice_mean": {"graft": round(float(np.mean(per_case)), 4) if per_case else None},
            "cases_with_label": {"graft": len(per_case)},
            "graft_volume": {
                "median_abs_error_pct": (round(float(np.median(volume_errors)), 2)
                                         if volume_errors else None),
                "cases": len(volume_errors),
                "mean_false_voxels_without_graft": (round(float(np.mean(false_volumes)), 3)
                                                    if false_volumes else None),
                "cases_without_graft": len(false_volumes)}}
