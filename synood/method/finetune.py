"""Stages 2 and 3 as plain functions over cached features (shared/METHOD.md sections 3-5).

Stage 2 trains a projection delta(f) = normalize(f + ReLU(LayerNorm(Linear(f)))) after the frozen
image encoder, classifying ID images into their class and synthetic images into their paired
negative label. Stage 3 makes the paired negatives' text features learnable and pulls each toward
its synthetic images. Both are cross-entropy on `logit_scale` * cosine, one named loss each
(`projection_loss`, `negatives_loss`; `joint_loss` for the joint ablation) that the trainers call, and
`pair_negatives` is the one pairing generation and training share. As in the authors' code, f is
the RAW image embedding and stage 3 learns the RAW text embeddings (`unit` is the named alternative),
and the cosine learning-rate schedule steps once per epoch (`batch` steps it per batch). Shuffles are
seeded per epoch, so a resumed run repeats an uninterrupted one exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synood.config import NegTuneConfig, ProjectionConfig, check

STAGES = ("projection", "negatives", "joint")


class Projection(nn.Module):
    """SynOOD's image-side projection: a residual ReLU(LayerNorm(Linear)) branch, then L2-normalised.

    It always takes raw image embeddings; with `input="unit"` it normalises them first, so training and
    test time cannot disagree on the convention."""

    def __init__(self, dim: int, input: str = "raw"):
        super().__init__()
        check("projection.input", input)
        self.input = input
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: Tensor) -> Tensor:
        x = features if self.input == "raw" else F.normalize(features, dim=-1)
        return F.normalize(x + F.relu(self.norm(self.linear(x))), dim=-1)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """(A, B) cosine similarities of the rows of two feature matrices of any norm."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def pair_negatives(synthetic: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor]:
    """For each synthetic image, the index of the most similar negative label and that cosine similarity
    (METHOD.md section 3, "Pairing"): what generation records in the manifest and what training learns from."""
    values, indices = cosine(synthetic, negatives).max(dim=1)
    return indices, values


@dataclass
class Problem:
    """The tensors both stages train on: features, labels and the text features of the classes."""

    id_features: Tensor  # (I, D) source ID images, raw embeddings
    id_labels: Tensor  # (I,) their ImageNet class index
    synthetic: Tensor  # (S, D) synthetic images, raw embeddings
    paired: Tensor  # (S,) index of each synthetic image's negative within `used`
    id_text: Tensor  # (C, D) the ID labels' text features (frozen, unit-norm)
    used: Tensor  # (K,) indices into the full negative list of the negatives used in pairing
    negative_text: Tensor  # (K, D) their raw text embeddings before tuning

    def to(self, device: torch.device | str) -> "Problem":
        """The same problem with every tensor on `device` (training runs where the problem lives)."""
        return Problem(**{name: getattr(self, name).to(device) for name in self.__dataclass_fields__})

    @classmethod
    def build(cls, id_features: Tensor, id_labels: Tensor, synthetic: Tensor, id_text: Tensor,
              negatives: Tensor) -> "Problem":
        """Pair every synthetic image with its nearest negative (by cosine) and keep only the negatives used."""
        nearest, _ = pair_negatives(synthetic, negatives)
        used, paired = torch.unique(nearest, sorted=True, return_inverse=True)
        return cls(id_features.float(), id_labels.long(), synthetic.float(), paired, id_text.float(), used,
                   negatives[used].float().clone())

    def stage2_samples(self) -> tuple[Tensor, Tensor]:
        """Stage 2's samples, ID images then synthetic ones, and their classes: an ID image's ImageNet class,
        a synthetic image's C + the index of its paired negative (C = the number of ID labels)."""
        return (torch.cat([self.id_features, self.synthetic]),
                torch.cat([self.id_labels, len(self.id_text) + self.paired]))


@dataclass
class Epoch:
    """What one epoch reports: mean loss, accuracy over its samples, and the last learning rate."""

    stage: str
    epoch: int  # 1-based
    loss: float
    accuracy: float
    lr: float
    samples: int

    def as_dict(self) -> dict:
        return {"stage": self.stage, "epoch": self.epoch, "loss": self.loss, "accuracy": self.accuracy,
                "lr": self.lr, "samples": self.samples}


# the config key of each stage's schedule (the joint ablation runs on the projection's)
SCHEDULE_KEYS = {"projection": "projection.schedule", "negatives": "negtune.schedule", "joint": "projection.schedule"}


def cosine_lr(base: float, step: int, total: int, eta_min: float = 0.0) -> float:
    """The cosine schedule at `step` of `total`, from base down to eta_min (CosineAnnealingLR's closed form)."""
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(math.pi * step / max(total, 1)))


