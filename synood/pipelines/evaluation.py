"""One evaluation: image sets -> per-image scores of the asked scorers -> metrics per OOD set and their average.

Only the forward passes the scorers need run (raw image features from the encoder, logits from the classifier),
each through its content-keyed disk cache (synood/data/features.py, synood/data/logits.py): a second evaluation
of the same images encodes nothing. `synood evaluate` and the Fine-tuning before/after call `evaluate`; its
`Evaluation` gives the JSON of `synood evaluate --json` and the evaluate run record (runs.EvaluateRecord).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import Tensor

from synood.data import images
from synood.data.features import image_features
from synood.data.logits import classifier_logits
from synood.data.textcache import StageProgress, staged
from synood.errors import UserError
from synood.method.metrics import CONVENTIONS, MetricError, bootstrap_samples, percentile_interval
from synood.method.metrics import evaluate as metrics_of
from synood.method.scorers import Need, ScoreInputs, Scorer
from synood.records.runs import EvaluateRecord, Run, RunStore

METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")


class EvaluationError(UserError, ValueError):
    """An image set that cannot be evaluated (no such folder, no readable image, undefined metrics)."""


@dataclass(frozen=True)
class Metrics:
    """One score's metrics in % on one OOD set (with both sets' image counts) or averaged over the OOD sets; with a
    bootstrap, each metric's 95 % percentile interval in % (`ci95`: metric -> (lo, hi))."""

    convention: str
    auroc: float
    fpr95: float
    aupr_in: float
    aupr_out: float
    id_count: int | None = None
    ood_count: int | None = None
    ci95: Mapping[str, tuple[float, float]] | None = None

    @classmethod
    def of(cls, convention: str, values: Mapping[str, float], id_count: int | None = None,
           ood_count: int | None = None, ci95: Mapping[str, tuple[float, float]] | None = None) -> Metrics:
        """The metrics named by METRIC_KEYS in `values`."""
        return cls(convention, values["auroc"], values["fpr95"], values["aupr_in"], values["aupr_out"], id_count,
                   ood_count, ci95)

    def to_dict(self) -> dict[str, Any]:
        counts = {"id_count": self.id_count, "ood_count": self.ood_count}
        found = {"convention": self.convention, **{k: getattr(self, k) for k in METRIC_KEYS},
                 **{k: v for k, v in counts.items() if v is not None}}
        if self.ci95 is not None:  # only when a bootstrap ran: the JSON without one is unchanged
            found["ci95"] = {k: list(self.ci95[k]) for k in METRIC_KEYS}
        return found


@dataclass
class ScoredSet:
    """One image set: the images scored (the readable ones, in order), the skipped files and each score's values."""

    folder: str
    paths: list[Path]
    skipped: list[str]  # one "path: reason" per unreadable file
    scores: dict[str, Tensor]  # scorer name -> (N,) higher = more ID

    @property
    def count(self) -> int:
        """Images scored; a set read from a score file without paths counts its scores."""
        return len(self.paths) or len(next(iter(self.scores.values()), ()))

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "count": self.count, "skipped": len(self.skipped)}


@dataclass
class MethodResult:
    """One score's metrics: per OOD set and convention, and their average over the OOD sets per convention."""

    title: str
    sets: dict[str, dict[str, Metrics]]
    average: dict[str, Metrics]

    def to_dict(self) -> dict[str, Any]:
        return {"sets": {name: {c: m.to_dict() for c, m in by.items()} for name, by in self.sets.items()},
                "average": {c: m.to_dict() for c, m in self.average.items()}}


