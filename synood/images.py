"""Image files for batch jobs: find them in a folder, load each as RGB, skip (and report) the bad ones."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageError(ValueError):
    """A folder or image file that cannot be used; the message names it and says why."""


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` (recursively) with an image suffix, any case, in sorted order."""
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: transparency composited on white, 16/32-bit and float greys scaled to 8 bits."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        import numpy as np  # only for these modes: `synood models` must stay free of heavy imports

        values = np.asarray(image, dtype=np.float64)
        if values.size and values.max() > 255:
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


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at `path` (first frame, EXIF orientation applied) as RGB; ImageError says what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.seek(0)  # animated images: the first frame
                image.load()  # decode now, so truncated data fails here
                return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, EOFError, ValueError) as exc:  # Pillow reports broken data in all of these
        raise ImageError(f"{path}: truncated or corrupt image data ({type(exc).__name__}: {exc})") from None


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
