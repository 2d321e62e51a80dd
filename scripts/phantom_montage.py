"""PNG montage of a simulated subject: one row per session, truth outlines on the images.

    python -m scripts.phantom_montage OUT/sub-001 --out sub-001.png

Columns: T2w mid-sagittal slice through the graft (or the cord), the same with truth
outlines (cord green, lesion yellow, graft red), the last echo of the T2*w (SPIO) or the
19F image (19F) when there is one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRUTH = Path("derivatives") / "phantom-truth"
OUTLINE_COLOURS = {1: "lime", 2: "yellow", 3: "red"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.phantom_montage",
                                     description="PNG montage of a simulated subject")
    parser.add_argument("subject_dir", type=Path, help="OUT/sub-X folder of a phantom dataset")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    return parser


def _sessions(subject_dir: Path) -> list[tuple[str, str]]:
    sid = subject_dir.name
    from imaging.tsv import read_tsv
    rows = read_tsv(subject_dir / f"{sid}_sessions.tsv", ("session_id", "days_post_transplant"))
    return [(r["session_id"], r["days_post_transplant"]) for r in rows]


def _sagittal_slice(volume, labels=None, probseg=None):
    """RAS-reoriented mid-sagittal slice (through the graft if there is one), z up."""
    vol = volume.reorient("RAS")
    if probseg is not None and probseg.array.sum() > 0:
        x = int(np.argmax(probseg.reorient("RAS").array.sum(axis=(1, 2))))
    elif labels is not None and (labels.array > 0).any():
        x = int(np.argmax((labels.reorient("RAS").array > 0).sum(axis=(1, 2))))
    else:
        x = vol.shape[0] // 2
    arr = vol.array[x] if vol.array.ndim == 3 else vol.array[x, ..., -1]
    return arr.T, x, vol


def _panel(ax, image, title, spacing=(1.0, 1.0)):
    ax.imshow(image, cmap="gray", origin="lower", aspect=spacing[1] / spacing[0])
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def render_montage(subject_dir: Path, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from imaging.atomic import atomic_path
    from imaging.io import load, load_labels
    sid = subject_dir.name
    sessions = _sessions(subject_dir)
    fig, axes = plt.subplots(len(sessions), 3, figsize=(9, 3.2 * len(sessions)), squeeze=False)
    for row, (ses, days) in enumerate(sessions):
        anat = subject_dir / ses / "anat"
        truth_dir = subject_dir.parent / TRUTH / sid / ses / "anat"
        t2w = load(anat / f"{sid}_{ses}_T2w.nii.gz")
        dseg = load_labels(truth_dir / f"{sid}_{ses}_dseg.nii.gz")
        graft = load(truth_dir / f"{sid}_{ses}_label-graft_probseg.nii.gz")
        image, x, ras = _sagittal_slice(t2w, dseg, graft)
        sp = ras.spacing
        _panel(axes[row, 0], image, f"{ses} day {days}: T2w x={x}", (sp[1], sp[2]))
        _panel(axes[row, 1], image, "truth: cord / lesion / graft", (sp[1], sp[2]))
        labels = dseg.reorient("RAS").array[x].T
        for value, colour in OUTLINE_COLOURS.items():
            if (labels == value).any():
                axes[row, 1].contour(labels == value, levels=[0.5], colors=colour,
                                     linewidths=0.6)
        _third_panel(axes[row, 2], anat, sid, ses, dseg, graft)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def _third_panel(ax, anat: Path, sid: str, ses: str, dseg, graft) -> None:
    from imaging.io import load
    t2s = anat / f"{sid}_{ses}_T2starw.nii.gz"
    f19 = anat / f"{sid}_{ses}_acq-19F_MRI.nii.gz"
    if t2s.exists():
        image, x, ras = _sagittal_slice(load(t2s), dseg, graft)
        _panel(ax, image, "T2*w last echo", (ras.spacing[1], ras.spacing[2]))
    elif f19.exists():
        vol = load(f19).reorient("RAS")
        _panel(ax, vol.array.max(axis=0).T, "19F (max along x)", (vol.spacing[1], vol.spacing[2]))
    else:
        ax.axis("off")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    render_montage(args.subject_dir, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
