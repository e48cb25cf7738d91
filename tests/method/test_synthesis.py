"""synood.method.synthesis: the OOD statistic, the three losses, the noise-optimisation loop and its step rule, on toys."""
import math
from types import SimpleNamespace

import pytest
import torch

from synood.config import ConfigError, SynthesisConfig
from synood.pipelines.generation import GenerationError, check_settings, describe_step, iterations, settings_record, step_size
from synood.method.synthesis import boundary_score, ood_loss, optimise_noise

# Row A = [0, 0, 0]:    mean = 0, logsumexp = ln 3
# Row B = [10, 0, -10]: mean = 0, logsumexp = 10 + ln(1 + e^-10 + e^-20) = 10.0000454
LOGITS = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, -10.0]], dtype=torch.float64)
LSE_A = math.log(3)
LSE_B = 10 + math.log(1 + math.exp(-10) + math.exp(-20))


def test_boundary_score_is_mean_minus_logsumexp():
    # s = mean - logsumexp: A -> 0 - ln 3 = -1.0986; B -> 0 - 10.0000454
    assert boundary_score(LOGITS).tolist() == pytest.approx([-LSE_A, -LSE_B], abs=1e-9)


def test_squared_loss():
    # (m_out - s)^2 with m_out = -5: A (-5 + 1.0986)^2 = 15.2209; B (-5 + 10.0000454)^2 = 25.0005; mean 20.1107
    expected = ((-5 + LSE_A) ** 2 + (-5 + LSE_B) ** 2) / 2
    assert ood_loss(LOGITS).item() == pytest.approx(expected, abs=1e-9)
    assert ood_loss(LOGITS, "squared", m_out=-5.0).item() == pytest.approx(20.1107, abs=1e-4)


def test_hinge_loss():
    # relu((m_out + 1) - s)^2 with m_out = -5: A relu(-4 + 1.0986) = 0; B relu(-4 + 10.0000454)^2 = 36.0005;
    # mean 18.00027
    expected = (0 + (-4 + LSE_B) ** 2) / 2
    assert ood_loss(LOGITS, "hinge", m_out=-5.0).item() == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(18.00027, abs=1e-4)


def test_energy_loss():
    # E = -logsumexp; relu(m_out - E)^2 = relu(-5 + lse)^2: A relu(-5 + 1.0986) = 0; B (5.0000454)^2 = 25.0005;
    # mean 12.50023
    expected = (0 + (-5 + LSE_B) ** 2) / 2
    assert ood_loss(LOGITS, "energy", m_out=-5.0).item() == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(12.50023, abs=1e-4)


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="squared.*hinge.*energy"):
        ood_loss(LOGITS, "bogus")


# --- optimise_noise on a toy renderer and classifier ------------------------------------------------------

WEIGHTS = torch.randn(5, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) * 0.3


def toy_logits(images):  # (B, 3, 8, 8) -> (B, 5)
    return images.flatten(1) @ WEIGHTS.T


class RecordingRender:
    def __init__(self):
        self.noises, self.images = [], []

    def __call__(self, noise):
        image = torch.sigmoid(noise).expand(3, 8, 8)
        self.noises.append(noise.detach().clone())
        self.images.append(image.detach().clone())
        return image


def _noise():
    return torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_loss_falls_for_a_small_step():
    history = optimise_noise(RecordingRender(), _noise(), toy_logits, iterations=5, step_size=0.05)
    losses = [step.loss for step in history]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_callback_fires_once_per_iteration_in_order():
    seen = []
    history = optimise_noise(RecordingRender(), _noise(), toy_logits, iterations=5, step_size=0.05,
                             callback=seen.append)
    assert [step.index for step in seen] == [0, 1, 2, 3, 4]
    assert seen == history


def test_each_iteration_keeps_the_image_rendered_from_its_noise():
    render, noise = RecordingRender(), _noise()
    history = optimise_noise(render, noise, toy_logits, iterations=5, step_size=0.05, loss="squared")
    assert len(render.noises) == 5 and torch.equal(render.noises[0], noise)
    for step, seen_noise, image in zip(history, render.noises, render.images):
        assert torch.equal(step.image, image)
        assert torch.equal(step.image, torch.sigmoid(seen_noise).expand(3, 8, 8))
        scores = toy_logits(image[None])
        assert step.loss == pytest.approx(ood_loss(scores, "squared").item())
        assert step.predicted == int(scores.argmax())
    # the second noise is the first moved against the loss gradient
    first = noise.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ood_loss(toy_logits(torch.sigmoid(first).expand(3, 8, 8)[None]), "squared"), first)
    assert grad.abs().max() > 0 and not torch.equal(render.noises[1], noise)
    assert torch.allclose(render.noises[1], noise - 0.05 * grad)


