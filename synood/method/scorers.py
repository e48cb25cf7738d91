"""Every OOD score behind one small interface, and the registry that names them (higher = more in-distribution).

A scorer says what it reads ("features": raw image embeddings from the encoder, "logits": the classifier's
logits), so an evaluation runs only the forward passes its scorers need. Adding a score is one `Scorer`
subclass here plus one line in `SCORERS`; the CLI, the detector and the evaluation engine read the registry.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from synood.config import CHOICES, NegLabelConfig, check
from synood.method import scores
from synood.method.finetune import Projection

Need = Literal["features", "logits"]
Kind = Literal["post-hoc", "trained", "test-time"]
COMBINATIONS = CHOICES["finetune.combination"]  # the tuned parts a SynOOD scorer may use ("none" = NegLabel)


class Texts(NamedTuple):
    """The unit-norm text features a negative-label pool gives its scorers."""

    id_text: Tensor  # (C, D) the ID labels
    negative_text: Tensor  # (M, D) the negatives


@dataclass(frozen=True)
class ScoreInputs:
    """What a scorer may read about one batch of images: the texts are unit-norm, the image features raw."""

    id_text: Tensor  # (C, D) unit-norm ID label features
    negative_text: Tensor  # (M, D) unit-norm negative label features
    config: NegLabelConfig
    features: Tensor | None = None  # (B, D) raw image embeddings, when a scorer needs "features"
    logits: Tensor | None = None  # (B, classes) classifier logits, when a scorer needs "logits"

    def need(self, what: Need) -> Tensor:
        """The image features or logits; ValueError when the caller did not compute them."""
        found = self.features if what == "features" else self.logits
        if found is None:
            raise ValueError(f"this score needs the image {what}, which were not computed")
        return found

    @property
    def unit(self) -> Tensor:
        """(B, D) the image features L2-normalised, as cosine scores read them."""
        return F.normalize(self.need("features"), dim=-1)


class Scorer(ABC):
    """One OOD score: its name (CLI, JSON), title (tables), kind, the inputs it needs, and `score`."""

    name: ClassVar[str]
    title: ClassVar[str]
    kind: ClassVar[Kind]
    needs: ClassVar[frozenset[Need]]
    pool: ClassVar[str] = "neglabel"  # the pool (mining.POOLS) whose ID and negative texts its inputs hold

    def setup(self, reference: ScoreInputs) -> None:
        """Fit on reference in-distribution inputs before scoring; nothing to fit by default."""

    @abstractmethod
    def score(self, inputs: ScoreInputs) -> Tensor:
        """(B,) one value per image, higher = more in-distribution."""


def grouped(inputs: ScoreInputs, features: Tensor, negative_text: Tensor) -> tuple[Tensor, Tensor]:
    """NegLabel's (S, per-group scores) of unit-norm `features` against `negative_text`, in float64 (no ties at 1)."""
    c = inputs.config
    return scores.neglabel_score(features.double(), inputs.id_text.double(), negative_text.double(), c.ngroups,
                                 c.temperature, c.group_seed)


class NegLabel(Scorer):
    name, title, kind, needs = "neglabel", "NegLabel", "post-hoc", frozenset({"features"})

    def score(self, inputs: ScoreInputs) -> Tensor:
        return grouped(inputs, inputs.unit, inputs.negative_text)[0]


class CSP(NegLabel):
    """CSP (NeurIPS 2024): NegLabel's grouped score over the conjugated semantic pool (mining.POOLS["csp"]); its
    authors' code scores exactly as NegLabel's does (logits 100 * cosine, 100 seeded groups)."""

    name, title = "csp", "CSP"
    pool = "csp"


class MCM(Scorer):
    name, title, kind, needs = "mcm", "MCM", "post-hoc", frozenset({"features"})

    def score(self, inputs: ScoreInputs) -> Tensor:
        return scores.mcm_score(inputs.unit, inputs.id_text)


class MSP(Scorer):
    name, title, kind, needs = "msp", "MSP", "post-hoc", frozenset({"logits"})

    def score(self, inputs: ScoreInputs) -> Tensor:
        return scores.msp_score(inputs.need("logits"))


class Energy(Scorer):
    """-E(x), so that higher = more ID; wherever the energy itself is shown it is E(x), with the paper's sign."""

    name, title, kind, needs = "energy", "Energy -E(x)", "post-hoc", frozenset({"logits"})

    def score(self, inputs: ScoreInputs) -> Tensor:
        return scores.energy_score(inputs.need("logits"))


class Tuned(Protocol):
    """The trainable parts of a fine-tuned detector (records.checkpoint.TunedDetector fills it)."""

    projection: Projection | None
    negative_index: Tensor  # (K,) positions of the tuned negatives in the mined list
    negative_features: Tensor | None  # (K, D) their tuned text features, or None when stage 3 did not run


class SynOOD(Scorer):
    """NegLabel with projected image features and tuned negatives (METHOD.md section 6); `combination` picks
    the tuned parts it uses ("none" is plain NegLabel)."""

    name, title, kind, needs = "synood", "SynOOD", "trained", frozenset({"features"})

    def __init__(self, tuned: Tuned, combination: str = "both"):
        check("finetune.combination", combination)
        self.tuned, self.combination = tuned, combination

    def project(self, features: Tensor) -> Tensor:
        """Raw image embeddings -> unit-norm features after the projection (only normalised when there is none)."""
        if self.tuned.projection is None:
            return F.normalize(features, dim=-1)
        with torch.no_grad():
            return self.tuned.projection(features.float())

    def negatives(self, base: Tensor) -> Tensor:
        """The full unit-norm negative text features with the tuned rows substituted (normalised)."""
        if self.tuned.negative_features is None:
            return base
        tuned = base.clone()
        tuned[self.tuned.negative_index] = F.normalize(self.tuned.negative_features, dim=-1).to(base.dtype)
        return tuned

    def score(self, inputs: ScoreInputs) -> Tensor:
        both = self.combination == "both"
        features = self.project(inputs.need("features")) if both or self.combination == "projection" else inputs.unit
        negatives = self.negatives(inputs.negative_text) if both or self.combination == "negatives" \
            else inputs.negative_text
        return grouped(inputs, features, negatives)[0]


SCORERS: dict[str, type[Scorer]] = {cls.name: cls for cls in (NegLabel, MCM, MSP, Energy, CSP, SynOOD)}


def standard() -> list[str]:
    """The registered scores that need no trained detector file and read the NegLabel pool (no other pool to mine),
    in registry order: what every image gets."""
    return [name for name, cls in SCORERS.items() if cls.kind != "trained" and cls.pool == "neglabel"]


def choices(trained: bool = False) -> list[str]:
    """The scores one may ask for: the standard ones, then those reading another pool, then (with a tuned detector,
    `trained`) the trained ones; in registry order within each."""
    rest = [name for name, cls in SCORERS.items() if name not in standard() and cls.kind != "trained"]
    return [*standard(), *rest, *(name for name, cls in SCORERS.items() if trained and cls.kind == "trained")]


def build(name: str, tuned: Tuned | None = None, combination: str = "both") -> Scorer:
    """The registered scorer `name`; a trained one is built from `tuned` (ValueError without it)."""
    cls = SCORERS[name]
    if cls.kind != "trained":
        return cls()
    if tuned is None:
        raise ValueError(f"the {name} score needs a fine-tuned detector")
    return cls(tuned, combination)  # type: ignore[call-arg]
