"""Read and write medical and natural images with their geometry (spacing, origin, direction).

PNG/JPEG/TIFF/BMP through PIL; NIfTI, MHA/MHD, NRRD and DICOM (file or series folder) through SimpleITK.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, UnidentifiedImageError

from unisegdiff.data.errors import DataError

PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SITK_EXTENSIONS = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
READABLE_EXTENSIONS = PIL_EXTENSIONS + SITK_EXTENSIONS
WRITABLE_EXTENSIONS = (".png", ".nii", ".nii.gz", ".mha", ".nrrd")


@dataclass(frozen=True)
class Geometry:
    """Physical placement of an image grid, in SimpleITK (x, y[, z]) order."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int = 2) -> "Geometry":
        direction = tuple(float(v) for v in np.eye(ndim).ravel())
        return cls((1.0,) * ndim, (0.0,) * ndim, direction)

    @property
    def ndim(self) -> int:
        return len(self.spacing)


@dataclass
class ImageRecord:
    """A decoded image: array (H, W), (H, W, C) or (D, H, W), its geometry and where it came from."""

    array: np.ndarray
    geometry: Geometry
    path: str


def file_suffix(path: str | os.PathLike) -> str:
    """Lower-case extension, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def file_stem(path: str | os.PathLike) -> str:
    """File name without its extension (``.nii.gz`` counted as one extension)."""
    name = Path(path).name
    suffix = file_suffix(path)
    return name[: -len(suffix)] if suffix else name


def read_image(path: str | os.PathLike) -> ImageRecord:
    """Decode an image file or a DICOM series folder; raises ``DataError`` naming the file if it cannot."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist", "check the path")
    if path.is_dir():
        return _read_dicom_series(path)
    suffix = file_suffix(path)
    if suffix in PIL_EXTENSIONS:
        return _read_with_pil(path)
    if suffix in SITK_EXTENSIONS:
        return _read_with_sitk(path)
    raise DataError(path, f"unsupported extension {suffix!r}",
                    f"convert it to one of {', '.join(READABLE_EXTENSIONS)} or give a DICOM series folder")


def _read_with_pil(path: Path) -> ImageRecord:
    try:
        with Image.open(path) as image:
            frames = []
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                image.load()
                frames.append(_pil_to_array(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(path, f"cannot decode the image ({error})",
                        "the file is truncated or not an image: re-export or re-download it") from error
    array = frames[0] if len(frames) == 1 else np.stack(frames)
    return ImageRecord(array, Geometry.identity(3 if array.ndim == 3 and len(frames) > 1 else 2), str(path))


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "LA"):
        image = image.convert("L")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV", "PA"):
        image = image.convert("RGB")
    return np.array(image)


def _sitk_record(image: sitk.Image, path: Path) -> ImageRecord:
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    return ImageRecord(sitk.GetArrayFromImage(image), geometry, str(path))


def _read_with_sitk(path: Path) -> ImageRecord:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise DataError(path, f"SimpleITK cannot read the file ({first_line})",
                        "the file is truncated, compressed wrongly or not in the format its extension says") from error
    return _sitk_record(image, path)


def _read_dicom_series(folder: Path) -> ImageRecord:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise DataError(folder, "folder holds no DICOM series", "give a folder of .dcm files of one series, or an image file")
    if len(series_ids) > 1:
        raise DataError(folder, f"folder holds {len(series_ids)} DICOM series ({', '.join(series_ids)})",
                        "move each series into its own folder")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise DataError(folder, f"cannot read the DICOM series ({error})", "check that every slice file is complete") from error
    return _sitk_record(image, folder)


def write_image(array: np.ndarray, geometry: Geometry | None, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write atomically (temp file in the same folder, then rename): PNG via PIL, NIfTI/MHA/NRRD via
    SimpleITK with geometry and compression. Refuses an existing ``path`` unless ``overwrite``."""
    path = Path(path)
    suffix = file_suffix(path)
    if suffix not in WRITABLE_EXTENSIONS:
        raise DataError(path, f"cannot write extension {suffix!r}", f"use one of {', '.join(WRITABLE_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; remove it, choose another path or pass overwrite=True")
    array = np.asarray(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    try:
        if suffix == ".png":
            _png_image(array, path).save(temp_name, format="PNG")
        else:
            sitk.WriteImage(_sitk_image(array, geometry, path), temp_name, useCompression=True)
        _commit(temp_name, path, overwrite)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return path


def write_bytes_atomic(data: bytes, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write raw bytes (a copied source file) atomically, with the same overwrite rule as ``write_image``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; remove it, choose another path or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        _commit(temp_name, path, overwrite)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return path


def _commit(temp_name: str, path: Path, overwrite: bool) -> None:
    """Move the finished temp file into place; without ``overwrite`` a hard link never clobbers a file
    that appeared meanwhile."""
    if overwrite:
        os.replace(temp_name, path)
        return
    try:
        os.link(temp_name, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: already exists; remove it, choose another path or pass overwrite=True") from None
    except OSError:  # filesystems without hard links
        if path.exists():
            raise FileExistsError(f"{path}: already exists; remove it, choose another path or pass overwrite=True") from None
        os.replace(temp_name, path)


def _png_image(array: np.ndarray, path: Path) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2 and array.dtype in (np.uint8, np.uint16):
        return Image.fromarray(array)
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return Image.fromarray(array)
    raise DataError(path, f"PNG needs uint8 (H, W), (H, W, 3|4) or uint16 (H, W); got {array.dtype} {array.shape}",
                    "convert the array (e.g. np.uint8) or write NIfTI/MHA for other types")


def _sitk_image(array: np.ndarray, geometry: Geometry | None, path: Path) -> sitk.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    spatial_ndim = geometry.ndim if geometry is not None else array.ndim
    is_vector = array.ndim == spatial_ndim + 1
    if geometry is not None and array.ndim == spatial_ndim - 1:
        array, is_vector = array[None], False  # a 2D slice placed in a 3D geometry
    if array.ndim - int(is_vector) != spatial_ndim:
        raise DataError(path, f"array shape {array.shape} does not fit a {spatial_ndim}D geometry",
                        "pass a geometry with one spacing value per array axis")
    image = sitk.GetImageFromArray(array, isVector=is_vector)
    if geometry is not None:
        image.SetSpacing(geometry.spacing)
        image.SetOrigin(geometry.origin)
        image.SetDirection(geometry.direction)
    return image
