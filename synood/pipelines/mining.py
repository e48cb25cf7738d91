"""NegMining (NegLabel, METHOD.md section 1): WordNet words far from every ID label become negatives.

Each candidate is prompted by its part of speech and encoded; its distance to the ID labels is
the 95th percentile of its cosine similarities to all ID label features; the lowest 15 % are
kept, separately for nouns and adjectives. Text features come from the encoder's on-disk cache, and the
mined list itself is cached too (`negatives`), keyed by everything it depends on, so that a restarted app
or CLI reads it in a fraction of a second instead of ranking 81k candidates again.

CSP (NeurIPS 2024, docs/method.md) builds a second pool the same way (`csp_negatives`, POOLS["csp"]): nouns and ID
names averaged over eight prompt templates, each adjective turned into an adjective-superclass phrase, candidates
that nearly name an ID class ranked last.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch
import torch.nn.functional as F

from synood.config import CSPSettings, NegLabelConfig, cache_home
from synood.data.storage import save_tensors, write_text
from synood.data.textcache import StageProgress, staged
from synood.data.wordnet import Candidate, candidates, fingerprint

POS_ORDER = ("noun", "adj")
POS_TITLES = {"noun": "nouns", "adj": "adjectives"}
# The stages mining reports (textcache.StageProgress), so that one progress display can name each.
ENCODING_ID = "Encoding ID label prompts"
READING_WORDNET = "Reading the WordNet candidates"
LOADING_CACHED = "Loading the cached negative labels"
SAVING = "Saving the negative labels"
CACHE_VERSION = 2  # part of the cache key: raise it when a code change alters what mining returns (2: raw features)
CSP_CACHE_VERSION = 1  # the same, for the CSP pool (csp_negatives)
MINING_FIELDS = ("noun_template", "adjective_template", "percentile", "keep_ratio", "prune_csp")  # + id_template
T = TypeVar("T")
CSP_PRUNED = ("noun.person", "noun.quantity", "noun.group", "adj.pert")  # the CSP-style optional pruning


@dataclass(frozen=True)
class NegativeLabel:
    """A mined negative: the word, its part of speech and lexname, and its percentile similarity to ID."""

    word: str
    pos: str
    lexname: str
    percentile: float


def percentile_similarity(candidate_features: torch.Tensor, id_features: torch.Tensor, percentile: float = 95.0,
                          chunk: int = 4096, near_id: float | None = None) -> torch.Tensor:
    """(N,) the `percentile`-th percentile (linear interpolation, as numpy) of each candidate's cosine
    similarities to every ID feature; 1.0 where the largest of them exceeds `near_id` (CSP's rule: a candidate
    that nearly names an ID class ranks last). Unit-norm inputs; computed in chunks to bound memory."""
    q = percentile / 100.0
    parts = []
    for i in range(0, len(candidate_features), chunk):
        similarity = candidate_features[i:i + chunk].float() @ id_features.float().T
        value = torch.quantile(similarity, q, dim=1)
        if near_id is not None:
            value[similarity.max(dim=1).values > near_id] = 1.0
        parts.append(value)
    return torch.cat(parts)


def lowest(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Indices of the int(keep_ratio * N) lowest scores, ascending; ties keep the earlier index."""
    count = int(keep_ratio * len(scores))
    return torch.sort(scores, stable=True).indices[:count]


def prompts(words: Sequence[str], template: str) -> list[str]:
    return [template.format(word) for word in words]


TextFeatures = Callable[..., torch.Tensor]  # (texts, progress=None, normalize=True) -> (N, D), e.g. encoder.text_features


def encoding_stage(pos: str) -> str:
    """The stage name of encoding one part of speech's prompts: "Encoding WordNet nouns"."""
    return f"Encoding WordNet {POS_TITLES[pos]}"


def ranking_stage(pos: str) -> str:
    """The stage name of ranking one part of speech's candidates (95th percentiles, then the lowest)."""
    return f"Ranking WordNet {POS_TITLES[pos]} by their similarity to the ID labels"


