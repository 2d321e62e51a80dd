"""analyze_subject measures each timepoint's cord SNR and flags a noisy scan; the config's
thresholds (detection volume, packing density, SNR limit, draws) reach what they govern."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np

from segmentation.config import AnalysisConfig
from segmentation.quantify import GraftMeasurement


def _noisier(path, snr: float, seed: int = 3) -> None:
    """Rewrite a phantom T2w with Rician noise of sd = median intensity / snr (the cord is
    the brightest tissue after fat and disc; the median keeps the test independent of it)."""
    image = nib.load(path)
    array = np.asarray(image.dataobj, np.float64)
    sd = np.median(array[array > np.percentile(array, 50)]) / snr
    rng = np.random.default_rng(seed)
    noisy = np.hypot(array + rng.normal(0, sd, array.shape), rng.normal(0, sd, array.shape))
    nib.save(nib.Nifti1Image(noisy.astype(np.float32), image.affine, image.header), path)


def test_a_noisy_session_is_flagged_low_quality_and_its_snr_reported(tmp_path):
    from imaging.phantom import write_dataset
    from imaging.study import discover_subject
    from segmentation.pipeline import analyze_subject, config_for
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=12, labels=("none",),
                          n_sessions=2)
    _noisier(study / "sub-001" / "ses-02" / "anat" / "sub-001_ses-02_T2w.nii.gz", snr=3.0)
    subject = discover_subject(study / "sub-001")
    config = replace(config_for(subject), bootstrap_samples=500)
    result = analyze_subject(subject, config, device="cpu")
    snr = {row["session_id"]: row["cord_snr"] for row in result.to_table()}
    assert snr["ses-01"] > 8 and snr["ses-02"] < 5, snr
    quality = [f for f in result.flags if f.code == "low_image_quality"]
    assert [f.timepoint for f in quality] == ["ses-02"], result.flags
    assert "SNR is about" in quality[0].message
    assert result.to_json()["timepoints"][1]["cord_snr"] == snr["ses-02"]
    assert any("(500 draws)" in a for a in result.assumptions), result.assumptions


def test_the_config_thresholds_reach_the_subject_flags():
    from segmentation.pipeline import _subject_flags
    series = [GraftMeasurement("ses-02", 2.0, 9.0, 8.0, 10.0),
              GraftMeasurement("ses-03", 30.0, 0.8, 0.5, 1.1)]
    config = AnalysisConfig(injected_cells=1e6)   # 1e6 / 2e5 per mm3 = 5 mm3 expected

    def codes(cfg):
        return sorted(f.code for f in _subject_flags(series, series, cfg))
    assert codes(config) == ["graft_larger_than_injected", "graft_not_found"]
    assert codes(replace(config, packing_density_cells_per_mm3=1e5)) == ["graft_not_found"]
    assert codes(replace(config, min_graft_volume_mm3=0.5)) == ["graft_larger_than_injected"]
