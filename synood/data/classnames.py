"""ImageNet class names for display. CLIP's curated names, which NegLabel's prompts use unchanged, give two names
twice ("missile", "sunglasses"); wherever a name is shown, duplicates are told apart by their WordNet gloss."""
from __future__ import annotations

import functools
from collections import Counter
from typing import Sequence

IMAGENET_CLASS_COUNT = 1000
GLOSS_WORDS = 4  # words of the gloss that tell two classes apart without crowding a chart's axis


def distinct(names: Sequence[str], glosses: Sequence[str]) -> list[str]:
    """`names` with each repeated one followed by the start of its gloss, "missile (a rocket carrying a…)";
    if that still repeats, by its index too. Unique names are kept as they are."""
    counts = Counter(names)
    shown = [name if counts[name] == 1 else f"{name} ({short(gloss)})" for name, gloss in zip(names, glosses)]
    again = Counter(shown)
    return [f"{text} #{i}" if again[text] > 1 else text for i, text in enumerate(shown)]


def short(gloss: str, words: int = GLOSS_WORDS) -> str:
    parts = gloss.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def display_names(names: Sequence[str]) -> list[str]:
    """Display names for a list of ImageNet class names (a classifier's, or the detector's ID labels): 1000 names in
    ImageNet's class order are told apart by their WordNet glosses, any other list by class index."""
    return list(_display_names(tuple(names)))


@functools.lru_cache(maxsize=4)
def _display_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if len(names) == IMAGENET_CLASS_COUNT:
        from synood.data import wordnet

        glosses = wordnet.imagenet_glosses()  # the definitions, read without loading nltk (seconds)
    else:
        glosses = [f"class {i}" for i in range(len(names))]
    return tuple(distinct(names, glosses))
