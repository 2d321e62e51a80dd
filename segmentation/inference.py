"""``segment``: cord, lesion and graft probabilities for one scan, on CUDA or the CPU.

Stages (each timed in ``SegmentationResult.timings_s``):

1. prepare: check the contrast against the model card, reorient to RAS
   (bit-exact), combine echoes of a 4-D T2*w scan into one image (``image_for_model``).
2. locate: the locator model over the whole field of view at its coarse spacing
   (``segmentation.locate``); no cord in a small field of view (at most
   ``LocatorConfig.whole_view_max_mm3``) -> the whole view is the box; no cord in a
   larger one -> a result with ``cord_found=False``, empty labels and the reason.
3. fine: the segmentation model in a box around the cord (the training box: margin
   15 mm on RAS x and y, the whole field of view along z), on the model grid that
   refines the input grid by integer factors (``models.input``), normalised over the
   box as in training, sliding window with Gaussian blending; optional test-time augmentation by the
   8 combinations of axis flips (each flipped back before averaging).
   With a graft model (``graft=``, task "graft"), its P(graft) over the segmenter's cord
   region (plus 5 mm) replaces the segmenter's graft channel on the same model-grid
   array, per TTA pass (``segmentation.graft_refine``).
4. postprocess: ``segmentation.postprocess`` on the box (components, graft near the
   cord, islands in mm3); less than ``LocatorConfig.min_cord_mm3`` of cord left ->
   "no cord found" with the reason.
5. assemble: probabilities block-averaged back to the input grid (exact partial
   volume: sum of probabilities x voxel volume is a volume in mm3), pasted into the
   full field of view (background probability 1 outside the box), labels = argmax,
   everything reoriented back to the input's own orientation and affine.

A second pass over the same scan (another baseline for the graft model) can reuse the
first pass's segmenter output: ``segment(..., keep_fine_pass=True)`` keeps it on the result
(``SegmentationResult.fine_pass``: the final box and the segmenter's model-grid
probabilities per TTA pass) and ``segment(..., reuse=that)`` skips the locator, the box
growth and the segmenter, running only the graft model, the post-processing and the
assembly; the result equals a full second pass over the same box (the same arrays go in;
a full pass may grow its box differently, the graft being part of the foreground it follows).

Precision "auto": "fp16" autocast on CUDA; on the CPU "bf16" autocast where oneDNN
runs bfloat16 natively (AVX512-BF16 / AMX: measured ~2.8x faster than fp32 per window
batch, with the Dice of scripts/benchmarks/inference.py), else "fp32" (emulated bf16
is slower than fp32). Device "auto": CUDA when available.
When ``model``/``locator`` are ``LoadedModel``s, they run on their own device and
``device`` must be "auto" or that device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
import torch

from imaging.errors import ContrastError, ModelError
from imaging.volume import LabelVolume, Volume, handed_over
from models.input import block_average, image_for_model, model_grid, normalise_for_model, refine
from models.registry import (DEFAULT_LOCATOR, DEFAULT_MODEL, PAIRED, LoadedModel, graft_model_name,
                             load_model)
from segmentation.device import cpu_has_native_bf16, resolve_device
from segmentation.graft_refine import apply_graft_model, check_graft_model
from segmentation.locate import (CordBox, CordLocation, LocatorConfig, box_through_affines,
                                 end_gaps_mm, field_of_view_mm3, grown_box, locate_cord,
                                 min_cord_length_mm, model_probabilities, view_height_mm,
                                 whole_view_box)
from segmentation.postprocess import (GRAFT, PostprocessConfig, PostprocessReport,
                                      clean_probabilities)
from segmentation.sliding_window import PRECISIONS

log = logging.getLogger(__name__)

TTA_FLIPS = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
LABEL_NAMES = {0: "background", 1: "cord", 2: "lesion", 3: "graft"}


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """Everything ``segment`` found, in the input's own space and orientation."""

    labels: LabelVolume
    probabilities: Volume                  # (x, y, z, label), sums to 1 per voxel
    uncertainty: Volume                    # normalised predictive entropy in [0, 1]
    graft_probability_samples: np.ndarray | None   # (K, x, y, z) from TTA, or None
    device: str
    precision: str
    model: str
    locator: str
    graft_model: str | None                # the graft model whose P(graft) was used, or None
    cord_found: bool
    reason: str
    box: CordBox | None                    # in the input's own voxel indices
    timings_s: Mapping[str, float]
    postprocess: PostprocessReport | None
    fine_pass: "FinePass | None" = field(default=None, repr=False)   # keep_fine_pass=True

    def volumes_mm3(self) -> dict[str, float]:
        """Partial-volume volume of each label: sum of its probability x voxel volume."""
        sums = self.probabilities.array.reshape(-1, self.probabilities.shape[-1]).sum(axis=0)
        voxel = self.probabilities.voxel_volume_mm3
        return {LABEL_NAMES.get(k, str(k)): float(v) * voxel for k, v in enumerate(sums) if k}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "locator": self.locator, "graft_model": self.graft_model,
                "device": self.device,
                "precision": self.precision, "cord_found": self.cord_found, "reason": self.reason,
                "box": None if self.box is None else self.box.to_dict(),
                "volumes_mm3": self.volumes_mm3(), "timings_s": dict(self.timings_s),
                "tta_samples": 0 if self.graft_probability_samples is None
                else int(self.graft_probability_samples.shape[0]),
                "postprocess": None if self.postprocess is None else self.postprocess.to_dict()}


