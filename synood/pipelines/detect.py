"""The detector: NegLabel and its baselines for one encoder and classifier, over PIL images.

Text features (ID labels, mined negatives) are computed once per detector, from the on-disk
caches (text features, and the mined list: mining.negatives); images are scored in one pass.
Every score is "higher = more in-distribution".
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from open_clip import IMAGENET_CLASSNAMES
from PIL import Image

from synood.pipelines import mining
from synood.method import scorers
from synood.config import NegLabelConfig
from synood.data import logits as logit_cache
from synood.data.textcache import StageProgress


class Detector:
    """Scores images with NegLabel (encoder + ID labels + negatives), MCM, and the classifier's MSP/Energy.

    The ID labels default to the CLIP-curated ImageNet names NegLabel uses, whatever the classifier
    calls its classes (torchvision's ResNet-50 has its own names). `progress` hears each stage of
    building it by name (mining's stage constants)."""

    def __init__(self, encoder, classifier, config: NegLabelConfig = NegLabelConfig(),
                 progress: StageProgress | None = None, id_names: Sequence[str] = IMAGENET_CLASSNAMES):
        self.encoder, self.classifier, self.config = encoder, classifier, config
        self.id_names = list(id_names)
        self.id_features = mining.id_label_features(encoder.text_features, self.id_names, config, progress)
        self.negatives, self.negative_raw = mining.negatives(encoder.identity, encoder.text_features, self.id_names,
                                                             config, progress, id_features=self.id_features)
        self.negative_features = F.normalize(self.negative_raw, dim=-1)  # what cosine scores read
        self.pools = {"neglabel": scorers.Texts(self.id_features, self.negative_features)}

    def pool(self, name: str, progress: StageProgress | None = None) -> scorers.Texts:
        """The unit-norm ID label and negative text features of the pool `name` (mining.POOLS), made on first use
        through their caches (`progress` hears their stages)."""
        if name not in self.pools:
            pool, encode = mining.POOLS[name], self.encoder.text_features
            id_features = pool.id_features(encode, self.id_names, self.config, progress)
            raw = pool.negatives(self.encoder.identity, encode, self.id_names, self.config, progress,
                                 id_features=id_features)[1]
            self.pools[name] = scorers.Texts(id_features, F.normalize(raw, dim=-1))
        return self.pools[name]

    def image_features(self, images: Sequence[Image.Image], batch_size: int = 32, normalize: bool = True) -> torch.Tensor:
        """(B, D) encoder features, unit-norm or raw (before L2 normalisation)."""
        return torch.cat([self.encoder.encode_image(self.encoder.preprocess(images[i:i + batch_size]),
                                                    normalize=normalize).float().cpu()
                          for i in range(0, len(images), batch_size)])

    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 1000) classifier logits, images of one size batched together (each keeps its own aspect ratio)."""
        return logit_cache.forward(self.classifier, images)

    def inputs(self, features: torch.Tensor | None = None, logits: torch.Tensor | None = None) -> scorers.ScoreInputs:
        """What the registered scorers read, for raw image `features` and/or classifier `logits`."""
        return scorers.ScoreInputs(self.id_features, self.negative_features, self.config, features, logits)

    def score(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """Every standard registered score of every image (scorers.standard()), plus NegLabel's per-group scores
        ("groups", (B, ngroups)), the unit-norm image features ("features", (B, D)) for nearest-label look-ups, the
        raw ones ("raw", what a tuned detector reads) and the classifier's logits ("logits")."""
        raw, logits = self.image_features(images, normalize=False), self.logits(images)
        found = self.scored(scorers.standard(), raw, logits)
        inputs = self.inputs(raw, logits)
        _, groups = scorers.grouped(inputs, inputs.unit, self.negative_features)
        return {**found, "groups": groups, "features": inputs.unit, "raw": raw, "logits": logits}

    def scored(self, names: Sequence[str], raw: torch.Tensor, logits: torch.Tensor | None = None,
               tuned: scorers.Tuned | None = None, combination: str = "both",
               progress: StageProgress | None = None) -> dict[str, torch.Tensor]:
        """The registered scores `names` of images with `raw` features (and `logits`), each against its own pool
        (made through its caches on first use); a trained score reads `tuned`."""
        found = {}
        for name in names:
            texts = self.pool(scorers.SCORERS[name].pool, progress)
            inputs = scorers.ScoreInputs(texts.id_text, texts.negative_text, self.config, raw, logits)
            found[name] = scorers.build(name, tuned, combination).score(inputs)
        return found
