"""Energy-guided noise optimisation (METHOD.md section 3) as plain functions over tensors.

A generator supplies `render(noise) -> image`, differentiable in whatever tensor carries the
gradient; the loop scores each rendered image with the energy classifier and moves the noise
against the gradient of the OOD loss, so the image drifts toward the ID/OOD boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from synood.config import check
from synood.method.scores import energy, msp_score



def boundary_score(logits: torch.Tensor) -> torch.Tensor:
    """s = mean(logits) - logsumexp(logits) per image, the reference code's OOD statistic."""
    return logits.mean(dim=-1) - torch.logsumexp(logits, dim=-1)


def ood_loss(logits: torch.Tensor, kind: str = "squared", m_out: float = -5.0) -> torch.Tensor:
    """The loss that pulls an image toward the OOD side, averaged over the batch.

    squared (reference code, default): (m_out - s)^2; hinge: relu((m_out + 1) - s)^2, zero once s
    passes m_out + 1; energy (paper eq. 7): relu(m_out - E)^2 with E = -logsumexp(logits).
    """
    check("synthesis.loss", kind)
    if kind == "squared":
        return ((m_out - boundary_score(logits)) ** 2).mean()
    if kind == "hinge":
        return (torch.relu((m_out + 1.0) - boundary_score(logits)) ** 2).mean()
    return (torch.relu(m_out - energy(logits)) ** 2).mean()  # energy


@dataclass(frozen=True)
class Iteration:
    """One step of the loop: the image it rendered and how the classifier saw that image."""

    index: int
    image: torch.Tensor  # (3, H, W) in [0, 1]
    loss: float
    energy: float
    id_score: float  # maximum softmax probability of the classifier
    predicted: int


def noise_steps(render: Callable[[torch.Tensor], torch.Tensor], noise: torch.Tensor,
                logits: Callable[[torch.Tensor], torch.Tensor], iterations: int = 3, step_size: float = 10.0,
                loss: str = "squared", m_out: float = -5.0) -> Iterator[Iteration]:
    """Render, score, yield, and step the noise against the loss gradient, `iterations` times.

    Each iteration is yielded as soon as it is scored, so a consumer can show it or stop (closing
    the generator) before the next one. The last rendered image is the one kept (as in the
    reference code), so the last iteration skips its unused gradient.
    """
    check("synthesis.loss", loss)
    for index in range(iterations):
        last = index == iterations - 1
        noise = noise.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            image = render(noise)
            scores = logits(image[None])
            value = ood_loss(scores, loss, m_out)
        detached = scores.detach().float()
        yield Iteration(index, image.detach(), value.item(), energy(detached).item(), msp_score(detached).item(),
                        int(detached.argmax()))
        if not last:
            (grad,) = torch.autograd.grad(value, noise)
            noise = noise.detach() - step_size * grad


def optimise_noise(render: Callable[[torch.Tensor], torch.Tensor], noise: torch.Tensor,
                   logits: Callable[[torch.Tensor], torch.Tensor], iterations: int = 3, step_size: float = 10.0,
                   loss: str = "squared", m_out: float = -5.0,
                   callback: Callable[[Iteration], None] | None = None) -> list[Iteration]:
    """Every iteration of `noise_steps`, each passed to `callback` as soon as it is scored."""
    history = []
    for step in noise_steps(render, noise, logits, iterations, step_size, loss, m_out):
        history.append(step)
        if callback:
            callback(step)
    return history
