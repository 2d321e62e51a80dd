"""DICOM reading: find and group series, check their geometry, load one as a Volume.

``list_series(path)`` describes every image series under a folder;
``load_dicom(path, series=...)`` loads one of them (classic single-frame files,
enhanced multi-frame objects, Siemens mosaics, compressed transfer syntaxes)
with its affine converted from DICOM's LPS to RAS+ here and nowhere else.
"""

from imaging.dicom.load import load_dicom
from imaging.dicom.scan import is_dicom_file
from imaging.dicom.series import SeriesInfo, list_series

__all__ = ["SeriesInfo", "is_dicom_file", "list_series", "load_dicom"]