def initial_negatives(negative_text: Tensor, parameter: str = "raw") -> Tensor:
    """Stage 3's starting parameters: the raw text embeddings (authors' code) or their unit-norm copies.

    Scored by cosine either way, but SGD turns a row's direction by about lr / |t|^2 per step, so the
    choice changes the effective learning rate by |t|^2 (docs/method.md)."""
    check("negtune.parameter", parameter)
    return negative_text.clone() if parameter == "raw" else F.normalize(negative_text, dim=-1)


def batches(count: int, batch_size: int, seed: int, epoch: int) -> Iterator[Tensor]:
    """The index batches of one epoch: a permutation seeded by (seed, epoch), so it never depends on history."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # on the CPU: the same order on any device
    order = torch.randperm(count, generator=generator)
    yield from order.split(batch_size)


def stage2_logits(model: Projection, features: Tensor, id_text: Tensor, negative_text: Tensor,
                  scale: float) -> Tensor:
    """logit_scale * cosine of projected images against [ID labels; paired negatives]."""
    classes = torch.cat([F.normalize(id_text, dim=-1), F.normalize(negative_text, dim=-1)])
    return scale * model(features) @ classes.T


def stage3_logits(features: Tensor, negative_text: Tensor, scale: float) -> Tensor:
    """Eq. 14's logits: logit_scale * cosine of synthetic images against the learnable negatives only."""
    return scale * cosine(features, negative_text)


def projection_loss(projection: Projection, features: Tensor, labels: Tensor, id_text: Tensor,
                    negative_text: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Stage 2's loss (METHOD.md section 4) and its logits: mean cross-entropy of
    scale * cos(delta(f), [ID labels; paired negatives]) against each image's class."""
    logits = stage2_logits(projection, features, id_text, negative_text, scale)
    return F.cross_entropy(logits, labels), logits


def negatives_loss(features: Tensor, negatives: Tensor, paired: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Stage 3's loss (METHOD.md section 5, eq. 14) and its logits: mean cross-entropy of
    scale * cos(f, learnable negatives) against each synthetic image's paired negative."""
    logits = stage3_logits(features, negatives, scale)
    return F.cross_entropy(logits, paired), logits


def joint_loss(projection: Projection, features: Tensor, labels: Tensor, synthetic: Tensor, id_text: Tensor,
               negatives: Tensor, projection_scale: float, negatives_scale: float) -> tuple[Tensor, Tensor]:
    """The joint ablation's loss (METHOD.md section 5) and stage 2's logits: stage 2's loss with the paired
    negatives learnable, plus stage 3's loss on the projected synthetic images (`synthetic` marks them)."""
    total, logits = projection_loss(projection, features, labels, id_text, negatives, projection_scale)
    own = features[synthetic]
    if len(own):
        total = total + negatives_loss(projection(own), negatives, labels[synthetic] - len(id_text),
                                       negatives_scale)[0]
    return total, logits


@dataclass
class Trainer:
    """One stage's parameters, optimisers and loss; `run_epoch` trains it for one epoch.

    `loss(indices)` returns (loss, correct predictions) for one batch of sample indices. Each optimiser's
    groups carry their schedule's "initial_lr" and "eta_min"; `schedule` says when the cosine steps.
    """

    stage: str
    samples: int
    loss: Callable[[Tensor], tuple[Tensor, int]]
    optimizers: list[torch.optim.Optimizer]
    epochs: int
    batch_size: int
    seed: int
    schedule: str = "epoch"

    def __post_init__(self):
        check(SCHEDULE_KEYS[self.stage], self.schedule)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    def position(self, epoch: int, batch: int) -> tuple[int, int]:
        """(step, total) of the cosine schedule at batch `batch` (0-based) of epoch `epoch` (1-based)."""
        if self.schedule == "epoch":
            return epoch - 1, self.epochs
        return (epoch - 1) * self.steps_per_epoch + batch, self.epochs * self.steps_per_epoch

    def load_optimizers(self, states: list[dict]) -> None:
        """Restore saved optimiser states, keeping this trainer's schedule (base lr and floor, from the config):
        a state saved by an older version has no floor, and the config is what the run was started with."""
        for optimizer, state in zip(self.optimizers, states):
            schedule = [(group["initial_lr"], group["eta_min"]) for group in optimizer.param_groups]
            optimizer.load_state_dict(state)
            for group, (initial_lr, eta_min) in zip(optimizer.param_groups, schedule):
                group["initial_lr"], group["eta_min"] = initial_lr, eta_min

    def run_epoch(self, epoch: int, stop: Callable[[], bool] | None = None) -> Epoch | None:
        """Train epoch `epoch` (1-based); None when `stop()` turned true before it finished."""
        loss_sum, correct, lr = 0.0, 0, 0.0
        for batch, indices in enumerate(batches(self.samples, self.batch_size, self.seed, epoch)):
            if stop and stop():
                return None
            step, total = self.position(epoch, batch)
            for optimizer in self.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr = cosine_lr(group["initial_lr"], step, total, group["eta_min"])
            loss, hits = self.loss(indices)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            loss_sum += float(loss.detach()) * len(indices)
            correct += hits
        return Epoch(self.stage, epoch, loss_sum / self.samples, correct / self.samples, lr, self.samples)


def _scheduled(optimizer: torch.optim.Optimizer, config) -> torch.optim.Optimizer:
    """Record the base learning rate and floor the cosine schedule runs between (`Trainer.run_epoch`)."""
    for group in optimizer.param_groups:
        group["initial_lr"], group["eta_min"] = config.lr, config.eta_min
    return optimizer


def _adam(params, config) -> torch.optim.Optimizer:
    return _scheduled(torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay), config)


def _sgd(params, config) -> torch.optim.Optimizer:
    return _scheduled(torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                      weight_decay=config.weight_decay), config)


