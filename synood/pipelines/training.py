"""A fine-tuning run, from a generation folder to a detector file, recorded in the run database.

`training_data` turns a manifest into cached features and a `finetune.Problem`; `train` runs the
stages with a training state written atomically after every epoch; `execute` ties one run of the
database to both and resumes it from its newest readable state. The CLI and the app call these.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from synood.records import checkpoint
from synood.method import finetune
from synood.config import Config
from synood.data.features import Progress, image_features
from synood.data.manifest import PairsError, load_manifest
from synood.method.scorers import SCORERS, ScoreInputs, build, standard
from synood.pipelines import evaluation
from synood.records.runs import Run, RunError, RunStore, config_of, run_folder
from synood.runtime import pick_device
from synood.errors import UserError

RESUMABLE = ("stopped", "failed", "interrupted")
BEFORE_AFTER_CONVENTIONS = ("mos", "openood")  # the paper's tables and OpenOOD's, side by side (metrics.CONVENTIONS)
STATE_NAME = re.compile(r"^(\d+)-([a-z]+)-(\d+)\.safetensors$")
EpochCallback = Callable[[finetune.Epoch], None]


class TrainingError(UserError, ValueError):
    """Training data or a run that cannot be trained; the message says why."""


@dataclass
class TrainingData:
    """The features a run trains on and what they came from."""

    problem: finetune.Problem
    info: dict  # counts, skipped files and a digest of exactly what is trained on


def subset(count: int, limit: int | None, seed: int) -> list[int]:
    """The first `limit` of a seeded permutation of range(count), in their original order (all when None)."""
    if limit is None or limit >= count:
        return list(range(count))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:limit].tolist())


def training_data(generation: str | Path, detector, config: Config, progress: Progress | None = None) -> TrainingData:
    """Cached features, under `detector`'s encoder, of a generation's synthetic images and of their sources,
    paired with `detector`'s mined negatives (a `synood.pipelines.detect.Detector`).

    Sources outside the ImageNet classes (no class index) train only as synthetic images' origin, not as ID."""
    encoder = detector.encoder
    try:
        manifest = load_manifest(generation)
    except PairsError as exc:
        raise TrainingError(str(exc)) from None
    chosen = [manifest.pairs[i] for i in subset(len(manifest.pairs), config.finetune.synthetic_images,
                                                config.finetune.seed)]
    synthetic = image_features(encoder, [p.image for p in chosen], progress=progress)
    sources = list(dict.fromkeys(p.source for p in chosen if p.class_index is not None))
    labels = {p.source: p.class_index for p in chosen if p.class_index is not None}
    source_set = image_features(encoder, sources, progress=progress)
    if not len(synthetic.features):
        raise TrainingError(f"{manifest.path}: none of its {len(chosen)} synthetic images could be read")
    problem = finetune.Problem.build(source_set.features, torch.tensor([labels[p] for p in source_set.paths]),
                                     synthetic.features, detector.id_features, detector.negative_raw)
    digest = hashlib.sha256()
    for h in [*synthetic.hashes, "|", *source_set.hashes]:
        digest.update(h.encode())
    digest.update(problem.id_labels.numpy().tobytes())
    words = [label.word for label in detector.negatives]
    info = {"manifest": str(manifest.path), "pairs": len(manifest.pairs), "synthetic": len(synthetic.paths),
            "id": len(source_set.paths), "negatives_used": len(problem.used),
            "skipped": synthetic.problems + source_set.problems, "data_digest": digest.hexdigest(),
            "encoder": encoder.identity, "negatives_digest": checkpoint.negatives_digest(words),
            "negatives_count": len(words)}
    return TrainingData(problem, info)


def conventions(config: Config) -> str:
    """A run's conventions in one line: what the projection reads, what stage 3 learns, when schedules step."""
    return (f"projection input {config.projection.input} · stage 3 parameters {config.negtune.parameter} · cosine "
            f"schedule per {config.projection.schedule} (stage 2), per {config.negtune.schedule} (stage 3) · "
            f"lr {config.projection.lr:g} / {config.negtune.lr:g}")