@dataclass
class Evaluation:
    """Everything one evaluation found; `to_dict` is the JSON of `synood evaluate --json`."""

    id_set: str
    sets: dict[str, ScoredSet]  # every set by name, the ID set among them
    methods: dict[str, MethodResult]
    conventions: list[str]
    suite: str = ""
    checkpoint: dict | None = None  # the tuned detector's run and combination, when a trained scorer ran
    run: str | None = None  # the evaluate run that recorded it
    bootstrap: dict | None = None  # {"resamples", "seed"} when the metrics carry bootstrap intervals

    @property
    def ood(self) -> dict[str, ScoredSet]:
        return {name: s for name, s in self.sets.items() if name != self.id_set}

    @property
    def skipped(self) -> list[str]:
        """Every unreadable file of every set."""
        return [problem for s in self.sets.values() for problem in s.skipped]

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "suite": self.suite, "unit": "percent", "conventions": {c: CONVENTIONS[c] for c in self.conventions},
            "id": self.sets[self.id_set].to_dict(), "ood": {name: s.to_dict() for name, s in self.ood.items()},
            "methods": {name: m.to_dict() for name, m in self.methods.items()}}
        if self.bootstrap is not None:
            found["bootstrap"] = self.bootstrap
        if self.checkpoint is not None:
            found["checkpoint"] = self.checkpoint
        if self.run is not None:
            found["run"] = self.run
        return found

    def record(self, context: Mapping[str, Any] | None = None) -> EvaluateRecord:
        """The evaluate run record of this evaluation; `context` (suite, detector file...) joins its inputs."""
        averages = {name: {c: {k: getattr(m, k) for k in METRIC_KEYS} for c, m in r.average.items()}
                    for name, r in self.methods.items()}
        return EvaluateRecord({name: s.folder for name, s in self.sets.items()}, self.id_set, list(self.methods),
                              self.conventions, dict(context or {}), averages,
                              {name: s.count for name, s in self.sets.items()}, len(self.skipped))


def folder_images(name: str, folder: str | Path) -> list[Path]:
    """The image files under `folder` (recursive); EvaluationError naming the set when there is none."""
    try:
        found = images.find_images(folder)
    except images.ImageError as exc:
        raise EvaluationError(f"{name} folder {exc}") from None
    if not found:
        raise EvaluationError(f"{name} folder {folder}: no image files ({', '.join(sorted(images.IMAGE_SUFFIXES))})")
    return found


def set_inputs(name: str, paths: Sequence[str | Path], needs: set[Need], encoder: Any, classifier: Any | None,
               texts: ScoreInputs, progress: StageProgress | None = None) -> tuple[list[Path], list[str], ScoreInputs]:
    """(readable images in order, skipped files, scorer inputs) of one set: only the passes in `needs` run, each
    through its cache."""
    kept, skipped = [Path(p) for p in paths], []
    features = logits = None
    if "features" in needs:
        found = image_features(encoder, kept, progress=staged(progress, f"features of {name}"))
        kept, skipped, features = found.paths, found.problems, found.features
    if "logits" in needs:
        passed = classifier_logits(classifier, kept, progress=staged(progress, f"logits of {name}"))
        if features is not None and passed.paths != kept:  # a file that changed between the two passes
            features = features[[kept.index(p) for p in passed.paths]]
        kept, skipped, logits = passed.paths, skipped + passed.problems, passed.logits
    if not kept:
        raise EvaluationError(f"{name}: none of its {len(paths)} image files could be read")
    return kept, skipped, dataclasses.replace(texts, features=features, logits=logits)


