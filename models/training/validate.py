"""Validation inside training: predict a whole case by tiles and score it per label.

This is a small local predictor (overlapping tiles averaged, bfloat16 autocast on CPU);
the product's inference lives in ``segmentation``. Scores are measured on the INPUT grid:
fine-grid probabilities are block-averaged (``models.input.block_average``), labels are the
argmax, truth is the argmax of the block-averaged targets (for phantoms the majority label
of the partial volume; for real scans the manual mask). Dice per label is pooled over
cases (sum of overlaps / sum of sizes) and also averaged over cases whose truth has it.
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
    for case in cases:
        probs = predict_probabilities(network, case.image.astype(np.float32), patch, device)
        predicted = _labels_on_input_grid(probs, case.factors)
        truth = _labels_on_input_grid(case.target_fractions(), case.factors)
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
    return {"cases": len(cases),
            "dice_pooled": {n: round(2 * overlap[n] / size[n], 4) if size[n] else None for n in overlap},
            "dice_mean": {n: round(float(np.mean(v)), 4) for n, v in per_case.items()},
            "cases_with_label": {n: len(v) for n, v in per_case.items()}}
