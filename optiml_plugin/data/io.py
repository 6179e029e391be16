"""Reading radiographs (PNG, JPEG, TIFF and DICOM) as float arrays in [0, 1].

Every reader returns a single-channel ``float32`` array of shape (H, W) with
values in [0, 1], scaled from the file's *possible* range, not from the pixels
it happens to hold (so two files of one scanner keep their relative brightness):

* PNG / JPEG / TIFF / BMP: 8-bit images are divided by 255, 16-bit ones
  (PIL modes ``I;16*`` and ``I``) by 65535 (clipped to [0, 65535] first). Colour
  images are converted to luminance (PIL ``convert("L")``).
* DICOM (via pydicom): the stored values go through the modality LUT
  (``apply_modality_lut``: rescale slope/intercept or a Modality LUT Sequence)
  and, when the file has one, the VOI LUT or window (``apply_voi_lut``). The
  result is min-max scaled over the range those values can take:

  - with a VOI LUT Sequence: ``[0, 2**LUTDescriptor[2] - 1]``;
  - otherwise (window or none): the stored bit range (``[0, 2**BitsStored - 1]``
    unsigned, ``[-2**(BitsStored-1), 2**(BitsStored-1) - 1]`` signed, or
    ``[0, 2**LUTDescriptor[2] - 1]`` with a Modality LUT Sequence) mapped through
    the rescale slope and intercept. This is exactly the output range pydicom's
    windowing uses, so a windowed image spans [0, 1] from the window's bottom
    to its top.

  Values are clipped to [0, 1]. ``MONOCHROME1`` images (bright = low values)
  are inverted (``1 - x``) so that every output is ``MONOCHROME2``-like
  (bright bone, dark air). Colour DICOMs are converted to luminance.

  An 8-bit DICOM therefore gives ``stored / 255`` and a 12-bit one
  ``stored / 4095``: writing the result as a 16-bit PNG (``round(x * 65535)``)
  loses nothing for files of up to 16 stored bits without a window.

Unreadable inputs (missing, empty, truncated, corrupt or not an image) raise
:class:`ImageReadError`; its message starts with the file's path. Compressed
DICOM transfer syntaxes need pydicom's optional decoders (``pylibjpeg``,
``pylibjpeg-libjpeg``, ``pylibjpeg-openjpeg``, ``python-gdcm`` or
``pillow``); when none is installed :class:`MissingDecoderError` names the
transfer syntax and pydicom's list of packages that would decode it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DICOM_EXTENSIONS = (".dcm", ".dicom")
PIL_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file."""


class MissingDecoderError(ImageReadError):
    """A DICOM file uses a compressed transfer syntax that no installed plugin decodes."""


def is_dicom(path: str | Path) -> bool:
    """Whether a file is DICOM: by extension, or by the ``DICM`` preamble marker."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_image(path: str | Path) -> np.ndarray:
    """Reads a radiograph as a float32 (H, W) array in [0, 1] (see module notes).

    Args:
        path: A PNG, JPEG, TIFF, BMP or DICOM file.

    Returns:
        The image, ``MONOCHROME2``-like (bright = dense), float32, values in [0, 1].

    Raises:
        ImageReadError: The file is missing, empty, truncated or not an image.
        MissingDecoderError: A compressed DICOM without an installed decoder.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    if is_dicom(path):
        return _read_dicom(path)
    return _read_pil(path)


def _read_pil(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in PIL_16BIT_MODES:
                array = np.asarray(image, dtype=np.float64)
                return (np.clip(array, 0, 65535) / 65535.0).astype(np.float32)
            if image.mode != "L":
                image = image.convert("L")
            return np.asarray(image, dtype=np.float32) / np.float32(255.0)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err


def _output_range(ds) -> tuple[float, float]:
    """The range of values after the modality LUT and VOI LUT (see module notes)."""
    voi = ds.get("VOILUTSequence")
    if voi and voi[0].get("LUTDescriptor") is not None:
        return 0.0, float(2 ** int(voi[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    low, high = low * slope + intercept, high * slope + intercept
    return min(low, high), max(low, high)


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as err:
        raise ImageReadError(f"{path}: cannot read DICOM ({err})") from err
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        stored = ds.pixel_array
    except (NotImplementedError, RuntimeError) as err:
        if syntax is not None and syntax.is_compressed:
            raise MissingDecoderError(
                f"{path}: no installed decoder for the compressed transfer syntax "
                f"'{syntax.name}' ({syntax}); install one of the packages pydicom "
                f"names: {err}"
            ) from err
        raise ImageReadError(f"{path}: cannot decode DICOM pixel data ({err})") from err
    except (ValueError, AttributeError, KeyError, TypeError, EOFError) as err:
        raise ImageReadError(f"{path}: cannot decode DICOM pixel data ({err})") from err
    if stored.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 3:
        weights = np.array([0.299, 0.587, 0.114])
        bits = int(ds.get("BitsStored", 8))
        gray = stored.astype(np.float64) @ weights / float(2**bits - 1)
        return np.clip(gray, 0, 1).astype(np.float32)
    if stored.ndim != 2:
        raise ImageReadError(
            f"{path}: expected a single 2-D frame, got shape {stored.shape}"
        )
    try:
        values = apply_voi_lut(apply_modality_lut(stored, ds), ds)
        low, high = _output_range(ds)
    except (AttributeError, KeyError, ValueError, TypeError) as err:
        raise ImageReadError(f"{path}: invalid DICOM pixel module ({err})") from err
    scaled = (values.astype(np.float64) - low) / max(high - low, 1e-12)
    scaled = np.clip(scaled, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32)


def to_uint(image: np.ndarray, bits: int = 16) -> np.ndarray:
    """Converts a [0, 1] float image to ``uint8`` (bits=8) or ``uint16`` (bits=16)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    top = 2**bits - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.round(np.clip(image, 0, 1) * top).astype(dtype)


def write_png(image: np.ndarray, path: str | Path, bits: int = 16) -> None:
    """Writes a [0, 1] float image as an 8- or 16-bit grayscale PNG (deterministic)."""
    array = to_uint(image, bits)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a float image to ``size`` = (width, height) with bilinear filtering.

    Bilinear (with PIL's antialiasing support when down-scaling) on the float
    image, so no precision is lost to 8 bits before resizing.
    """
    resized = Image.fromarray(image.astype(np.float32)).resize(
        size, Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 label map to ``size`` = (width, height), nearest neighbour."""
    resized = Image.fromarray(mask.astype(np.uint8)).resize(
        size, Image.Resampling.NEAREST
    )
    return np.asarray(resized, dtype=np.uint8)


def write_dicom(
    pixels: np.ndarray,
    path: str | Path,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    patient_id: str = "anonymous",
    **elements: object,
) -> Path:
    """Writes an uncompressed (Explicit VR Little Endian) grayscale DICOM.

    Meant for tests and fixtures: ``pixels`` (uint8 or uint16, (H, W)) are the
    stored values; ``elements`` sets further data elements by keyword (e.g.
    ``RescaleSlope=2.0``, ``WindowCenter=100``, ``WindowWidth=50``).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim != 2:
        raise ValueError(
            f"expected (H, W) uint8/uint16, got {pixels.dtype} {pixels.shape}"
        )
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.3.4.5.6.7.{zlib.crc32(path.name.encode())}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = patient_id
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
