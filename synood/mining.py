"""NegMining (NegLabel, METHOD.md section 1): WordNet words far from every ID label become negatives.

Each candidate is prompted by its part of speech and encoded; its distance to the ID labels is
the 95th percentile of its cosine similarities to all ID label features; the lowest 15 % are
kept, separately for nouns and adjectives. Text features come from the encoder's on-disk cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .config import NegLabelConfig
from .textcache import Progress
from .wordnet import Candidate, candidates

POS_ORDER = ("noun", "adj")
CSP_PRUNED = ("noun.person", "noun.quantity", "noun.group", "adj.pert")  # the CSP-style optional pruning


@dataclass(frozen=True)
class NegativeLabel:
    """A mined negative: the word, its part of speech and lexname, and its percentile similarity to ID."""

    word: str
    pos: str
    lexname: str
    percentile: float


def percentile_similarity(candidate_features: torch.Tensor, id_features: torch.Tensor, percentile: float = 95.0,
                          chunk: int = 4096) -> torch.Tensor:
    """(N,) the `percentile`-th percentile (linear interpolation, as numpy) of each candidate's cosine
    similarities to every ID feature. Unit-norm inputs; computed in chunks to bound memory."""
    q = percentile / 100.0
    return torch.cat([torch.quantile(candidate_features[i:i + chunk].float() @ id_features.float().T, q, dim=1)
                      for i in range(0, len(candidate_features), chunk)])


def lowest(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Indices of the int(keep_ratio * N) lowest scores, ascending; ties keep the earlier index."""
    count = int(keep_ratio * len(scores))
    return torch.sort(scores, stable=True).indices[:count]


def prompts(words: Sequence[str], template: str) -> list[str]:
    return [template.format(word) for word in words]


TextFeatures = Callable[..., torch.Tensor]  # (texts, progress=None) -> (N, D) unit-norm, e.g. encoder.text_features


def mine(text_features: TextFeatures, id_names: Sequence[str], config: NegLabelConfig = NegLabelConfig(),
         progress: Progress | None = None, pool: dict[str, list[Candidate]] | None = None,
         id_features: torch.Tensor | None = None) -> tuple[list[NegativeLabel], torch.Tensor]:
    """The negative labels (nouns first, then adjectives, each most distant first) and their (M, D)
    text features. `text_features` is an encoder's cached text encoding; `pool` replaces the WordNet
    candidates (tests); `id_features` are the ID prompts' features when the caller already has them."""
    if id_features is None:
        id_features = text_features(prompts(id_names, config.id_template), progress=progress)
    templates = {"noun": config.noun_template, "adj": config.adjective_template}
    labels: list[NegativeLabel] = []
    features = []
    for pos in POS_ORDER:
        # sorted by word (as candidates() already is): the result, ties and cache keys included, never
        # depends on the order a pool is given in
        pool_pos = sorted(pool[pos] if pool is not None else candidates(pos), key=lambda c: (c.word, c.lexname))
        if config.prune_csp:
            pool_pos = [c for c in pool_pos if c.lexname not in CSP_PRUNED]
        encoded = text_features(prompts([c.word for c in pool_pos], templates[pos]), progress=progress)
        distance = percentile_similarity(encoded, id_features, config.percentile)
        keep = lowest(distance, config.keep_ratio)
        labels += [NegativeLabel(pool_pos[i].word, pos, pool_pos[i].lexname, float(distance[i])) for i in keep.tolist()]
        features.append(encoded[keep])
    return labels, torch.cat(features)
