"""The stages ``run_subject`` / ``analyze_subject`` report, in order, for a phantom subject."""

from __future__ import annotations

import json

from imaging.cohort import CohortEntry


def test_a_phantom_subject_reports_its_stages_in_order(tmp_path):
    from imaging.phantom import write_dataset
    from segmentation.pipeline import PipelineOptions, run_subject
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=11, labels=("none",),
                          n_sessions=3)
    out = tmp_path / "out"
    stages: list[str] = []
    run_subject(CohortEntry("sub-001", study / "sub-001"), out,
                PipelineOptions(device="cpu", write_report=False), on_stage=stages.append)
    saved = json.loads((out / "sub-001" / "sub-001_survival.json").read_text())
    sessions = [t["session_id"] for t in saved["timepoints"]]
    assert sessions == ["ses-01", "ses-02", "ses-03"]
    registered = [t["session_id"] for t in saved["timepoints"] if t["transform"] is not None]
    assert registered == ["ses-02", "ses-03"]   # the later sessions, onto the baseline
    expected = ["reading the study", *(f"segmenting {s}" for s in sessions)]
    for session in sessions:
        expected += [f"registering {session}"] * (session in registered) + [f"quantifying {session}"]
    assert stages == [*expected, "survival fit and flags", "writing outputs"]


def test_a_graft_model_that_takes_the_baseline_sees_it_registered(tmp_path, monkeypatch):
    """The baseline session is paired with itself; each later one is segmented again after
    registration, its graft model seeing the moved baseline (not zeros) beside the image."""
    import torch
    from torch import nn

    from imaging.phantom import write_dataset
    from imaging.study import discover_subject
    from models.card import GRAFT_LABELS, ModelCard
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, LoadedModel, load_model
    from segmentation.pipeline import analyze_subject, config_for

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.seen: list[tuple[float, float]] = []   # (mean |image|, mean |image - baseline|)

        def forward(self, x):
            self.seen.append((float(x[:, 0].abs().mean()), float((x[:, 0] - x[:, 1]).abs().mean())))
            return torch.cat([torch.ones_like(x[:, :1]), -torch.ones_like(x[:, :1])], dim=1)

    segmenter = load_model(DEFAULT_MODEL, "cpu")
    spy = Spy()
    card = ModelCard(name="spy-graft", task="graft", contrasts=("T2w", "T2starw"),
                     spacing_mm=segmenter.card.spacing_mm, patch_size=(32, 32, 32),
                     labels=GRAFT_LABELS, architecture={"in_channels": 2},
                     normalisation=segmenter.card.normalisation)
    models = (segmenter, load_model(DEFAULT_LOCATOR, "cpu"), LoadedModel(spy, card, torch.device("cpu")))
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=12, labels=("none",), n_sessions=2)
    subject = discover_subject(study / "sub-001")
    stages: list[str] = []
    import segmentation.inference
    real, segmenter_windows = segmentation.inference.model_probabilities, []

    def counting(loaded, *args, **kwargs):
        segmenter_windows.append(loaded.card.name)
        return real(loaded, *args, **kwargs)
    monkeypatch.setattr(segmentation.inference, "model_probabilities", counting)
    result = analyze_subject(subject, config_for(subject), device="cpu", models=models,
                             on_stage=stages.append)
    assert "graft against the baseline ses-02" in stages
    # the segmenter ran once per session: the paired pass reused ses-02's first pass
    assert segmenter_windows.count(DEFAULT_MODEL) == 2, segmenter_windows
    assert result.timepoints[1].transform is not None
    # passes: ses-01 with itself, ses-02 without (before registration), ses-02 with it
    ratios = [round(d / max(m, 1e-6), 4) for m, d in spy.seen]
    own = [r for r in ratios if r == 0.0]           # the baseline against itself
    zeros = [r for r in ratios if r == 1.0]         # no baseline yet: the second channel is zeros
    paired = ratios[len(own) + len(zeros):]
    assert own and zeros and ratios == own + zeros + paired and len(paired) == len(zeros)
    assert all(0.02 < r < 0.9 for r in paired)     # the moved baseline: close to the image