def _loaded(model: str | LoadedModel, device: torch.device | None, task: str) -> LoadedModel:
    if not isinstance(model, LoadedModel):
        model = load_model(model, device if device is not None else resolve_device("auto"))
    elif device is not None and model.device != device:
        raise ModelError(f"model {model.card.name!r} is loaded on {model.device} but device "
                         f"{device} was asked for; pass device='auto' or load it on {device}")
    if model.card.task != task:
        raise ModelError(f"model {model.card.name!r} has task {model.card.task!r}; expected a "
                         f"{task!r} model here (model= takes a segmentation model, locator= a "
                         "locator)")
    return model


def _graft_model(graft: str | LoadedModel | None, fine: LoadedModel) -> LoadedModel | None:
    """The graft model to run with segmenter ``fine`` (a name, "paired", loaded, or None)."""
    if isinstance(graft, str):
        graft = graft_model_name(graft, fine.card.name)
    if graft is None:
        return None
    loaded = _loaded(graft, fine.device, "graft")
    check_graft_model(loaded.card, fine.card)
    return loaded


def _check_contrast(volume: Volume, contrast: str | None, force: bool, cards) -> str:
    found = contrast or volume.meta.get("contrast")
    if found is None:
        raise ContrastError(f"{volume!r} has no contrast in its metadata; expected one of "
                            f"{list(cards[0].contrasts)}: pass contrast='T2w' (command line: "
                            "--contrast T2w)")
    for card in cards:
        if found not in card.contrasts and not force:
            raise ContrastError(f"contrast {found!r} is not one model {card.name!r} was trained "
                                f"on; it accepts {list(card.contrasts)}. Pass force_contrast=True "
                                "(command line: --force-contrast) to run it anyway")
    return str(found)


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: expected 'auto' or one of {PRECISIONS}")
    return precision


@dataclass(frozen=True, eq=False)
class FinePass:
    """The segmenter's own output of one scan's final box (model grid, one array per TTA
    pass, before the graft model): what a second pass with another baseline reuses."""

    box: CordBox                       # RAS voxel indices of the scan
    segmenter_runs: tuple[np.ndarray, ...]
    tta: bool
    reason: str
    shape: tuple[int, int, int]        # the scan's RAS grid, to refuse another scan's pass
    model: str                         # the segmenter that made it


