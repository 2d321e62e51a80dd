import json

import nibabel as nib
import numpy as np
import pytest
import torch

from imaging.errors import ContrastError, DeviceError, OutputError
from imaging.io import load, save
from imaging.volume import Volume
from scripts.segment import main, output_stem
from tests.segmentation.conftest import install_tiny_models
from tests.segmentation.conftest import one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture
def models_dir(tmp_path):
    return install_tiny_models(tmp_path / "weights", contrasts=("T2w",))


@pytest.fixture
def scan(tmp_path, rng):
    image = rng.normal(100, 10, size=(30, 28, 12)).astype(np.float32)
    image[12:20, 10:18] = 40.0
    affine = np.array([[0, 0, -2.0, 20], [-1.0, 0, 0, 10], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    return save(Volume(image, affine), tmp_path / "sub-01_T2w.nii.gz")


def run(scan, out, models_dir, *extra):
    return main([str(scan), "--out", str(out), "--models-dir", str(models_dir),
                 "--model", "tiny-seg", "--locator", "tiny-loc", "--device", "cpu", *extra])


def test_outputs_are_written_in_the_scans_space(scan, models_dir, tmp_path, capsys):
    out = tmp_path / "seg"
    assert run(scan, out, models_dir) == 0
    source = nib.load(scan)
    dseg = nib.load(out / "sub-01_T2w_dseg.nii.gz")
    assert dseg.shape == source.shape
    np.testing.assert_allclose(dseg.affine, source.affine, atol=1e-5)
    assert set(np.unique(np.asarray(dseg.dataobj))) <= {0, 1, 2, 3}
    probs = load(out / "sub-01_T2w_probseg.nii.gz")
    assert probs.shape == source.shape + (4,)
    np.testing.assert_allclose(probs.array.sum(-1), 1.0, atol=1e-4)
    summary = json.loads((out / "sub-01_T2w_segmentation.json").read_text())
    assert summary["device"] == "cpu" and summary["model"] == "tiny-seg"
    assert summary["cord_found"] in (True, False) and summary["reason"]
    assert "sub-01_T2w" in capsys.readouterr().out


def test_existing_outputs_need_force(scan, models_dir, tmp_path):
    out = tmp_path / "seg"
    run(scan, out, models_dir)
    with pytest.raises(OutputError, match="already exists; pass --force"):
        run(scan, out, models_dir)
    assert run(scan, out, models_dir, "--force") == 0


def test_contrast_not_on_the_card_needs_the_override(scan, models_dir, tmp_path):
    with pytest.raises(ContrastError, match="--force-contrast"):
        run(scan, tmp_path / "a", models_dir, "--contrast", "T1w")
    assert run(scan, tmp_path / "b", models_dir, "--contrast", "T1w", "--force-contrast") == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_a_gpu(scan, models_dir, tmp_path):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        main([str(scan), "--out", str(tmp_path), "--models-dir", str(models_dir),
              "--model", "tiny-seg", "--locator", "tiny-loc", "--device", "cuda"])


def test_output_stem_strips_image_suffixes(tmp_path):
    assert output_stem(tmp_path / "sub-01_T2w.nii.gz") == "sub-01_T2w"
    assert output_stem(tmp_path / "dicom_folder") == "dicom_folder"