def mine(text_features: TextFeatures, id_names: Sequence[str], config: NegLabelConfig = NegLabelConfig(),
         progress: StageProgress | None = None, pool: dict[str, list[Candidate]] | None = None,
         id_features: torch.Tensor | None = None) -> tuple[list[NegativeLabel], torch.Tensor]:
    """The negative labels (nouns first, then adjectives, each most distant first) and their (M, D) RAW
    text features (ranked by cosine; stage 3 learns the raw ones). `text_features` is an encoder's cached text encoding; `pool` replaces the WordNet
    candidates (tests); `id_features` are the ID prompts' features when the caller already has them.
    `progress` hears each stage by name (the module's stage constants)."""
    if id_features is None:
        id_features = text_features(prompts(id_names, config.id_template), progress=staged(progress, ENCODING_ID))
    if pool is None:
        pool = _step(progress, READING_WORDNET, lambda: {pos: candidates(pos) for pos in POS_ORDER})
    templates = {"noun": config.noun_template, "adj": config.adjective_template}
    labels: list[NegativeLabel] = []
    features = []
    for pos in POS_ORDER:
        # sorted by word (as candidates() already is): the result, ties and cache keys included, never
        # depends on the order a pool is given in
        pool_pos = _pool(pool, pos, config.prune_csp)
        words = [c.word for c in pool_pos]
        encoded = text_features(prompts(words, templates[pos]), progress=staged(progress, encoding_stage(pos)),
                                normalize=False)
        kept_labels, kept_features = _keep(pos, pool_pos, words, encoded, id_features, config, progress)
        labels += kept_labels
        features.append(kept_features)
    return labels, torch.cat(features)


def _keep(pos: str, pool_pos: Sequence[Candidate], words: Sequence[str], encoded: torch.Tensor,
          id_features: torch.Tensor, config: NegLabelConfig, progress: StageProgress | None,
          near_id: float | None = None) -> tuple[list[NegativeLabel], torch.Tensor]:
    """The lowest `config.keep_ratio` of one part of speech's candidates by percentile similarity (their raw
    `encoded` rows ranked by cosine), most distant first, each labelled by `words` (what was encoded)."""
    distance = _step(progress, ranking_stage(pos), lambda: percentile_similarity(
        F.normalize(encoded, dim=-1), id_features, config.percentile, near_id=near_id))
    keep = lowest(distance, config.keep_ratio)
    labels = [NegativeLabel(words[i], pos, pool_pos[i].lexname, float(distance[i])) for i in keep.tolist()]
    return labels, encoded[keep]


def _pool(pool: dict[str, list[Candidate]], pos: str, prune: bool) -> list[Candidate]:
    """One part of speech of the pool, sorted by word, without the CSP-pruned lexnames when `prune`."""
    pool_pos = sorted(pool[pos], key=lambda c: (c.word, c.lexname))
    return [c for c in pool_pos if c.lexname not in CSP_PRUNED] if prune else pool_pos


def ensembled(text_features: TextFeatures, words: Sequence[str], templates: Sequence[str],
              progress: StageProgress | None, stage: str) -> torch.Tensor:
    """(N, D) each word's RAW text features averaged over `templates` (CSP's prompt ensemble: the mean is taken
    before any normalisation), one cached encoding per template, each reported as "<stage>, template i of n"."""
    raws = (text_features(prompts(words, template), normalize=False,
                          progress=staged(progress, f"{stage}, template {i + 1} of {len(templates)}"))
            for i, template in enumerate(templates))
    return functools.reduce(torch.add, raws) / len(templates)  # summed as they come: one (N, D) in memory


def csp_id_features(text_features: TextFeatures, id_names: Sequence[str], settings: CSPSettings = CSPSettings(),
                    progress: StageProgress | None = None) -> torch.Tensor:
    """(C, D) CSP's unit-norm ID label features: each name's raw features averaged over the noun templates."""
    return F.normalize(ensembled(text_features, id_names, settings.noun_templates, progress, ENCODING_ID), dim=-1)


def superclassed(adjectives: Sequence[str], settings: CSPSettings = CSPSettings()) -> list[str]:
    """CSP's elements: each adjective in a superclass template drawn by random.Random(settings.seed), one draw per
    adjective in the order given (the authors draw with Python's seeded `random.choice` in their file order)."""
    draw = random.Random(settings.seed)
    return [draw.choice(settings.superclass_templates).format(word) for word in adjectives]