def _fine_array(image_ras: Volume, box: CordBox, card) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(normalised model-grid array of the box, refinement factors, fine spacing)."""
    crop = image_ras.crop(box.lower, box.upper)
    _, _, factors = model_grid(crop, card.spacing_mm)
    fine = normalise_for_model(refine(crop.array, factors, linear=True), card)
    return fine, factors, np.asarray(crop.spacing) / np.asarray(factors)


def _flipped(array: np.ndarray, flips: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.flip(array, flips)) if flips else array


def _fine_probabilities(image_ras: Volume, box: CordBox, loaded: LoadedModel,
                        graft: LoadedModel | None, *, tta: bool, precision: str,
                        batch_size: int, overlap: float,
                        baseline_ras: Volume | None = None,
                        segmenter_runs: tuple[np.ndarray, ...] | None = None
                        ) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """One (labels, x, y, z) array per TTA pass, block-averaged onto the input-grid box;
    with a graft model, its P(graft) replaces the segmenter's (``graft_refine``), seeing
    the registered baseline (``baseline_ras``, the input grid in RAS) when it takes one.
    Also the segmenter's own model-grid output per pass (``segmenter_runs`` given: reused
    instead of running the segmenter)."""
    fine, factors, fine_spacing = _fine_array(image_ras, box, loaded.card)
    prior = None
    if graft is not None and graft.card.takes_baseline and baseline_ras is not None:
        prior = _fine_array(baseline_ras, box, loaded.card)[0]
    runs, own = [], []
    for k, flips in enumerate(TTA_FLIPS if tta else ((),)):
        view = _flipped(fine, flips)
        probs = (segmenter_runs[k] if segmenter_runs is not None else
                 model_probabilities(loaded, view, precision=precision, batch_size=batch_size,
                                     overlap=overlap))
        own.append(probs)
        if graft is not None:
            probs = apply_graft_model(probs, view, fine_spacing, graft, precision=precision,
                                      batch_size=batch_size, overlap=overlap,
                                      baseline=None if prior is None else _flipped(prior, flips))
        if flips:
            probs = np.flip(probs, tuple(a + 1 for a in flips))
        runs.append(block_average(probs, factors).astype(np.float32))
    return runs, tuple(own)


def _entropy(probs: np.ndarray) -> np.ndarray:
    """Normalised entropy (0 certain, 1 uniform) over the last axis."""
    p = np.clip(probs, 1e-12, 1.0)
    return (-(p * np.log(p)).sum(axis=-1) / np.log(probs.shape[-1])).astype(np.float32)


def _to_input_space(array: np.ndarray, ras_affine: np.ndarray, volume: Volume, kind=Volume,
                    meta: Mapping[str, Any] | None = None):
    """A fresh array on the RAS grid (handed over: not written again) as a volume on
    ``volume``'s own grid (bit-exact permutation)."""
    back = kind(handed_over(array), ras_affine).reorient(volume.orientation)
    return kind(back.array, volume.affine, dict(meta or {}))


@dataclass(frozen=True)
class _Context:
    volume: Volume
    image_ras: Volume
    model: LoadedModel
    locator: LoadedModel
    graft: LoadedModel | None
    precision: str
    meta: Mapping[str, Any]
    baseline_ras: Volume | None = None


def _result(ctx: _Context, probs_ras: np.ndarray, samples: np.ndarray | None, *, found: bool,
            reason: str, box: CordBox | None, timings: dict[str, float],
            report: PostprocessReport | None) -> SegmentationResult:
    """Labels and entropy from the probabilities (computed in the box only: outside it the
    answer is certain background), everything moved to the input's space."""
    ras_affine, volume = ctx.image_ras.affine, ctx.volume
    labels = np.zeros(probs_ras.shape[:3], dtype=np.uint8)
    entropy = np.zeros(probs_ras.shape[:3], dtype=np.float32)
    if box is not None:
        labels[box.slices] = probs_ras[box.slices].argmax(axis=-1)
        entropy[box.slices] = _entropy(probs_ras[box.slices])
    input_box = None if box is None else box_through_affines(
        np.asarray(box.lower) - 0.5, np.asarray(box.upper) - 0.5, ras_affine, volume)
    if samples is not None:
        samples = np.moveaxis(_to_input_space(np.moveaxis(samples, 0, -1), ras_affine,
                                              volume).array, -1, 0)
    return SegmentationResult(
        labels=_to_input_space(labels, ras_affine, volume, LabelVolume,
                               {**ctx.meta, "labels": LABEL_NAMES}),
        probabilities=_to_input_space(probs_ras, ras_affine, volume, Volume,
                                      {**ctx.meta, "labels": LABEL_NAMES}),
        uncertainty=_to_input_space(entropy, ras_affine, volume, Volume,
                                    {**ctx.meta, "quantity": "normalised entropy"}),
        graft_probability_samples=samples, device=str(ctx.model.device),
        precision=ctx.precision, model=ctx.model.card.name, locator=ctx.locator.card.name,
        graft_model=None if ctx.graft is None else ctx.graft.card.name,
        cord_found=found, reason=reason, box=input_box, timings_s=dict(timings),
        postprocess=report)


