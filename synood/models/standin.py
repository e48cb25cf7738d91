"""The "standin" encoder family: an offline stand-in for CLIP, NOT CLIP.

No CLIP weights install from a registry, so the offline suite builds an image-text space from two
real pretrained models, EfficientNet-Lite0 and all-MiniLM-L6-v2, joined through the 1000 ImageNet
classes: each class has an anchor text "a photo of a {name}, {WordNet gloss}". Two carriers,
measured side by side in bench/offline_quality.py (BENCHMARKS.md):
- "conse" (default): images go into the sentence space. An image's feature is the mean of the
  anchor embeddings weighted by the classifier's softmax (ConSE, Norouzi et al. 2014); texts are
  plain MiniLM embeddings, so every WordNet word keeps its meaning and NegLabel's negatives are
  words far from ImageNet, as with CLIP. Best NegLabel on the packaged photos.
- "ridge": texts go into the image space. Images are the classifier's pooled features
  (L2-normalised); a text is its MiniLM embedding through a linear map fitted by ridge regression
  so that each anchor lands on its class's normalised weight row. Words far from ImageNet land
  poorly, and NegLabel suffers.
Either way this is a teaching and plumbing stand-in, not a CLIP replacement.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from synood.runtime import pick_dtype
from synood.data.textcache import Progress, cached_text_features
from synood.models import efficientnet, minilm
from synood.models.classifier import ImageNetClassifier
from synood.models.interfaces import ComponentInfo, count_parameters
from synood.models.suites import ComponentSpec, ModelUnavailableError

MODEL = "lite0-minilm"
CARRIERS = ("conse", "ridge")
RIDGE_LAMBDA = 0.1
ANCHOR_TEMPLATE = "a photo of a {name}, {gloss}"
TITLE = "Offline stand-in for CLIP (not CLIP)"


def anchor_texts(class_names: Sequence[str]) -> list[str]:
    """One anchor text per ImageNet class: its name and its WordNet gloss (read without nltk's slow reader)."""
    from synood.data import wordnet

    return [ANCHOR_TEMPLATE.format(name=name, gloss=gloss) for name, gloss in zip(class_names, wordnet.imagenet_glosses())]


class StandInEncoder:
    """ImageTextEncoder joining a classifier and a sentence encoder through class anchors (module docstring)."""

    def __init__(self, classifier: ImageNetClassifier, sentences: minilm.SentenceEncoder, carrier: str,
                 info: ComponentInfo):
        if carrier not in CARRIERS:
            raise ModelUnavailableError(f"unknown stand-in carrier {carrier!r}; choose one of {', '.join(CARRIERS)}")
        self.classifier, self.sentences, self.carrier, self.info = classifier, sentences, carrier, info
        self.anchors = cached_text_features(sentences.identity, anchor_texts(classifier.class_names), sentences.encode)
        self.ridge = _ridge(self.anchors, class_rows(classifier), RIDGE_LAMBDA) if carrier == "ridge" else None
        self.embed_dim = self.ridge.shape[1] if self.ridge is not None else sentences.dim

    @property
    def identity(self) -> str:
        """Carrier, classifier weights and sentence model: the key of every feature cached with this encoder."""
        return f"standin:{self.carrier}:{self.classifier.info.source}:{self.classifier.dtype}:{self.sentences.identity}"

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) in [0, 1]: the classifier's resize and centre crop, done once."""
        view = self.classifier.view
        tensors = []
        for image in images:
            image = image.convert("RGB")
            scale = view.resize / min(image.size)
            image = image.resize((max(view.crop, round(image.width * scale)), max(view.crop, round(image.height * scale))),
                                 Image.Resampling.BILINEAR)
            left, top = (image.width - view.crop) // 2, (image.height - view.crop) // 2
            tensors.append(self.classifier.to_tensor(image.crop((left, top, left + view.crop, top + view.crop))))
        return torch.stack(tensors)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, 3, S, S) pixels -> (B, D) features: softmax-weighted anchors (conse) or the pooled classifier
        features (ridge); unit-norm, or raw (before that L2 normalisation) when not `normalize`."""
        with torch.inference_mode():
            if self.ridge is not None:
                raw = self.classifier.features(pixels).float().cpu()
            else:
                raw = self.classifier.logits(pixels).float().softmax(dim=-1).cpu() @ self.anchors
        return F.normalize(raw, dim=-1) if normalize else raw

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """N strings -> (N, D) features in this encoder's space, unit-norm or raw."""
        return self.carry(self.sentences.encode(texts).cpu(), normalize)

    def text_features(self, texts: Sequence[str], progress: Progress | None = None,
                      normalize: bool = True) -> torch.Tensor:
        """encode_text with the sentence features cached on disk (the ridge map is cheap and re-applied)."""
        return self.carry(cached_text_features(self.sentences.identity, texts, self.sentences.encode,
                                               progress=progress), normalize)

    def carry(self, sentence_features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Sentence-encoder features -> text features of this encoder's space (raw: before L2 normalisation)."""
        raw = sentence_features if self.ridge is None else sentence_features @ self.ridge
        return F.normalize(raw, dim=-1) if normalize else raw


def class_rows(classifier: ImageNetClassifier) -> torch.Tensor:
    """(1000, C) the classifier's weight rows, L2-normalised: where each class's anchor should land."""
    return F.normalize(classifier.head.weight.detach().float().cpu(), dim=-1)


def _ridge(inputs: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_M |inputs M - targets|^2 + lam |M|^2, in closed form (float64 for a clean solve)."""
    x, y = inputs.double(), targets.double()
    gram = x.T @ x + lam * torch.eye(x.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, x.T @ y).float()


def load(spec: ComponentSpec, device: torch.device, dtype: str, carrier: str = "conse") -> StandInEncoder:
    """The stand-in over the packaged EfficientNet-Lite0 and all-MiniLM-L6-v2."""
    if spec.model != MODEL:
        raise ModelUnavailableError(f"the standin family has only {MODEL}, not {spec.model!r}")
    return shared(device, pick_dtype(dtype, device), carrier)


def shared(device: torch.device, dtype: torch.dtype, carrier: str = "conse") -> StandInEncoder:
    """One stand-in per device, dtype and carrier; the offline labeller and generator reuse the suite's encoder."""
    return _built(device, dtype, carrier)  # one cache key however the carrier is passed


@functools.lru_cache(maxsize=4)
def _built(device: torch.device, dtype: torch.dtype, carrier: str) -> StandInEncoder:
    classifier = efficientnet.packaged(device, dtype)
    sentences = minilm.shared(minilm.packaged_folder(), device)
    info = ComponentInfo(
        role="encoder", name=f"{TITLE}: EfficientNet-Lite0 features + all-MiniLM-L6-v2 text ({carrier})",
        architecture=("EfficientNet-Lite0 softmax over ImageNet anchors in MiniLM-L6 sentence space" if carrier == "conse"
                      else "EfficientNet-Lite0 pooled features; MiniLM-L6 sentences mapped by ridge regression"),
        source=f"{classifier.info.source}; {sentences.folder}", pretrained=True,
        parameters=count_parameters(classifier.net, sentences.model))
    return StandInEncoder(classifier, sentences, carrier, info)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: both models come with pip packages."""
    efficientnet.download(efficientnet.PACKAGED)
    return str(minilm.packaged_folder())