def mine_csp(text_features: TextFeatures, id_names: Sequence[str], config: NegLabelConfig = NegLabelConfig(),
             progress: StageProgress | None = None, pool: dict[str, list[Candidate]] | None = None,
             settings: CSPSettings = CSPSettings()) -> tuple[list[NegativeLabel], torch.Tensor]:
    """CSP's negatives (nouns first, then adjective-superclass phrases, each most distant first) and their (M, D)
    RAW features (template means): nouns and ID names ensembled over the noun templates, each adjective put in a
    seeded superclass template and ensembled over the adjective templates; ranked as NegMining ranks, except that a
    candidate with a cosine above `settings.near_id` to an ID label ranks last; the lowest `config.keep_ratio` of
    each part of speech kept (`config.percentile` too is read from the NegLabel settings)."""
    id_features = csp_id_features(text_features, id_names, settings, progress)
    if pool is None:
        pool = _step(progress, READING_WORDNET, lambda: {pos: candidates(pos) for pos in POS_ORDER})
    labels: list[NegativeLabel] = []
    features = []
    for pos in POS_ORDER:
        pool_pos = _pool(pool, pos, settings.prune)
        words = [c.word for c in pool_pos]
        if pos == "adj":
            words = superclassed(words, settings)
        templates = settings.noun_templates if pos == "noun" else settings.adjective_templates
        encoded = ensembled(text_features, words, templates, progress, encoding_stage(pos))
        kept_labels, kept_features = _keep(pos, pool_pos, words, encoded, id_features, config, progress,
                                           settings.near_id)
        labels += kept_labels
        features.append(kept_features)
    return labels, torch.cat(features)


def _step(progress: StageProgress | None, stage: str, work: Callable[[], T]) -> T:
    """Run one uncounted step, reported as `stage` 0 of 1 before and 1 of 1 after."""
    if progress:
        progress(stage, 0, 1)
    result = work()
    if progress:
        progress(stage, 1, 1)
    return result


def cache_key(identity: str, id_names: Sequence[str], config: NegLabelConfig, source: str) -> str:
    """sha256 of everything a mined list depends on: the encoder's identity, the ID prompts, the mining
    fields of `config`, the candidates' source (WordNet's fingerprint or a pool's digest) and CACHE_VERSION."""
    return _digest({"version": CACHE_VERSION, "encoder": identity, "id_prompts": prompts(id_names, config.id_template),
                    "config": {name: getattr(config, name) for name in MINING_FIELDS}, "candidates": source})


def csp_cache_key(identity: str, id_names: Sequence[str], config: NegLabelConfig, source: str,
                  settings: CSPSettings = CSPSettings()) -> str:
    """sha256 of everything a CSP pool depends on: as `cache_key`, with the ID names, every CSP setting and the
    percentile and keep ratio it reads from `config` instead of NegLabel's templates, and CSP_CACHE_VERSION."""
    return _digest({"pool": "csp", "version": CSP_CACHE_VERSION, "encoder": identity, "id_names": list(id_names),
                    "settings": dataclasses.asdict(settings), "percentile": config.percentile,
                    "keep_ratio": config.keep_ratio, "candidates": source})


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def pool_digest(pool: dict[str, list[Candidate]]) -> str:
    """sha256 of a candidate pool, in word order: the `source` of a cache key for mining over a given pool."""
    rows = [[c.word, c.pos, c.lexname] for pos in POS_ORDER for c in sorted(pool[pos], key=lambda c: (c.word, c.lexname))]
    return "pool:" + hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def negatives(identity: str, text_features: TextFeatures, id_names: Sequence[str],
              config: NegLabelConfig = NegLabelConfig(), progress: StageProgress | None = None,
              pool: dict[str, list[Candidate]] | None = None, id_features: torch.Tensor | None = None,
              root: Path | None = None) -> tuple[list[NegativeLabel], torch.Tensor]:
    """mine(), through an on-disk cache under <root or SYNOOD_HOME>/negative-labels keyed by `cache_key`
    (`identity` is the encoder's, whose `text_features` these are). A missing, damaged or mismatched
    cache is mined again and rewritten, never misread."""
    source = fingerprint() if pool is None else pool_digest(pool)
    path = (root or cache_home()) / "negative-labels" / cache_key(identity, id_names, config, source)
    return _cached(path, progress, lambda: mine(text_features, id_names, config, progress, pool, id_features))


