"""Image files for batch jobs and uploads: find them in a folder, load each as RGB within the configured limits,
skip (and report) the bad ones."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from PIL import Image, ImageOps, UnidentifiedImageError

from synood.config import ImagesConfig
from synood.errors import UserError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")  # the decoders Pillow may use for them (JPEG opens MPO too)
MB = 2**20
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")  # Pillow's "Image size (N pixels) exceeds limit of ..."
_limits = ImagesConfig()


class ImageError(UserError, ValueError):
    """A folder or image file that cannot be used; the message names it and says why."""


def set_limits(limits: ImagesConfig) -> ImagesConfig:
    """Make `limits` hold for every image opened here (open_image, load_image) in this process, Pillow's own check
    included (past max_pixels it refuses rather than warns); returns the limits they replace."""
    global _limits
    previous, _limits = _limits, dataclasses.replace(limits)
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    return previous


def _over(name: str, what: str, limit: str, key: str) -> ImageError:
    return ImageError(f"{name}: {what} is over the limit of {limit} (images.{key}; --set images.{key}=N)")


def _check_size(name: str, width: int, height: int) -> None:
    """ImageError when the header's width x height breaks a limit, before anything is decoded."""
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the header gives no pixels ({width} x {height})")
    pixels, limits = width * height, _limits
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise _over(name, f"{pixels:,} pixels", f"{limits.max_pixels:,}", "max_pixels")
    if limits.max_aspect is not None and max(width, height) > limits.max_aspect * min(width, height):
        raise _over(name, f"a side ratio of {max(width, height) / min(width, height):,.1f} ({width:,} x {height:,})",
                    f"{limits.max_aspect:g}", "max_aspect")


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` (recursively) with an image suffix, any case, in sorted order."""
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: transparency composited on white, 16-bit greys scaled to 8 bits (32-bit and float
    greys too, when their values pass 255)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        import numpy as np  # only for these modes: `synood models` must stay free of heavy imports

        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257  # 16-bit range onto 8 bits
        image = Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def to_pil(pixels: "torch.Tensor") -> Image.Image:
    """A (3, H, W) tensor in [0, 1] as a PIL RGB image (rounded to 8 bits)."""
    array = (pixels.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


@contextlib.contextmanager
def open_image(path: str | os.PathLike, name: str | None = None) -> Iterator[Image.Image]:
    """The image file at `path`, its header read and checked against the limits (set_limits), nothing decoded
    yet. Whatever goes wrong, in here or in the caller's block (decoding it), is an ImageError that names the
    file (as `name`, by default the path) and says what is wrong."""
    path = Path(path)
    name = str(path) if name is None else name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise ImageError(f"{name}: not a file")
    if size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if _limits.max_file_mb is not None and size > _limits.max_file_mb * MB:
        raise _over(name, f"{size / MB:,.1f} MB", f"{_limits.max_file_mb:g} MB", "max_file_mb")
    try:
        with Image.open(path, formats=FORMATS) as image:
            _check_size(name, *image.size)
            yield image
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's check, in open
        found = _BOMB_PIXELS.search(str(exc))
        pixels = f"{int(found[1]):,} pixels" if found else "the image"
        limit = min(n for n in (Image.MAX_IMAGE_PIXELS, _limits.max_pixels) if n is not None)  # Pillow's is set
        raise _over(name, pixels, f"{limit:,}", "max_pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (or not JPEG, PNG, GIF, BMP, TIFF or WebP)") from None
    except OSError as exc:
        if exc.errno is not None:  # the file itself, not its contents
            raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
        raise _corrupt(name, exc) from None
    except Exception as exc:  # noqa: BLE001 -- Pillow's decoders raise many types on malformed data
        raise _corrupt(name, exc) from None


def _corrupt(name: str, exc: Exception) -> ImageError:
    return ImageError(f"{name}: truncated or corrupt image data ({type(exc).__name__}: {exc})")


def load_image(path: str | os.PathLike, name: str | None = None) -> Image.Image:
    """The image at `path` (first frame, EXIF orientation applied) as RGB; ImageError names it (as `name`, by
    default the path) and says what is wrong. Files past the limits (set_limits) are refused undecoded."""
    with open_image(path, name) as image:
        image.load()  # decode now, so truncated data fails here
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)


def load_folder(folder: str | os.PathLike) -> tuple[list[Path], list[Image.Image], list[str]]:
    """(paths, RGB images, problems) for every image under `folder`; unreadable files are skipped and
    their messages returned, so one bad file never stops a run."""
    paths, images, problems = [], [], []
    for path in find_images(folder):
        try:
            images.append(load_image(path))
            paths.append(path)
        except ImageError as exc:
            problems.append(str(exc))
    return paths, images, problems