def plan(config: Config) -> list[tuple[str, int]]:
    """The stages a run trains, in order, with their epochs (a stage with 0 epochs is left out)."""
    stages = [("joint", config.projection.epochs)] if config.negtune.joint else [
        ("projection", config.projection.epochs), ("negatives", config.negtune.epochs)]
    return [(stage, epochs) for stage, epochs in stages if epochs > 0]


def states(folder: Path) -> list[Path]:
    """The training states in a folder, oldest first."""
    found = [(tuple(int(g) for g in m.group(1, 3)), p) for p in folder.glob("*.safetensors")
             if (m := STATE_NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _trainer(stage: str, problem: finetune.Problem, projection: finetune.Projection, negatives: nn.Parameter,
             config: Config) -> finetune.Trainer:
    if stage == "projection":
        return finetune.projection_trainer(problem, projection, config.projection)
    if stage == "negatives":
        return finetune.negatives_trainer(problem, negatives, config.negtune,
                                          projection if config.negtune.use_projection else None)
    return finetune.joint_trainer(problem, projection, negatives, config.projection, config.negtune)


def train(problem: finetune.Problem, config: Config, state_dir: Path, stop: Callable[[], bool] | None = None,
          on_epoch: EpochCallback | None = None) -> checkpoint.TunedDetector | None:
    """Run every stage of `plan(config)`, continuing from the newest readable state in `state_dir`.

    After each epoch the parameters, optimiser state and history are written atomically, then
    `on_epoch` is told; on resume the recorded epochs are told again first. Returns None when
    `stop()` turned true (the run can be resumed), else the tuned detector's trainable parts."""
    stages = plan(config)
    if not stages:
        raise TrainingError("nothing to train: projection.epochs and negtune.epochs are both 0")
    projection = finetune.new_projection(problem.synthetic.shape[1], config.projection.seed,
                                         config.projection.input).to(problem.synthetic.device)
    negatives = nn.Parameter(finetune.initial_negatives(problem.negative_text, config.negtune.parameter))
    start, history, optimizer_states = (0, 0), [], None
    for path in reversed(states(state_dir)):  # the newest state that reads; a damaged one is skipped
        try:
            params, optimizer_states, meta = checkpoint.load_state(path)
            projection.load_state_dict({k.removeprefix("projection."): v for k, v in params.items()
                                        if k.startswith("projection.")})
            negatives.data.copy_(params["negatives"])
        except (checkpoint.CheckpointError, KeyError, RuntimeError):
            optimizer_states = None
            continue
        start, history = (meta["phase"], meta["epoch"]), meta["history"]
        break
    for record in history:
        if on_epoch:
            on_epoch(finetune.Epoch(**record))
    for phase, (stage, epochs) in enumerate(stages):
        if phase < start[0]:
            continue
        trainer = _trainer(stage, problem, projection, negatives, config)
        first = 1
        if phase == start[0] and optimizer_states is not None:
            trainer.load_optimizers(optimizer_states)
            first = start[1] + 1
        for epoch in range(first, epochs + 1):
            result = trainer.run_epoch(epoch, stop)
            if result is None:
                return None
            history.append(result.as_dict())
            tensors = {f"projection.{k}": v for k, v in projection.state_dict().items()}
            tensors["negatives"] = negatives.detach()
            checkpoint.save_state(state_dir / f"{phase}-{stage}-{epoch:04d}.safetensors", tensors,
                                  trainer.optimizers, {"phase": phase, "epoch": epoch, "history": history})
            for old in states(state_dir)[:-max(config.finetune.keep_states, 1)]:
                old.unlink(missing_ok=True)
            if on_epoch:
                on_epoch(result)
    trained = {stage for stage, _ in stages}
    tuned_projection = projection.cpu().eval().requires_grad_(False) if trained & {"projection", "joint"} else None
    tuned_negatives = negatives.detach().cpu() if trained & {"negatives", "joint"} else None
    return checkpoint.TunedDetector(tuned_projection, problem.used.cpu(), tuned_negatives)


def run_config(config: Config) -> dict:
    """The config sections a fine-tuning run depends on, as stored in its database row."""
    return config.to_dict("models", "neglabel", "projection", "negtune", "finetune")


def resume_config(run: Run, home: str) -> Config:
    """The config a stopped, failed or interrupted fine-tuning run was started with (RunError otherwise)."""
    if run.kind != "finetune":
        raise RunError(f"run {run.id} is a {run.kind} run, not a fine-tuning run")
    if run.status not in RESUMABLE:
        raise RunError(f"run {run.id} is {run.status}: only stopped, failed or interrupted runs resume")
    return config_of(run, home)


def start(store: RunStore, config: Config, generation: str | Path, data: TrainingData, suite: str,
          status: str = "running") -> Run:
    """A new fine-tuning run in the database, with everything needed to resume or audit it."""
    inputs = {"generation": str(generation), "suite": suite, **{k: v for k, v in data.info.items() if k != "skipped"},
              "skipped_count": len(data.info["skipped"])}
    return store.create("finetune", run_config(config), inputs, status=status)


def check_data(run: Run, data: TrainingData) -> None:
    """RunError unless `data` is what `run` started on: the same images, encoder and negative labels."""
    differ = {"encoder": "the image encoder", "negatives_digest": "the mined negative labels",
              "data_digest": "the training images (the manifest, the images or finetune.synthetic_images)"}
    changed = [what for key, what in differ.items() if data.info.get(key) != run.inputs.get(key)]
    if changed:
        raise RunError(f"run {run.id} cannot continue: {'; '.join(changed)} changed since it started "
                       f"(it ran with the {run.inputs.get('suite')} suite); start a new run instead")


def execute(store: RunStore, run: Run, data: TrainingData, config: Config, stop: Callable[[], bool] | None = None,
            on_epoch: EpochCallback | None = None) -> Run:
    """Train `run` to its end (or until `stop`), recording epochs, status and the detector file."""
    check_data(run, data)
    folder = run_folder(config.paths.home, run.id)
    store.update(run.id, status="running", claim=True, message="")

    def record(result: finetune.Epoch) -> None:
        store.log_epoch(run.id, result.stage, result.epoch, result.as_dict())
        if on_epoch:
            on_epoch(result)

    with store.recording(run.id):
        problem = data.problem.to(pick_device(config.models.device))  # trains on the GPU when there is one
        tuned = train(problem, config, folder / "state", stop, record)
        if tuned is None:
            store.update(run.id, status="stopped", message="stopped; resume to continue from the last epoch")
            return store.get(run.id)
        tuned.meta = {"run": run.id, "encoder": run.inputs["encoder"], "negatives_digest": run.inputs["negatives_digest"],
                      "negatives_count": run.inputs["negatives_count"], "config": run.config,
                      "generation": run.inputs["generation"]}
        path = folder / "detector.safetensors"
        checkpoint.save_detector(path, tuned)
        epochs = store.epochs(run.id)
        store.update(run.id, status="completed", artifacts={"detector": str(path), "states": str(folder / "state")},
                     summary={"loss": epochs[-1]["loss"], "accuracy": epochs[-1]["accuracy"], "epochs": len(epochs)})
    return store.get(run.id)


def before_after(encoder, classifier, id_text: torch.Tensor, negative_text: torch.Tensor,
                 tuned: checkpoint.TunedDetector, id_folder: str | Path, ood_folder: str | Path, config: Config,
                 progress: Progress | None = None) -> evaluation.Evaluation:
    """Every standard registered score before fine-tuning (the frozen encoder and classifier, NegLabel first) and the
    tuned detector after ("synood"), on one ID and one OOD folder under each of BEFORE_AFTER_CONVENTIONS: sets "ID"
    and "OOD" of one `evaluation.evaluate` (cached features and logits). Without a classifier, the scores that read
    its logits are left out."""
    readable = {"features"} | ({"logits"} if classifier is not None else set())
    scorers = {name: build(name) for name in standard() if SCORERS[name].needs <= readable}
    scorers["synood"] = build("synood", tuned, config.finetune.combination)
    folders = {"ID": str(id_folder), "OOD": str(ood_folder)}
    try:
        found = {name: evaluation.folder_images(name, folder) for name, folder in folders.items()}
        return evaluation.evaluate(found, scorers, encoder, classifier,
                                   ScoreInputs(id_text, negative_text, config.neglabel), BEFORE_AFTER_CONVENTIONS,
                                   folders=folders,
                                   progress=None if progress is None else lambda _, done, total: progress(done, total))
    except evaluation.EvaluationError as exc:
        raise TrainingError(str(exc)) from None
