"""A scan paired with the subject's pre-injection baseline: register it, then move it.

The pipeline registers the baseline onto every later timepoint (rigid, driven by the two
cord regions) to remove what the baseline already showed from the graft, and a graft
model that takes the baseline (``ModelCard.takes_baseline``) sees the moved baseline as
its second input channel. Both go through these two functions, and so does
``graftwatch evaluate``, so the model is scored on what the pipeline gives it.
"""

from __future__ import annotations

import numpy as np

from imaging.registration import RigidTransform, apply_transform, register_rigid
from imaging.volume import LabelVolume, Volume
from models.input import image_for_model


def cord_region(labels: LabelVolume) -> LabelVolume:
    """Labels 1-3 (cord, lesion, graft) as one mask."""
    return LabelVolume((np.asarray(labels.array) >= 1).astype(np.uint8), labels.affine)


def register_baseline(target: Volume, target_labels: LabelVolume, baseline: Volume,
                      baseline_labels: LabelVolume) -> RigidTransform:
    """Rigid transform (target points -> baseline points) driven by the two cord regions;
    raises RegistrationError when it fails or its residual is too large."""
    return register_rigid(target, baseline, fixed_mask=cord_region(target_labels),
                          moving_mask=cord_region(baseline_labels))


def baseline_on_grid(baseline: Volume, transform: RigidTransform, target: Volume) -> Volume:
    """The baseline as one image (a multi-echo scan's echoes combined as the model sees
    them, ``models.input.image_for_model``) on ``target``'s grid: linear, 0 outside its
    field of view. (The baseline scan itself needs no moving: it is its own baseline.)"""
    return apply_transform(image_for_model(baseline), transform, target)
