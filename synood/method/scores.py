"""OOD scores over logits and CLIP features: Energy, MSP, MCM and NegLabel's grouped score.

Every `*_score` function returns one value per row where higher = more in-distribution.
See shared/METHOD.md section 1 for the NegLabel score.
"""
from __future__ import annotations

import torch
from torch import Tensor


def energy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Free energy E(x) = -T * logsumexp(logits / T) per row (lower = more ID)."""
    return -temperature * torch.logsumexp(logits / temperature, dim=-1)


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Energy as an ID score: -E(x), so that higher = more ID."""
    return -energy(logits, temperature)


def msp_score(logits: Tensor) -> Tensor:
    """Maximum softmax probability per row (the MSP baseline)."""
    return logits.softmax(dim=-1).max(dim=-1).values


def cosine_logits(image_features: Tensor, text_features: Tensor, temperature: float) -> Tensor:
    """Cosine similarities / temperature, shape (images, texts).

    Inputs must already be unit-norm (L2-normalised CLIP features); nothing is renormalised.
    """
    return image_features @ text_features.T / temperature


def mcm_score(image_features: Tensor, id_text_features: Tensor, temperature: float = 1.0) -> Tensor:
    """MCM: maximum softmax over the ID labels of cosine / temperature (unit-norm inputs)."""
    return msp_score(cosine_logits(image_features, id_text_features, temperature))


def group_permutation(num_negatives: int, ngroup: int, seed: int = 0) -> Tensor:
    """NegLabel's grouping as an (ngroup, M' / ngroup) index matrix over the negative labels.

    The last (M mod ngroup) negatives are dropped; the other M' are shuffled by a seeded CPU
    generator (so every device gets the same groups) and split row-major into equal groups.
    """
    if not 1 <= ngroup <= num_negatives:
        raise ValueError(
            f"ngroup must be between 1 and the number of negative labels ({num_negatives}), "
            f"got {ngroup}"
        )
    kept = num_negatives - num_negatives % ngroup
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(kept, generator=generator).reshape(ngroup, kept // ngroup)


def grouped_scores(
    id_logits: Tensor, neg_logits: Tensor, ngroup: int = 100, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """NegLabel's grouped score: (S of shape (B,), per-group scores of shape (B, ngroup)).

    Per group, the ID mass of softmax([ID logits, group's negative logits]), computed stably as
    sigmoid(logsumexp(ID) - logsumexp(group)); S = mean over groups. With ngroup = 1 the softmax
    is still applied (the reference code skips it there, a bug not copied).
    """
    if id_logits.ndim != 2 or neg_logits.ndim != 2 or id_logits.shape[0] != neg_logits.shape[0]:
        raise ValueError(
            "id_logits and neg_logits must be (batch, labels) with the same batch, got shapes "
            f"{tuple(id_logits.shape)} and {tuple(neg_logits.shape)}"
        )
    groups = group_permutation(neg_logits.shape[1], ngroup, seed).to(neg_logits.device)
    id_mass = torch.logsumexp(id_logits, dim=1, keepdim=True)  # (B, 1)
    neg_mass = torch.logsumexp(neg_logits[:, groups], dim=2)  # (B, ngroup)
    per_group = torch.sigmoid(id_mass - neg_mass)
    return per_group.mean(dim=1), per_group


def neglabel_score(
    image_features: Tensor,
    id_text_features: Tensor,
    neg_text_features: Tensor,
    ngroup: int = 100,
    temperature: float = 0.01,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """NegLabel score from unit-norm CLIP features: `grouped_scores` over cosine / temperature.

    The default temperature 0.01 gives NegLabel's logits = 100 * cosine.
    """
    id_logits = cosine_logits(image_features, id_text_features, temperature)
    neg_logits = cosine_logits(image_features, neg_text_features, temperature)
    return grouped_scores(id_logits, neg_logits, ngroup=ngroup, seed=seed)
