"""Pixel data: decode a file's frames, check they are complete, apply rescale, fill the grid.

Uncompressed little-endian data is viewed straight from the bytes (fast path);
everything else (big endian, JPEG, JPEG-LS, JPEG 2000, RLE, deflate) goes
through pydicom's pixel handlers. A compressed transfer syntax with no installed
decoder raises MissingDecoderError naming the package to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID

from imaging.dicom.frames import Frame
from imaging.dicom.mosaic import split_mosaic
from imaging.dicom.scan import permission_denied
from imaging.dicom.stack import Stack
from imaging.errors import DicomSeriesError, ImageReadError, MissingDecoderError

_FAST_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_PACKAGES = (("1.2.840.10008.1.2.4.5", "pylibjpeg pylibjpeg-libjpeg"),
             ("1.2.840.10008.1.2.4.7", "pylibjpeg pylibjpeg-libjpeg"),
             ("1.2.840.10008.1.2.4.8", "pylibjpeg pylibjpeg-libjpeg"),
             ("1.2.840.10008.1.2.4.9", "pylibjpeg pylibjpeg-openjpeg"),
             ("1.2.840.10008.1.2.4.20", "pylibjpeg pylibjpeg-openjpeg"),
             ("1.2.840.10008.1.2.5", "pylibjpeg pylibjpeg-rle"))


def read_dataset(path: Path) -> Dataset:
    """The whole file (header and pixels) in one read, with readable errors."""
    try:
        return pydicom.dcmread(path, force=True)  # the header was checked by scan.read_header
    except PermissionError as exc:
        raise permission_denied(path) from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file disappeared while reading; check the folder") from exc
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomSeriesError(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc}); "
                               "the file may be truncated or corrupt: copy it again") from exc


def _package_for(syntax: UID) -> str:
    return next((pkgs for prefix, pkgs in _PACKAGES if syntax.startswith(prefix)),
                "pylibjpeg with its plugins, or python-gdcm")


def _syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    return UID(getattr(meta, "TransferSyntaxUID", ImplicitVRLittleEndian))


def _check_decoder(ds: Dataset, path: Path) -> None:
    syntax = _syntax(ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise MissingDecoderError(f"{path}: transfer syntax {syntax} ({syntax.name}) has no "
                                  "pixel decoder in pydicom; convert the file to an "
                                  "uncompressed syntax (e.g. dcmdjpeg/gdcmconv)") from exc
    if not decoder.is_available:
        raise MissingDecoderError(
            f"{path}: pixel data is compressed as {syntax.name} ({syntax}) and no decoder for it "
            f"is installed; install one: pip install {_package_for(syntax)}")


def _fast_dtype(ds: Dataset) -> np.dtype | None:
    if _syntax(ds) not in _FAST_SYNTAXES or int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        return None
    bits, stored = int(ds.BitsAllocated), int(getattr(ds, "BitsStored", ds.BitsAllocated))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32) or (signed and stored != bits):
        return None
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


def decode_frames(ds: Dataset, path: Path) -> np.ndarray:
    """All 2-D images of a file as (n_frames, rows, columns)."""
    if "PixelData" not in ds:
        kind = getattr(getattr(ds, "SOPClassUID", None), "name", "unknown SOP class")
        raise DicomSeriesError(f"{path}: holds no pixel data ({kind}); expected an image with "
                               "pixels (reports, presentation states and header-only files "
                               "cannot be loaded as volumes); remove it or copy it again")
    rows, cols = int(ds.Rows), int(ds.Columns)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    dtype = _fast_dtype(ds)
    if dtype is not None:
        count = rows * cols * n_frames
        if len(ds.PixelData) < count * dtype.itemsize:
            raise DicomSeriesError(
                f"{path}: pixel data is truncated ({len(ds.PixelData)} bytes; expected "
                f"{count * dtype.itemsize}); copy the file again from the scanner or PACS")
        return np.frombuffer(ds.PixelData, dtype=dtype, count=count).reshape(n_frames, rows, cols)
    _check_decoder(ds, path)
    try:
        array = ds.pixel_array
    except (ValueError, RuntimeError, EOFError) as exc:
        raise DicomSeriesError(f"{path}: pixel data cannot be decoded ({exc}); the file may be "
                               "truncated or corrupt: copy it again") from exc
    if array.ndim != (3 if n_frames > 1 else 2):
        raise DicomSeriesError(f"{path}: pixel data has shape {array.shape}; expected grayscale "
                               f"{rows}x{cols} image(s) (colour images are not supported)")
    return array.reshape(n_frames, rows, cols)


def _scaled_dtype(stack: Stack, stored: np.dtype) -> np.dtype:
    trivial = all(f.slope == 1.0 and f.intercept == 0.0 for row in stack.grid for f in row)
    return stored if trivial else np.dtype(np.float32)


def _dataset_with_pixels(path: Path, datasets: Mapping[Path, Dataset]) -> Dataset:
    ds = datasets.get(path)
    return ds if ds is not None and "PixelData" in ds else read_dataset(path)


def read_pixels(stack: Stack, datasets: Mapping[Path, Dataset] | None = None) -> np.ndarray:
    """The stack's voxels as (x, y, z[, volume]), rescaled; each file decoded once.

    ``datasets`` may hold files already read with their pixel data; others are read here.
    The result is Fortran-ordered (each slice one contiguous block, as NIfTI stores it),
    read-only and owns its memory, so a Volume takes it without another copy.
    """
    slots: dict[Path, list[tuple[int, int, Frame]]] = {}
    for z, row in enumerate(stack.grid):
        for v, frame in enumerate(row):
            slots.setdefault(frame.path, []).append((z, v, frame))
    out = slots_view = None
    for path, items in slots.items():
        images = decode_frames(_dataset_with_pixels(path, datasets or {}), path)
        if items[0][2].mosaic_tiles:
            images = split_mosaic(images[0], items[0][2].mosaic_tiles)
        if out is None:
            dtype = _scaled_dtype(stack, images.dtype.newbyteorder("="))
            out = np.empty(stack.shape, dtype, order="F")
            slots_view = out if out.ndim == 4 else out[..., None]
        for z, v, frame in items:
            image = images[frame.index]
            if frame.slope != 1.0 or frame.intercept != 0.0:
                image = image * np.float32(frame.slope) + np.float32(frame.intercept)
            slots_view[:, :, z, v] = image.T
    out.flags.writeable = False
    return out
