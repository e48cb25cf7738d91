"""The Negative labels tab's views as plain functions: distinct bar names, a histogram label that stays on the page,
search with whole words first, and display names for ImageNet classes that CLIP names twice."""
import json

import torch
from open_clip import IMAGENET_CLASSNAMES

from synood.data.classnames import display_names, distinct
from synood.pipelines.mining import NegativeLabel
from ui.neglabel_tab import bars, group_spread, negative_names, ranked


def label(word: str, pos: str = "noun") -> NegativeLabel:
    return NegativeLabel(word, pos, f"{pos}.test", 0.1)


def test_repeated_names_get_one_bar_each():
    names = negative_names([label("blue"), label("blue", "adj"), label("moss")])
    assert names == ["blue (noun)", "blue (adj)", "moss"]
    figure = json.loads(bars(names, [0.3, 0.2, 0.1], "t", "#000").to_json())
    assert figure["data"][0]["y"] == names[::-1] and figure["layout"]["yaxis"]["type"] == "category"


def test_imagenet_display_names_are_distinct_and_keep_unique_names():
    shown = display_names(IMAGENET_CLASSNAMES)
    assert len(set(shown)) == 1000 and len(set(IMAGENET_CLASSNAMES)) == 998
    assert shown[657] == "missile (a rocket carrying a…)" and shown[744] == "missile (a weapon that is…)"
    assert shown[836].startswith("sunglasses (") and shown[837].startswith("sunglasses (") and shown[836] != shown[837]
    assert [s for s, n in zip(shown, IMAGENET_CLASSNAMES) if s != n] == [shown[i] for i in (657, 744, 836, 837)]
    assert distinct(["a", "a"], ["same gloss", "same gloss"]) == ["a (same gloss) #0", "a (same gloss) #1"]
    assert display_names(["x", "x", "y"]) == ["x (class 0)", "x (class 1)", "y"]


def test_histogram_label_opens_toward_the_room():
    for score, anchor in ((0.002, "left"), (0.97, "right")):  # left-anchored text runs right of a line near 0
        annotation = group_spread(torch.tensor([score]), score).layout.annotations[0]
        assert annotation.xanchor == anchor and annotation.x == score


def test_search_puts_whole_words_first():
    words = ["censorship", "ownership", "shipyard", "hardship", "ship canal", "ship", "ship-breaker"]
    found = [found.word for found in ranked([label(w) for w in words], "Ship ")]
    assert found == ["ship", "ship canal", "ship-breaker", "shipyard", "censorship", "ownership", "hardship"]
    assert [found.word for found in ranked([label(w) for w in words], "")] == words  # no query: the mined order
    assert ranked([label("moss")], "ship") == []
