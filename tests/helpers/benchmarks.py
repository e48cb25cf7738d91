"""Miniature benchmark layouts with the real file formats: JPEG folders as the releases unpack them, and OpenOOD's
imglist text files."""
from pathlib import Path

from PIL import Image

OPENOOD_LISTS = {"test_imagenet": ("images_largescale", "imagenet_1k/val/n01440764", 3, 0),
                 "test_ssb_hard": ("images_largescale", "ssb_hard/n00000001", 2, -1),
                 "test_ninco": ("images_largescale", "ninco/amphiuma", 2, -1),
                 "test_inaturalist": ("images_largescale", "inaturalist/images", 2, -1),
                 "test_textures": ("images_classic", "texture/banded", 2, -1),
                 "test_openimage_o": ("images_largescale", "openimage_o", 2, -1)}


def jpegs(folder: Path, count: int, prefix: str = "img") -> list[Path]:
    """`count` small distinct JPEG files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (16, 12), (40 * i % 255, 90, 160)).save(folder / f"{prefix}_{i}.jpg", "JPEG")
    return [folder / f"{prefix}_{i}.jpg" for i in range(count)]


def openood_layout(root: Path, lists: tuple[str, ...] = tuple(OPENOOD_LISTS)) -> Path:
    """OpenOOD's data/ folder for ImageNet-1k: the imglists named in `lists` (of OPENOOD_LISTS) and their images
    under images_largescale/ and images_classic/."""
    folder = root / "benchmark_imglist" / "imagenet"
    folder.mkdir(parents=True, exist_ok=True)
    for name in lists:
        data_dir, where, count, label = OPENOOD_LISTS[name]
        made = jpegs(root / data_dir / where, count, name)
        (folder / f"{name}.txt").write_text("".join(f"{p.relative_to(root / data_dir)} {label}\n" for p in made))
    return root
