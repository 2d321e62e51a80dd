"""Every exception graftwatch raises on purpose.

One module for the whole project (imaging is the bottom layer, so models,
segmentation and scripts import from here). A message says what was received,
what was expected, and what to do about it. The command line turns any
``GraftwatchError`` into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class GraftwatchError(Exception):
    """Base class: bad input or a result that cannot be trusted."""


class InvalidVolumeError(GraftwatchError, ValueError):
    """An array/affine pair that cannot be a Volume (dimensions, affine, dtype)."""


class OrientationError(GraftwatchError, ValueError):
    """Unknown or inconsistent axis codes, or an oblique affine where one is not allowed."""


class SpaceMismatchError(GraftwatchError, ValueError):
    """Two volumes that must share a voxel grid do not."""


class NonFiniteVoxelError(GraftwatchError, ValueError):
    """NaN or infinite voxel values under the 'raise' policy."""


class ImageReadError(GraftwatchError, OSError):
    """A path that cannot be read as an image: missing, unreadable, not an image."""


class DicomSeriesError(ImageReadError):
    """A DICOM file or series that cannot become one Volume (mixed series, gaps, tilt...)."""


class MissingDecoderError(ImageReadError):
    """Pixel data in a compressed transfer syntax with no decoder installed."""


class StudyError(GraftwatchError, ValueError):
    """A subject or study folder whose layout or session table is wrong."""


class PhantomError(GraftwatchError, ValueError):
    """Simulator parameters outside the phantom contract."""


class ModelError(GraftwatchError, ValueError):
    """A model, its card or its weights that cannot be used as asked."""


class ContrastError(ModelError):
    """A volume whose contrast the model card does not declare."""


class DeviceError(GraftwatchError, RuntimeError):
    """A compute device that was asked for but is not available."""


class RegistrationError(GraftwatchError, RuntimeError):
    """Registration that failed or left a residual too large to trust."""


class AnalysisError(GraftwatchError, ValueError):
    """A subject that cannot be analysed as configured."""


class OutputError(GraftwatchError, OSError):
    """An output folder or file that cannot be written."""


class DicomExportError(OutputError):
    """A mask or measurement that cannot be written as DICOM SEG/SR against its source series
    (mask not on the source grid, source images without geometry)."""