def test_deterministic_across_runs():
    a = optimise_noise(RecordingRender(), _noise(), toy_logits, iterations=4, step_size=0.05)
    b = optimise_noise(RecordingRender(), _noise(), toy_logits, iterations=4, step_size=0.05)
    assert [s.loss for s in a] == [s.loss for s in b]
    assert all(torch.equal(x.image, y.image) for x, y in zip(a, b))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_callers_noise_is_untouched(requires_grad):
    noise = _noise().requires_grad_(requires_grad)
    before = noise.detach().clone()
    history = optimise_noise(RecordingRender(), noise, toy_logits, iterations=3, step_size=0.5)
    assert noise.grad is None and noise.requires_grad == requires_grad
    assert torch.equal(noise.detach(), before)
    assert not any(step.image.requires_grad for step in history)


# --- the step rule: per image (paper) or the released code's batch mean ------------------------------------

def _canvas_parts(render, noise, step):
    """A generator, classifier and canvas with just what generation.iterations reads."""
    return SimpleNamespace(step_size=step), SimpleNamespace(logits=toy_logits), SimpleNamespace(render=render,
                                                                                                  noise=noise)


def _gradient(noise):
    """d ood_loss / d noise for one image alone."""
    noise = noise.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ood_loss(toy_logits(torch.sigmoid(noise).expand(3, 8, 8)[None])), noise)
    return grad


def test_a_batch_mean_loss_gives_each_image_its_own_gradient_over_b():
    """The released code's definition: B images in one batch, the loss averaged over it; the gradient reaching
    each image's noise is that image's own gradient divided by B, whatever the other images are."""
    noises = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    batch = torch.stack([torch.sigmoid(n).expand(3, 8, 8) for n in noises])
    (grads,) = torch.autograd.grad(ood_loss(toy_logits(batch)), noises)
    for noise, grad in zip(noises.detach(), grads):
        assert _gradient(noise).abs().max() > 0
        torch.testing.assert_close(grad, _gradient(noise) / 3, rtol=1e-5, atol=1e-7)  # float32 rounding


@pytest.mark.parametrize("rule, batch_size, divisor", [("image", 2, 1), ("batch", 2, 2), ("batch", 4, 4),
                                                      ("batch", 1, 1)])
def test_the_noise_moves_by_r_rho_over_b_times_its_gradient(rule, batch_size, divisor):
    settings = SynthesisConfig(iterations=2, step_size=10.0, step_rule=rule, batch_size=batch_size)
    render, noise = RecordingRender(), _noise()
    generator, classifier, canvas = _canvas_parts(render, noise, step=99.0)  # the configured step wins
    assert step_size(generator, settings) == 10.0 / divisor
    list(iterations(generator, classifier, canvas, settings))
    torch.testing.assert_close(render.noises[1], noise - 10.0 / divisor * _gradient(noise), rtol=0, atol=1e-6)


def test_one_image_at_r_rho_over_b_is_that_image_in_a_batch_of_b_at_r_rho():
    """Processing images one at a time under step_rule=batch moves each exactly as the released code's batch does."""
    noises = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    batched = noises.clone().requires_grad_(True)
    loss = ood_loss(toy_logits(torch.stack([torch.sigmoid(n).expand(3, 8, 8) for n in batched])))
    (grads,) = torch.autograd.grad(loss, batched)
    settings = SynthesisConfig(iterations=2, step_rule="batch", batch_size=2)
    for noise, grad in zip(noises, grads):
        render = RecordingRender()
        list(iterations(*_canvas_parts(render, noise, step=10.0), settings))  # the generator's own r*rho = 10
        torch.testing.assert_close(render.noises[1], noise - 10.0 * grad, rtol=0, atol=1e-6)


def test_the_step_rule_says_what_it_applies_and_refuses_a_batch_below_one():
    generator = SimpleNamespace(step_size=10.0)
    assert "10 x each image's gradient (per image" in describe_step(generator, SynthesisConfig())
    assert "10/2 = 5 x each image's gradient" in describe_step(generator, SynthesisConfig(step_rule="batch"))
    with pytest.raises(ConfigError, match="synthesis.batch_size: 0 is out of range; must be at least 1"):
        step_size(generator, SynthesisConfig(step_rule="batch", batch_size=0))
    with pytest.raises(ConfigError, match="synthesis.step_rule: 'mean' is not allowed; choose one of image, batch"):
        step_size(generator, SynthesisConfig(step_rule="mean"))


def test_the_step_rule_is_part_of_a_generations_settings(tmp_path):
    record = settings_record(tmp_path / "selection.jsonl", {}, SynthesisConfig(step_rule="batch"))
    assert (record["synthesis"]["step_rule"], record["synthesis"]["batch_size"]) == ("batch", 2)
    check_settings(tmp_path, record)
    with pytest.raises(GenerationError, match=r"synthesis \(step_rule\) differ"):
        check_settings(tmp_path, settings_record(tmp_path / "selection.jsonl", {}, SynthesisConfig()))