def new_projection(dim: int, seed: int, input: str = "raw") -> Projection:
    """A projection with the Linear/LayerNorm default init drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Projection(dim, input)


def _correct(logits: Tensor, labels: Tensor) -> int:
    return int((logits.argmax(dim=1) == labels).sum())


def projection_trainer(problem: Problem, projection: Projection, config: ProjectionConfig) -> Trainer:
    """Stage 2: ID images -> their class, synthetic images -> 1000 + their paired negative (frozen texts).

    `config` is a ProjectionConfig (Adam, lr 1e-3, weight decay 1e-5, 3 epochs, batch 128)."""
    features, labels = problem.stage2_samples()

    def loss(indices: Tensor) -> tuple[Tensor, int]:
        indices = indices.to(features.device)
        value, logits = projection_loss(projection, features[indices], labels[indices], problem.id_text,
                                        problem.negative_text, config.logit_scale)
        return value, _correct(logits, labels[indices])

    return Trainer("projection", len(features), loss, [_adam(projection.parameters(), config)], config.epochs,
                   config.batch_size, config.seed, config.schedule)


def negatives_trainer(problem: Problem, negatives: nn.Parameter, config: NegTuneConfig,
                      projection: Projection | None = None) -> Trainer:
    """Stage 3: each synthetic image -> its paired negative among the learnable ones (eq. 14).

    The image features come straight from the frozen encoder unless `projection` is given (the paper's
    Table 5 ablation). `config` is a NegTuneConfig (SGD momentum 0.9, lr 2e-3, 5 epochs, batch 128)."""
    if projection is not None:
        with torch.no_grad():
            features = projection(problem.synthetic)
    else:
        features = problem.synthetic

    def loss(indices: Tensor) -> tuple[Tensor, int]:
        indices = indices.to(features.device)
        value, logits = negatives_loss(features[indices], negatives, problem.paired[indices], config.logit_scale)
        return value, _correct(logits, problem.paired[indices])

    return Trainer("negatives", len(features), loss, [_sgd([negatives], config)], config.epochs,
                   config.batch_size, config.seed, config.schedule)


def joint_trainer(problem: Problem, projection: Projection, negatives: nn.Parameter,
                  projection_config: ProjectionConfig, negtune_config: NegTuneConfig) -> Trainer:
    """Joint ablation (`joint_loss`), both optimised together (Adam for the projection, SGD for the negatives,
    each with its own stage's hyperparameters) for the projection's epochs, on its schedule."""
    features, labels = problem.stage2_samples()
    synthetic = torch.zeros(len(features), dtype=torch.bool, device=features.device)
    synthetic[len(problem.id_features):] = True

    def loss(indices: Tensor) -> tuple[Tensor, int]:
        indices = indices.to(features.device)
        value, logits = joint_loss(projection, features[indices], labels[indices], synthetic[indices],
                                   problem.id_text, negatives, projection_config.logit_scale,
                                   negtune_config.logit_scale)
        return value, _correct(logits, labels[indices])

    optimizers = [_adam(projection.parameters(), projection_config), _sgd([negatives], negtune_config)]
    return Trainer("joint", len(features), loss, optimizers, projection_config.epochs, projection_config.batch_size,
                   projection_config.seed, projection_config.schedule)
