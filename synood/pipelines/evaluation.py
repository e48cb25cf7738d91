"""One evaluation: image sets -> per-image scores of the asked scorers -> metrics per OOD set and their average.

Only the forward passes the scorers need run (raw image features from the encoder, logits from the classifier),
each through its content-keyed disk cache (synood/data/features.py, synood/data/logits.py): a second evaluation
of the same images encodes nothing. `synood evaluate` and the Fine-tuning before/after call `evaluate`; its
`Evaluation` gives the JSON of `synood evaluate --json` and the evaluate run record (runs.EvaluateRecord).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from synood.data import images, scorefiles, storage
from synood.data.features import image_features
from synood.data.logits import classifier_logits
from synood.data.manifest import PairsError, load_manifest
from synood.data.textcache import StageProgress, staged
from synood.errors import UserError
from synood.method.metrics import CONVENTIONS, MetricError, bootstrap_samples, percentile_interval
from synood.method.metrics import evaluate as metrics_of
from synood.method.scorers import Need, ScoreInputs, Scorer, Texts
from synood.pipelines.shards import Shards, Single
from synood.records.runs import EvaluateRecord, Run, RunStore, run_folder

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
    """One score's metrics: per OOD set and convention, their average over the OOD sets per convention, and the
    average over each named group of OOD sets ("near", "far": a protocol's groups) per convention."""

    title: str
    sets: dict[str, dict[str, Metrics]]
    average: dict[str, Metrics]
    groups: dict[str, dict[str, Metrics]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        found = {"sets": {name: {c: m.to_dict() for c, m in by.items()} for name, by in self.sets.items()},
                 "average": {c: m.to_dict() for c, m in self.average.items()}}
        if self.groups:
            found["groups"] = {g: {c: m.to_dict() for c, m in by.items()} for g, by in self.groups.items()}
        return found


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
    groups: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # group -> its OOD sets, when averaged
    benchmark: dict | None = None  # the protocol's name, title, data root and file lists' digest, when one ran

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
        if self.groups:
            found["groups"] = self.groups
        if self.bootstrap is not None:
            found["bootstrap"] = self.bootstrap
        if self.checkpoint is not None:
            found["checkpoint"] = self.checkpoint
        if self.benchmark is not None:
            found["benchmark"] = self.benchmark
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


def generation_sets(path: str | Path) -> dict[str, list[Path]]:
    """A generation as an evaluation: its source images as the ID set ("sources") and its synthetic images as the
    OOD set ("synthetic"), in manifest order; EvaluationError when the manifest has no pair."""
    try:
        manifest = load_manifest(path)
    except PairsError as exc:
        raise EvaluationError(str(exc)) from None
    if not manifest.pairs:
        raise EvaluationError(f"{manifest.path}: no generated pair to evaluate")
    return {"sources": list(dict.fromkeys(pair.source for pair in manifest.pairs)),
            "synthetic": [pair.image for pair in manifest.pairs]}


def set_inputs(name: str, paths: Sequence[str | Path], needs: set[Need], encoder: Any, classifier: Any | None,
               texts: ScoreInputs, progress: StageProgress | None = None, workers: int | None = None,
               autocast: bool = False) -> tuple[list[Path], list[str], ScoreInputs]:
    """(readable images in order, skipped files, scorer inputs) of one set: only the passes in `needs` run, each
    through its cache; EvaluationError when no image is readable."""
    kept, skipped, inputs = passes(name, paths, needs, encoder, classifier, texts, progress, workers, autocast)
    if not kept:
        raise EvaluationError(f"{name}: none of its {len(paths)} image files could be read")
    return kept, skipped, inputs


def passes(name: str, paths: Sequence[str | Path], needs: set[Need], encoder: Any, classifier: Any | None,
           texts: ScoreInputs, progress: StageProgress | None = None, workers: int | None = None,
           autocast: bool = False) -> tuple[list[Path], list[str], ScoreInputs]:
    """set_inputs without its check: an empty or unreadable list gives no images (a process's empty part).
    `workers` processes decode the images (None: the machine's default, data.loading.default_workers); `autocast`
    runs the models in mixed precision (runtime.autocast)."""
    kept, skipped = [Path(p) for p in paths], []
    features = logits = None
    if "features" in needs:
        found = image_features(encoder, kept, progress=staged(progress, f"features of {name}"), workers=workers,
                               autocast=autocast)
        kept, skipped, features = found.paths, found.problems, found.features
    if "logits" in needs:
        passed = classifier_logits(classifier, kept, progress=staged(progress, f"logits of {name}"), workers=workers,
                                   autocast=autocast)
        if features is not None and passed.paths != kept:  # a file that changed between the two passes
            features = features[[kept.index(p) for p in passed.paths]]
        kept, skipped, logits = passed.paths, skipped + passed.problems, passed.logits
    return kept, skipped, dataclasses.replace(texts, features=features, logits=logits)


def evaluate(sets: Mapping[str, Sequence[str | Path]], scorers: Mapping[str, Scorer], encoder: Any,
             classifier: Any | None, texts: ScoreInputs, conventions: Sequence[str] = ("mos",), id_set: str = "ID",
             folders: Mapping[str, str] | None = None, reference: Sequence[str | Path] = (),
             progress: StageProgress | None = None, bootstrap: int = 0, seed: int = 0,
             pools: Mapping[str, Texts] | None = None, groups: Mapping[str, Sequence[str]] | None = None,
             shards: Shards = Single(), workers: int | None = None, autocast: bool = False) -> Evaluation:
    """Score every set (`sets[id_set]` the ID one) with every scorer, then each scorer's metrics per OOD set and
    their average under each convention. `texts` holds the unit text features (of the NegLabel pool) and NegLabel
    settings; a scorer reading another pool (Scorer.pool) gets the ID and negative texts of `pools[name]`; scorers
    fit on the `reference` images first (Scorer.setup); `folders` names each set's folder in the result;
    `groups` (name -> OOD sets) adds an average per group; `bootstrap` resamples (seeded by `seed`) add a 95 %
    interval to every metric. Under `accelerate launch`, `shards` splits every set over the processes and gathers
    their scores: every process returns the whole evaluation. `workers` processes decode the images (None: the
    machine's default); `autocast` runs the models in mixed precision (runtime.autocast, cached apart)."""
    if id_set not in sets or len(sets) < 2:
        raise ValueError(f"evaluate needs the ID set {id_set!r} and at least one OOD set, got {', '.join(sets)}")
    needs: set[Need] = set().union(*(s.needs for s in scorers.values()))
    pools = pools or {}
    missing = {s.pool for s in scorers.values()} - {"neglabel", *pools}
    if missing:
        raise ValueError(f"evaluate needs the negative-label pools {', '.join(sorted(missing))}")

    def own(scorer: Scorer, inputs: ScoreInputs) -> ScoreInputs:
        """`inputs` with the texts of the scorer's own pool."""
        if scorer.pool == "neglabel":
            return inputs
        return dataclasses.replace(inputs, id_text=pools[scorer.pool].id_text,
                                   negative_text=pools[scorer.pool].negative_text)
    # 1. Scorers that fit on reference images do so first.
    if reference:
        fitted = set_inputs("reference", reference, needs, encoder, classifier, texts, progress, workers, autocast)[2]
        for scorer in scorers.values():
            scorer.setup(own(scorer, fitted))
    # 2. Per-image scores, set by set, through the feature and logits caches (this process's part of each set).
    scored = {}
    for name, paths in sets.items():
        kept, skipped, inputs = passes(name, shards.split(paths), needs, encoder, classifier, texts, progress,
                                       workers, autocast)
        found = {key: scorer.score(own(scorer, inputs)) for key, scorer in scorers.items()} if kept else {}
        parts = shards.gather([(kept, skipped, found)])
        kept = [path for part in parts for path in part[0]]
        if not kept:
            raise EvaluationError(f"{name}: none of its {len(paths)} image files could be read")
        scored[name] = ScoredSet((folders or {}).get(name, ""), kept, [problem for part in parts for problem in part[1]],
                                 {key: torch.cat([part[2][key] for part in parts if part[0]]) for key in scorers})
    # 3. and 4. Metrics per OOD set and their average.
    titles = {key: scorer.title for key, scorer in scorers.items()}
    return Evaluation(id_set, scored, methods_of(scored, titles, conventions, id_set, bootstrap, seed, groups),
                      list(conventions), bootstrap={"resamples": bootstrap, "seed": seed} if bootstrap else None,
                      groups={g: list(names) for g, names in (groups or {}).items()})


def methods_of(scored: Mapping[str, ScoredSet], titles: Mapping[str, str], conventions: Sequence[str],
               id_set: str = "ID", bootstrap: int = 0, seed: int = 0,
               groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, MethodResult]:
    """Each score's (`titles`: key -> title) metrics per OOD set and convention, and their average over the OOD
    sets and over each of `groups` (name -> OOD sets), from per-image scores. With `bootstrap` resamples, every
    metric gains its 95 % percentile interval: ID and each OOD set are resampled separately, an average's interval
    comes from the per-resample averages."""
    id_scored = scored[id_set]
    groups = dict(groups or {})
    for group, names in groups.items():
        unknown = [n for n in names if n not in scored or n == id_set]
        if unknown or not names:
            raise ValueError(f"group {group!r} names no OOD set or unknown sets: {', '.join(unknown)}")
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
        # 4. Their average over the OOD sets and over each group (and of each resample, for its interval).
        def averaged(names: Sequence[str]) -> dict[str, Metrics]:
            found = {}
            for c in conventions:
                mean = {k: sum(getattr(per_set[n][c], k) for n in names) / len(names) for k in METRIC_KEYS}
                pooled = {k: np.mean([samples[n][c][k] for n in names], axis=0) for k in METRIC_KEYS
                          } if bootstrap else None
                found[c] = Metrics.of(c, mean, ci95=_intervals(pooled) if pooled else None)
            return found
        methods[key] = MethodResult(title, per_set, averaged(list(per_set)),
                                    {group: averaged(names) for group, names in groups.items()})
    return methods


def _intervals(samples: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Each metric's 95 % percentile interval in % from its bootstrap samples (fractions)."""
    return {k: percentile_interval(100.0 * samples[k]) for k in METRIC_KEYS}


def record(store: RunStore, config: dict, result: Evaluation, context: Mapping[str, Any] | None = None,
           home: str | Path | None = None) -> Run:
    """A completed evaluate run of `result` in the database (its one record schema); `context` joins its inputs.
    With `home` (config.paths.home), the evaluation is saved in the run's folder (`save`) to be reopened."""
    found = result.record(context)
    run = store.create("evaluate", config, found.inputs())
    artifacts = {"evaluation": str(save(result, run_folder(home, run.id)))} if home else {}
    store.update(run.id, status="completed", summary=found.summary(), artifacts=artifacts)
    return store.get(run.id)


class Stopped(Exception):
    """The user stopped an evaluation (`execute`'s stop check): its run is marked "stopped", not failed."""


def execute(store: RunStore, run_id: str, home: str | Path, work: Callable[[StageProgress], Evaluation],
            progress: StageProgress | None = None, stop: Callable[[], bool] | None = None,
            every: float = 0.5) -> Evaluation | None:
    """Run the recorded evaluate run `run_id`: `work(progress)` evaluates (the engine's `evaluate` with its inputs),
    then the result is saved in the run's folder and the run completed. Progress goes to `progress` and, at most
    every `every` seconds, to the run's message (what a page polling the database shows); when `stop()` turns true
    the run stops at the next progress step and None is returned. Errors mark the run failed and propagate."""
    last = [0.0]

    def report(stage: str, done: int, total: int) -> None:
        if stop is not None and stop():
            raise Stopped(f"stopped by the user during {stage} ({done:,} of {total:,})")
        if progress is not None:
            progress(stage, done, total)
        if time.monotonic() - last[0] >= every or done >= total:
            last[0] = time.monotonic()
            store.update(run_id, message=f"{stage}: {done:,} of {total:,}")

    store.update(run_id, status="running", claim=True, message="")
    with store.recording(run_id):
        try:
            result = work(report)
        except Stopped as exc:
            store.update(run_id, status="stopped", message=str(exc))
            return None
        result.run = run_id
        folder = save(result, run_folder(home, run_id))
        store.update(run_id, status="completed", summary=result.record().summary(),
                     artifacts={"evaluation": str(folder)}, message="")
    return result


SAVED = "evaluation.json"  # the saved evaluation's JSON (Evaluation.to_dict); its per-image scores lie in scores/


def write_scores(result: Evaluation, folder: str | Path) -> list[Path]:
    """Every image's scores in OpenOOD's form (synood.data.scorefiles): one .npz per score and set, plus
    scores.csv with each image's path; the files written."""
    scores = {key: {name: s.scores[key].detach().cpu().numpy() for name, s in result.sets.items()}
              for key in result.methods}
    return scorefiles.write(folder, scores, result.id_set,
                            {name: [str(p) for p in s.paths] for name, s in result.sets.items()})


def save(result: Evaluation, folder: str | Path) -> Path:
    """`result` under `folder`: its JSON (SAVED) and its per-image scores (scores/), so that an evaluation run can be
    reopened, drilled into and reported without scoring again; the folder."""
    folder = Path(folder)
    write_scores(result, folder / "scores")
    storage.write_text(folder / SAVED, json.dumps(result.to_dict(), indent=1))
    return folder


@dataclass
class Saved:
    """A saved evaluation: its JSON report and each set's images and per-image scores."""

    report: dict[str, Any]
    sets: dict[str, ScoredSet]


def reopen(folder: str | Path) -> Saved:
    """The evaluation `save` wrote under `folder`; EvaluationError when it is missing or damaged."""
    folder = Path(folder)
    try:
        report = json.loads((folder / SAVED).read_text())
        found = scorefiles.read(folder / "scores")
        paths = scorefiles.paths(folder / "scores")
    except (OSError, ValueError, UserError) as exc:
        raise EvaluationError(f"{folder}: no saved evaluation could be read ({exc})") from None
    described = {found.id_set: report["id"], **report["ood"]}
    sets = {name: ScoredSet(described.get(name, {}).get("folder", ""), [Path(p) for p in paths.get(name, [])], [],
                            {key: torch.as_tensor(by_set[name]) for key, by_set in found.scores.items()})
            for name in found.sets}
    return Saved(report, sets)

