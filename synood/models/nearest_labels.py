"""The "nearest-labels" context labeller: the offline suite's stand-in for an MLLM (LLaVA-1.5).

An MLLM lists what an image shows besides its main object. Offline, real models answer instead,
from the same image with its main object erased (the classical generator's class-activation-map
region, inpainted): the classifier's other likely ImageNet labels on the whole image, then its
likely labels on the erased image, then the common WordNet nouns of physical things nearest to
the erased image under the offline encoder. The main class and its relatives are dropped throughout (a tabby cat's
"tiger cat" is the same object; a "doormat" is context). Relatives (`relative`): WordNet relatives within two
hypernym steps, and, when the main object is an animal, every animal: erasing leaves fur, feathers or scales and
an outline, which the classifier still reads as some animal (the cat's erased photo came out as dog breeds), while
a second animal beside the main one is rare in ImageNet-style photos (bench/context_labels.py, BENCHMARKS.md).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from PIL import Image

from synood.data import wordnet
from synood.runtime import pick_dtype
from synood.models import classical, standin
from synood.models.interfaces import ComponentInfo
from synood.models.suites import ComponentSpec, ModelUnavailableError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

MODEL = "lite0-top-labels+wordnet"
TOP_CLASSES = 10  # classifier labels considered
MIN_PROBABILITY = 0.02  # a classifier label below this is noise, not context
MAX_CLASS_LABELS = 3
MAX_NOUNS = 3
NOUN_SHORTLIST = 50  # nearest nouns checked for relatedness
# Common WordNet nouns (tagged at least once in SemCor) of things a photo can show; people, acts,
# feelings, ... and rare words are left out.
PHYSICAL = ("noun.artifact", "noun.object", "noun.plant", "noun.animal", "noun.food", "noun.substance")
# Words about the picture itself (photograph, painting, picture frame) describe every image: never context.
DEPICTION = ("creation.n.02", "framework.n.03")
NOUN_TEMPLATE = "the nice {}"  # NegLabel's noun prompt, so mining can reuse the same cached features


def relative(main: Synset, other: Synset) -> bool:
    """True if `other` is the main object again or a look-alike of it (module docstring)."""
    return wordnet.related(main, other) or main.lexname() == other.lexname() == "noun.animal"


class NearestLabels:
    """ContextLabeller from a classifier and the offline encoder; see the module docstring. `kin` decides
    which synsets are relatives of the main class (bench/context_labels.py compares rules)."""

    def __init__(self, encoder: standin.StandInEncoder, info: ComponentInfo,
                 kin: Callable[[Synset, Synset], bool] = relative):
        self.encoder, self.classifier, self.info, self.kin = encoder, encoder.classifier, info, kin
        self.synsets = wordnet.imagenet_synsets()
        self.nouns = wordnet.common_nouns(PHYSICAL, excluded=DEPICTION)

    @functools.cached_property
    def noun_features(self) -> torch.Tensor:
        """(N, D) offline-encoder features of the physical nouns: computed once, then cached on disk."""
        prompts = [NOUN_TEMPLATE.format(word) for word in self.nouns]
        return self.encoder.text_features(prompts)

    def context(self, image: Image.Image) -> list[str]:
        """Context elements of `image`, most salient first (see the module docstring)."""
        whole = self.classifier.to_tensor(image)[None]
        with torch.no_grad():
            main_index = int(self.classifier.logits(whole).argmax())
        source, erased, _, _ = classical.erase_main_object(self.classifier, image, predicted=main_index)
        main = self.synsets[main_index]
        with torch.no_grad():
            probabilities = self.classifier.logits(torch.stack([source, erased])).softmax(dim=-1).float().cpu()
        labels: list[str] = []
        for row in probabilities:
            top = row.topk(TOP_CLASSES)
            for p, i in zip(top.values.tolist(), top.indices.tolist()):
                name = self.classifier.class_names[i]
                if (len(labels) < MAX_CLASS_LABELS and p >= MIN_PROBABILITY and name not in labels
                        and i != main_index and not self.kin(main, self.synsets[i])):
                    labels.append(name)
        similarity = self.noun_features @ self.encoder.encode_image(erased[None])[0]
        nouns: list[str] = []
        for index in similarity.topk(min(NOUN_SHORTLIST, len(self.nouns))).indices.tolist():
            word = self.nouns[index]
            if len(nouns) < MAX_NOUNS and word.lower() not in map(str.lower, labels) \
                    and not self._names_relative(word, main):
                nouns.append(word)
        return labels + nouns

    def _names_relative(self, word: str, main: Synset) -> bool:
        """True if any noun sense of `word` is the main class or one of its relatives."""
        return any(self.kin(main, sense) for sense in wordnet.senses(word))


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> NearestLabels:
    """The labeller over the offline suite's classifier and encoder (the same shared instances)."""
    if spec.model != MODEL:
        raise ModelUnavailableError(f"the nearest-labels family has only {MODEL}, not {spec.model!r}")
    encoder = standin.shared(device, pick_dtype(dtype, device))
    info = ComponentInfo(
        role="labeller", name="Nearest labels (stand-in for an MLLM)",
        architecture="EfficientNet-Lite0 top labels minus WordNet relatives, plus the WordNet nouns nearest "
                     "under the offline encoder", source=f"{encoder.info.source}; WordNet {wordnet.wordnet_source()}",
        pretrained=True, parameters=0)
    return NearestLabels(encoder, info)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: the models come with pip packages and WordNet with apt or nltk."""
    return standin.download(spec)
