"""How well the offline context labeller (the nearest-labels stand-in for LLaVA) lists what surrounds the main object.

For every packaged ID photo, REFERENCE holds what a person sees besides the main object (written by looking at
the photos) and the WordNet synset whose hyponyms are the main object again or its look-alikes (the cat's is
"carnivore": another cat or a dog breed is the erased cat read again, not context). The labeller runs twice:
the old relative rule (WordNet relatives within two hypernym steps) and the current one (module docstring of
synood/models/nearest_labels.py). Printed per photo and in total:
- precision: listed labels that name a reference element (a label matches when its meaning, the class synset for
  an ImageNet class name, else any noun sense, is or lies under a sense of a reference word: "tea cup" is "cup");
- look-alikes: listed labels that fall under the photo's look-alike synset without naming a reference element;
- recall: reference elements named by at least one label.
Run: .venv/bin/python bench/context_labels.py   (about 10 s a photo on 2 busy cores, warm caches)
"""
from __future__ import annotations

import sys
from pathlib import Path

import open_clip
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synood.data import photos, wordnet  # noqa: E402
from synood.models.nearest_labels import NearestLabels  # noqa: E402
from synood.models.suites import SUITES, Suite  # noqa: E402

# photo -> (look-alike synset, what a person sees besides the main object)
REFERENCE = {
    "cat": ("carnivore.n.01", ("room", "furniture", "sofa", "cushion", "blanket", "wall")),
    "coffee": ("beverage.n.01", ("cup", "mug", "saucer", "spoon", "table", "wood")),
    "orange": ("citrus.n.01", ("table", "shelf", "wall", "cloth")),
    "baboon": ("primate.n.02", ()),  # a face filling the frame: nothing else to list
    "butterfly": ("lepidopterous_insect.n.01", ("leaf", "plant", "flower", "garden")),
    "squirrel": ("rodent.n.01", ("branch", "tree", "leaf", "bark", "forest")),
    "lemons": ("citrus.n.01", ("orange", "lime", "kiwi", "fruit", "cabbage", "cheese")),
    "apple": ("edible_fruit.n.01", ("table", "pencil", "wall", "cloth")),
    "football": ("ball.n.01", ("player", "person", "crowd", "stadium", "grass", "jersey", "shoe", "field")),
    "palace": ("building.n.01", ("tree", "lake", "water", "boat", "ship", "sky", "hill", "lakeside")),
    "daisy": ("flower.n.01", ("leaf", "plant", "garden")),
    "uniform": ("clothing.n.01", ("flag", "cap", "glasses", "woman", "person", "medal", "badge", "tie")),
    "tent": ("shelter.n.01", ("sky", "star", "tree", "bush", "light", "night", "cloud", "desert")),
    "goldfish": ("fish.n.01", ("water", "aquarium")),
    "camera": ("photographic_equipment.n.01", ("strap", "nut", "acorn", "table", "wood", "tree", "lens cap")),
    "guitar": ("stringed_instrument.n.01", ("amplifier", "cable", "stand", "microphone", "stage", "floor",
                                           "loudspeaker")),
    "puppy": ("carnivore.n.01", ("fence", "floor", "pavement", "ground", "plant", "wood")),
    "snowy-peaks": ("geological_formation.n.01", ("snow", "sky", "sun", "cloud", "glacier", "rock", "ski slope")),
    "spaniels": ("carnivore.n.01", ("window", "house", "curtain", "wall", "railing", "wood", "rope", "fence")),
    "clock": ("timepiece.n.01", ("wall", "light", "lamp")),
    "fig": ("edible_fruit.n.01", ("bowl", "plate", "dish", "concrete", "stone", "pavement", "shadow")),
    "paintbrushes": ("brush.n.02", ("paint", "jar", "can", "pot", "studio", "wood")),
    "dragonfly": ("insect.n.01", ("leaf", "twig", "branch", "tree", "sky", "foliage")),
    "pekingese": ("carnivore.n.01", ("blanket", "cushion", "pillow", "cloth", "sofa", "quilt")),
    "aloe": ("container.n.01", ("plant", "aloe", "wallpaper", "wall", "table", "curtain", "cloth")),
}


CLASSES = dict(zip(open_clip.IMAGENET_CLASSNAMES, wordnet.imagenet_synsets()))


def meanings(word: str) -> list:
    """The ImageNet synset of a class name ("tea cup" is cup.n.01), else the word's WordNet noun senses."""
    return [CLASSES[word]] if word in CLASSES else wordnet.senses(word)


def under(word: str, roots: set) -> bool:
    """True if a meaning of `word` is one of `roots` or has one of them as a hypernym ancestor."""
    return any(s in roots or roots & set(s.closure(lambda x: x.hypernyms() + x.instance_hypernyms()))
               for s in meanings(word))


def judge(labels: list[str], look_alike: str, seen: tuple[str, ...]) -> tuple[int, int, set[str]]:
    """(labels naming a reference element, labels naming a look-alike instead, reference elements named)."""
    kind = {wordnet.wordnet().synset(look_alike)}
    hits, relatives, named = 0, 0, set()
    for label in labels:
        matched = {word for word in seen if label.lower() == word or under(label, set(meanings(word)))}
        named |= matched
        hits += bool(matched)
        relatives += not matched and under(label, kind)
    return hits, relatives, named


def main() -> None:
    chosen = [p for p in photos.photos("id") if p.name in REFERENCE]
    suite = Suite(SUITES["offline"], device="cpu")
    current = suite.labeller
    rules = {"old: relatives within 2 steps": NearestLabels(current.encoder, current.info, wordnet.related),
             "new: + every animal for an animal": current}
    totals = {rule: [0, 0, 0, 0, 0] for rule in rules}  # listed, hits, relatives, reference named, reference size
    for photo in chosen:
        look_alike, seen = REFERENCE[photo.name]
        image = Image.open(photo.path).convert("RGB")
        print(f"{photo.name} (look-alikes: {look_alike}; sees: {', '.join(seen) or 'nothing else'})")
        for rule, labeller in rules.items():
            with torch.no_grad():
                labels = labeller.context(image)
            hits, relatives, named = judge(labels, look_alike, seen)
            for i, value in enumerate((len(labels), hits, relatives, len(named), len(seen))):
                totals[rule][i] += value
            print(f"  {rule:34s} {hits}/{len(labels)} right, {relatives} look-alikes: {', '.join(labels)}")
    print(f"\n{len(chosen)} ID photos")
    print(f"  {'rule':34s} {'labels':>6s} {'precision':>9s} {'look-alikes':>11s} {'recall':>7s}")
    for rule, (listed, hits, relatives, named, size) in totals.items():
        print(f"  {rule:34s} {listed:6d} {100 * hits / max(listed, 1):8.1f}% {relatives:11d} "
              f"{100 * named / max(size, 1):6.1f}%")


if __name__ == "__main__":
    main()
