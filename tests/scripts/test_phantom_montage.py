"""The phantom montage: one row per session, three panels, written as a PNG."""

from __future__ import annotations

import numpy as np

from imaging.phantom import write_dataset


def test_montage_writes_a_png_with_a_row_per_session(tmp_path):
    import matplotlib.image as mpimg
    from scripts.phantom_montage import main
    study = write_dataset(tmp_path / "study", n_subjects=1, seed=4, labels=("spio",),
                          plane="sagittal", n_sessions=2)
    one = tmp_path / "one.png"
    assert main([str(study / "sub-001"), "--out", str(one)]) == 0
    image = mpimg.imread(one)
    assert image.ndim == 3 and image.shape[1] > image.shape[0] * 1.0        # 2 rows x 3 panels
    assert float(np.std(image[..., :3])) > 0.05                            # not a blank page
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.any()                                                       # graft outline drawn
