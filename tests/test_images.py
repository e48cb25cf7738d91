"""synood.images on tiny generated files: discovery, RGB loading and the errors for bad files."""
import re

import numpy as np
import pytest
from PIL import Image

from synood.images import ImageError, find_images, load_folder, load_image


def save(image: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def rgb(color, size=(8, 8)):
    return Image.new("RGB", size, color)


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


@pytest.mark.parametrize("mode, color, expected", [
    ("L", 128, (128, 128, 128)),
    ("LA", (0, 0), (255, 255, 255)),  # fully transparent -> white
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),
    ("RGBA", (0, 0, 0, 128), (127, 127, 127)),  # half transparent black on white
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("P", 3, None),
])
def test_every_mode_becomes_rgb(tmp_path, mode, color, expected):
    image = Image.new(mode, (6, 4), color)
    path = save(image, tmp_path / ("x.tif" if mode == "CMYK" else "x.png"))
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (6, 4)
    if expected is not None:
        assert all(abs(a - b) <= 1 for a, b in zip(loaded.getpixel((0, 0)), expected))


def test_palette_transparency_and_16_bit_greys(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    path = save(palette, tmp_path / "p.png", transparency=0)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)

    grey16 = Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16))
    path = save(grey16, tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I")
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (5, 4) and loaded.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (32, 16), "blue")
    image.paste((255, 0, 0), (0, 0, 16, 16))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the left half ends on top
    loaded = load_image(save(image, tmp_path / "o.jpg", exif=exif, quality=95))
    assert loaded.size == (16, 32)
    red, green, blue = loaded.getpixel((8, 4))
    assert red > 200 and blue < 60


def test_animated_images_give_their_first_frame(tmp_path):
    frames = [rgb("red"), rgb("blue")]
    path = save(frames[0], tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 2
    red, green, blue = load_image(path).getpixel((0, 0))
    assert red > 200 and blue < 60


@pytest.mark.parametrize("name, content, words", [
    ("empty.png", b"", "empty file (0 bytes)"),
    ("text.jpg", b"this is not an image at all", "not an image"),
])
def test_bad_files_are_named_errors(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=re.escape(words)) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_fail_on_load(tmp_path, suffix):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = save(Image.fromarray(noise), tmp_path / f"full{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder_are_errors(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


@pytest.mark.parametrize("side", [12, 20])  # over MAX_IMAGE_PIXELS (a warning in Pillow), over twice it (an error)
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, side):
    path = save(rgb("red", (side, side)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path)


def test_load_folder_skips_bad_files_and_reports_them(tmp_path):
    save(rgb("red"), tmp_path / "a.png")
    save(rgb("blue"), tmp_path / "sub" / "b.jpg")
    (tmp_path / "c.png").write_bytes(b"broken")
    paths, images, problems = load_folder(tmp_path)
    assert paths == [tmp_path / "a.png", tmp_path / "sub" / "b.jpg"]
    assert [im.mode for im in images] == ["RGB", "RGB"]
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'c.png'}: not an image")
