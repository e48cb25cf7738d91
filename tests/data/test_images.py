"""synood.data.images on tiny generated files: discovery, RGB loading, the limits, and the message for every bad kind,
in the library, through `synood evaluate` and through the app's upload."""
from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from synood.data import images, photos
from synood.config import ConfigError, ImagesConfig, load_config
from synood.data.images import ImageError, find_images, load_folder, load_image
from tests.helpers.cli import synood

FILE_LIMIT_MB = 2  # the kinds' limits: the defaults but for max_file_mb, so that "too big" is a small file


def save(image: Image.Image, **kwargs) -> Callable[[Path], None]:
    return lambda path: image.save(path, **kwargs)


def write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def rgb(color, size=(8, 8)) -> Image.Image:
    return Image.new("RGB", size, color)


def png(width: int, height: int, rows: bytes, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG written by hand, its header fields as given (16-bit colour, sizes no encoder would write)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, cut: float = 1.0, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    data = buffer.getvalue()
    return data[:int(len(data) * cut)]


def noise(size=(64, 64)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def rotated(path: Path) -> None:
    """32 x 16, left half red, with EXIF "rotate 90 degrees clockwise to display": the red half ends on top."""
    image = rgb("blue", (32, 16))
    image.paste((255, 0, 0), (0, 0, 16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif, quality=95)


def animated(path: Path) -> None:
    rgb("red").save(path, save_all=True, append_images=[rgb("blue")], duration=50, loop=0)


def grey16(value: int) -> Image.Image:
    return Image.fromarray(np.full((4, 5), value, dtype=np.uint16))


def palette_alpha(path: Path) -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.save(path, format="PNG", transparency=0)


@dataclass(frozen=True)
class Loaded:
    """The RGB image expected: its size and the colour at `at` (within `tolerance`, for lossy files)."""

    size: tuple[int, int]
    colour: tuple[int, int, int]
    at: tuple[int, int] = (0, 0)
    tolerance: int = 1


@dataclass(frozen=True)
class Refused:
    """The ImageError expected: `{path}: ` and then exactly `text`, or text starting so when it ends in '...'."""

    text: str


def over(what: str, limit: str, key: str) -> Refused:
    return Refused(f"{what} is over the limit of {limit} (images.{key}; --set images.{key}=N)")


KINDS = {  # file name -> (how to write it, what load_image gives)
    "png-named.jpg": (save(rgb((255, 0, 0)), format="PNG"), Loaded((8, 8), (255, 0, 0))),
    "text-named.png": (write(b"this is not an image at all"),
                       Refused("not an image (or not JPEG, PNG, GIF, BMP, TIFF or WebP)")),
    "icon-named.png": (save(rgb("red", (16, 16)), format="ICO"),
                       Refused("not an image (or not JPEG, PNG, GIF, BMP, TIFF or WebP)")),
    "zero-bytes.png": (write(b""), Refused("empty file (0 bytes)")),
    "truncated.png": (write(encoded(noise(), "PNG", 0.5)),
                      Refused("truncated or corrupt image data (OSError: image file is truncated...")),
    "truncated.jpg": (write(encoded(noise(), "JPEG", 0.5)),
                      Refused("truncated or corrupt image data (OSError: image file is truncated...")),
    "bomb.png": (save(Image.new("1", (10_000, 10_000))), over("100,000,000 pixels", "64,000,000", "max_pixels")),
    "huge-header.png": (write(png(100_000, 100_000, b"\0" * 64)),
                        over("10,000,000,000 pixels", "64,000,000", "max_pixels")),
    "strip.png": (save(rgb("red", (50_000, 1))), over("a side ratio of 50,000.0 (50,000 x 1)", "20", "max_aspect")),
    "too-big.jpg": (write(b"\0" * 3 * images.MB), over("3.0 MB", f"{FILE_LIMIT_MB} MB", "max_file_mb")),
    "animated.gif": (animated, Loaded((8, 8), (255, 0, 0))),
    "cmyk.jpg": (save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), quality=95),
                 Loaded((8, 8), (255, 0, 0), tolerance=4)),
    "cmyk.tif": (save(Image.new("CMYK", (6, 4), (0, 0, 0, 0))), Loaded((6, 4), (255, 255, 255))),
    "grey16.png": (save(grey16(100 * 257)), Loaded((5, 4), (100, 100, 100))),
    "grey16.tif": (save(grey16(100 * 257)), Loaded((5, 4), (100, 100, 100))),
    "rgb16.png": (write(png(2, 2, (b"\0" + struct.pack(">3H", 65535, 25700, 0) * 2) * 2, depth=16)),
                  Loaded((2, 2), (255, 100, 0))),
    "transparent.png": (save(Image.new("RGBA", (6, 4), (255, 0, 0, 0))), Loaded((6, 4), (255, 255, 255))),
    "half-alpha.png": (save(Image.new("RGBA", (6, 4), (0, 0, 0, 128))), Loaded((6, 4), (127, 127, 127))),
    "grey-alpha.png": (save(Image.new("LA", (6, 4), (0, 0))), Loaded((6, 4), (255, 255, 255))),
    "palette-alpha.png": (palette_alpha, Loaded((4, 4), (255, 255, 255))),
    "grey.png": (save(Image.new("L", (6, 4), 100)), Loaded((6, 4), (100, 100, 100))),
    "exif-rotated.jpg": (rotated, Loaded((16, 32), (255, 0, 0), at=(8, 4), tolerance=8)),
}


@pytest.fixture
def limits(monkeypatch):
    """Set the process's image limits for one test (call it with ImagesConfig fields); put them back after."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    previous = images.set_limits(ImagesConfig())
    yield lambda **fields: images.set_limits(ImagesConfig(**fields))
    images.set_limits(previous)


def written(folder: Path, names) -> list[Path]:
    for name in names:
        KINDS[name][0](folder / name)
    return [folder / name for name in names]


def assert_as_expected(path: Path, expected: Loaded | Refused, result: Image.Image | str) -> None:
    """`result` (an image, or an ImageError's message) is what KINDS expects for `path`."""
    if isinstance(expected, Refused):
        head, dots, _ = expected.text.partition("...")
        assert isinstance(result, str) and (result.startswith(f"{path}: {head}") if dots
                                             else result == f"{path}: {expected.text}"), result
        return
    assert isinstance(result, Image.Image) and result.mode == "RGB" and result.size == expected.size
    pixel = result.getpixel(expected.at)
    assert all(abs(a - b) <= expected.tolerance for a, b in zip(pixel, expected.colour)), pixel


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_loads_as_rgb_or_is_refused_by_name(tmp_path, limits, name):
    limits(max_file_mb=FILE_LIMIT_MB)
    (path,) = written(tmp_path, [name])
    try:
        result = load_image(path)
    except ImageError as exc:
        result = str(exc)
    assert_as_expected(path, KINDS[name][1], result)


def test_messages_can_name_the_file_as_given(tmp_path):
    (path,) = written(tmp_path, ["text-named.png"])
    with pytest.raises(ImageError, match=r"^notes\.png: not an image"):
        load_image(path, name="notes.png")


def test_find_images_is_recursive_sorted_and_case_insensitive(tmp_path):
    for name in ("b.png", "a/c.JPG", "a/z/d.webp", "e.TIFF", "f.gif", "g.bmp", "h.jpeg", "i.tif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "dir.png").mkdir()  # a folder with an image suffix is not an image
    found = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/c.JPG", "a/z/d.webp", "b.png", "e.TIFF", "f.gif", "g.bmp", "h.jpeg", "i.tif"]


def test_find_images_rejects_a_missing_folder_or_a_file(tmp_path):
    with pytest.raises(ImageError, match="no such folder"):
        find_images(tmp_path / "missing")
    file = tmp_path / "x.png"
    file.write_bytes(b"x")
    with pytest.raises(ImageError, match="not a folder"):
        find_images(file)


def test_missing_file_and_folder_are_errors(tmp_path):
    with pytest.raises(ImageError, match=r": cannot read \(No such file or directory\)$"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=": not a file$"):
        load_image(tmp_path)


def test_the_limits_are_configurable(tmp_path, limits, monkeypatch):
    square, strip = tmp_path / "square.png", tmp_path / "strip.png"
    rgb("red", (12, 12)).save(square)
    rgb("red", (30, 1)).save(strip)
    with pytest.raises(ImageError, match="side ratio of 30.0"):
        load_image(strip)
    limits(max_pixels=100, max_aspect=None)
    assert Image.MAX_IMAGE_PIXELS == 100  # Pillow's own check follows
    assert load_image(strip).size == (30, 1)
    message = f"{square}: 144 pixels is over the limit of 100 (images.max_pixels; --set images.max_pixels=N)"
    with pytest.raises(ImageError) as info:
        load_image(square)  # Pillow refuses it in Image.open
    assert str(info.value) == message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # where Pillow only warns, the header check refuses the same way
        with pytest.raises(ImageError) as info:
            load_image(square)
    assert str(info.value) == message
    limits(max_file_mb=square.stat().st_size / images.MB / 2)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("a file over max_file_mb was opened"))
    with pytest.raises(ImageError, match=r"is over the limit of .* MB \(images\.max_file_mb; "):
        load_image(square)


@pytest.mark.parametrize("field, value", [("max_pixels", 0), ("max_file_mb", -1), ("max_aspect", 0)])
def test_limits_must_be_positive_or_none(limits, field, value):
    with pytest.raises(ConfigError, match=rf"images\.{field}: {value} is out of range; must be .* or none$"):
        limits(**{field: value})


def test_limits_come_from_the_config():
    config = load_config(overrides=["images.max_pixels=1000", "images.max_file_mb=none"])
    assert config.images == ImagesConfig(max_file_mb=None, max_pixels=1000, max_aspect=20.0)


def bad_and_good(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every kind of KINDS written into `folder`: (the files that load, the files refused), in sorted order."""
    paths = written(folder, sorted(KINDS))
    good = [p for p in paths if isinstance(KINDS[p.name][1], Loaded)]
    return good, [p for p in paths if p not in good]


def test_a_folder_skips_each_bad_file_by_name_and_loads_the_rest(tmp_path, limits):
    limits(max_file_mb=FILE_LIMIT_MB)
    good, bad = bad_and_good(tmp_path)
    paths, loaded, problems = load_folder(tmp_path)
    assert paths == good and len(problems) == len(bad)
    for path, image in zip(paths, loaded):
        assert_as_expected(path, KINDS[path.name][1], image)
    for path, message in zip(bad, problems):
        assert_as_expected(path, KINDS[path.name][1], message)


def test_evaluate_skips_and_reports_every_bad_file(tmp_path):
    """The real `synood evaluate` on the tiny suite: the run completes, the good images are scored, and every
    bad file is reported by name on stderr."""
    folder, textures = tmp_path / "id", tmp_path / "textures"
    folder.mkdir()
    textures.mkdir()
    good, bad = bad_and_good(folder)
    for name in ("brick", "grass"):
        photo = photos.by_name(name)
        (textures / f"{name}{photo.path.suffix}").symlink_to(photo.path)
    result = synood("evaluate", "--suite", "tiny", "--json", "--set", f"images.max_file_mb={FILE_LIMIT_MB}",
                    "--id", str(folder), "--ood", f"textures={textures}", timeout=580)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["id"] == {"folder": str(folder), "count": len(good), "skipped": len(bad)}
    skipped = [line.removeprefix("skipped ") for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == len(bad)
    for path, message in zip(bad, skipped):
        assert_as_expected(path, KINDS[path.name][1], message)


@pytest.mark.parametrize("name", ["text-named.png", "truncated.png", "bomb.png", "strip.png"])
def test_a_bad_upload_is_a_message_naming_it(offline_app, tmp_path, name):
    """Uploads are read by synood.data.images too (the app's default limits): a clear error, never a traceback."""
    (path,) = written(tmp_path, [name])
    client = Client(offline_app, verbose=False)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(path)), 100, 0.01, api_name="/neglabel_score")
    message = str(info.value)
    assert "Traceback" not in message
    assert_as_expected(Path(name), KINDS[name][1], message)
