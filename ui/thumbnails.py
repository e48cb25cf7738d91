"""Thumbnail files the app serves: the Synthetic pairs tab's "source | synthetic" composites, cached on disk.

Thumbnails are built only for the page being shown and cached under thumbnail_dir(), keyed by both images' paths,
sizes and mtimes. The image functions take an optional `inside` test (the app's `DataRoots.contains`): an image path
it rejects is never opened (a manifest may name any path) and shows as a placeholder saying it lies outside the data
roots. Torch-free: PIL loads only when a thumbnail is made.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from synood.config import cache_home
from synood.data.manifest import Pair
from synood.data.storage import atomic_path, intact_jpeg

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL_HEIGHT = 160
_THUMBNAIL_VERSION = "1"  # bump when the composite's look changes, so old cached files are not reused
Inside = Callable[[Path], bool]


def thumbnail_dir() -> Path:
    """Where thumbnails are cached: $SYNOOD_HOME/thumbnails (the only folder the app serves from disk)."""
    return cache_home() / "thumbnails"


def _stamp(path: Path, inside: Inside | None = None) -> str:
    if inside is not None and not inside(path):
        return f"{path}|outside"
    try:
        stat = path.stat()
    except OSError:
        return f"{path}|missing"
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def thumbnail_key(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> str:
    """A hash of both images' absolute paths, sizes and mtimes (or that `inside` rejects them), and the thumbnail
    height: a changed file is a miss, and a thumbnail made where an image was allowed is not reused where it is not."""
    text = "\n".join([_THUMBNAIL_VERSION, _stamp(pair.source.absolute(), inside),
                      _stamp(pair.image.absolute(), inside), str(height)])
    return hashlib.sha256(text.encode()).hexdigest()


def thumbnail_path(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Path:
    """Where the pair's thumbnail is cached (it may not exist yet)."""
    key = thumbnail_key(pair, height, inside)
    return thumbnail_dir() / key[:2] / f"{key}.jpg"


def placeholder(message: str, size: tuple[int, int]) -> Image.Image:
    """A grey tile with `message` written on it, standing in for an image that cannot be shown."""
    from PIL import Image, ImageDraw, ImageFont

    tile = Image.new("RGB", size, (156, 163, 175))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=max(10, size[1] // 12))
    words, lines = message.split(), [""]
    for word in words:  # wrap to the tile's width
        trial = f"{lines[-1]} {word}".strip()
        if lines[-1] and draw.textlength(trial, font=font) > size[0] - 12:
            lines.append(word)
        else:
            lines[-1] = trial
    draw.multiline_text((size[0] / 2, size[1] / 2), "\n".join(lines), fill=(17, 24, 39), font=font,
                        anchor="mm", align="center")
    return tile


def pair_image(path: Path, what: str, inside: Inside | None = None) -> Image.Image:
    """The image at `path` as RGB, or a placeholder tile saying it is outside the data roots, missing or unreadable."""
    from synood.data.images import ImageError, load_image

    if inside is not None and not inside(path):
        return placeholder(f"{what} outside the data roots", (512, 512))
    if not path.exists():
        return placeholder(f"{what} missing", (512, 512))
    try:
        return load_image(path)
    except ImageError:
        return placeholder(f"{what} unreadable", (512, 512))


def composite(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Image.Image:
    """"source | synthetic": each image fitted into a height x height square, side by side with a small gap."""
    from PIL import Image, ImageOps

    gap = max(2, height // 40)
    canvas = Image.new("RGB", (2 * height + gap, height), "white")
    for slot, (path, what) in enumerate(((pair.source, "source image"), (pair.image, "synthetic image"))):
        fitted = ImageOps.contain(pair_image(path, what, inside), (height, height))
        left = slot * (height + gap) + (height - fitted.width) // 2
        canvas.paste(fitted, (left, (height - fitted.height) // 2))
    return canvas


def thumbnail(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Path:
    """The pair's composite JPEG, built and cached atomically on a miss; never raises for a bad image."""
    path = thumbnail_path(pair, height, inside)
    if not intact_jpeg(path):  # a miss, or a damaged file: rebuilt
        image = composite(pair, height, inside)
        with atomic_path(path) as tmp:
            image.save(tmp, "JPEG", quality=85)
    return path


def thumbnails(pairs: Sequence[Pair], height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> list[Path]:
    """Thumbnails for one page of pairs; only the misses are built, in parallel (PIL releases the GIL)."""
    paths = [thumbnail_path(pair, height, inside) for pair in pairs]
    missing = [pair for pair, path in zip(pairs, paths) if not intact_jpeg(path)]
    if missing:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda pair: thumbnail(pair, height, inside), missing))
    return paths


def served_copy(path: Path) -> Path:
    """A copy of the image file `path` (checked by the caller against the data roots) in the folder the app serves,
    under its own file name: what one tab hands another to open (Gradio serves only its allowed folders)."""
    key = hashlib.sha256(_stamp(path.absolute()).encode()).hexdigest()
    copy = thumbnail_dir() / "opened" / key[:16] / path.name
    if not copy.is_file():
        with atomic_path(copy) as tmp:
            shutil.copyfile(path, tmp)
    return copy
