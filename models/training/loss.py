"""Soft Dice + cross-entropy on soft targets, masked by what each scan annotates.

* ``full`` samples (phantoms, every label known): cross-entropy with the soft target
  fractions plus soft Dice over the foreground labels (1..K-1).
* ``cord`` samples (real scans, cord mask only): only the marginal P(cord region) =
  sum of P(labels 1..K-1) is supervised against the mask, with binary cross-entropy and
  soft Dice; how the network splits the region into cord, lesion and graft is left free.
* ``healthy`` samples (real scans of cords without a lesion): the mask is the cord label
  and lesion and graft are 0, so they take the ``full`` loss (left free, the segmenter
  labelled the bright gray matter of real T2*w cords as lesion).

``graft_loss`` (the binary graft model) applies the ``full`` loss to (background, graft)
for every sample.

For ``full`` samples of a model with a graft label (the last one), a volume term adds
``volume_weight x |sum P(graft) - sum target graft| / (sum P + sum target + VOLUME_SMOOTH)``,
a relative volume error bounded by 1 like a Dice loss (a patch without graft and a
diffuse false graft cannot swamp the other terms):
graftwatch reports graft volumes as sums of probabilities, so the network is taught that
its graft probability is a partial-volume fraction, not only a boundary.

Soft Dice is computed per sample and label; a label absent from both prediction and
target contributes 1 (perfect) through the smoothing term, so empty labels do not
dominate.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from imaging.errors import ModelError

SMOOTH = 1.0
VOLUME_SMOOTH = 20.0     # voxels of the model grid
ANNOTATIONS = ("full", "cord", "healthy")


def soft_dice(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-channel soft Dice of (C, X, Y, Z) tensors -> (C,)."""
    dims = tuple(range(1, probability.ndim))
    overlap = (probability * target).sum(dims)
    total = probability.sum(dims) + target.sum(dims)
    return (2 * overlap + SMOOTH) / (total + SMOOTH)


def _full_loss(logits: torch.Tensor, target: torch.Tensor, volume_weight: float = 0.0,
               class_weights: torch.Tensor | None = None) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=0)
    probability = log_p.exp()
    weighted = target if class_weights is None else target * class_weights
    cross_entropy = -(weighted * log_p).sum(0).mean()
    dice = soft_dice(probability[1:], target[1:]).mean()
    loss = cross_entropy + (1 - dice)
    if volume_weight:                                   # the last channel is the graft
        truth, predicted = target[-1].sum(), probability[-1].sum()
        loss = loss + volume_weight * (predicted - truth).abs() / (predicted + truth + VOLUME_SMOOTH)
    return loss


def _cord_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=0)
    log_region = torch.logsumexp(log_p[1:], dim=0)
    log_background = log_p[0]
    region = target[1:].sum(0).clamp(0, 1)
    cross_entropy = -(region * log_region + (1 - region) * log_background).mean()
    dice = soft_dice(log_region.exp()[None], region[None]).mean()
    return cross_entropy + (1 - dice)


def graft_loss(logits: torch.Tensor, target: torch.Tensor, volume_weight: float = 0.0,
               positive_weight: float = 1.0) -> torch.Tensor:
    """Loss of the binary graft model: logits (N, 2, ...) against the graft fraction of
    4-label targets (N, 4, ...), for every sample. Scans annotated for the cord only are
    real cords without a transplant, so their graft fraction 0 is the truth (negatives).

    Per sample: soft cross-entropy (the graft term weighted by ``positive_weight``: a graft
    is ~0.1 % of a patch, and once P(graft) is near 0 everywhere the Dice gradient
    vanishes through the softmax, so the graft voxels' own pull must be strong)
    + (1 - soft Dice of the graft) + the volume term.
    """
    if logits.shape[1] != 2 or target.shape[1] != 4 or logits.shape[2:] != target.shape[2:]:
        raise ModelError(f"graft loss: logits {tuple(logits.shape)} and target "
                         f"{tuple(target.shape)}; expected (N, 2, ...) and (N, 4, ...)")
    losses = []
    weights = logits.new_tensor([1.0, positive_weight]).view(2, 1, 1, 1)
    for sample_logits, sample_target in zip(logits.float(), target.float()):
        graft = sample_target[-1]
        losses.append(_full_loss(sample_logits, torch.stack([1 - graft, graft]), volume_weight,
                                 weights))
    return torch.stack(losses).mean()


def masked_loss(logits: torch.Tensor, target: torch.Tensor, annotations: Sequence[str],
                volume_weight: float = 0.0) -> torch.Tensor:
    """Mean over the batch of each sample's loss; logits and target are (N, K, X, Y, Z)."""
    if logits.shape != target.shape:
        raise ModelError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    if len(annotations) != logits.shape[0]:
        raise ModelError(f"{len(annotations)} annotations for a batch of {logits.shape[0]}")
    losses = []
    graft_weight = volume_weight if logits.shape[1] > 3 else 0.0   # the last label is a graft
    for sample_logits, sample_target, annotation in zip(logits.float(), target.float(), annotations):
        if annotation in ("full", "healthy"):
            losses.append(_full_loss(sample_logits, sample_target, graft_weight))
        elif annotation == "cord":
            losses.append(_cord_loss(sample_logits, sample_target))
        else:
            raise ModelError(f"annotation {annotation!r}; expected one of {ANNOTATIONS}")
    return torch.stack(losses).mean()