def _background(shape: tuple[int, int, int], n_labels: int) -> np.ndarray:
    probs = np.zeros(tuple(shape) + (n_labels,), dtype=np.float32)
    probs[..., 0] = 1.0
    return probs


def _segment_box(ctx: _Context, box: CordBox, tta: bool, batch_size: int, overlap: float,
                 config: PostprocessConfig | None, timings: dict[str, float],
                 segmenter_runs: tuple[np.ndarray, ...] | None = None):
    """(probabilities, TTA graft samples, post-processing report, segmenter runs) of a box."""
    start = time.perf_counter()
    runs, own = _fine_probabilities(ctx.image_ras, box, ctx.model, ctx.graft, tta=tta,
                                    precision=ctx.precision, batch_size=batch_size,
                                    overlap=overlap, baseline_ras=ctx.baseline_ras,
                                    segmenter_runs=segmenter_runs)
    mean = np.moveaxis(np.mean(runs, axis=0), 0, -1)
    timings["fine"] = timings.get("fine", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    report = None
    if config is not None:
        mean, report = clean_probabilities(mean, ctx.image_ras.spacing, config)
    samples = None
    if tta:
        kept = mean[..., GRAFT] > 0
        samples = np.stack([run[GRAFT] * kept for run in runs])
    timings["postprocess"] = timings.get("postprocess", 0.0) + time.perf_counter() - start
    return mean, samples, report, own


def _follow_cord(image_ras: Volume, box: CordBox, config: LocatorConfig, segment_box):
    """``segment_box`` on ``box``, then on the box grown wherever the cord runs out of it
    (``segmentation.locate.grown_box``), at most ``config.max_box_growth`` times.
    Returns the last box, its (probabilities, samples, report) and how often it grew."""
    found = segment_box(box)
    for grown in range(config.max_box_growth):
        bigger = grown_box(box, found[0].argmax(axis=-1) > 0, image_ras, config.margin_mm)
        if bigger == box:
            return box, found, grown
        box, found = bigger, segment_box(bigger)
    return box, found, config.max_box_growth


def _no_cord(ctx: _Context, reason: str, timings: dict[str, float]) -> SegmentationResult:
    log.info("%s", reason)
    probs = _background(ctx.image_ras.spatial_shape, ctx.model.card.n_labels)
    return _result(ctx, probs, None, found=False, reason=reason, box=None, timings=timings,
                   report=None)


def _implausible_cord(box_probs: np.ndarray, box: CordBox, image_ras: Volume,
                      config: LocatorConfig, region_mm3: float | None, reason: str) -> str | None:
    """Why the fine model's cord is no cord (too little of it, it ends inside the field of
    view at both ends, or it is too short; see ``segmentation.locate``), or None when it
    is plausible."""
    cord_mm3 = float(box_probs[..., 1:].sum()) * image_ras.voxel_volume_mm3
    where_text = (reason if region_mm3 is None
                  else f"the locator marked {region_mm3:.0f} mm3 of cord region")
    if cord_mm3 < config.min_cord_mm3:
        return (f"no cord found: {where_text}, but the segmenter found only {cord_mm3:.0f} mm3 "
                f"of cord there (at least {config.min_cord_mm3:g} mm3 needed); is the spinal "
                "cord in this field of view?")
    low, high = end_gaps_mm(box_probs.argmax(axis=-1) > 0, box, image_ras)
    if min(low, high) > config.max_end_gap_mm:
        return (f"no cord found: {where_text}, and what the segmenter marked there "
                f"({cord_mm3:.0f} mm3) ends {low:.0f} mm above the inferior and {high:.0f} mm "
                f"below the superior edge of the field of view; a spinal cord runs out of the "
                f"view at one end at least (within {config.max_end_gap_mm:g} mm). Is the spinal "
                "cord in this field of view?")
    length = view_height_mm(image_ras) - low - high
    shortest = min_cord_length_mm(image_ras, config)
    if length < shortest:
        return (f"no cord found: {where_text}, and what the segmenter marked there "
                f"({cord_mm3:.0f} mm3) is {length:.0f} mm long from top to bottom; a spinal cord "
                f"runs through the field of view (at least {shortest:.0f} mm of it here). Is the "
                "spinal cord in this field of view?")
    return None


def _box_to_segment(where: CordLocation, image_ras: Volume,
                    config: LocatorConfig) -> tuple[CordBox | None, str]:
    """The locator's box, else the whole field of view when it is small (see
    ``segmentation.locate``), else None; with the reason in words."""
    if where.cord_found:
        return where.box, where.reason
    view_mm3 = field_of_view_mm3(image_ras)
    if view_mm3 > config.whole_view_max_mm3:
        return None, where.reason
    return whole_view_box(image_ras), (
        f"the locator found no cord (largest cord-region probability "
        f"{where.max_probability:.2f}), so the whole field of view ({view_mm3:.0f} mm3, at most "
        f"{config.whole_view_max_mm3:g} mm3) was segmented")


def _baseline_ras(baseline: Volume | None, volume: Volume,
                  graft: LoadedModel | None) -> Volume | None:
    """The registered baseline in RAS, one image (echoes combined), when the graft model
    takes one; it must already lie on ``volume``'s grid."""
    if baseline is None or graft is None or not graft.card.takes_baseline:
        return None
    if baseline.spatial_shape != volume.spatial_shape or \
            not np.allclose(baseline.affine, volume.affine, atol=1e-4):
        raise ModelError(f"baseline {baseline!r} is not on the grid of {volume!r}; register it "
                         "and resample it onto the scan first "
                         "(segmentation.baseline_pairing.baseline_on_grid)")
    return image_for_model(baseline.reorient("RAS"))


def segment(volume: Volume, model: str | LoadedModel = DEFAULT_MODEL,
            device: str | torch.device = "auto", contrast: str | None = None,
            force_contrast: bool = False, tta: bool = False, precision: str = "auto", *,
            locator: str | LoadedModel = DEFAULT_LOCATOR,
            graft: str | LoadedModel | None = PAIRED,
            locator_config: LocatorConfig = LocatorConfig(),
            postprocess: PostprocessConfig | None = PostprocessConfig(),
            batch_size: int = 4, overlap: float = 0.25,
            baseline: Volume | None = None, keep_fine_pass: bool = False,
            reuse: FinePass | None = None) -> SegmentationResult:
    """Segment cord (1), lesion (2) and graft (3) in one scan; see the module docstring.

    ``overlap``: fraction of a window shared with its neighbours in the fine model's
    sliding window (0.25 by default; 0 is faster, without blending across windows).
    ``graft``: the graft model (a name or loaded), None for the segmenter's own graft
    channel, or "paired": the registry's DEFAULT_GRAFT when ``model`` is DEFAULT_MODEL.
    ``baseline``: the subject's pre-injection baseline scan already registered and
    resampled onto ``volume``'s grid (``segmentation.baseline_pairing.baseline_on_grid``),
    seen by a graft model that takes one (``ModelCard.takes_baseline``; without it such a
    model sees zeros, as for a subject with no baseline); ignored otherwise.
    ``keep_fine_pass`` / ``reuse``: a first pass's segmenter output kept on the result, and
    reused by a second pass over the same scan with the same models and ``tta`` (module doc).
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    given = None if str(device) == "auto" and not isinstance(model, str) else resolve_device(device)
    fine = _loaded(model, given, "segment")
    coarse = _loaded(locator, fine.device, "locate")
    graft_model = _graft_model(graft, fine)
    cards = (fine.card, coarse.card) + (() if graft_model is None else (graft_model.card,))
    found_contrast = _check_contrast(volume, contrast, force_contrast, cards)
    image_ras = image_for_model(volume.reorient("RAS"))
    baseline_ras = _baseline_ras(baseline, volume, graft_model)
    meta = {"contrast": found_contrast, "model": fine.card.name, "source": volume.meta.get("source"),
            "graft_model": None if graft_model is None else graft_model.card.name}
    ctx = _Context(volume, image_ras, fine, coarse, graft_model,
                   _resolve_precision(precision, fine.device),
                   {k: v for k, v in meta.items() if v is not None}, baseline_ras)
    timings["prepare"] = time.perf_counter() - start
    if reuse is not None:
        return _reused(ctx, reuse, tta, batch_size, overlap, postprocess, timings, keep_fine_pass)
    start = time.perf_counter()
    where = locate_cord(image_ras, coarse, locator_config, precision=ctx.precision,
                        batch_size=batch_size)
    timings["locate"] = time.perf_counter() - start
    box, reason = _box_to_segment(where, image_ras, locator_config)
    if box is None:
        return _no_cord(ctx, reason, timings)
    box, (box_probs, box_samples, report, own), grown = _follow_cord(
        image_ras, box, locator_config,
        lambda b: _segment_box(ctx, b, tta, batch_size, overlap, postprocess, timings))
    if grown:
        reason += f"; the box grew {grown} time(s) to follow the cord out of the locator's box"
    rejected = _implausible_cord(box_probs, box, image_ras, locator_config,
                                 where.cord_region_mm3 if where.cord_found else None, reason)
    if rejected:
        return _no_cord(ctx, rejected, timings)
    kept = (FinePass(box, own, tta, reason, image_ras.spatial_shape, fine.card.name)
            if keep_fine_pass else None)
    return _assembled(ctx, box, (box_probs, box_samples, report), reason, timings, kept)


def _assembled(ctx: _Context, box: CordBox, found, reason: str, timings: dict[str, float],
               kept: FinePass | None) -> SegmentationResult:
    """The box's (probabilities, samples, report) pasted into the whole field of view."""
    start = time.perf_counter()
    box_probs, box_samples, report = found
    shape = ctx.image_ras.spatial_shape
    probs = _background(shape, ctx.model.card.n_labels)
    probs[box.slices] = box_probs
    samples = None
    if box_samples is not None:
        samples = np.zeros((len(box_samples),) + shape, dtype=np.float32)
        samples[(slice(None),) + box.slices] = box_samples
    result = _result(ctx, probs, samples, found=True, reason=reason, box=box,
                     timings=timings, report=report)
    return replace(result, timings_s={**timings, "assemble": time.perf_counter() - start},
                   fine_pass=kept)


def _reused(ctx: _Context, reuse: FinePass, tta: bool, batch_size: int, overlap: float,
            postprocess: PostprocessConfig | None, timings: dict[str, float],
            keep: bool) -> SegmentationResult:
    """A second pass: the first pass's box and segmenter output, the graft model run again
    (the first pass found the cord plausible; the graft model changes only its graft)."""
    now = (tta, tuple(ctx.image_ras.spatial_shape), ctx.model.card.name)
    if (reuse.tta, tuple(reuse.shape), reuse.model) != now:
        raise ModelError(f"the fine pass to reuse was made by {reuse.model} "
                         f"{'with' if reuse.tta else 'without'} test-time augmentation on a "
                         f"{reuse.shape} grid; this pass is by {now[2]} "
                         f"{'with' if tta else 'without'} it on a {now[1]} grid: segment "
                         "without reuse")
    *found, own = _segment_box(ctx, reuse.box, tta, batch_size, overlap, postprocess, timings,
                               reuse.segmenter_runs)
    reason = f"{reuse.reason}; segmenter output reused from the first pass"
    return _assembled(ctx, reuse.box, found, reason, timings, reuse if keep else None)
