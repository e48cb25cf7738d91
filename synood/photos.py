"""Example photos read at run time from the packages that ship them; none is copied into this repo.

They make the app's examples and the offline mini-benchmark: ID photos show one ImageNet class,
OOD photos are textures, astronomy, a painting and documents, which no ImageNet class describes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian package opencv-doc


@dataclass(frozen=True)
class Photo:
    """One packaged photo: a short name, ID or OOD, what it shows, where it comes from."""

    name: str
    split: str  # "id" or "ood"
    subject: str  # the ImageNet class (ID) or the kind of OOD content
    package: str
    file: str  # file name inside the package's data folder

    @property
    def path(self) -> Path:
        return _data_dir(self.package) / self.file


CATALOGUE = (
    Photo("cat", "id", "tabby cat", "scikit-image", "chelsea.png"),
    Photo("coffee", "id", "espresso", "scikit-image", "coffee.png"),
    Photo("orange", "id", "orange", "opencv-doc", "orange.jpg"),
    Photo("baboon", "id", "baboon", "opencv-doc", "baboon.jpg"),
    Photo("butterfly", "id", "monarch butterfly", "opencv-doc", "butterfly.jpg"),
    Photo("squirrel", "id", "fox squirrel", "opencv-doc", "squirrel_cls.jpg"),
    Photo("lemons", "id", "lemon", "opencv-doc", "fruits.jpg"),
    Photo("apple", "id", "Granny Smith apple", "opencv-doc", "apple.jpg"),
    Photo("football", "id", "soccer ball", "opencv-doc", "messi5.jpg"),
    Photo("palace", "id", "palace", "scikit-learn", "china.jpg"),
    Photo("daisy", "id", "daisy", "scikit-learn", "flower.jpg"),
    Photo("uniform", "id", "military uniform", "matplotlib", "grace_hopper.jpg"),
    Photo("brick", "ood", "texture", "scikit-image", "brick.png"),
    Photo("grass", "ood", "texture", "scikit-image", "grass.png"),
    Photo("gravel", "ood", "texture", "scikit-image", "gravel.png"),
    Photo("deep-field", "ood", "astronomy", "scikit-image", "hubble_deep_field.jpg"),
    Photo("moon", "ood", "astronomy", "scikit-image", "moon.png"),
    Photo("starry-night", "ood", "painting", "opencv-doc", "starry_night.jpg"),
    Photo("page", "ood", "document", "scikit-image", "page.png"),
    Photo("text", "ood", "document", "scikit-image", "text.png"),
    Photo("notes", "ood", "document", "opencv-doc", "notes.png"),
    Photo("blurred-text", "ood", "document", "opencv-doc", "text_motion.jpg"),
)


def _data_dir(package: str) -> Path:
    """The folder where `package` keeps its sample images (no package is imported for opencv-doc)."""
    if package == "opencv-doc":
        return OPENCV_DOC
    if package == "scikit-image":
        import skimage.data

        return Path(skimage.data.__file__).parent
    if package == "scikit-learn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images"
    if package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data"
    raise ValueError(f"unknown photo package {package!r}")


def photos(split: str | None = None) -> list[Photo]:
    """The catalogue's photos that are installed here (optionally only 'id' or 'ood')."""
    return [p for p in CATALOGUE if (split is None or p.split == split) and p.path.is_file()]


def missing() -> list[Photo]:
    """Catalogue photos whose package is not installed (opencv-doc needs apt)."""
    return [p for p in CATALOGUE if not p.path.is_file()]


def by_name(name: str) -> Photo:
    for photo in CATALOGUE:
        if photo.name == name:
            return photo
    raise KeyError(f"no example photo named {name!r}; names: {', '.join(p.name for p in CATALOGUE)}")
