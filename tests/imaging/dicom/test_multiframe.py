"""Enhanced multi-frame: per-frame positions and echo times, shared orientation and spacing."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian, generate_uid

from imaging.dicom import load_dicom
from tests.imaging.dicom.conftest import SHAPE, ramp

ECHO_TIMES_MS = (3.0, 7.5)


def _item(**tags) -> Dataset:
    ds = Dataset()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _per_frame(z: int, te: float) -> Dataset:
    return _item(PlanePositionSequence=Sequence([_item(ImagePositionPatient=[0, 0, 2.0 * z])]),
                 MREchoSequence=Sequence([_item(EffectiveEchoTime=te)]),
                 FrameContentSequence=Sequence([_item(TemporalPositionIndex=1)]),
                 PixelValueTransformationSequence=Sequence([
                     _item(RescaleSlope="0.5", RescaleIntercept="1", RescaleType="US")]))


def write_enhanced(path, data: np.ndarray) -> None:
    """(x, y, z, echo) int16 as one Enhanced MR object, frames in echo-major, slice-descending order."""
    ds = _item(SOPClassUID=EnhancedMRImageStorage, SOPInstanceUID=generate_uid(), Modality="MR",
               SeriesInstanceUID=generate_uid(), StudyInstanceUID=generate_uid(),
               SeriesDescription="me_gre_3d", EchoPulseSequence="GRADIENT",
               Rows=data.shape[1], Columns=data.shape[0], SamplesPerPixel=1,
               PhotometricInterpretation="MONOCHROME2", BitsAllocated=16, BitsStored=16,
               HighBit=15, PixelRepresentation=1)
    ds.SharedFunctionalGroupsSequence = Sequence([_item(
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=[0.7, 0.6], SliceThickness=2)]),
        MRTimingAndRelatedParametersSequence=Sequence([_item(RepetitionTime=30,
                                                             FlipAngle=12)]))])
    order = [(z, e) for e in range(data.shape[3]) for z in reversed(range(data.shape[2]))]
    ds.PerFrameFunctionalGroupsSequence = Sequence([_per_frame(z, ECHO_TIMES_MS[e])
                                                    for z, e in order])
    ds.NumberOfFrames = len(order)
    ds.PixelData = np.stack([data[:, :, z, e].T for z, e in order]).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multi_echo_object(tmp_path):
    data = ramp(n_echoes=2)
    write_enhanced(tmp_path / "enhanced.dcm", data)
    volume = load_dicom(tmp_path)
    assert volume.shape == SHAPE + (2,)
    assert volume.meta["fourth_axis"] == "echo"
    assert volume.meta["echo_times_ms"] == ECHO_TIMES_MS
    assert volume.meta["repetition_time_ms"] == 30.0 and volume.meta["contrast"] == "T2starw"
    np.testing.assert_allclose(volume.array, data * 0.5 + 1)
    assert volume.spacing == pytest.approx((0.6, 0.7, 2.0))
    np.testing.assert_allclose(volume.origin, (0.0, 0.0, 0.0))