def csp_negatives(identity: str, text_features: TextFeatures, id_names: Sequence[str],
                  config: NegLabelConfig = NegLabelConfig(), progress: StageProgress | None = None,
                  pool: dict[str, list[Candidate]] | None = None, id_features: torch.Tensor | None = None,
                  root: Path | None = None) -> tuple[list[NegativeLabel], torch.Tensor]:
    """mine_csp() through the same on-disk cache as `negatives`, keyed by `csp_cache_key`: the CSP pool
    (POOLS["csp"]). `id_features` is not read: CSP ranks against its own template-ensembled ID features."""
    source = fingerprint() if pool is None else pool_digest(pool)
    path = (root or cache_home()) / "negative-labels" / csp_cache_key(identity, id_names, config, source)
    return _cached(path, progress, lambda: mine_csp(text_features, id_names, config, progress, pool))


def _cached(path: Path, progress: StageProgress | None,
            work: Callable[[], tuple[list[NegativeLabel], torch.Tensor]]) -> tuple[list[NegativeLabel], torch.Tensor]:
    """The labels and features cached at `path`, or `work()`'s, then written there."""
    if path.with_suffix(".safetensors").is_file():
        cached = _step(progress, LOADING_CACHED, lambda: read_negatives(path))
        if cached is not None:
            return cached
    labels, features = work()
    _step(progress, SAVING, lambda: write_negatives(path, labels, features))
    return labels, features


def write_negatives(path: Path, labels: Sequence[NegativeLabel], features: torch.Tensor) -> None:
    """<path>.json (the labels) then <path>.safetensors (the features, with the labels file's sha256), atomically."""
    text = json.dumps([dataclasses.astuple(label) for label in labels])
    write_text(path.with_suffix(".json"), text)
    save_tensors(path.with_suffix(".safetensors"), {"features": features.float().contiguous()},
                 {"labels_sha256": hashlib.sha256(text.encode()).hexdigest(), "count": str(len(labels))})


def read_negatives(path: Path) -> tuple[list[NegativeLabel], torch.Tensor] | None:
    """The labels and features written by write_negatives, or None when either file is missing, unreadable
    or does not match the other (then mining runs again)."""
    from safetensors import SafetensorError, safe_open

    try:
        text = path.with_suffix(".json").read_text()
        with safe_open(str(path.with_suffix(".safetensors")), "pt") as handle:
            metadata, features = handle.metadata() or {}, handle.get_tensor("features")
        if metadata.get("labels_sha256") != hashlib.sha256(text.encode()).hexdigest():
            return None
        labels = [NegativeLabel(str(word), str(pos), str(lexname), float(percentile))
                  for word, pos, lexname, percentile in json.loads(text)]
    except (OSError, SafetensorError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    return (labels, features) if features.ndim == 2 and len(features) == len(labels) else None


def id_label_features(text_features: TextFeatures, id_names: Sequence[str], config: NegLabelConfig = NegLabelConfig(),
                      progress: StageProgress | None = None) -> torch.Tensor:
    """(C, D) NegLabel's unit-norm ID label features: each name in `config.id_template`."""
    return text_features(prompts(id_names, config.id_template), progress=staged(progress, ENCODING_ID))


def csp_id_label_features(text_features: TextFeatures, id_names: Sequence[str],
                          config: NegLabelConfig = NegLabelConfig(),
                          progress: StageProgress | None = None) -> torch.Tensor:
    """csp_id_features with the signature of `id_label_features` (CSP's templates are fixed, not in `config`)."""
    return csp_id_features(text_features, id_names, progress=progress)


@dataclass(frozen=True)
class Pool:
    """A negative-label pool a scorer may read (Scorer.pool): how its ID label features are made (unit-norm) and its
    negatives mined (labels and RAW features, with the signature of `negatives`, through their own cache)."""

    id_features: Callable[..., torch.Tensor]
    negatives: Callable[..., tuple[list[NegativeLabel], torch.Tensor]]


POOLS: dict[str, Pool] = {"neglabel": Pool(id_label_features, negatives),
                          "csp": Pool(csp_id_label_features, csp_negatives)}