def evaluate(sets: Mapping[str, Sequence[str | Path]], scorers: Mapping[str, Scorer], encoder: Any,
             classifier: Any | None, texts: ScoreInputs, conventions: Sequence[str] = ("mos",), id_set: str = "ID",
             folders: Mapping[str, str] | None = None, reference: Sequence[str | Path] = (),
             progress: StageProgress | None = None, bootstrap: int = 0, seed: int = 0) -> Evaluation:
    """Score every set (`sets[id_set]` the ID one) with every scorer, then each scorer's metrics per OOD set and
    their average under each convention. `texts` holds the unit text features and NegLabel settings; scorers fit
    on the `reference` images first (Scorer.setup); `folders` names each set's folder in the result; `bootstrap`
    resamples (seeded by `seed`) add a 95 % interval to every metric."""
    if id_set not in sets or len(sets) < 2:
        raise ValueError(f"evaluate needs the ID set {id_set!r} and at least one OOD set, got {', '.join(sets)}")
    needs: set[Need] = set().union(*(s.needs for s in scorers.values()))
    # 1. Scorers that fit on reference images do so first.
    if reference:
        fitted = set_inputs("reference", reference, needs, encoder, classifier, texts, progress)[2]
        for scorer in scorers.values():
            scorer.setup(fitted)
    # 2. Per-image scores, set by set, through the feature and logits caches.
    scored = {}
    for name, paths in sets.items():
        kept, skipped, inputs = set_inputs(name, paths, needs, encoder, classifier, texts, progress)
        scored[name] = ScoredSet((folders or {}).get(name, ""), kept, skipped,
                                 {key: scorer.score(inputs) for key, scorer in scorers.items()})
    # 3. and 4. Metrics per OOD set and their average.
    titles = {key: scorer.title for key, scorer in scorers.items()}
    return Evaluation(id_set, scored, methods_of(scored, titles, conventions, id_set, bootstrap, seed),
                      list(conventions), bootstrap={"resamples": bootstrap, "seed": seed} if bootstrap else None)


def methods_of(scored: Mapping[str, ScoredSet], titles: Mapping[str, str], conventions: Sequence[str],
               id_set: str = "ID", bootstrap: int = 0, seed: int = 0) -> dict[str, MethodResult]:
    """Each score's (`titles`: key -> title) metrics per OOD set and convention, and their average over the OOD
    sets, from per-image scores. With `bootstrap` resamples, every metric gains its 95 % percentile interval: ID
    and each OOD set are resampled separately, the average's interval comes from the per-resample averages."""
    id_scored = scored[id_set]
    methods: dict[str, MethodResult] = {}
    for key, title in titles.items():
        per_set: dict[str, dict[str, Metrics]] = {}
        samples: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # set -> convention -> metric -> (resamples,)
        # 3. Metrics per OOD set and convention, with both sets' counts.
        for stream, (name, ood) in enumerate((n, s) for n, s in scored.items() if n != id_set):
            try:
                points = {c: metrics_of(id_scored.scores[key], ood.scores[key], c).as_percent() for c in conventions}
                if bootstrap:
                    samples[name] = bootstrap_samples(id_scored.scores[key], ood.scores[key], conventions, bootstrap,
                                                      seed, stream)
            except MetricError as exc:
                raise EvaluationError(f"{title} on {name}: {exc}") from None
            per_set[name] = {c: Metrics.of(c, points[c], id_scored.count, ood.count,
                                           _intervals(samples[name][c]) if bootstrap else None) for c in conventions}
        # 4. Their average over the OOD sets (and of each resample, for its interval).
        average = {}
        for c in conventions:
            mean = {k: sum(getattr(s[c], k) for s in per_set.values()) / len(per_set) for k in METRIC_KEYS}
            pooled = {k: np.mean([samples[name][c][k] for name in per_set], axis=0) for k in METRIC_KEYS
                      } if bootstrap else None
            average[c] = Metrics.of(c, mean, ci95=_intervals(pooled) if pooled else None)
        methods[key] = MethodResult(title, per_set, average)
    return methods


def _intervals(samples: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Each metric's 95 % percentile interval in % from its bootstrap samples (fractions)."""
    return {k: percentile_interval(100.0 * samples[k]) for k in METRIC_KEYS}


def record(store: RunStore, config: dict, result: Evaluation, context: Mapping[str, Any] | None = None) -> Run:
    """A completed evaluate run of `result` in the database (its one record schema); `context` joins its inputs."""
    found = result.record(context)
    run = store.create("evaluate", config, found.inputs())
    store.update(run.id, status="completed", summary=found.summary())
    return store.get(run.id)
