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
from models.training.dataset import REAL_ANNOTATIONS, TrainingCase


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
    """Softmax probabilities (K, X, Y, Z) of a normalised image (X, Y, Z) or (C, X, Y, Z),
    by half-overlapping tiles."""
    channels = image if image.ndim == 4 else image[None]
    shape = channels.shape[1:]
    padded_shape = [max(n, p) for n, p in zip(shape, patch)]
    padded = np.zeros((len(channels), *padded_shape), np.float32)
    padded[:, : shape[0], : shape[1], : shape[2]] = channels
    total = None
    counts = np.zeros(padded_shape, np.float32)
    network.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cpu"):
        for start in product(*[_starts(n, p) for n, p in zip(padded_shape, patch)]):
            box = tuple(slice(s, s + p) for s, p in zip(start, patch))
            tile = torch.from_numpy(np.ascontiguousarray(padded[(slice(None),) + box]))[None].to(device)
            probs = torch.softmax(network(tile).float(), dim=1)[0].cpu().numpy()
            if total is None:
                total = np.zeros((probs.shape[0], *padded_shape), np.float32)
            total[(slice(None),) + box] += probs
            counts[box] += 1
    return (total / counts)[:, : shape[0], : shape[1], : shape[2]]


def _labels_on_input_grid(fractions: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    return np.argmax(block_average(fractions, factors), axis=0)


class _GraftVolumes:
    """Graft volume as graftwatch measures it (sum of P(graft)) against the partial-volume
    truth, in input voxels: % error where the truth holds at least one voxel, the false
    volume where it holds none."""

    def __init__(self) -> None:
        self.errors: list[float] = []
        self.false: list[float] = []

    def add(self, probability: np.ndarray, fraction: np.ndarray, voxels: int) -> None:
        predicted, true = float(probability.sum()) / voxels, float(fraction.sum()) / voxels
        if true >= 1.0:
            self.errors.append(100.0 * abs(predicted - true) / true)
        elif true == 0.0:
            self.false.append(predicted)

    def summary(self) -> dict:
        return {"median_abs_error_pct": (round(float(np.median(self.errors)), 2)
                                         if self.errors else None),
                "cases": len(self.errors),
                "mean_false_voxels_without_graft": (round(float(np.mean(self.false)), 3)
                                                    if self.false else None),
                "cases_without_graft": len(self.false)}


class _DiceTally:
    """Dice per name, pooled over cases and averaged over cases whose truth has it."""

    def __init__(self) -> None:
        self.overlap: dict[str, float] = {}
        self.size: dict[str, float] = {}
        self.per_case: dict[str, list[float]] = {}

    def add(self, name: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        inter, total = float((predicted & truth).sum()), float(predicted.sum() + truth.sum())
        self.overlap[name] = self.overlap.get(name, 0.0) + inter
        self.size[name] = self.size.get(name, 0.0) + total
        if truth.any():
            self.per_case.setdefault(name, []).append(2 * inter / total)

    def summary(self, n_cases: int, always: Sequence[str] = ()) -> dict:
        """Scores of every name seen; names in ``always`` appear even without any case
        (pooled and mean None, 0 cases)."""
        pooled = {n: round(2 * self.overlap[n] / self.size[n], 4) if self.size[n] else None
                  for n in self.overlap}
        mean = {n: round(float(np.mean(v)), 4) for n, v in self.per_case.items()}
        counts = {n: len(v) for n, v in self.per_case.items()}
        for name in always:
            pooled.setdefault(name, None)
            mean.setdefault(name, None)
            counts.setdefault(name, 0)
        return {"cases": n_cases, "dice_pooled": pooled, "dice_mean": mean,
                "cases_with_label": counts}


def score_cases(network: nn.Module, cases: Sequence[TrainingCase], patch: Sequence[int],
                label_names: dict[int, str], device: torch.device) -> dict:
    """Dice per label (pooled and mean over cases with that label) on the input grid."""
    dice, volumes = _DiceTally(), _GraftVolumes()
    healthy_region = healthy_lesion = 0
    for case in cases:
        probs = predict_probabilities(network, case.image.astype(np.float32), patch, device)
        fractions = case.target_fractions()
        predicted = _labels_on_input_grid(probs, case.factors)
        truth = _labels_on_input_grid(fractions, case.factors)
        if case.annotation == "full" and len(label_names) == 4:
            volumes.add(probs[3], fractions[3], int(np.prod(case.factors)))
        if case.annotation == "healthy":
            healthy_region += int((predicted > 0).sum())
            healthy_lesion += int((predicted >= 2).sum())
        if case.annotation in REAL_ANNOTATIONS or len(label_names) == 2:
            pairs = {"cord region": (predicted > 0, truth > 0)}
        else:
            pairs = {name: (predicted == k, truth == k) for k, name in label_names.items() if k > 0}
            pairs["cord region"] = (predicted > 0, truth > 0)
        for name, (p, t) in pairs.items():
            dice.add(name, p, t)
    result = dice.summary(len(cases))
    if healthy_region:
        # lesion or graft labels inside healthy real cords (their truth: none), pooled
        result["healthy_lesion_share"] = round(healthy_lesion / healthy_region, 4)
    if volumes.errors or volumes.false:
        result["graft_volume"] = volumes.summary()
    return result


def network_input(case: TrainingCase, baseline: bool) -> np.ndarray:
    """What the network sees of a whole case: the image, with ``baseline`` stacked with its
    prior (zeros when it has none, as at inference without a baseline)."""
    image = case.image.astype(np.float32)
    if not baseline:
        return image
    prior = np.zeros_like(image) if case.prior is None else case.prior.astype(np.float32)
    return np.stack([image, prior])


def score_graft_cases(network: nn.Module, cases: Sequence[TrainingCase], patch: Sequence[int],
                      device: torch.device, baseline: bool = False) -> dict:
    """The binary graft model on the input grid: Dice of P(graft) >= 0.5 against the graft
    fraction >= 0.5, pooled and averaged over cases whose truth has a graft voxel; the
    graft volume (sum of probabilities) against the partial-volume truth, as
    ``score_cases`` reports it for the segmenter (here over every case: controls,
    baselines and real cords alike have no transplant)."""
    dice, volumes = _DiceTally(), _GraftVolumes()
    for case in cases:
        probs = predict_probabilities(network, network_input(case, baseline), patch, device)
        graft = case.target_fractions()[-1]
        predicted = block_average(probs[-1:], case.factors)[0] >= 0.5
        dice.add("graft", predicted, block_average(graft[None], case.factors)[0] >= 0.5)
        volumes.add(probs[-1], graft, int(np.prod(case.factors)))
    return {**dice.summary(len(cases), always=("graft",)), "graft_volume": volumes.summary()}
